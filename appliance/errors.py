"""Every error the station raises on purpose.

One root (:class:`VideoStationError`), one base per area, and leaves that also
inherit the matching builtin so callers may catch either. Each error carries the
HTTP ``status`` and a stable machine ``code`` that the error middleware and the
signaling hub put into ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations


class VideoStationError(Exception):
    """Root of all Video Station errors."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


# --- configuration -----------------------------------------------------------------


class ConfigError(VideoStationError, ValueError):
    """The configuration is invalid."""

    code = "config_error"


# --- request validation ------------------------------------------------------------


class StateDirUnusable(ConfigError):
    """The state dir (database, keys) cannot be created or written."""

    code = "state_dir_unusable"


class RequestError(VideoStationError, ValueError):
    """The request is malformed."""

    status = 400
    code = "bad_request"


class InvalidJSON(RequestError):
    """The request body is not valid JSON."""

    code = "invalid_json"


class ValidationError(RequestError):
    """A field of the request is missing or has the wrong type."""

    code = "validation_error"


class PayloadTooLarge(RequestError):
    """The request body is too large."""

    status = 413
    code = "payload_too_large"


class NotFound(VideoStationError, LookupError):
    """No such resource."""

    status = 404
    code = "not_found"


class MethodNotAllowed(VideoStationError):
    """This path does not take that method."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str | None = None, *, allow: list[str]) -> None:
        super().__init__(message)
        self.allow = allow


class RoomNotFound(NotFound):
    """No such room."""

    code = "room_not_found"


class GuestLinkNotFound(NotFound):
    """No such guest link."""

    code = "guest_link_not_found"


class Conflict(VideoStationError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"


class AlreadyJoined(Conflict):
    """Already in a room: one room per connection."""

    code = "already_joined"


class StationRoomProtected(Conflict, PermissionError):
    """The station's own room cannot be deleted."""

    code = "station_room_protected"


# --- auth --------------------------------------------------------------------------


class AuthError(VideoStationError, PermissionError):
    """Authentication or authorisation failed."""

    status = 401
    code = "unauthorized"


class NotAuthenticated(AuthError):
    """Log in first."""

    code = "not_authenticated"


class WrongPassword(AuthError):
    """Wrong password."""

    code = "wrong_password"


class PasswordNotSet(AuthError):
    """No master password is set yet: run `videostation set-password`."""

    status = 503
    code = "password_not_set"


class TooManySockets(VideoStationError):
    """One session opened too many WebSockets."""

    status = 429
    code = "too_many_sockets"


class TooManyAttempts(AuthError):
    """Too many failed logins; try again later."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidToken(AuthError):
    """The guest token is invalid."""

    code = "invalid_token"


class TokenExpired(InvalidToken):
    """The guest link has expired."""

    code = "token_expired"


class TokenNotYetValid(InvalidToken):
    """The guest link is not valid yet."""

    code = "token_not_yet_valid"


class GuestLinkRevoked(InvalidToken):
    """The guest link was revoked."""

    status = 403
    code = "guest_link_revoked"


class GuestLinkUsedUp(InvalidToken):
    """The guest link has been used as often as it may be."""

    status = 403
    code = "guest_link_used_up"


class Forbidden(AuthError):
    """You may not do that."""

    status = 403
    code = "forbidden"


class WrongRoom(Forbidden):
    """This guest link is for another room."""

    code = "wrong_room"


class OriginRejected(Forbidden):
    """Cross-origin request refused."""

    code = "origin_rejected"


# --- signaling ---------------------------------------------------------------------


class SignalingError(VideoStationError, ValueError):
    """A signaling message was refused."""

    status = 400
    code = "signaling_error"


class MalformedMessage(SignalingError):
    """The message is not a valid signaling message."""

    code = "malformed_message"


class UnknownMessageType(SignalingError):
    """Unknown message type."""

    code = "unknown_type"


class MessageTooLarge(SignalingError):
    """The message is too large."""

    code = "message_too_large"


class RateLimited(SignalingError):
    """Too many messages; slow down."""

    status = 429
    code = "rate_limited"


class NotInRoom(SignalingError):
    """Join a room first."""

    code = "not_in_room"


class UnknownPeer(SignalingError, LookupError):
    """No such peer in this room."""

    status = 404
    code = "unknown_peer"


class NotConnected(SignalingError, PermissionError):
    """Signaling between two peers the call has not connected (no ``connect`` sent)."""

    code = "not_connected"


class RoomFull(SignalingError):
    """The room is full."""

    status = 409
    code = "room_full"


class CallStateError(SignalingError):
    """That call action does not fit the station's call state."""

    status = 409
    code = "call_state"


# --- media and hardware ------------------------------------------------------------


class MediaError(VideoStationError, RuntimeError):
    """A camera, microphone or encoder problem."""

    code = "media_error"


class SourceUnavailable(MediaError, OSError):
    """The camera or microphone could not be opened."""

    code = "source_unavailable"


class HardwareError(VideoStationError, RuntimeError):
    """A GPIO or display problem."""

    code = "hardware_error"

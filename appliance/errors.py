"""Every error the station raises on purpose.

One root (:class:`VideoStationError`), one base per area, and leaves that also
inherit the matching builtin so callers may catch either. Each error carries the
HTTP ``status`` and a stable machine ``code`` that the error middleware and the
signaling hub put into ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Literal, get_args

ErrorCode = Literal[
    # requests and configuration
    "internal_error",
    "config_error",
    "state_dir_unusable",
    "bad_request",
    "invalid_json",
    "validation_error",
    "payload_too_large",
    "request_timeout",
    "too_busy",
    "not_found",
    "method_not_allowed",
    "http_error",
    "room_not_found",
    "guest_link_not_found",
    "conflict",
    "already_joined",
    "station_room_protected",
    # auth
    "unauthorized",
    "not_authenticated",
    "wrong_password",
    "password_not_set",
    "too_many_sockets",
    "too_many_attempts",
    "login_busy",
    "invalid_token",
    "token_expired",
    "guest_link_revoked",
    "guest_link_used_up",
    "forbidden",
    "wrong_room",
    "origin_rejected",
    "kiosk_not_local",
    # signaling
    "signaling_error",
    "malformed_message",
    "unknown_type",
    "message_too_large",
    "rate_limited",
    "not_in_room",
    "unknown_peer",
    "not_connected",
    "room_full",
    "ring_wait",
    "call_state",
    "unsupported_version",
    # media and hardware
    "media_error",
    "source_unavailable",
    "hardware_error",
]
"""Every machine code the service sends: in a signaling ``error`` message and in a
REST error body ``{"error": {"code", "message"}}`` (one vocabulary for both)."""
ERROR_CODES: tuple[ErrorCode, ...] = get_args(ErrorCode)


class VideoStationError(Exception):
    """Root of all Video Station errors."""

    status: int = 500
    code: ErrorCode = "internal_error"
    """Its machine code: one of :data:`ErrorCode`."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


# --- configuration -----------------------------------------------------------------


class ConfigError(VideoStationError, ValueError):
    """The configuration is invalid."""

    code: ErrorCode = "config_error"


# --- request validation ------------------------------------------------------------


class StateDirUnusable(ConfigError):
    """The state dir (database, keys) cannot be created or written."""

    code: ErrorCode = "state_dir_unusable"


class RequestError(VideoStationError, ValueError):
    """The request is malformed."""

    status = 400
    code: ErrorCode = "bad_request"


class InvalidJSON(RequestError):
    """The request body is not valid JSON."""

    code: ErrorCode = "invalid_json"


class ValidationError(RequestError):
    """A field of the request is missing or has the wrong type."""

    code: ErrorCode = "validation_error"


class PayloadTooLarge(RequestError):
    """The request body is too large."""

    status = 413
    code: ErrorCode = "payload_too_large"


class BodyTimeout(RequestError, TimeoutError):
    """The request body did not arrive in time."""

    status = 408
    code: ErrorCode = "request_timeout"


class TooBusy(VideoStationError):
    """The station is at its limit of connections without a household or kiosk
    session."""

    status = 503
    code: ErrorCode = "too_busy"


class NotFound(VideoStationError, LookupError):
    """No such resource."""

    status = 404
    code: ErrorCode = "not_found"


class MethodNotAllowed(VideoStationError):
    """This path does not take that method."""

    status = 405
    code: ErrorCode = "method_not_allowed"

    def __init__(self, message: str | None = None, *, allow: list[str]) -> None:
        super().__init__(message)
        self.allow = allow


class RoomNotFound(NotFound):
    """No such room."""

    code: ErrorCode = "room_not_found"


class GuestLinkNotFound(NotFound):
    """No such guest link."""

    code: ErrorCode = "guest_link_not_found"


class Conflict(VideoStationError):
    """The request conflicts with the current state."""

    status = 409
    code: ErrorCode = "conflict"


class AlreadyJoined(Conflict):
    """Already in a room: one room per connection."""

    code: ErrorCode = "already_joined"


class StationRoomProtected(Conflict, PermissionError):
    """The station's own room cannot be deleted."""

    code: ErrorCode = "station_room_protected"


# --- auth --------------------------------------------------------------------------


class AuthError(VideoStationError, PermissionError):
    """Authentication or authorisation failed."""

    status = 401
    code: ErrorCode = "unauthorized"


class NotAuthenticated(AuthError):
    """Log in first."""

    code: ErrorCode = "not_authenticated"


class WrongPassword(AuthError):
    """Wrong password."""

    code: ErrorCode = "wrong_password"


class WrongCurrentPassword(WrongPassword):
    """The current password given to change it is wrong (403: the session holds, the
    page must not take it for a logout)."""

    status = 403


class PasswordNotSet(AuthError):
    """No master password is set yet: run `videostation set-password`."""

    status = 503
    code: ErrorCode = "password_not_set"


class TooManySockets(VideoStationError):
    """One session opened too many WebSockets."""

    status = 429
    code: ErrorCode = "too_many_sockets"


class TooManyAttempts(AuthError):
    """Too many failed logins; try again later."""

    status = 429
    code: ErrorCode = "too_many_attempts"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LoginBusy(AuthError):
    """The station is checking other logins; try again in a moment."""

    status = 503
    code: ErrorCode = "login_busy"
    retry_after = 1


class InvalidToken(AuthError):
    """The guest token is invalid."""

    code: ErrorCode = "invalid_token"


class TokenExpired(InvalidToken):
    """The guest link has expired."""

    code: ErrorCode = "token_expired"


class GuestLinkRevoked(InvalidToken):
    """The guest link was revoked."""

    status = 403
    code: ErrorCode = "guest_link_revoked"


class GuestLinkUsedUp(InvalidToken):
    """The guest link has been used as often as it may be."""

    status = 403
    code: ErrorCode = "guest_link_used_up"


class Forbidden(AuthError):
    """You may not do that."""

    status = 403
    code: ErrorCode = "forbidden"


class WrongRoom(Forbidden):
    """This guest link is for another room."""

    code: ErrorCode = "wrong_room"


class OriginRejected(Forbidden):
    """Cross-origin request refused."""

    code: ErrorCode = "origin_rejected"


class KioskNotLocal(Forbidden):
    """The kiosk key and the kiosk's session work only on the station itself."""

    code: ErrorCode = "kiosk_not_local"


# --- signaling ---------------------------------------------------------------------


class SignalingError(VideoStationError, ValueError):
    """A signaling message was refused."""

    status = 400
    code: ErrorCode = "signaling_error"


class MalformedMessage(SignalingError):
    """The message is not a valid signaling message."""

    code: ErrorCode = "malformed_message"


class UnknownMessageType(SignalingError):
    """Unknown message type."""

    code: ErrorCode = "unknown_type"


class MessageTooLarge(SignalingError):
    """The message is too large."""

    code: ErrorCode = "message_too_large"


class RateLimited(SignalingError):
    """Too many messages; slow down."""

    status = 429
    code: ErrorCode = "rate_limited"


class NotInRoom(SignalingError):
    """Join a room first."""

    code: ErrorCode = "not_in_room"


class UnknownPeer(SignalingError, LookupError):
    """No such peer in this room."""

    status = 404
    code: ErrorCode = "unknown_peer"


class NotConnected(SignalingError, PermissionError):
    """Signaling between two peers the call has not connected (no ``connect`` sent)."""

    code: ErrorCode = "not_connected"


class RoomFull(SignalingError):
    """The room is full."""

    status = 409
    code: ErrorCode = "room_full"


class RingWait(SignalingError):
    """You rang a moment ago: wait a little before ringing again."""

    status = 429
    code: ErrorCode = "ring_wait"

    def __init__(self, retry_after: int, call_id: int | None = None) -> None:
        super().__init__(f"You can ring again in {retry_after} s.")
        self.retry_after = retry_after
        self.call_id = call_id
        """The call-log row that counts this refused ring (None: none yet)."""


class CallStateError(SignalingError):
    """That call action does not fit the station's call state."""

    status = 409
    code: ErrorCode = "call_state"


# --- media and hardware ------------------------------------------------------------


class MediaError(VideoStationError, RuntimeError):
    """A camera, microphone or encoder problem."""

    code: ErrorCode = "media_error"


class SourceUnavailable(MediaError, OSError):
    """The camera or microphone could not be opened."""

    code: ErrorCode = "source_unavailable"


class HardwareError(VideoStationError, RuntimeError):
    """A GPIO or display problem."""

    code: ErrorCode = "hardware_error"

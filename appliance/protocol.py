"""The signaling codec: JSON frames to typed messages and back (docs/signaling.md).

Pure functions, no sockets: :func:`parse` turns a text frame into one of the
message dataclasses or raises a :class:`~appliance.errors.SignalingError`;
:func:`encode` turns an outgoing message (a plain dict with a ``type``) into text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from .errors import MalformedMessage, MessageTooLarge, UnknownMessageType

VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_NAME_CHARS = 40
MAX_CANDIDATE_CHARS = 1024
CallAction = Literal["ring", "answer", "decline", "hangup", "admit", "refuse"]
CALL_ACTIONS: tuple[CallAction, ...] = ("ring", "answer", "decline", "hangup", "admit", "refuse")


@dataclass(frozen=True, slots=True)
class Join:
    version: int
    """Protocol version the client speaks."""
    room: str
    """Room to enter."""
    name: str
    """Display name (1-40 characters)."""
    resume: bool = False
    """The client was in the station's call when its connection was lost: after a
    restart of the service the call resumes for it without ringing (only for the
    sessions that were in that call, and only shortly after start-up)."""


@dataclass(frozen=True, slots=True)
class Signal:
    to: str
    """Peer id of the receiver."""
    payload: dict[str, Any]
    """Exactly one of {"description": ...}, {"candidate": ...}, {"restart": True}."""


@dataclass(frozen=True, slots=True)
class Call:
    action: CallAction
    peer: str | None = None
    """For ``admit`` and ``refuse``: the knocking peer."""


@dataclass(frozen=True, slots=True)
class Media:
    audio_muted: bool
    video_muted: bool


@dataclass(frozen=True, slots=True)
class StationMedia:
    """The kiosk mutes the station's microphone / turns its camera off (in a call only)."""

    audio_muted: bool
    """True: every caller hears silence from the station."""
    video_muted: bool
    """True: every caller sees black from the station."""


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


Message = Join | Signal | Call | Media | StationMedia | Leave | Ping


def _str(data: dict[str, Any], key: str, *, max_len: int = 200) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise MalformedMessage(
            f"'{key}' must be a non-empty string of at most {max_len} characters."
        )
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise MalformedMessage(f"'{key}' must be true or false.")
    return value


def _description(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedMessage("'description' must be an object.")
    kind = value.get("type")
    if kind not in ("offer", "answer", "pranswer", "rollback"):
        raise MalformedMessage("'description.type' must be offer, answer, pranswer or rollback.")
    sdp = value.get("sdp", "")
    if not isinstance(sdp, str) or (kind != "rollback" and not sdp):
        raise MalformedMessage("'description.sdp' must be a non-empty string.")
    return {"type": kind, "sdp": sdp}


def _candidate(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("candidate", ""), str):
        raise MalformedMessage("'candidate' must be an RTCIceCandidateInit object or null.")
    if len(value.get("candidate", "")) > MAX_CANDIDATE_CHARS:
        raise MalformedMessage(f"'candidate' may have at most {MAX_CANDIDATE_CHARS} characters.")
    clean: dict[str, Any] = {"candidate": value.get("candidate", "")}
    mid = value.get("sdpMid")
    if mid is not None and not isinstance(mid, str):
        raise MalformedMessage("'candidate.sdpMid' must be a string or null.")
    index = value.get("sdpMLineIndex")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise MalformedMessage("'candidate.sdpMLineIndex' must be a non-negative integer or null.")
    ufrag = value.get("usernameFragment")
    if ufrag is not None and not isinstance(ufrag, str):
        raise MalformedMessage("'candidate.usernameFragment' must be a string or null.")
    clean["sdpMid"] = mid
    clean["sdpMLineIndex"] = index
    # The ICE generation a candidate belongs to: without it, a candidate gathered for an
    # offer that was rolled back (glare) is applied to the next generation.
    clean["usernameFragment"] = ufrag
    return clean


def parse(frame: str | bytes) -> Message:
    """Parse one text frame. Raises MessageTooLarge, MalformedMessage or UnknownMessageType."""
    if isinstance(frame, bytes):
        raise MalformedMessage("Binary frames are not supported; send JSON text.")
    if len(frame) > MAX_FRAME_BYTES:
        raise MessageTooLarge(f"Messages may be at most {MAX_FRAME_BYTES} bytes.")
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage("The message is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise MalformedMessage("A message must be a JSON object.")
    if not encodes_as_utf8(data):
        raise MalformedMessage("Text must be valid Unicode (no lone surrogates).")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise MalformedMessage("A message needs a string 'type'.")
    match kind:
        case "join":
            version = data.get("version")
            if not isinstance(version, int) or isinstance(version, bool):
                raise MalformedMessage("'version' must be an integer.")
            name = data.get("name", "")
            if not isinstance(name, str) or len(name.strip()) > MAX_NAME_CHARS:
                raise MalformedMessage(
                    f"'name' must be a string of at most {MAX_NAME_CHARS} characters."
                )
            resume = data.get("resume", False)
            if not isinstance(resume, bool):
                raise MalformedMessage("'resume' must be true or false.")
            return Join(
                version, _str(data, "room", max_len=64), " ".join(name.split()), resume=resume
            )
        case "signal":
            to = _str(data, "to", max_len=64)
            present = [k for k in ("description", "candidate", "restart") if k in data]
            if len(present) != 1:
                raise MalformedMessage(
                    "'signal' needs exactly one of description, candidate, restart."
                )
            key = present[0]
            if key == "description":
                return Signal(to, {"description": _description(data["description"])})
            if key == "candidate":
                return Signal(to, {"candidate": _candidate(data["candidate"])})
            if data["restart"] is not True:
                raise MalformedMessage("'restart' must be true.")
            return Signal(to, {"restart": True})
        case "call":
            action = data.get("action")
            if action not in CALL_ACTIONS:
                raise MalformedMessage(f"'action' must be one of {', '.join(CALL_ACTIONS)}.")
            if action in ("admit", "refuse"):
                return Call(action, _str(data, "peer", max_len=64))
            return Call(action)
        case "media":
            return Media(_bool(data, "audio"), _bool(data, "video"))
        case "station-media":
            return StationMedia(_bool(data, "audio"), _bool(data, "video"))
        case "leave":
            return Leave()
        case "ping":
            return Ping()
    raise UnknownMessageType(f"Unknown message type {kind[:40]!r}.")


def message_type(message: Message) -> str:
    """The wire ``type`` of a parsed message (an ``error``'s ``ref``)."""
    return "station-media" if isinstance(message, StationMedia) else type(message).__name__.lower()


def encodes_as_utf8(data: Any) -> bool:
    """False when a string in ``data`` cannot be UTF-8 (JSON's ``"\\ud800"`` escapes
    decode to lone surrogates that would break logging, SQLite and every peer)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(message: dict[str, Any]) -> str:
    """Serialise an outgoing message (a dict with a 'type')."""
    if "type" not in message:
        raise ValueError("outgoing message without a type")
    return json.dumps(message, separators=(",", ":"))


def error(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref:
        out["ref"] = ref
    return out


def peer_updated(peer: dict[str, Any]) -> dict[str, Any]:
    """``peer-updated``: a peer object whose ``muted`` changed."""
    return {"type": "peer-updated", "peer": peer}


def mic_level(dbfs: float | None, *, muted: bool) -> dict[str, Any]:
    """``mic-level`` (to the kiosk only): the level of the sound the station sends.

    >>> mic_level(-23.456, muted=False)
    {'type': 'mic-level', 'dbfs': -23.5, 'muted': False}
    >>> mic_level(None, muted=True)
    {'type': 'mic-level', 'dbfs': None, 'muted': True}
    """
    return {"type": "mic-level", "dbfs": None if dbfs is None else round(dbfs, 1), "muted": muted}

"""The signaling vocabulary, both ways (docs/signaling.md).

Pure functions and frozen values, no sockets. Inbound, :func:`parse` turns a text
frame into one of the client message dataclasses or raises a
:class:`~appliance.errors.SignalingError`. Outbound, every message the service
sends is one of the server message dataclasses, and :func:`encode` is the one
serializer that turns it into text::

    >>> parse('{"type": "call", "action": "answer"}')
    Call(action='answer', peer=None)
    >>> encode(Bye("revoked"))
    '{"type":"bye","reason":"revoked"}'
    >>> encode(Relayed("station", Description("offer", "v=0"), session=1))
    '{"type":"signal","from":"station","description":{"type":"offer","sdp":"v=0"},"session":1}'

Reasons and error codes are ``Literal`` types (``ErrorCode`` is declared beside the
error classes in :mod:`appliance.errors` and re-exported here): a new one is added here, in
docs/signaling.md and (for a final ``bye``) in web/js/protocol.js, which
tests/test_protocol_contract.py checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, assert_never, get_args

from .errors import ERROR_CODES as ERROR_CODES  # re-exported: the wire's error codes
from .errors import ErrorCode as ErrorCode
from .errors import MalformedMessage, MessageTooLarge, UnknownMessageType

VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_NAME_CHARS = 40
MAX_CANDIDATE_CHARS = 1024
CallAction = Literal["ring", "answer", "decline", "hangup", "admit", "refuse"]
CALL_ACTIONS: tuple[CallAction, ...] = get_args(CallAction)

ByeReason = Literal[
    "room_deleted",
    "room_full",
    "replaced",
    "shutdown",
    "left",
    "refused",
    "revoked",
    "session_ended",
    "expired",
]
"""Why the server is about to close a socket (the ``reason`` of ``bye``)."""
BYE_REASONS: tuple[ByeReason, ...] = get_args(ByeReason)
RETRIED_BYE_REASONS: tuple[ByeReason, ...] = ("shutdown",)
"""After these the page reconnects by itself; every other reason is final."""


SdpType = Literal["offer", "answer", "pranswer", "rollback"]
SDP_TYPES: tuple[SdpType, ...] = get_args(SdpType)


# --- what a signal carries (both ways) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Description:
    """An RTCSessionDescription: ``{"description": {"type", "sdp"}}``."""

    type: SdpType
    sdp: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """An RTCIceCandidateInit: ``{"candidate": {...}}``; ``candidate=""`` is the
    browser's end-of-candidates marker."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None
    """The ICE generation it belongs to: without it, a candidate gathered for an offer
    that was rolled back (glare) is applied to the next generation."""


@dataclass(frozen=True, slots=True)
class EndOfCandidates:
    """``{"candidate": null}``: the sender gathered every candidate."""


@dataclass(frozen=True, slots=True)
class Restart:
    """``{"restart": true}``: asks the station peer to renegotiate from scratch."""


SignalPayload = Description | Candidate | EndOfCandidates | Restart


# --- client -> server ---------------------------------------------------------------


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
    ring: bool = True
    """Entering the station's room rings it (or knocks). ``False``: enter silently — a
    page that lost its socket while showing a finished call rejoins without ringing
    again; only its explicit ``call`` ``ring`` rings."""


@dataclass(frozen=True, slots=True)
class Signal:
    to: str
    """Peer id of the receiver."""
    payload: SignalPayload
    """A description, a candidate, end-of-candidates or a restart request."""


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


# --- server -> client ---------------------------------------------------------------


class PeerObject(TypedDict):
    """A peer as every page sees it (docs/signaling.md, "Peers and participants")."""

    id: str
    name: str
    role: str
    kind: str
    participant: str
    sends: list[str]
    receives: list[str]
    muted: dict[str, bool]


class Person(TypedDict):
    id: str
    name: str


class CallObject(TypedDict):
    """The station's call state (docs/signaling.md, "The call object")."""

    state: str
    callers: list[Person]
    in_call: list[Person]
    knocking: list[Person]
    live: bool
    unreached: list[str]
    """The ids of the callers in the call whose connection from the station failed
    (retried, not up again): nothing of the station reaches them."""
    since: float
    ring_timeout_at: float | None
    auto_answer_at: float | None
    ended: str | None
    quiet: bool
    """Do not disturb is on: a ring is logged missed and the caller told."""
    quiet_until: float | None
    """When do not disturb ends by itself (Unix seconds); None while it is off."""
    audio_muted: bool
    """The kiosk muted the station's microphone (this call only)."""
    video_muted: bool
    """The kiosk turned the station's camera off (this call only)."""


class RoomObject(TypedDict):
    id: str
    name: str
    is_station: bool


@dataclass(frozen=True, slots=True)
class Welcome:
    peer_id: str
    role: str
    room: RoomObject
    ice_servers: list[dict[str, Any]]
    peers: list[PeerObject]
    call: CallObject | None
    station_name: str
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class PeerJoined:
    peer: PeerObject


@dataclass(frozen=True, slots=True)
class PeerUpdated:
    peer: PeerObject


@dataclass(frozen=True, slots=True)
class PeerLeft:
    peer_id: str


@dataclass(frozen=True, slots=True)
class Connect:
    """Open an RTCPeerConnection to ``peer_id`` now; ``send``: add your local tracks."""

    peer_id: str
    polite: bool
    send: bool


@dataclass(frozen=True, slots=True)
class Disconnect:
    peer_id: str


@dataclass(frozen=True, slots=True)
class Relayed:
    """A ``signal`` from ``sender``; from the station peer it carries its ``session``."""

    sender: str
    payload: SignalPayload
    session: int | None = None


@dataclass(frozen=True, slots=True)
class CallState:
    call: CallObject


@dataclass(frozen=True, slots=True)
class Error:
    code: ErrorCode
    message: str
    ref: str | None = None
    """The ``type`` of the message that caused it."""


@dataclass(frozen=True, slots=True)
class Bye:
    reason: ByeReason


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class MicLevel:
    """``mic-level`` (to the kiosk only): the level of the sound the station sends."""

    dbfs: float | None
    """RMS level since the last one (sent rounded to 0.1 dB); None: nothing was sent."""
    muted: bool


@dataclass(frozen=True, slots=True)
class IceServers:
    """``ice-servers``: the relay a page may use from now on. A guest who knocks gets
    STUN only in its ``welcome``; once let in (or answered) it gets TURN here, before
    its first ``connect``."""

    ice_servers: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Station:
    """``station`` (to everyone in the station room): the household changed the
    station's name or the kiosk's language in the app (docs/settings.md); the kiosk
    shows them without a reload."""

    name: str
    """``""``: the page's own language's default name."""
    language: str
    """``auto``, ``en`` or ``ru``: the kiosk's language (``auto``: its browser's)."""


ServerMessage = (
    Welcome
    | PeerJoined
    | PeerUpdated
    | PeerLeft
    | Connect
    | Disconnect
    | Relayed
    | CallState
    | Error
    | Bye
    | Pong
    | MicLevel
    | IceServers
    | Station
)


# --- parsing ------------------------------------------------------------------------


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


def _description(value: Any) -> Description:
    if not isinstance(value, dict):
        raise MalformedMessage("'description' must be an object.")
    kind = value.get("type")
    if kind not in SDP_TYPES:
        raise MalformedMessage("'description.type' must be offer, answer, pranswer or rollback.")
    sdp = value.get("sdp", "")
    if not isinstance(sdp, str) or (kind != "rollback" and not sdp):
        raise MalformedMessage("'description.sdp' must be a non-empty string.")
    return Description(kind, sdp)


def _candidate(value: Any) -> Candidate | EndOfCandidates:
    if value is None:
        return EndOfCandidates()
    if not isinstance(value, dict) or not isinstance(value.get("candidate", ""), str):
        raise MalformedMessage("'candidate' must be an RTCIceCandidateInit object or null.")
    text = value.get("candidate", "")
    if len(text) > MAX_CANDIDATE_CHARS:
        raise MalformedMessage(f"'candidate' may have at most {MAX_CANDIDATE_CHARS} characters.")
    mid = value.get("sdpMid")
    if mid is not None and not isinstance(mid, str):
        raise MalformedMessage("'candidate.sdpMid' must be a string or null.")
    index = value.get("sdpMLineIndex")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise MalformedMessage("'candidate.sdpMLineIndex' must be a non-negative integer or null.")
    ufrag = value.get("usernameFragment")
    if ufrag is not None and not isinstance(ufrag, str):
        raise MalformedMessage("'candidate.usernameFragment' must be a string or null.")
    return Candidate(text, mid, index, ufrag)


def parse_payload(data: dict[str, Any]) -> SignalPayload:
    """The payload of a ``signal``: exactly one of ``description``, ``candidate``,
    ``restart``.

    >>> parse_payload({"candidate": None})
    EndOfCandidates()
    >>> parse_payload({"description": {"type": "answer", "sdp": "v=0"}})
    Description(type='answer', sdp='v=0')
    """
    present = [k for k in ("description", "candidate", "restart") if k in data]
    if len(present) != 1:
        raise MalformedMessage("'signal' needs exactly one of description, candidate, restart.")
    key = present[0]
    if key == "description":
        return _description(data["description"])
    if key == "candidate":
        return _candidate(data["candidate"])
    if data["restart"] is not True:
        raise MalformedMessage("'restart' must be true.")
    return Restart()


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
            ring = data.get("ring", True)
            if not isinstance(ring, bool):
                raise MalformedMessage("'ring' must be true or false.")
            return Join(
                version,
                _str(data, "room", max_len=64),
                " ".join(name.split()),
                resume=resume,
                ring=ring,
            )
        case "signal":
            return Signal(_str(data, "to", max_len=64), parse_payload(data))
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


def payload_wire(payload: SignalPayload) -> dict[str, Any]:
    """The JSON fields of a signal payload (merged into a ``signal`` message)."""
    match payload:
        case Description(kind, sdp):
            return {"description": {"type": kind, "sdp": sdp}}
        case Candidate(text, mid, index, ufrag):
            return {
                "candidate": {
                    "candidate": text,
                    "sdpMid": mid,
                    "sdpMLineIndex": index,
                    "usernameFragment": ufrag,
                }
            }
        case EndOfCandidates():
            return {"candidate": None}
        case Restart():
            return {"restart": True}
    assert_never(payload)


def to_wire(message: ServerMessage) -> dict[str, Any]:
    """The JSON object of an outgoing message (what :func:`encode` serialises).

    >>> to_wire(Connect("station", polite=True, send=False))
    {'type': 'connect', 'peer_id': 'station', 'polite': True, 'send': False}
    >>> to_wire(MicLevel(-23.456, muted=False))
    {'type': 'mic-level', 'dbfs': -23.5, 'muted': False}
    >>> to_wire(MicLevel(None, muted=True))
    {'type': 'mic-level', 'dbfs': None, 'muted': True}
    """
    match message:
        case Welcome():
            return {
                "type": "welcome",
                "version": message.version,
                "peer_id": message.peer_id,
                "role": message.role,
                "room": dict(message.room),
                "ice_servers": message.ice_servers,
                "peers": [dict(p) for p in message.peers],
                "call": dict(message.call) if message.call is not None else None,
                "station": {"name": message.station_name},
            }
        case PeerJoined(peer):
            return {"type": "peer-joined", "peer": dict(peer)}
        case PeerUpdated(peer):
            return {"type": "peer-updated", "peer": dict(peer)}
        case PeerLeft(peer_id):
            return {"type": "peer-left", "peer_id": peer_id}
        case Connect(peer_id, polite, send):
            return {"type": "connect", "peer_id": peer_id, "polite": polite, "send": send}
        case Disconnect(peer_id):
            return {"type": "disconnect", "peer_id": peer_id}
        case Relayed(sender, payload, session):
            out = {"type": "signal", "from": sender, **payload_wire(payload)}
            if session is not None:
                out["session"] = session
            return out
        case CallState(call):
            return {"type": "call-state", "call": dict(call)}
        case Error(code, text, ref):
            error: dict[str, Any] = {"type": "error", "code": code, "message": text}
            if ref:
                error["ref"] = ref
            return error
        case Bye(reason):
            return {"type": "bye", "reason": reason}
        case Pong():
            return {"type": "pong"}
        case MicLevel(dbfs, muted):
            level = None if dbfs is None else round(dbfs, 1)
            return {"type": "mic-level", "dbfs": level, "muted": muted}
        case IceServers(servers):
            return {"type": "ice-servers", "ice_servers": servers}
        case Station(name, language):
            return {"type": "station", "name": name, "language": language}
    assert_never(message)


def encode(message: ServerMessage) -> str:
    """Serialise an outgoing message: the one way anything leaves the hub."""
    return json.dumps(to_wire(message), separators=(",", ":"))

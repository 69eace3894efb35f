"""Who is in which room, and which peers connect to which (the mesh topology).

Transport-free: a :class:`Peer` carries an async ``deliver`` callable that the
WebSocket layer (or the station's media peer) provides.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

from .errors import RoomFull, UnknownPeer
from .protocol import Connect, PeerObject, ServerMessage

log = logging.getLogger(__name__)

Role = Literal["user", "guest", "kiosk", "station"]
Kind = Literal["remote", "screen", "station"]
Deliver = Callable[[ServerMessage], Awaitable[None]]
STATION_PEER_ID = "station"
STATION_PARTICIPANT = "station"


def new_peer_id() -> str:
    return "p" + secrets.token_urlsafe(9)


@dataclass(eq=False, slots=True)
class Peer:
    id: str
    """Unique within the service."""
    room: str
    """The room this peer is in."""
    name: str
    """Display name."""
    role: Role
    """user, guest, kiosk or station."""
    kind: Kind
    """remote (phone/browser), screen (the kiosk display) or station (the service's camera)."""
    deliver: Deliver
    """Sends one message to this peer."""
    audio_muted: bool = False
    video_muted: bool = False
    participant: str = ""
    """Peers with the same participant id are shown as one tile."""
    sid: str = ""
    """The session it joined with (its cookie's jti): a call resumes after a crash
    only for the sessions that were in it."""
    resume: bool = False
    """It asked, on joining, to resume the call it was in before the service restarted."""
    address: str = ""
    """Where it connected from (an IPv6 address as its /64): ring budgets are per address."""
    link: str = ""
    """A guest's link (its jti): the household may have it answered without a touch."""

    def __post_init__(self) -> None:
        if not self.participant:
            self.participant = STATION_PARTICIPANT if self.kind != "remote" else self.id

    @property
    def sends(self) -> list[str]:
        return {"remote": ["audio", "video"], "screen": [], "station": ["audio", "video"]}[
            self.kind
        ]

    @property
    def receives(self) -> list[str]:
        return {"remote": ["audio", "video"], "screen": ["audio", "video"], "station": []}[
            self.kind
        ]

    def as_object(self) -> PeerObject:
        """This peer as the wire's ``PeerObject`` (in ``welcome``, ``peer-joined``, ...)."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "participant": self.participant,
            "sends": self.sends,
            "receives": self.receives,
            "muted": {"audio": self.audio_muted, "video": self.video_muted},
        }

    async def send(self, message: ServerMessage) -> None:
        try:
            await self.deliver(message)
        except Exception:  # a dead socket must not break a broadcast
            log.debug("delivery to peer failed", extra={"peer_id": self.id, "room_id": self.room})


def connect_message(to: Peer, other: Peer, *, send: bool) -> Connect:
    """The `connect` that tells browser ``to`` to open a connection to ``other``.

    The impolite side makes the first offer, so it must be the one with something to
    send: the screen (receive-only) is always polite, and between two remotes the
    smaller id is polite. (For the station peer see :func:`connect_to_station`.)

    >>> async def nowhere(message): pass
    >>> a, b = (Peer(i, "kitchen", i, "guest", "remote", nowhere) for i in ("pA", "pB"))
    >>> connect_message(a, b, send=True)
    Connect(peer_id='pB', polite=True, send=True)
    >>> connect_message(b, a, send=True).polite
    False
    """
    if to.kind == "screen":
        polite = True
    elif other.kind == "screen":
        polite = False
    else:
        polite = to.id < other.id
    return Connect(other.id, polite=polite, send=send)


def connect_to_station() -> Connect:
    """The `connect` for the station peer: it always offers (aiortc is impolite)."""
    return Connect(STATION_PEER_ID, polite=True, send=False)


@dataclass(slots=True)
class Rooms:
    """Live membership of every room (nothing here is persisted: a restart empties it)."""

    max_remotes: int
    _rooms: dict[str, dict[str, Peer]] = field(default_factory=dict)
    _pairs: dict[str, set[str]] = field(default_factory=dict)
    """Peer id -> the peer ids it was told to ``connect`` to. Signaling between two
    browsers is relayed only along these pairs."""

    # -- pairs ------------------------------------------------------------------------

    async def pair(self, a: Peer, b: Peer) -> None:
        """Tell ``a`` and ``b`` to connect to each other and allow signaling between them.
        A remote sends its camera and microphone; the screen only receives."""
        self._pairs.setdefault(a.id, set()).add(b.id)
        self._pairs.setdefault(b.id, set()).add(a.id)
        await a.send(connect_message(a, b, send=a.kind == "remote"))
        await b.send(connect_message(b, a, send=b.kind == "remote"))

    def paired(self, a: str, b: str) -> bool:
        return b in self._pairs.get(a, ())

    def unpair(self, peer_id: str) -> None:
        """Forget every pair of ``peer_id`` (it left the call or the room)."""
        for other in self._pairs.pop(peer_id, set()):
            partners = self._pairs.get(other)
            if partners is not None:
                partners.discard(peer_id)
                if not partners:
                    del self._pairs[other]

    # -- membership -------------------------------------------------------------------

    def peers(self, room: str) -> list[Peer]:
        return list(self._rooms.get(room, {}).values())

    def remotes(self, room: str) -> list[Peer]:
        return [p for p in self.peers(room) if p.kind == "remote"]

    def screen(self, room: str) -> Peer | None:
        return next((p for p in self.peers(room) if p.kind == "screen"), None)

    async def send_to(self, room: str, peer_id: str, message: ServerMessage) -> bool:
        """Deliver ``message`` to ``peer_id`` if it is (still) in ``room``."""
        peer = self._rooms.get(room, {}).get(peer_id)
        if peer is None:
            return False
        await peer.send(message)
        return True

    def get(self, room: str, peer_id: str) -> Peer:
        peer = self._rooms.get(room, {}).get(peer_id)
        if peer is None:
            raise UnknownPeer(f"No peer {peer_id!r} in this room.")
        return peer

    def add(self, peer: Peer, *, in_call: Collection[str] = ()) -> list[Peer]:
        """Add ``peer``; return the peers already there. Raises RoomFull.

        The household always gets in: for a ``user``, only the household and the
        peers in the station's call (``in_call``, their ids) count against the room's
        size, never guests who ring, knock or wait."""
        members = self._rooms.setdefault(peer.room, {})
        counted = self.remotes(peer.room)
        if peer.role == "user":
            counted = [p for p in counted if p.role == "user" or p.id in in_call]
        if peer.kind == "remote" and len(counted) >= self.max_remotes:
            if not members:
                del self._rooms[peer.room]
            raise RoomFull(f"This room is full ({self.max_remotes} participants). Try again later.")
        others = list(members.values())
        members[peer.id] = peer
        return others

    def remove(self, peer: Peer) -> bool:
        members = self._rooms.get(peer.room)
        if not members or members.get(peer.id) is not peer:
            return False
        del members[peer.id]
        self.unpair(peer.id)
        if not members:
            del self._rooms[peer.room]
        return True

    def room_ids(self) -> list[str]:
        return list(self._rooms)

    def count(self) -> int:
        return sum(len(m) for m in self._rooms.values())

    async def broadcast(
        self, room: str, message: ServerMessage, *, exclude: Iterable[Peer] = ()
    ) -> None:
        skip = {p.id for p in exclude}
        for peer in self.peers(room):
            if peer.id not in skip and peer.kind != "station":
                await peer.send(message)

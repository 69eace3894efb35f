"""The WebSocket signaling hub at /ws/ (protocol: docs/signaling.md).

Only transport lives here: upgrade checks, limits, the receive loop, and handing
typed messages to the rooms and the station. A bad message gets an ``error``
message back; nothing a client sends can stop the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from . import errors, protocol
from .auth import Auth, Session
from .call import CallMachine
from .config import Config
from .logs import IdsAdapter, with_ids
from .metrics import Metrics
from .rooms import STATION_PEER_ID, Peer, Rooms, new_peer_id
from .settings import StationSettings
from .store import Store

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 20.0
MAX_WS_FRAME = 1024 * 1024
RATE_PER_SECOND = 40.0
RATE_BURST = 200.0
FLOOD_CLOSE_AFTER = 100
SEND_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0
MAX_SOCKETS_PER_SESSION = 4
"""Open sockets one session may hold (a page reload briefly needs two)."""
REVALIDATE_SECONDS = 10.0
"""How often every open socket's session is checked again (revoked, expired, logout,
password changed)."""


class Socket(web.WebSocketResponse):
    """aiohttp's WebSocketResponse, let go of at its close.

    aiohttp (3.14) re-arms its heartbeat timer for any bytes that arrive after the
    close, such as the client's answer to our close frame: the timer then held the
    closed socket with its request, transport and buffers for HEARTBEAT_SECONDS plus
    half of that for the pong (about 16 KB a join/leave; 150 MiB under a minute of
    fast churn). Its private ``_on_data_received`` is checked by tests/test_seams.py.
    """

    def _on_data_received(self) -> None:
        if not self.closed:
            super()._on_data_received()


@dataclass(eq=False, slots=True)
class Connection:
    """One open WebSocket and, once joined, its peer."""

    ws: web.WebSocketResponse
    session: Session
    peer: Peer | None = None
    tokens: float = RATE_BURST
    refilled: float = field(default_factory=time.monotonic)
    refused: int = 0
    stun_only: bool = False
    """Its ``welcome`` had no relay (it came to knock): sent one when let in."""
    relay_refresh_at: float = math.inf
    """The clock's monotonic time when its TURN credential is half spent: a fresh one goes out."""
    address: str = ""
    """The client's address (IPv6: its /64), for the ring budgets."""
    log: IdsAdapter = field(default_factory=lambda: with_ids(log))

    """Logs with this connection's ``peer_id`` and ``room_id`` as fields, once joined."""

    def joined(self, peer: Peer) -> None:
        self.peer = peer
        self.log = with_ids(log, peer_id=peer.id, room_id=peer.room)

    def allow(self) -> bool:
        """Token bucket: RATE_PER_SECOND sustained, RATE_BURST at once."""
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refilled) * RATE_PER_SECOND)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    async def send(self, message: protocol.ServerMessage) -> None:
        if self.ws.closed:
            return
        try:
            # A timeout scope, not wait_for(): that wraps every send in a task of its own
            # (Python 3.11), one more loop iteration before each relayed message leaves.
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.ws.send_str(protocol.encode(message))
        except ConnectionResetError:
            # The client is gone (a page says `leave` and closes at once): nobody is
            # left to tell, and its socket's end does the clean-up. Not an error.
            self.log.debug("socket closed before a %s could be sent", type(message).__name__)


class Hub:
    """Every open signaling socket of the service.

    Example (wired by ``create_app``)::

        hub = Hub(config=config, store=store, rooms=rooms, station=station, metrics=metrics)
        station.on_evict(hub.evict)  # a knocker refused: bye, and the socket closes
        app.router.add_get("/ws/", ws_route)  # check_origin, session_of, hub.handle
    """

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        rooms: Rooms,
        station: CallMachine,
        metrics: Metrics,
        auth: Auth | None = None,
        settings: StationSettings | None = None,
    ) -> None:
        self.auth = auth
        self.config = config
        self.settings = settings or StationSettings(config, store)
        """The station's name as the household set it in the app (else the config's)."""
        self.store = store
        self.rooms = rooms
        self.station = station
        self.metrics = metrics
        self.connections: set[Connection] = set()
        station.on_connecting(self._give_relay)

    # -- the socket -------------------------------------------------------------------

    async def handle(self, request: web.Request, session: Session) -> web.WebSocketResponse:
        """One WebSocket, from the upgrade to its close. The REST plumbing has already
        checked the request's Origin and found its ``session`` (app.py's ``/ws/``
        route), so the hub does not depend on it."""
        ws = Socket(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_WS_FRAME, timeout=CLOSE_TIMEOUT)
        if not ws.can_prepare(request).ok:
            raise errors.RequestError("This endpoint speaks WebSocket only.")
        if session.sid and (
            sum(c.session.sid == session.sid for c in self.connections) >= MAX_SOCKETS_PER_SESSION
        ):
            raise errors.TooManySockets(
                f"At most {MAX_SOCKETS_PER_SESSION} open connections per session."
            )
        await ws.prepare(request)
        conn = Connection(ws, session, address=ring_address(request.remote))
        self.connections.add(conn)
        self.metrics.inc("websocket_connections_total")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._receive(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._refuse(
                        conn, errors.MalformedMessage("Binary frames are not supported.")
                    )
                elif msg.type == WSMsgType.ERROR:
                    break
                if conn.refused >= FLOOD_CLOSE_AFTER:
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"flooding")
                    break
        finally:
            self.connections.discard(conn)
            await self._depart(conn)
        return ws

    async def _refuse(
        self, conn: Connection, exc: errors.VideoStationError, ref: str | None = None
    ) -> None:
        conn.refused += 1
        self.metrics.inc("signaling_errors_total", code=exc.code)
        with contextlib.suppress(Exception):
            await conn.send(protocol.Error(exc.code, exc.message, ref))

    async def _receive(self, conn: Connection, frame: str) -> None:
        if not conn.allow():
            await self._refuse(conn, errors.RateLimited())
            return
        ref: str | None = None
        try:
            message = protocol.parse(frame)
            ref = protocol.message_type(message)
            self.metrics.inc("signaling_messages_total", type=ref)
            await self._dispatch(conn, message)
        except errors.VideoStationError as exc:
            await self._refuse(conn, exc, ref)
        except Exception:
            conn.log.exception("signaling handler failed")
            await self._refuse(
                conn, errors.VideoStationError("Something went wrong on the station."), ref
            )
        else:
            conn.refused = 0

    async def _dispatch(self, conn: Connection, message: protocol.Message) -> None:
        match message:
            case protocol.Ping():
                await conn.send(protocol.Pong())
            case protocol.Join():
                await self._join(conn, message)
            case protocol.Leave():
                await self._depart(conn)
                await conn.send(protocol.Bye("left"))
                await conn.ws.close()
            case _:
                peer = conn.peer
                if peer is None:
                    raise errors.NotInRoom()
                if isinstance(message, protocol.Signal):
                    await self._signal(peer, message)
                elif isinstance(message, protocol.Call):
                    if peer.room != self.station.room:
                        raise errors.CallStateError("This room has no station to call.")
                    await self.station.action(peer, message.action, message.peer)
                elif isinstance(message, protocol.StationMedia):
                    if peer.room != self.station.room:
                        raise errors.CallStateError("This room has no station.")
                    await self.station.station_media(
                        peer, audio_muted=message.audio_muted, video_muted=message.video_muted
                    )
                elif isinstance(message, protocol.Media):
                    if peer.kind == "screen":  # its `muted` says whether the station is
                        raise errors.Forbidden("The kiosk mutes the station with station-media.")
                    peer.audio_muted, peer.video_muted = message.audio_muted, message.video_muted
                    await self.rooms.broadcast(
                        peer.room, protocol.PeerUpdated(peer.as_object()), exclude=[peer]
                    )

    async def _join(self, conn: Connection, join: protocol.Join) -> None:
        """The doorway: the socket's checks here; who counts against the room is
        rooms.py's rule, who rings, knocks, waits or resumes the call machine's
        (admission.py, resume.py)."""
        if conn.peer is not None:
            raise errors.AlreadyJoined()
        if not await self._may_join(conn, join):
            return
        room = self.store.get_room(join.room)
        if not conn.session.may_enter(room.id):
            raise errors.Forbidden("Your link is for another room.")
        peer = await self._peer_for(conn, join, room.id)
        is_station = room.id == self.station.room
        try:
            in_call = {p.id for p in self.station.in_call} if is_station else ()
            others = self.rooms.add(peer, in_call=in_call)
        except errors.RoomFull as exc:
            await conn.send(protocol.Error(exc.code, exc.message, "join"))
            await conn.send(protocol.Bye("room_full"))
            await conn.ws.close()
            return
        conn.joined(peer)
        conn.log.info("joined as %s", peer.kind)
        # A guest of the station room gets the relay only when answered or let in
        # (``_give_relay``): a ring or a knock alone never buys TURN.
        conn.stun_only = is_station and conn.session.role == "guest"
        if not conn.stun_only:
            self._relay_sent(conn)
        await conn.send(
            protocol.Welcome(
                peer_id=peer.id,
                role=conn.session.role,
                room={"id": room.id, "name": room.name, "is_station": is_station},
                ice_servers=self.ice_servers(conn.session, admitted=not conn.stun_only),
                peers=[p.as_object() for p in others],
                call=self.station.as_object() if is_station else None,
                station_name=self.settings.name,  # empty: the page's default
            )
        )
        await self.rooms.broadcast(room.id, protocol.PeerJoined(peer.as_object()), exclude=[peer])
        if not is_station:
            for other in others:
                await self.rooms.pair(peer, other)
        elif peer.kind == "screen":
            await self.station.screen_joined(peer)
        elif join.ring or join.resume:
            await self.station.remote_joined(peer)
        # else: a silent rejoin (a page on a finished call's card): it rings with `call`

    async def _may_join(self, conn: Connection, join: protocol.Join) -> bool:
        """The page speaks this protocol and its session still holds; if not, it is
        told why and its socket closes."""
        if join.version != protocol.VERSION:
            await conn.send(
                protocol.Error(
                    "unsupported_version",
                    f"This station speaks protocol version {protocol.VERSION}; reload the page.",
                    "join",
                )
            )
            await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION)
            return False
        if self.auth is not None:
            try:
                self.auth.revalidate(conn.session)
            except errors.AuthError as exc:
                await conn.send(protocol.Error(exc.code, exc.message, "join"))
                await conn.send(protocol.Bye(_bye_reason(exc)))
                await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION)
                return False
        return True

    async def _peer_for(self, conn: Connection, join: protocol.Join, room_id: str) -> Peer:
        """The kiosk joins as the room's screen (replacing an older one); anyone else
        as a remote, one per session: a newer socket (a reload, a second tab) replaces
        the older, so one link cannot fill every slot of the room."""
        session = conn.session
        if session.role == "kiosk":
            old = self.rooms.screen(room_id)
            if old is not None:
                await self.evict(old, "replaced")
            return Peer(
                new_peer_id(),
                room_id,
                self.settings.name_or_default,
                "kiosk",
                "screen",
                conn.send,
            )
        for older in list(self.connections):
            if older is not conn and older.peer and older.session.sid == session.sid:
                await self.evict(older.peer, "replaced")
        # A guest link made for someone names its caller: the kiosk shows the label the
        # household gave it, not what was typed (a link without one keeps the typed name).
        typed = join.name or ("Guest" if session.role == "guest" else "User")
        name = (session.label or typed) if session.role == "guest" else typed
        return Peer(
            new_peer_id(),
            room_id,
            name,
            session.role,
            "remote",
            conn.send,
            sid=session.sid,
            resume=join.resume,
            address=conn.address,
            link=session.subject if session.role == "guest" else "",
        )

    async def _signal(self, peer: Peer, signal: protocol.Signal) -> None:
        if signal.to == STATION_PEER_ID and peer.room == self.station.room:
            await self.station.signal(peer, signal.payload)
            return
        if signal.to == peer.id:
            raise errors.UnknownPeer("You cannot signal yourself.")
        target = self.rooms.get(peer.room, signal.to)
        if isinstance(signal.payload, protocol.Restart):
            raise errors.MalformedMessage("Only the station peer renegotiates on 'restart'.")
        if not self.rooms.paired(peer.id, target.id):
            raise errors.NotConnected("You are not connected to that peer.")
        await target.send(protocol.Relayed(peer.id, signal.payload))

    async def _depart(self, conn: Connection) -> None:
        peer, conn.peer = conn.peer, None
        if peer is None or not self.rooms.remove(peer):
            return
        conn.log.info("left")
        await self.rooms.broadcast(peer.room, protocol.PeerLeft(peer.id))
        if peer.room == self.station.room:
            try:
                if peer.kind == "screen":
                    await self.station.screen_left(peer)
                else:
                    await self.station.remote_left(peer)
            except Exception:
                conn.log.exception("station clean-up failed")

    # -- server-initiated disconnects -------------------------------------------------

    def _connection_of(self, peer: Peer) -> Connection | None:
        return next((c for c in self.connections if c.peer is peer), None)

    async def evict(self, peer: Peer, reason: protocol.ByeReason) -> None:
        """Say ``bye`` to ``peer`` with ``reason``, let it leave, close its socket."""
        conn = self._connection_of(peer)
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.send(protocol.Bye(reason))
        await self._depart(conn)
        await conn.ws.close(code=WSCloseCode.GOING_AWAY)

    async def close_room(self, room_id: str) -> None:
        for peer in self.rooms.peers(room_id):
            await self.evict(peer, "room_deleted")

    async def close_guest(self, jti: str) -> None:
        """A revoked link: every socket of its guests goes, joined or not."""
        for conn in list(self.connections):
            if conn.session.role == "guest" and conn.session.subject == jti:
                await self._close(conn, "revoked")

    def peers_by_session(self) -> dict[str, Peer]:
        """The joined peers by their session's id."""
        return {c.session.sid: c.peer for c in self.connections if c.peer and c.session.sid}

    async def close_session(self, sid: str, reason: protocol.ByeReason) -> None:
        for conn in list(self.connections):
            if conn.session.sid == sid:
                await self._close(conn, reason)

    async def _close(self, conn: Connection, reason: protocol.ByeReason) -> None:
        with contextlib.suppress(Exception):
            await conn.send(protocol.Bye(reason))
        await self._depart(conn)
        await conn.ws.close(code=WSCloseCode.GOING_AWAY)

    async def revalidate_all(self) -> int:
        """Close every socket whose session no longer holds; returns how many."""
        if self.auth is None:
            return 0
        closed = 0
        for conn in list(self.connections):
            peer = conn.peer
            in_call = peer is not None and any(p is peer for p in self.station.in_call)
            try:
                self.auth.revalidate(conn.session, in_call=in_call)
            except errors.AuthError as exc:
                closed += 1
                conn.log.info("session no longer valid: %s", exc.code)
                await self._close(conn, _bye_reason(exc))
        return closed

    async def run_revalidation(self) -> None:
        """Background task: :meth:`revalidate_all` every REVALIDATE_SECONDS."""
        while True:
            await asyncio.sleep(REVALIDATE_SECONDS)
            try:
                await self.revalidate_all()
                await self.refresh_relays()
                if self.auth is not None:
                    self.auth.settle()
            except Exception:
                log.exception("revalidating sessions failed")

    async def close_all(self) -> None:
        """On shutdown: say bye and close every socket, all at once."""

        async def close(conn: Connection) -> None:
            with contextlib.suppress(Exception):
                await conn.send(protocol.Bye("shutdown"))
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown")

        await asyncio.gather(*(close(c) for c in list(self.connections)), return_exceptions=True)

    # -- ICE --------------------------------------------------------------------------

    async def _give_relay(self, peer: Peer) -> None:
        """The call connects ``peer``: a guest whose ``welcome`` had STUN only gets
        its relay now, before its first ``connect``."""
        conn = self._connection_of(peer)
        if conn is not None and conn.stun_only:
            conn.stun_only = False
            self._relay_sent(conn)
            await conn.send(protocol.IceServers(self.ice_servers(conn.session)))

    def _relay_sent(self, conn: Connection) -> None:
        """``conn`` gets a TURN credential now: a fresh one is due at half its life (a
        page restarting ICE late in a long call still makes a relay)."""
        if self.config.ice.turn_urls and self.config.ice.turn_secret:
            life = self._credential_life(conn.session)
            conn.relay_refresh_at = self._monotonic() + max(life / 2, 30.0)

    async def refresh_relays(self) -> int:
        """Send fresh ``ice-servers`` to every page whose credential is half spent;
        returns how many (run with the revalidation)."""
        now, sent = self._monotonic(), 0
        for conn in list(self.connections):
            if conn.peer is not None and not conn.stun_only and now >= conn.relay_refresh_at:
                self._relay_sent(conn)
                with contextlib.suppress(Exception):
                    await conn.send(protocol.IceServers(self.ice_servers(conn.session)))
                    sent += 1
        return sent

    def _monotonic(self) -> float:
        return self.auth.clock.monotonic() if self.auth is not None else time.monotonic()

    def _credential_life(self, session: Session) -> float:
        from .turn import session_lifetime

        if self.auth is not None:
            left = self.auth.session_left(session)
        elif session.expires_at:
            left = session.expires_at - time.time()
        else:
            left = None
        return session_lifetime(left)

    def ice_servers(self, session: Session, *, admitted: bool = True) -> list[dict[str, Any]]:
        """The ICE servers for ``session``'s page: TURN with a credential of its own
        (its user name carries the expiry and a hash of the session id), lasting no
        longer than the session has left and at most SESSION_CREDENTIAL_CAP.

        ``admitted`` False (the hook for a knocker not yet let in): STUN only, so a
        knocker cannot use the station's relay before the kiosk admits it; whoever
        admits it sends it fresh servers from this method."""
        from .turn import ice_servers

        now = self.auth.clock.now() if self.auth is not None else time.time()
        key = f"session:{session.sid}" if session.sid else f"{session.role}:{session.subject}"
        return ice_servers(
            self.config.ice,
            key=key,
            lifetime=self._credential_life(session),
            now=now,
            relay=admitted,
        )


def ring_address(remote: str | None) -> str:
    """The key of an address's ring budget: IPv4 as is, IPv6 by its /64 (one home or
    phone has a whole /64).

    >>> ring_address("2001:db8:1:2:aaaa::1"), ring_address("192.0.2.7")
    ('2001:db8:1:2::/64', '192.0.2.7')
    """
    if not remote:
        return "?"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _bye_reason(exc: errors.AuthError) -> protocol.ByeReason:
    """The ``bye`` reason for a session that stopped holding."""
    if isinstance(exc, errors.GuestLinkRevoked):
        return "revoked"
    if isinstance(exc, errors.TokenExpired):
        return "expired"
    return "session_ended"

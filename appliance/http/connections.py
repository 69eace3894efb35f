"""The station's limits on connections: a deadline for the first request head and for
a request body, a cap on connections per address, a cap on all connections under
the descriptor limit with a reserve only household and kiosk sessions may use,
malformed requests answered briefly, and every line a stranger can cause logged once
a minute per kind (``StationRunner`` is what ``app.serve`` runs).

Who is signed in cannot be told before a request head arrives, so the reserve works
on heads: past ``ConnectionLimits.anonymous`` open connections, a new one is *on
probation* and its first request must carry a household or kiosk session cookie
(health is answered once); any other gets 503 ``too_busy`` and is closed. At
``ConnectionLimits.total`` the oldest connection still without a request head is
closed to make room (a browser sends its head at once; a slowloris never does), or
the new one is if every one has sent a head.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .. import errors
from ..appkeys import AUTH, NOISE
from ..auth import SESSION_COOKIE
from ..logs import Coalesced
from . import Handler
from .jsonerrors import error_body, json_error
from .security import secure_headers

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 10.0
"""A connection that has not sent one complete request head by then is closed."""
BODY_TIMEOUT_SECONDS = 10.0
"""A request body must arrive whole within this of the handler asking for it (bodies
are JSON of at most ``server.max_body_bytes``, 64 KiB: 6.5 KB/s at the least, which
a phone on one bar of 3G still sends); else 408 ``request_timeout`` and closed."""
KEEPALIVE_TIMEOUT_SECONDS = 15.0
"""An idle keep-alive connection is closed after this."""
MAX_CONNECTIONS_PER_ADDRESS = 256
"""Open connections from one address (slowloris); the kiosk and a household's phones
need a few each. Keep ``LimitNOFILE=`` in the unit well above this."""
DESCRIPTOR_HEADROOM = 384
"""Descriptors never given to HTTP connections (at least; an eighth of the limit on
larger ones). asyncio accepts up to the listen backlog (128) sockets at once before
any is refused, and a refused one's descriptor is freed a loop turn later: two such
batches, 256. The rest: aiortc's UDP sockets (one per local address per peer, a TURN
allocation each: about 40 for four callers and the kiosk), SQLite's database, WAL and
shared-memory files, the camera, microphone and encoder, the journal socket and the
event loop's own (an idle station holds 10). Running out makes ``accept()`` fail, and
asyncio then stops accepting anyone for a second at a time."""
RESERVED_FOR_SESSIONS = 64
"""Connections beyond the anonymous cap, for requests with a household or kiosk
session: a browser opens up to 6 per host plus its signaling socket, so the kiosk
and eight phones at once."""
HEALTH_PATH = "/api/health/"


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections the station keeps open, from its descriptor limit."""

    total: int
    """All open connections at most (always under the descriptor limit)."""
    anonymous: int
    """Past this many, a new connection's first request needs a household or kiosk
    session (or is a health check)."""

    @classmethod
    def for_descriptors(cls, nofile: int) -> ConnectionLimits:
        """The limits under a descriptor limit of ``nofile``.

        >>> ConnectionLimits.for_descriptors(4096)  # the unit's LimitNOFILE=
        ConnectionLimits(total=3584, anonymous=3520)
        >>> ConnectionLimits.for_descriptors(1024)  # a shell's usual
        ConnectionLimits(total=640, anonymous=576)
        >>> ConnectionLimits.for_descriptors(512)
        ConnectionLimits(total=256, anonymous=192)
        """
        headroom = max(DESCRIPTOR_HEADROOM, nofile // 8)
        total = max(nofile - headroom, nofile // 2)
        return cls(total, max(total - RESERVED_FOR_SESSIONS, total // 2))

    @classmethod
    def of_this_process(cls) -> tuple[ConnectionLimits, int]:
        """The limits under this process's ``RLIMIT_NOFILE`` (the unit's
        ``LimitNOFILE=``), and that limit."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = 1 << 20 if soft == resource.RLIM_INFINITY else min(soft, 1 << 20)
        return cls.for_descriptors(nofile), nofile


class StationRequestHandler(RequestHandler):
    """aiohttp's connection handler with the station's limits: a deadline for the
    first request head, caps on connections per address and in all, and malformed
    requests answered with security headers and logged without header values
    (aiohttp logs an ERROR traceback that can carry a session cookie)."""

    _counted = False
    on_probation = False
    """Its first request must show a household or kiosk session (over the anonymous
    cap when it came)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "?"
        self._counted = False
        # aiohttp's private _manager and _request_count: checked by tests/test_seams.py
        server: StationServer = self._manager  # type: ignore[assignment]
        self._noise = server.noise  # kept: aiohttp forgets the server when the client goes
        if server.per_address.get(self._address, 0) >= MAX_CONNECTIONS_PER_ADDRESS:
            server.noise.info("too many connections", "from %s: refused", self._address)
            transport.close()
            return
        if server.open >= server.limits.total:
            oldest = next(iter(server.headless), None)
            if oldest is None:
                server.noise.warning(
                    "connection limit", "(%d) reached: refused one", server.limits.total
                )
                transport.close()
                return
            server.noise.info("connection limit", "reached: closed one that sent no request head")
            oldest.close_now()
        self.on_probation = server.open >= server.limits.anonymous
        server.open += 1
        server.per_address[self._address] = server.per_address.get(self._address, 0) + 1
        server.headless[self] = None
        self._counted = True
        self._head_deadline = asyncio.get_running_loop().call_later(
            HEADER_TIMEOUT_SECONDS, self._head_timeout
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count and self._counted:
            # its first request head is in: no longer one to close for a newcomer
            server: StationServer = self._manager  # type: ignore[assignment]
            server.headless.pop(self, None)

    def close_after_answer(self) -> None:
        """Close once this request is answered, without draining the rest of its body
        (aiohttp drains an unread body for up to 10 s, which a slow body fills)."""
        # aiohttp's private _lingering_time: checked by tests/test_seams.py
        self._lingering_time = 0.0

    def _head_timeout(self) -> None:
        if self._request_count == 0 and self.transport is not None:
            self._noise.info("no request head", "in time from %s: closed", self._address)
            self.transport.close()

    def close_now(self) -> None:
        """Closes the connection and frees its place at once (connection_lost, which
        would too, comes a loop turn later)."""
        self._release()
        if self.transport is not None:
            self.transport.close()

    def _release(self) -> None:
        if not self._counted:
            return
        self._counted = False
        server: StationServer = self._manager  # type: ignore[assignment]
        server.open -= 1
        server.headless.pop(self, None)
        left = server.per_address.get(self._address, 1) - 1
        if left > 0:
            server.per_address[self._address] = left
        else:
            server.per_address.pop(self._address, None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._manager is not None:
            self._release()
        deadline = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionResetError):
            # A client that went away mid-body: nobody is there to answer, and a
            # traceback per client would let anyone fill the log.
            self._noise.info("client went away", "mid-request from %s", request.remote)
            raise ConnectionError("client went away") from exc
        if isinstance(exc, HttpProcessingError):
            self._noise.info(
                "malformed HTTP request", "from %s: %s", request.remote, type(exc).__name__
            )
            if request.writer.output_size > 0:
                raise ConnectionError("response already sent")
            response: web.StreamResponse = web.json_response(
                error_body("bad_request", "Malformed HTTP request."), status=status
            )
            response.force_close()
        else:
            response = super().handle_error(request, status, exc, message)
        response.headers["Cache-Control"] = "no-store"
        secure_headers(request, response.headers)  # type: ignore[arg-type]
        return response


class StationServer(web.Server):
    """Makes :class:`StationRequestHandler` s and counts their connections."""

    limits: ConnectionLimits
    per_address: dict[str, int]
    open: int
    """Connections counted against the limits."""
    headless: dict[StationRequestHandler, None]
    """Counted connections without a request head yet, oldest first."""
    noise: Coalesced

    def __call__(self) -> RequestHandler:
        # aiohttp's private _loop and _kwargs: checked by tests/test_seams.py
        return StationRequestHandler(self, loop=self._loop, **self._kwargs)


class StationRunner(web.AppRunner):
    """``web.AppRunner`` whose server applies the station's connection limits, set
    from this process's descriptor limit."""

    # aiohttp's private AppRunner._make_server: checked by tests/test_seams.py
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = StationServer  # same state, our handler class
        assert isinstance(server, StationServer)
        server.limits, nofile = ConnectionLimits.of_this_process()
        server.per_address = {}
        server.open = 0
        server.headless = {}
        server.noise = self.app.get(NOISE) or Coalesced(log)
        log.info(
            "at most %d connections (%d without a household or kiosk session) under a "
            "descriptor limit of %d",
            server.limits.total,
            server.limits.anonymous,
            nofile,
        )
        return server


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The first request of a connection on probation (see the module's docstring):
    served if it carries a household or kiosk session, or is a health check (then
    closed); else 503 ``too_busy`` and closed."""
    connection = request.protocol
    if not isinstance(connection, StationRequestHandler):
        return await handler(request)  # not served by StationRunner (in-process tests)
    if not connection.on_probation:
        return await handler(request)
    if request.method == "GET" and request.path == HEALTH_PATH:
        response = await handler(request)
        response.force_close()
        return response
    if _signed_in(request):
        connection.on_probation = False
        return await handler(request)
    request.app[NOISE].info(
        "anonymous connection", "over the cap from %s: answered 503", request.remote
    )
    busy = errors.TooBusy("The station is busy; try again in a minute.")
    refused = json_error(busy.status, busy.code, busy.message, **{"Retry-After": "60"})
    refused.force_close()
    connection.close_after_answer()
    return refused


def _signed_in(request: web.Request) -> bool:
    """Whether the request carries a valid household (user) or kiosk session."""
    try:
        session = request.app[AUTH].read_session(request.cookies.get(SESSION_COOKIE))
    except errors.VideoStationError:
        return False
    return session.role in ("user", "kiosk")

"""The station's limits on connections: a deadline for the first request head, a cap
on connections per address, malformed requests answered briefly (``StationRunner``
is what ``app.serve`` runs)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .jsonerrors import error_body
from .security import secure_headers

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 10.0
"""A connection that has not sent one complete request head by then is closed."""
KEEPALIVE_TIMEOUT_SECONDS = 15.0
"""An idle keep-alive connection is closed after this."""
MAX_CONNECTIONS_PER_ADDRESS = 256
"""Open connections from one address (slowloris); the kiosk and a household's phones
need a few each. Keep ``LimitNOFILE=`` in the unit well above this."""


class StationRequestHandler(RequestHandler):
    """aiohttp's connection handler with the station's limits: a deadline for the
    first request head, a cap on connections per address, and malformed requests
    answered with security headers and logged as one INFO line without header values
    (aiohttp logs an ERROR traceback that can carry a session cookie)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "?"
        # aiohttp's private _manager and _request_count: checked by tests/test_seams.py
        counts: dict[str, int] = getattr(self._manager, "per_address", {})
        if counts.get(self._address, 0) >= MAX_CONNECTIONS_PER_ADDRESS:
            log.info("too many connections from %s: refused", self._address)
            self._counted = False
            transport.close()
            return
        counts[self._address] = counts.get(self._address, 0) + 1
        self._counted = True
        self._head_deadline = asyncio.get_running_loop().call_later(
            HEADER_TIMEOUT_SECONDS, self._head_timeout
        )

    def _head_timeout(self) -> None:
        if self._request_count == 0 and self.transport is not None:
            log.info("no request head from %s in time: closed", self._address)
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            counts: dict[str, int] = getattr(self._manager, "per_address", {})
            left = counts.get(self._address, 1) - 1
            if left > 0:
                counts[self._address] = left
            else:
                counts.pop(self._address, None)
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
        if isinstance(exc, HttpProcessingError):
            log.info("malformed HTTP request from %s: %s", request.remote, type(exc).__name__)
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
    """Makes :class:`StationRequestHandler` s and counts connections per address."""

    per_address: dict[str, int]

    def __call__(self) -> RequestHandler:
        # aiohttp's private _loop and _kwargs: checked by tests/test_seams.py
        return StationRequestHandler(self, loop=self._loop, **self._kwargs)


class StationRunner(web.AppRunner):
    """``web.AppRunner`` whose server applies the station's connection limits."""

    # aiohttp's private AppRunner._make_server: checked by tests/test_seams.py
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = StationServer  # same state, our handler class
        server.per_address = {}  # type: ignore[attr-defined]
        return server

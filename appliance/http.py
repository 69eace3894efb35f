"""HTTP plumbing shared by every handler: JSON errors, security headers, the Origin
check, session cookies, request bodies and the static PWA."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from . import errors
from .appkeys import AUTH, CONFIG, METRICS
from .auth import SESSION_COOKIE, Session
from .protocol import encodes_as_utf8

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def json_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(error_body(code, message), status=status, headers=headers or None)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "bad_request",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {"code", "message"}}`` with the right status."""
    try:
        return await handler(request)
    except errors.VideoStationError as exc:
        request.app[METRICS].inc("http_errors_total", code=exc.code)
        headers: dict[str, str] = {}
        if isinstance(exc, errors.TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, errors.MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.allow)
        return json_error(exc.status, exc.code, exc.message, **headers)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(("/api", "/ws")):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        request.app[METRICS].inc("http_errors_total", code=code)
        return json_error(exc.status, code, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        request.app[METRICS].inc("http_errors_total", code="internal_error")
        return json_error(500, "internal_error", "Something went wrong on the station.")


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origin check on state-changing requests; security headers on every answer,
    errors included (this middleware runs outside the error middleware)."""
    try:
        if request.method not in SAFE_METHODS:
            check_origin(request)
        response = await handler(request)
    except errors.VideoStationError as exc:  # the Origin check
        response = json_error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        secure_headers(request, exc.headers)
        raise
    if response.prepared:  # a WebSocket: its headers went out with the upgrade
        return response
    secure_headers(request, response.headers)
    return response


# The page's code and images are subresources: browsers apply the document's CSP,
# framing and permission policies to them and ignore their own, so these answers carry
# only nosniff (and HSTS). Each saves ~500 bytes of headers a page load repeats 20 times.
SUBRESOURCES = ("/v/", "/icons/")


def secure_headers(request: web.Request, headers: Any) -> None:
    """CSP, nosniff, framing and referrer policy; ``no-store`` on every API answer."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith(SUBRESOURCES) and request.method in SAFE_METHODS:
        return
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.path.startswith("/api"):
        headers.setdefault("Cache-Control", "no-store")


def allowed_origins(request: web.Request) -> set[str]:
    config = request.app[CONFIG]
    origins = {f"{request.scheme}://{request.host}", *config.server.trusted_origins}
    public = urlsplit(config.base_url)
    origins.add(f"{public.scheme}://{public.netloc}")
    return origins


def check_origin(request: web.Request) -> None:
    """Refuse cross-site state changes. A request without Origin (curl, the CLI) passes:
    browsers always send Origin on cross-origin POSTs and WebSocket upgrades."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in allowed_origins(request):
        raise errors.OriginRejected(f"Requests from {origin[:100]} are not allowed.")


# -- sessions --------------------------------------------------------------------------


def session_of(request: web.Request) -> Session:
    return request.app[AUTH].read_session(request.cookies.get(SESSION_COOKIE))


def require(request: web.Request, *roles: str) -> Session:
    session = session_of(request)
    if session.role not in roles:
        raise errors.Forbidden(f"This needs the {' or '.join(roles)} role.")
    return session


def set_session_cookie(
    request: web.Request, response: web.Response, token: str, *, max_age: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )


def clear_session_cookie(request: web.Request, response: web.Response) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", samesite="Strict", secure=request.secure)


# -- bodies ----------------------------------------------------------------------------


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. Empty bodies are ``{}`` when ``optional``."""
    limit = request.app[CONFIG].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"The body may be at most {limit} bytes.")
    # Read to the end: a body may arrive in several TCP segments.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"The body may be at most {limit} bytes.")
    raw = b"".join(chunks)
    if not raw.strip():
        if optional:
            return {}
        raise errors.InvalidJSON("Send a JSON object.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise errors.InvalidJSON("The body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise errors.ValidationError("The body must be a JSON object.")
    if not encodes_as_utf8(data):
        raise errors.ValidationError("Text must be valid Unicode (no lone surrogates).")
    return data


def field(
    data: dict[str, Any], name: str, kind: type, *, required: bool = True, default: Any = None
) -> Any:
    """One typed field of a JSON body; bool is not accepted where int is asked."""
    if name not in data or data[name] is None:
        if required:
            raise errors.ValidationError(f"'{name}' is required.")
        return default
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise errors.ValidationError(f"'{name}' must be of type {kind.__name__}.")
    return value


# -- connections -----------------------------------------------------------------------

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
        return StationRequestHandler(self, loop=self._loop, **self._kwargs)


class StationRunner(web.AppRunner):
    """``web.AppRunner`` whose server applies the station's connection limits."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = StationServer  # same state, our handler class
        server.per_address = {}  # type: ignore[attr-defined]
        return server

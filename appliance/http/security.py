"""Security headers on every answer (CSP without inline script, no framing, no
referrer, HSTS under TLS) and the Origin check on state-changing requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .. import errors
from ..appkeys import CONFIG
from . import Handler
from .jsonerrors import json_error

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

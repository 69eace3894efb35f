"""Every error leaves as ``{"error": {"code", "message"}}`` with the right status:
the service's own errors (``errors.py``), aiohttp's HTTP errors under ``/api`` and
``/ws``, and anything unexpected (logged, answered ``internal_error``)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from .. import errors
from ..appkeys import METRICS
from . import Handler

log = logging.getLogger(__name__)


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
        if isinstance(exc, errors.TooManyAttempts | errors.LoginBusy):
            headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, errors.MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.allow)
        response = json_error(exc.status, exc.code, exc.message, **headers)
        if isinstance(exc, errors.BodyTimeout):
            response.force_close()  # the rest of a slow body is not waited for
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(("/api", "/ws")):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        request.app[METRICS].inc("http_errors_total", code=code)
        return json_error(exc.status, code, exc.reason)
    except ConnectionResetError:
        raise  # the client went away: the connection handler logs it, briefly
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        request.app[METRICS].inc("http_errors_total", code="internal_error")
        return json_error(500, "internal_error", "Something went wrong on the station.")

"""A request's JSON body (size-capped, read to its end within a deadline, valid
Unicode) and its typed fields."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .. import errors
from ..appkeys import CONFIG, NOISE
from ..protocol import encodes_as_utf8
from .connections import BODY_TIMEOUT_SECONDS, StationRequestHandler


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. Empty bodies are ``{}`` when ``optional``."""
    limit = request.app[CONFIG].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"The body may be at most {limit} bytes.")
    # A client that goes away mid-body raises ConnectionResetError here: the connection
    # handler drops it without a traceback (connections.StationRequestHandler).
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            raw = await _read(request, limit)
    except TimeoutError as exc:
        request.app[NOISE].info("slow body", "from %s: answered 408, closed", request.remote)
        if isinstance(request.protocol, StationRequestHandler):
            request.protocol.close_after_answer()
        raise errors.BodyTimeout(
            f"The body must arrive within {BODY_TIMEOUT_SECONDS:.0f} s."
        ) from exc
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


async def _read(request: web.Request, limit: int) -> bytes:
    """The whole body: it may arrive in several TCP segments."""
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise errors.PayloadTooLarge(f"The body may be at most {limit} bytes.")
    except RuntimeError as exc:
        if request.transport is not None:
            raise
        # aiohttp's word for a body read after the connection was closed
        raise ConnectionResetError("the client went away") from exc
    return b"".join(chunks)


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

"""REST handlers of the household's Settings screen (issue 24, item 9; docs/settings.md):
``/api/settings`` (read and change), ``/api/settings/password`` and
``/api/settings/health``. The household's session only: a guest or the kiosk gets 403,
and the Origin check (http/security.py) refuses another site's page."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from . import api, errors
from .appkeys import (
    AUTH,
    CALL_MACHINE,
    CLOCK,
    CONFIG,
    HUB,
    METRICS,
    PASSWORDS,
    ROOMS,
    SETTINGS,
    STORE,
)
from .auth import Session, hash_password, password_problem
from .http.bodies import field, json_body
from .http.sessions import require, set_session_cookie
from .protocol import Station
from .quiet import QuietHours
from .settings import parse_patch

routes = web.RouteTableDef()
MAX_PASSWORD = 1024
"""Characters in a password sent here, at most (scrypt hashes all of them)."""


def _members(request: web.Request) -> list[dict[str, Any]]:
    """The station room's live guest links, one per household member (the label)."""
    app = request.app
    chosen = set(app[SETTINGS].auto_answer)
    now = app[CLOCK].now()
    return [
        {
            "jti": link.jti,
            "label": link.label,
            "expires_at": link.expires_at,
            "auto_answer": link.jti in chosen,
        }
        for link in app[STORE].list_guest_links(app[CONFIG].station.room_id)
        if not link.kiosk_code and not link.revoked and link.expires_at > now
    ]


def _settings_json(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    members = _members(request)
    live = {m["jti"] for m in members}
    hours = settings.quiet_hours
    return {
        "name": settings.name,
        "language": settings.language,
        "quiet_hours": {"start": hours[0], "end": hours[1]} if hours else None,
        "auto_answer": [j for j in settings.auto_answer if j in live],
        "members": members,
    }


@routes.get("/api/settings")
async def get_settings(request: web.Request) -> web.Response:
    require(request, "user")
    return web.json_response(_settings_json(request))


@routes.patch("/api/settings")
async def patch_settings(request: web.Request) -> web.Response:
    """Change some settings: checked whole (400 and nothing changed on any bad field),
    kept in the database, in force at once (the kiosk told over its socket)."""
    require(request, "user")
    patch = parse_patch(await json_body(request))
    if patch.auto_answer is not None:
        live = {m["jti"] for m in _members(request)}
        unknown = [j for j in patch.auto_answer if j not in live]
        if unknown:
            raise errors.ValidationError(
                f"'auto_answer': {unknown[0][:64]!r} is not a live guest link of the station."
            )
    app = request.app
    settings = app[SETTINGS]
    before = (settings.name, settings.language)
    settings.update(patch)
    station = app[CALL_MACHINE]
    station.auto_answer_links = frozenset(settings.auto_answer)
    station.quiet.hours = QuietHours.parse(settings.quiet_text)
    station.settings_changed()  # every page gets the do-not-disturb state the hours make
    if (settings.name, settings.language) != before:
        await app[ROOMS].broadcast(station.room, Station(settings.name, settings.language))
    return web.json_response(_settings_json(request))


@routes.post("/api/settings/password")
async def change_password(request: web.Request) -> web.Response:
    """Change the master password: the current one is required, and wrong ones count
    against the login limiter (the same 5 in 5 minutes per address). Every other
    household session is logged out (a password is changed because it leaked: the
    sessions opened with it must end); this one gets a new cookie and stays."""
    session = require(request, "user")
    data = await json_body(request)
    unknown = [k for k in data if k not in ("current_password", "new_password")]
    if unknown:
        raise errors.ValidationError(f"Unknown field {unknown[0][:40]!r}.")
    current = field(data, "current_password", str)
    new = field(data, "new_password", str)
    if len(new) > MAX_PASSWORD:
        raise errors.ValidationError(f"The password may have at most {MAX_PASSWORD} characters.")
    if (problem := password_problem(new)) is not None:
        raise errors.ValidationError(problem)
    app = request.app
    auth = app[AUTH]
    client = request.remote or "unknown"
    stored = auth.password_hash()
    failures = auth.limiter.failures(client)
    ticket = auth.limiter.attempt(client)  # before hashing: parallel guesses cannot slip past
    try:
        ok = await app[PASSWORDS].verify(current, stored, failures=failures)
    except errors.LoginBusy:
        auth.limiter.succeeded(client, ticket)  # nothing was checked
        raise
    if not ok:
        app[METRICS].inc("logins_total", result="failed")
        raise errors.WrongCurrentPassword("The current password is wrong.")
    auth.limiter.succeeded(client, ticket)
    if new == current:
        raise errors.ValidationError("The new password is the current one.")
    hashed = await asyncio.to_thread(hash_password, new)  # ~60 ms: not on the event loop
    auth.set_password(new, hashed=hashed)
    auth.end_session(session)  # its old cookie (the old epoch) is dead anyway; say so
    closed = await app[HUB].revalidate_all()  # other household sockets: bye, closed
    ttl = app[CONFIG].auth.session_ttl_seconds
    response = web.json_response({"ok": True, "sockets_closed": closed})
    set_session_cookie(
        request, response, auth.issue_session(Session("user", None, "user"), ttl=ttl), max_age=ttl
    )
    return response


@routes.get("/api/settings/health")
async def settings_health(request: web.Request) -> web.Response:
    """The health card: /api/health's details (camera, microphone, screen, the kiosk's
    screen, database, clock), with the free disk space and how phones reach the station
    (what ``videostation doctor`` checks of them). Read-only."""
    require(request, "user")
    body, _code, free = api.health_report(request)
    config = request.app[CONFIG]
    body["disk"] = {
        "free_bytes": free,
        "ok": free is None or free >= api.LOW_DISK_BYTES,
    }
    body["reachability"] = {
        "url": config.base_url,
        # without a public address the links and the kiosk's code work on this network only
        "public": bool(config.station.public_url),
        "tls": config.tls,
    }
    return web.json_response(body)

"""REST handlers under /api/ (documented in appliance/openapi.py and the README)."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import __version__, errors, qr, scrape
from .appkeys import (
    AUTH,
    CALL_MACHINE,
    CLOCK,
    CONFIG,
    GPIO,
    HUB,
    MEDIA,
    METRICS,
    PASSWORDS,
    ROOMS,
    SCREEN,
    SETTINGS,
    STORE,
)
from .auth import KIOSK_SESSION_TTL, IssuedLink, Session
from .http.bodies import field, json_body
from .http.local import require_this_machine
from .http.sessions import clear_session_cookie, require, session_of, set_session_cookie
from .openapi import openapi_document

if TYPE_CHECKING:
    from .call import CallMachine
    from .rooms import Peer

routes = web.RouteTableDef()
MAX_LABEL = 60
MAX_ROOM_NAME = 60
MAX_GUEST_TTL = 365 * 24 * 3600


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


# -- auth ------------------------------------------------------------------------------


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    data = await json_body(request)
    password = field(data, "password", str)
    _not_the_kiosk(request)
    auth = request.app[AUTH]
    config = request.app[CONFIG]
    stored = auth.password_hash()
    failures = auth.limiter.failures(_client(request))
    # Counted on the event loop before hashing: parallel requests cannot slip past.
    ticket = auth.limiter.attempt(_client(request))
    try:
        # one scrypt thread, the fewest failures first (appliance/hashing.py)
        ok = await request.app[PASSWORDS].verify(password, stored, failures=failures)
    except errors.LoginBusy:
        auth.limiter.succeeded(_client(request), ticket)  # nothing was checked
        raise
    if not ok:
        request.app[METRICS].inc("logins_total", result="failed")
        raise errors.WrongPassword()
    auth.limiter.succeeded(_client(request), ticket)
    request.app[METRICS].inc("logins_total", result="ok")
    ttl = config.auth.session_ttl_seconds
    token = auth.issue_session(Session("user", None, "user"), ttl=ttl)
    response = web.json_response({"role": "user", "room": None})
    set_session_cookie(request, response, token, max_age=ttl)
    return response


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    try:
        session: Session | None = session_of(request)
    except errors.AuthError:
        session = None
    if session is not None:
        request.app[AUTH].end_session(session)  # a copied cookie stops working too
        await request.app[HUB].close_session(session.sid, "session_ended")
    response = web.json_response({"ok": True})
    clear_session_cookie(request, response)
    return response


@routes.get("/api/auth/me")
async def me(request: web.Request) -> web.Response:
    session = session_of(request)
    body: dict[str, Any] = {"role": session.role, "room": session.room}
    if session.role == "guest":
        body["label"] = session.label
    return web.json_response(body)


@routes.post("/api/auth/guest")
async def guest(request: web.Request) -> web.Response:
    data = await json_body(request)
    token = field(data, "guest_token", str)
    _not_the_kiosk(request)
    auth = request.app[AUTH]
    session = auth.redeem_guest_token(token)
    ttl = request.app[CONFIG].auth.guest_session_ttl_seconds
    link = request.app[STORE].get_guest_link(session.subject)
    ttl = max(60, min(ttl, int(link.expires_at - request.app[CLOCK].now()) + 3600))
    request.app[CALL_MACHINE].caller_expected(session.room)
    response = web.json_response({"role": "guest", "room": session.room, "label": session.label})
    set_session_cookie(request, response, auth.issue_session(session, ttl=ttl), max_age=ttl)
    return response


def _not_the_kiosk(request: web.Request) -> None:
    """A kiosk session is never traded for a caller's (issue 22, item 7): the station's
    screen answers calls, it never makes them. Its codes (its QR) are for phones; a
    code or link opened with the kiosk's cookie leaves it the kiosk (``_signed_in``),
    and a password or guest link posted with it is refused."""
    try:
        session = session_of(request)
    except errors.AuthError:
        return
    if session.role == "kiosk":
        raise errors.Forbidden("The station's screen cannot become a caller.")


@routes.post("/api/auth/kiosk")
async def kiosk(request: web.Request) -> web.Response:
    """The station's screen trades its key for a session: only from the station itself
    (loopback, no proxy header; see :mod:`.http.local`) and only from a page of this
    listener (an ``Origin`` other than the request's own is refused). Elsewhere the
    answer is 403 ``kiosk_not_local`` whatever the key (nothing to probe it with), and
    the attempt counts against the kiosk limiter like a wrong key."""
    data = await json_body(request)
    key = field(data, "key", str)
    auth = request.app[AUTH]
    ticket = auth.kiosk_limiter.attempt(_client(request))
    require_this_machine(request)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise errors.KioskNotLocal("The kiosk key is taken only from the station's own page.")
    session = auth.kiosk_session(key)
    auth.kiosk_limiter.succeeded(_client(request), ticket)
    ttl = 10 * 365 * 24 * 3600  # the screen on the wall stays logged in
    response = web.json_response({"role": "kiosk", "room": session.room})
    set_session_cookie(request, response, auth.issue_session(session, ttl=ttl), max_age=ttl)
    return response


# -- station and rooms -----------------------------------------------------------------


@routes.get("/api/station")
async def station_info(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    settings = request.app[SETTINGS]  # the config's, or what the household set in the app
    return web.json_response(
        {
            "name": settings.name,
            "room_id": config.station.room_id,
            "version": __version__,
            "language": settings.language,
        }
    )


def _room_json(request: web.Request, room_id: str) -> dict[str, Any]:
    room = request.app[STORE].get_room(room_id)
    body = room.to_json()
    body["participants"] = len(request.app[ROOMS].remotes(room_id))
    return body


@routes.get("/api/rooms")
async def list_rooms(request: web.Request) -> web.Response:
    require(request, "user")
    rooms = [_room_json(request, r.id) for r in request.app[STORE].list_rooms()]
    return web.json_response({"rooms": rooms})


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24].strip("-")
    return f"{slug or 'room'}-{secrets.token_hex(3)}"


@routes.post("/api/rooms")
async def create_room(request: web.Request) -> web.Response:
    require(request, "user")
    data = await json_body(request)
    name = " ".join(str(field(data, "name", str)).split())
    if not name or len(name) > MAX_ROOM_NAME:
        raise errors.ValidationError(f"'name' must have 1 to {MAX_ROOM_NAME} characters.")
    store = request.app[STORE]
    # Two rooms called "Kitchen" cannot be told apart in the list or by a guest.
    if any(r.name.casefold() == name.casefold() for r in store.list_rooms()):
        raise errors.Conflict(f"A room called {name!r} already exists.")
    room = store.create_room(_slug(name), name)
    return web.json_response(_room_json(request, room.id), status=201)


@routes.get(r"/api/rooms/{room_id}")
async def get_room(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    session = require(request, "user", "guest", "kiosk")
    if not session.may_enter(room_id):
        raise errors.Forbidden("You may only see your own room.")
    return web.json_response(_room_json(request, room_id))


@routes.delete(r"/api/rooms/{room_id}")
async def delete_room(request: web.Request) -> web.Response:
    require(request, "user")
    room_id = request.match_info["room_id"]
    store = request.app[STORE]
    if store.get_room(room_id).is_station:
        raise errors.StationRoomProtected()
    store.delete_room(room_id)
    await request.app[HUB].close_room(room_id)
    return web.json_response({"deleted": room_id})


# -- guest links -----------------------------------------------------------------------


async def _link_response(request: web.Request, issued: IssuedLink) -> dict[str, Any]:
    base = request.app[CONFIG].base_url
    url = f"{base}/#/room/{issued.link.room_id}?guest_token={issued.token}"
    return {
        "guest_url": url,
        # ~35 ms of pure Python for a code this long (more on a Pi): not on the event
        # loop, where every call's signaling would wait for it
        "guest_qr_code": await asyncio.to_thread(qr.png_data_url, url),
        "guest_token": issued.token,
        "expires_at": issued.link.expires_at,
        "jti": issued.link.jti,
        "label": issued.link.label,
        "max_uses": issued.link.max_uses,
    }


async def _make_link(request: web.Request, room_id: str) -> web.Response:
    request.app[STORE].get_room(room_id)
    data = await json_body(request, optional=True)
    config = request.app[CONFIG]
    ttl = field(
        data, "ttl_seconds", int, required=False, default=config.auth.guest_link_ttl_seconds
    )
    if not 60 <= ttl <= MAX_GUEST_TTL:
        raise errors.ValidationError(f"'ttl_seconds' must be from 60 to {MAX_GUEST_TTL}.")
    max_uses = field(data, "max_uses", int, required=False)
    if max_uses is not None and not 1 <= max_uses <= 10_000:
        raise errors.ValidationError("'max_uses' must be from 1 to 10000.")
    label = " ".join(str(field(data, "label", str, required=False, default="")).split())
    if len(label) > MAX_LABEL:
        raise errors.ValidationError(f"'label' may have at most {MAX_LABEL} characters.")
    issued = request.app[AUTH].make_guest_link(room_id, ttl=ttl, label=label, max_uses=max_uses)
    request.app[METRICS].inc("guest_links_created_total")
    return web.json_response(await _link_response(request, issued), status=201)


@routes.post(r"/api/rooms/{room_id}/generate-guest-link")
@routes.post(r"/api/rooms/{room_id}/generate-guest-link/")
async def generate_guest_link(request: web.Request) -> web.Response:
    require(request, "user")
    return await _make_link(request, request.match_info["room_id"])


@routes.post("/api/kiosk/guest-link")
async def kiosk_guest_link(request: web.Request) -> web.Response:
    """The invitation on the kiosk's screen: a short code at ``/j/<code>`` that lives
    minutes, is not among the household's links, and replaces the previous one."""
    session = require(request, "kiosk")
    assert session.room is not None
    code, link = request.app[AUTH].make_kiosk_code(session.room)
    base = request.app[CONFIG].base_url
    url = f"{base}/j/{code}"
    # Upper case keeps the whole URL in the QR's compact alphanumeric mode.
    qr_url = f"{base.upper()}/J/{code}" if _alphanumeric(base.upper()) else url
    request.app[METRICS].inc("kiosk_codes_created_total")
    return web.json_response(
        {
            "guest_url": url,
            # One module of quiet zone in the image: the kiosk's white card around it adds
            # the rest, and every pixel saved makes the modules larger (scans from further).
            "guest_qr_code": await asyncio.to_thread(qr.png_data_url, qr_url, border=1),
            "guest_token": code,
            "expires_at": link.expires_at - KIOSK_SESSION_TTL,
            "jti": link.jti,
            "label": "",
            "max_uses": None,
        },
        status=201,
    )


@routes.post("/api/kiosk/quiet")
async def kiosk_quiet(request: web.Request) -> web.Response:
    """The kiosk's do-not-disturb toggle: ``{"on": true}`` and calls stop ringing
    (logged missed, the caller told until when) until it is switched off or its end
    (quiet.py: the end of the quiet hours, else 07:00); kept across a restart."""
    require(request, "kiosk")
    on = field(await json_body(request), "on", bool)
    station = request.app[CALL_MACHINE]
    station.quiet.set(on)
    station.settings_changed()
    on, until = station.quiet.state()
    return web.json_response({"quiet": on, "quiet_until": until})


def _alphanumeric(text: str) -> bool:
    return all(c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:" for c in text)


@routes.get(r"/j/{code}")
@routes.get(r"/J/{code}")
async def kiosk_code(request: web.Request) -> web.Response:
    """Someone scanned the kiosk's QR: set a guest session cookie, go to the room.

    Only a page load acts: an image, script or fetch of ``/j/…`` from another site's
    page (``Sec-Fetch-Dest``) is refused and counts nothing. A navigation from another
    site carries no SameSite=Strict cookie, so the station cannot see who is signed in:
    it goes to the station's page, which trades the code itself (``POST
    /api/auth/code``, same-origin). A household or kiosk session is never replaced."""
    dest = request.headers.get("Sec-Fetch-Dest", "document")
    if dest not in ("document", "empty") or request.headers.get("Sec-Fetch-Mode") == "no-cors":
        raise errors.Forbidden("A station code opens only as a page.")
    room = request.app[CONFIG].station.room_id
    code = request.match_info["code"][:32]
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise web.HTTPSeeOther(f"/#/room/{room}?code={code}")
    if _signed_in(request):
        raise web.HTTPSeeOther(f"/#/room/{room}")
    try:
        session, token, ttl = _redeem_code(request, code)
    except errors.TooManyAttempts:
        raise
    except errors.InvalidToken:
        raise web.HTTPSeeOther("/#/") from None
    response = web.HTTPSeeOther(f"/#/room/{session.room}")
    set_session_cookie(request, response, token, max_age=ttl)
    raise response


@routes.post("/api/auth/code")
async def code_login(request: web.Request) -> web.Response:
    """The station's page trades a kiosk code it was sent with (``#/room/…?code=``): a
    household or kiosk session stays as it is; anyone else gets a guest session."""
    data = await json_body(request)
    code = field(data, "code", str)[:32]
    signed_in = _signed_in(request)
    if signed_in is not None:
        return web.json_response({"role": signed_in.role, "room": signed_in.room})
    session, token, ttl = _redeem_code(request, code)
    response = web.json_response({"role": "guest", "room": session.room, "label": ""})
    set_session_cookie(request, response, token, max_age=ttl)
    return response


def _signed_in(request: web.Request) -> Session | None:
    """The request's household or kiosk session, if it holds one that is valid."""
    try:
        session = session_of(request)
    except errors.AuthError:
        return None
    return session if session.role in ("user", "kiosk") else None


def _redeem_code(request: web.Request, code: str) -> tuple[Session, str, int]:
    auth = request.app[AUTH]
    session = auth.redeem_kiosk_code(code, client=_client(request))
    request.app[CALL_MACHINE].caller_expected(session.room)
    return session, auth.issue_code_session(session), KIOSK_SESSION_TTL


@routes.get(r"/api/rooms/{room_id}/guest-links")
async def list_guest_links(request: web.Request) -> web.Response:
    require(request, "user")
    room_id = request.match_info["room_id"]
    store = request.app[STORE]
    store.get_room(room_id)
    sessions = store.code_sessions(room_id)
    peers = request.app[HUB].peers_by_session()
    links = []
    for link in store.list_guest_links(room_id):
        body = link.to_json()
        if link.kiosk_code:
            body["sessions"] = [
                {**s.to_json(), **_peer_state(peers.get(s.sid), request.app[CALL_MACHINE])}
                for s in sessions.get(link.jti, [])
            ]
        links.append(body)
    return web.json_response({"guest_links": links})


def _peer_state(peer: Peer | None, station: CallMachine) -> dict[str, Any]:
    """What the household sees of a code session's phone: the name it joined with and
    whether it is in the call (``state``: away, waiting or in-call)."""
    if peer is None:
        return {"name": None, "state": "away"}
    in_call = any(p is peer for p in station.in_call)
    return {"name": peer.name, "state": "in-call" if in_call else "waiting"}


@routes.delete(r"/api/rooms/{room_id}/guest-links/{jti}/sessions/{sid}")
async def end_code_session(request: web.Request) -> web.Response:
    """The household ends one phone's session opened with a kiosk code (the code and
    the other phones stay)."""
    require(request, "user")
    room_id, jti, sid = (request.match_info[k] for k in ("room_id", "jti", "sid"))
    request.app[STORE].get_room(room_id)
    request.app[AUTH].end_code_session(room_id, jti, sid)
    await request.app[HUB].close_session(sid, "revoked")
    return web.json_response({"ok": True})


@routes.delete(r"/api/rooms/{room_id}/guest-links/{jti}")
async def revoke_guest_link(request: web.Request) -> web.Response:
    require(request, "user")
    room_id, jti = request.match_info["room_id"], request.match_info["jti"]
    request.app[STORE].get_room(room_id)
    link = request.app[STORE].revoke_guest_link(room_id, jti)
    await request.app[HUB].close_guest(jti)
    return web.json_response(link.to_json())


# -- calls -----------------------------------------------------------------------------


@routes.get("/api/calls")
async def call_log(request: web.Request) -> web.Response:
    require(request, "user", "kiosk")
    station = request.app[CALL_MACHINE]
    calls = [c.to_json() for c in request.app[STORE].list_calls()]
    return web.json_response({"current": station.as_object(), "calls": calls})


# -- health, metrics, OpenAPI ----------------------------------------------------------


LOW_DISK_BYTES = 1024 * 1024
"""Less free space than this in the state dir: health says the disk is full (SQLite's
write-ahead log may still take a tiny probe write when real writes no longer fit)."""


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _device(status: str, source: str) -> str:
    """Devices are closed while idle; then say which source a call would use."""
    return f"off (source: {source})" if status == "off" else status


@routes.get("/api/health/")
@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Anonymous callers learn only ``status`` and ``version`` (not whether someone is
    calling); users and the kiosk get the details and the reasons for ``degraded``."""
    body, code, _free = health_report(request)
    try:
        session: Session | None = session_of(request)
    except errors.AuthError:
        session = None
    if session is None or session.role == "guest":
        return web.json_response({"status": body["status"], "version": __version__}, status=code)
    return web.json_response(body, status=code)


def health_report(request: web.Request) -> tuple[dict[str, Any], int, int | None]:
    """The station's health with its details, the HTTP status it is served with, and
    the state directory's free bytes (None: unknown); the Settings screen's health card
    adds to it (settings_api.py)."""
    app = request.app
    media = app[MEDIA].status()
    store = app[STORE]
    reasons: list[str] = []
    station = app[CALL_MACHINE]
    if not store.healthy():
        reasons.append("database: cannot read")
    elif (problem := store.write_problem()) is not None:
        reasons.append(f"database: cannot write ({problem})")
    for device in ("camera", "microphone"):
        if media.get(device, "").startswith("unavailable"):
            reasons.append(f"{device}: {media[device]}")
    free = _free_bytes(app[CONFIG].state_path)
    if free is not None and free < LOW_DISK_BYTES:
        reasons.append(f"state dir: disk full ({free // 1024} KiB free)")
    if not any(r.startswith(("database", "state dir")) for r in reasons):
        # the database writes again and the disk has room: earlier failures are history
        # (counted in call_log_write_failures)
        station.store_failing = False
    if station.store_failing:
        reasons.append(
            f"call log: {station.store_errors} write(s) failed (last: {station.last_store_error})"
        )
    status = "degraded" if reasons else "ok"
    code = 503 if reasons and reasons[0].startswith("database") else 200
    body: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "version": __version__,
        "uptime_seconds": round(app[METRICS].uptime, 3),
        "camera": _device(media.get("camera", "unknown"), app[CONFIG].camera.source),
        "microphone": _device(media.get("microphone", "unknown"), app[CONFIG].microphone.source),
        "database": "ok" if not any(r.startswith("database") for r in reasons) else "error",
        "gpio": app[GPIO].describe(),
        "screen": app[SCREEN].describe(),
        "call": app[CALL_MACHINE].state,
        # Whether the kiosk's own screen (Chromium) is in the station room: the kiosk
        # session's watchdog (`videostation kiosk-watch`) restarts the screen when not.
        "kiosk_screen": (
            "connected" if app[ROOMS].screen(app[CALL_MACHINE].room) is not None else "absent"
        ),
        "password_set": app[AUTH].password_set,
        # a Pi without a clock battery: whether network time has set the clock, and the
        # jumps this run saw (durations and credentials run on the monotonic clock)
        "clock": app[CLOCK].status(),
    }
    return body, code, free


@routes.get("/api/metrics/")
@routes.get("/api/metrics")
async def metrics(request: web.Request) -> web.Response:
    """For the household, and for Prometheus with a metrics token (:mod:`.scrape`):
    the token opens this endpoint only; a wrong one counts like a wrong password."""
    token = scrape.bearer(request.headers.get("Authorization"))
    if token is None:
        require(request, "user")
    else:
        auth = request.app[AUTH]
        ticket = auth.metrics_limiter.attempt(_client(request))
        scrape.check(request.app[CONFIG].state_path, token)
        auth.metrics_limiter.succeeded(_client(request), ticket)
    return web.Response(
        text=request.app[METRICS].render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[CONFIG].base_url))


@routes.route("*", "/api/{tail:.*}")
async def api_not_found(request: web.Request) -> web.Response:
    """Unknown API paths: 404; a known path with the wrong method: 405 with Allow."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource and resource.canonical.startswith(
            "/api/"
        ):
            allowed |= (await resource.resolve(request))[1]
    allowed.discard("*")
    if allowed:
        raise errors.MethodNotAllowed(
            f"{request.path} takes {', '.join(sorted(allowed))}.", allow=sorted(allowed)
        )
    raise errors.NotFound(f"No API endpoint {request.method} {request.path}.")

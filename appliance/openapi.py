"""The OpenAPI 3.1 description of the REST API, served at /api/openapi.json.

A test compares it with the router, so every route is described here.
"""

from __future__ import annotations

from typing import Any

from . import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: dict[str, Any] | None = None,
    *,
    status: str = "200",
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    errors: tuple[int, ...] = (),
    auth: str = "none",
    params: tuple[str, ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {status: {"description": "OK", **_json(ok or {"type": "object"})}},
        "x-roles": auth,
    }
    for code in errors:
        op["responses"][str(code)] = {"description": "Error", **_json(_ERROR)}
    if body is not None:
        op["requestBody"] = {"required": body_required, **_json(body)}
    if auth != "none":
        op["security"] = [{"session": []}]
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    return op


def _obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_ROOM = {"$ref": "#/components/schemas/Room"}
_HOURS = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["start", "end"],
            "additionalProperties": False,
            "properties": {
                "start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                "end": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
            },
        },
    ]
}
_SETTINGS_PATCH = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "language": {"enum": ["auto", "en", "ru"]},
        "quiet_hours": _HOURS,
        "auto_answer": {"type": "array", "items": _STR, "maxItems": 50},
    },
}
_SETTINGS = _obj(
    ["name", "language", "quiet_hours", "auto_answer", "members"],
    name=_STR,
    language={"enum": ["auto", "en", "ru"]},
    quiet_hours=_HOURS,
    auto_answer={"type": "array", "items": _STR},
    members={
        "type": "array",
        "items": _obj(jti=_STR, label=_STR, expires_at=_NUM, auto_answer=_BOOL),
    },
)
_LINK = {"$ref": "#/components/schemas/GuestLink"}
_NEW_LINK = {"$ref": "#/components/schemas/NewGuestLink"}
_LINK_BODY = _obj(
    ttl_seconds={"type": "integer", "minimum": 60, "maximum": 31536000},
    max_uses={"type": "integer", "minimum": 1, "maximum": 10000},
    label={"type": "string", "maxLength": 60},
)
_SESSION = _obj(
    ["role"], role={"enum": ["user", "guest", "kiosk"]}, room={"type": ["string", "null"]}
)


def openapi_document(base_url: str) -> dict[str, Any]:
    room_link = _op(
        "Make a guest link (JWT in the URL fragment) with its QR code",
        _NEW_LINK,
        status="201",
        body=_LINK_BODY,
        body_required=False,
        errors=(400, 401, 403, 404, 413),
        auth="user",
        params=("room_id",),
    )
    paths: dict[str, Any] = {
        "/api/auth/login": {
            "post": _op(
                "Log in with the master password; sets the session cookie",
                _SESSION,
                body=_obj(["password"], password=_STR),
                errors=(400, 401, 413, 429, 503),
            )
        },
        "/api/auth/logout": {"post": _op("Log out (clears the session cookie)", _obj(ok=_BOOL))},
        "/api/auth/me": {"get": _op("Who am I", _SESSION, errors=(401,), auth="any")},
        "/api/auth/guest": {
            "post": _op(
                "Trade a guest token for a guest session limited to its room",
                _SESSION,
                body=_obj(["guest_token"], guest_token=_STR),
                errors=(400, 401, 403),
            )
        },
        "/api/auth/code": {
            "post": _op(
                "Trade a kiosk code (sent from another site's page) for a guest session; "
                "a household or kiosk session stays as it is",
                _SESSION,
                body=_obj(["code"], code=_STR),
                errors=(400, 401, 429),
            )
        },
        "/api/auth/kiosk": {
            "post": _op(
                "Trade the kiosk key for the kiosk session: only over loopback from the "
                "station itself, without a proxy header, from a page of this listener "
                "(else 403 kiosk_not_local)",
                _SESSION,
                body=_obj(["key"], key=_STR),
                errors=(400, 401, 403, 429),
            )
        },
        "/api/station": {
            "get": _op(
                "Station name, room, version and kiosk language",
                _obj(name=_STR, room_id=_STR, version=_STR, language=_STR),
            )
        },
        "/api/rooms": {
            "get": _op(
                "List rooms",
                _obj(rooms={"type": "array", "items": _ROOM}),
                errors=(401, 403),
                auth="user",
            ),
            "post": _op(
                "Create a room",
                _ROOM,
                status="201",
                body=_obj(["name"], name={"type": "string", "maxLength": 60}),
                errors=(400, 401, 403, 409, 413),
                auth="user",
            ),
        },
        "/api/rooms/{room_id}": {
            "get": _op(
                "One room (guests: only their own)",
                _ROOM,
                errors=(401, 403, 404),
                auth="user, guest of the room, kiosk",
                params=("room_id",),
            ),
            "delete": _op(
                "Delete a room (not the station's own)",
                _obj(deleted=_STR),
                errors=(401, 403, 404, 409),
                auth="user",
                params=("room_id",),
            ),
        },
        "/api/rooms/{room_id}/generate-guest-link": {"post": room_link},
        "/api/rooms/{room_id}/generate-guest-link/": {"post": room_link},
        "/api/rooms/{room_id}/guest-links": {
            "get": _op(
                "List a room's guest links",
                _obj(guest_links={"type": "array", "items": _LINK}),
                errors=(401, 403, 404),
                auth="user",
                params=("room_id",),
            )
        },
        "/api/rooms/{room_id}/guest-links/{jti}": {
            "delete": _op(
                "Revoke a guest link (its guests are disconnected)",
                _LINK,
                errors=(401, 403, 404),
                auth="user",
                params=("room_id", "jti"),
            )
        },
        "/api/rooms/{room_id}/guest-links/{jti}/sessions/{sid}": {
            "delete": _op(
                "End one phone's session opened with a kiosk code (it is disconnected)",
                _obj(["ok"], ok=_BOOL),
                errors=(401, 403, 404),
                auth="user",
                params=("room_id", "jti", "sid"),
            )
        },
        "/api/kiosk/guest-link": {
            "post": _op(
                "A fresh guest link to the station's room for the kiosk's QR",
                _NEW_LINK,
                status="201",
                body=_LINK_BODY,
                body_required=False,
                errors=(400, 401, 403),
                auth="kiosk",
            )
        },
        "/api/kiosk/quiet": {
            "post": _op(
                "Do not disturb on or off by hand (the kiosk's toggle; on: until the quiet "
                "hours end, else 07:00; kept across a restart)",
                _obj(quiet=_BOOL, quiet_until={"type": ["number", "null"]}),
                body=_obj(["on"], on=_BOOL),
                errors=(400, 401, 403),
                auth="kiosk",
            )
        },
        "/api/calls": {
            "get": _op(
                "The current call and the call log",
                _obj(
                    current=_obj(),
                    calls={
                        "type": "array",
                        "items": _obj(
                            id=_INT,
                            room_id=_STR,
                            caller=_STR,
                            started_at=_NUM,
                            answered_at={"type": ["number", "null"]},
                            ended_at={"type": ["number", "null"]},
                            outcome={"enum": ["ringing", "answered", "missed", "declined"]},
                            attempts=_INT,
                        ),
                    },
                ),
                errors=(401, 403),
                auth="user, kiosk",
            )
        },
        "/api/health/": {
            "get": _op(
                "Health: no secrets",
                _obj(
                    status={"enum": ["ok", "degraded"]},
                    version=_STR,
                    uptime_seconds=_NUM,
                    camera=_STR,
                    microphone=_STR,
                    database=_STR,
                    gpio=_STR,
                    screen=_STR,
                    call=_STR,
                    kiosk_screen={"enum": ["connected", "absent"]},
                    password_set=_BOOL,
                    clock=_obj(
                        synchronized={"type": ["boolean", "null"]},
                        jumps=_INT,
                        last_jump_seconds={"type": ["number", "null"]},
                    ),
                ),
                errors=(503,),
            )
        },
        "/api/metrics/": {
            "get": {
                **_op("Prometheus metrics", errors=(401, 403), auth="user"),
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": {"schema": _STR}}},
                    "401": {"description": "Error", **_json(_ERROR)},
                    "403": {"description": "Error", **_json(_ERROR)},
                },
            }
        },
        "/api/settings": {
            "get": _op(
                "The household's settings (docs/settings.md)",
                _SETTINGS,
                errors=(401, 403),
                auth="user",
            ),
            "patch": _op(
                "Change settings: any of name, language, quiet_hours, auto_answer; checked "
                "whole (400 and nothing changed on a bad or unknown field), kept in the "
                "database, in force at once",
                _SETTINGS,
                body=_SETTINGS_PATCH,
                errors=(400, 401, 403),
                auth="user",
            ),
        },
        "/api/settings/password": {
            "post": _op(
                "Change the master password (the current one required, rate-limited like "
                "login); every other household session is logged out, this one gets a new "
                "cookie",
                _obj(ok=_BOOL, sockets_closed=_INT),
                body=_obj(
                    ["current_password", "new_password"],
                    current_password=_STR,
                    new_password={"type": "string", "minLength": 8, "maxLength": 1024},
                ),
                errors=(400, 401, 403, 429, 503),
                auth="user",
            )
        },
        "/api/settings/health": {
            "get": _op(
                "The health card: /api/health's details, free disk space, how phones reach "
                "the station",
                _obj(
                    status={"enum": ["ok", "degraded"]},
                    reasons={"type": "array", "items": _STR},
                    disk=_obj(free_bytes={"type": ["integer", "null"]}, ok=_BOOL),
                    reachability=_obj(url=_STR, public=_BOOL, tls=_BOOL),
                ),
                errors=(401, 403, 503),
                auth="user",
            )
        },
        "/api/openapi.json": {"get": _op("This document")},
    }
    # The same handlers answer without the trailing slash.
    paths["/api/health"] = paths["/api/health/"]
    paths["/api/metrics"] = paths["/api/metrics/"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Video Station",
            "version": __version__,
            "description": "REST API of a Video Station. Signaling is a WebSocket at /ws/, "
            'described in docs/signaling.md. Errors are {"error": {"code", "message"}}.',
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "vs_session"}
            },
            "schemas": {
                "Error": _obj(["error"], error=_obj(["code", "message"], code=_STR, message=_STR)),
                "Room": _obj(
                    ["id", "name", "is_station"],
                    id=_STR,
                    name=_STR,
                    is_station=_BOOL,
                    created_at=_NUM,
                    participants=_INT,
                ),
                "GuestLink": _obj(
                    ["jti", "room_id", "expires_at"],
                    kind={"enum": ["link", "kiosk-code"]},
                    jti=_STR,
                    room_id=_STR,
                    label=_STR,
                    created_at=_NUM,
                    expires_at=_NUM,
                    max_uses={"type": ["integer", "null"]},
                    uses=_INT,
                    revoked=_BOOL,
                    sessions={
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/CodeSession"},
                    },
                ),
                "CodeSession": _obj(
                    ["id", "issued_at", "expires_at", "ended", "name", "state"],
                    id=_STR,
                    issued_at=_NUM,
                    expires_at=_NUM,
                    ended=_BOOL,
                    name={"type": ["string", "null"]},
                    state={"enum": ["away", "waiting", "in-call"]},
                ),
                "NewGuestLink": _obj(
                    ["guest_url", "guest_qr_code", "guest_token", "expires_at"],
                    guest_url=_STR,
                    guest_qr_code={"type": "string", "pattern": "^data:image/png;base64,"},
                    guest_token=_STR,
                    expires_at=_NUM,
                    jti=_STR,
                    label=_STR,
                    max_uses={"type": ["integer", "null"]},
                ),
            },
        },
    }

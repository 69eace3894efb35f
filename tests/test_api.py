"""The REST API against a real aiohttp server and a real SQLite file, per role."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from appliance.appkeys import AUTH, STORE
from appliance.auth import ALGORITHM, GUEST_AUDIENCE

from .conftest import PASSWORD, ServiceHarness

Role = str
ROLES = ("anonymous", "user", "guest", "other_guest", "kiosk")


async def as_role(station: ServiceHarness, role: Role) -> TestClient:
    station.room("Kitchen")
    if role == "anonymous":
        return await station.client()
    if role == "user":
        return await station.user()
    if role == "guest":
        return await station.guest("station")
    if role == "other_guest":
        return await station.guest("kitchen")
    return await station.kiosk()


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return dict(body["error"])


async def assert_healthy(station: ServiceHarness) -> None:
    client = await station.client()
    resp = await client.get("/api/health/")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


# (method, path, body, {role: expected status})
MATRIX: list[tuple[str, str, Any, dict[Role, int]]] = [
    (
        "GET",
        "/api/rooms",
        None,
        {"anonymous": 401, "user": 200, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "POST",
        "/api/rooms",
        {"name": "Garden"},
        {"anonymous": 401, "user": 201, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "GET",
        "/api/rooms/kitchen",
        None,
        {"anonymous": 401, "user": 200, "guest": 403, "other_guest": 200, "kiosk": 403},
    ),
    (
        "GET",
        "/api/rooms/station",
        None,
        {"anonymous": 401, "user": 200, "guest": 200, "other_guest": 403, "kiosk": 200},
    ),
    (
        "DELETE",
        "/api/rooms/kitchen",
        None,
        {"anonymous": 401, "user": 200, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "POST",
        "/api/rooms/kitchen/generate-guest-link",
        {"label": "Grandma"},
        {"anonymous": 401, "user": 201, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "POST",
        "/api/rooms/kitchen/generate-guest-link/",
        None,
        {"anonymous": 401, "user": 201, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "GET",
        "/api/rooms/kitchen/guest-links",
        None,
        {"anonymous": 401, "user": 200, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "POST",
        "/api/kiosk/guest-link",
        None,
        {"anonymous": 401, "user": 403, "guest": 403, "other_guest": 403, "kiosk": 201},
    ),
    (
        "GET",
        "/api/calls",
        None,
        {"anonymous": 401, "user": 200, "guest": 403, "other_guest": 403, "kiosk": 200},
    ),
    (
        "GET",
        "/api/metrics/",
        None,
        {"anonymous": 401, "user": 200, "guest": 403, "other_guest": 403, "kiosk": 403},
    ),
    (
        "GET",
        "/api/health/",
        None,
        {"anonymous": 200, "user": 200, "guest": 200, "other_guest": 200, "kiosk": 200},
    ),
    (
        "GET",
        "/api/auth/me",
        None,
        {"anonymous": 401, "user": 200, "guest": 200, "other_guest": 200, "kiosk": 200},
    ),
    (
        "GET",
        "/api/station",
        None,
        {"anonymous": 200, "user": 200, "guest": 200, "other_guest": 200, "kiosk": 200},
    ),
    (
        "GET",
        "/api/openapi.json",
        None,
        {"anonymous": 200, "user": 200, "guest": 200, "other_guest": 200, "kiosk": 200},
    ),
]


@pytest.mark.parametrize("role", ROLES)
async def test_every_endpoint_for_every_role(station: ServiceHarness, role: Role) -> None:
    client = await as_role(station, role)
    for method, path, body, expected in MATRIX:
        kwargs = {"json": body} if body is not None else {}
        resp = await client.request(method, path, **kwargs)
        want = expected[role]
        if want >= 400:
            await error_of(resp, want)
        else:
            assert resp.status == want, f"{role} {method} {path}: {await resp.text()}"
        if method == "DELETE" and want == 200:
            station.room("Kitchen")  # put it back for the rest of the matrix
    # A revoke needs a link that exists.
    link = station.auth.make_guest_link("kitchen", ttl=600)
    resp = await client.delete(f"/api/rooms/kitchen/guest-links/{link.link.jti}")
    want = {"anonymous": 401, "user": 200}.get(role, 403)
    assert resp.status == want
    await assert_healthy(station)


async def test_me_names_the_role_and_room(station: ServiceHarness) -> None:
    guest = await station.guest("station", label="Grandma")
    assert await (await guest.get("/api/auth/me")).json() == {
        "role": "guest",
        "room": "station",
        "label": "Grandma",
    }
    kiosk = await station.kiosk()
    assert (await (await kiosk.get("/api/auth/me")).json())["role"] == "kiosk"


async def test_login_sets_a_strict_httponly_cookie_and_logout_clears_it(
    station: ServiceHarness,
) -> None:
    client = await station.client()
    resp = await client.post("/api/auth/login", json={"password": PASSWORD})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS it is Secure (test_tls)
    assert (await client.get("/api/rooms")).status == 200
    await client.post("/api/auth/logout")
    await error_of(await client.get("/api/rooms"), 401)


async def test_wrong_password_is_refused_then_rate_limited(station: ServiceHarness) -> None:
    client = await station.client()
    for _ in range(5):
        err = await error_of(await client.post("/api/auth/login", json={"password": "nope"}), 401)
        assert err["code"] == "wrong_password"
    resp = await client.post("/api/auth/login", json={"password": PASSWORD})
    err = await error_of(resp, 429)
    assert err["code"] == "too_many_attempts"
    assert int(resp.headers["Retry-After"]) > 0


async def test_changing_the_password_ends_user_sessions(station: ServiceHarness) -> None:
    user = await station.user()
    station.auth.set_password("another password")
    await error_of(await user.get("/api/rooms"), 401)


async def test_rooms_create_list_get_delete(station: ServiceHarness) -> None:
    user = await station.user()
    resp = await user.post("/api/rooms", json={"name": "  Living   room "})
    assert resp.status == 201
    room = await resp.json()
    assert room["name"] == "Living room" and room["id"].startswith("living-room-")
    rooms = (await (await user.get("/api/rooms")).json())["rooms"]
    assert [r["id"] for r in rooms] == ["station", room["id"]]
    assert rooms[0]["is_station"] is True
    # A second "living room" (any case, any spacing) is refused: names tell rooms apart.
    err = await error_of(await user.post("/api/rooms", json={"name": "LIVING room"}), 409)
    assert err["code"] == "conflict"
    assert len((await (await user.get("/api/rooms")).json())["rooms"]) == 2
    assert (await user.get(f"/api/rooms/{room['id']}")).status == 200
    assert (await user.delete(f"/api/rooms/{room['id']}")).status == 200
    await error_of(await user.get(f"/api/rooms/{room['id']}"), 404)
    err = await error_of(await user.delete("/api/rooms/station"), 409)
    assert err["code"] == "station_room_protected"


async def test_guest_link_has_the_seed_shape_and_a_scannable_qr(station: ServiceHarness) -> None:
    from io import BytesIO

    import zxingcpp
    from PIL import Image

    user = await station.user()
    resp = await user.post(
        "/api/rooms/station/generate-guest-link",
        json={"ttl_seconds": 3600, "max_uses": 3, "label": "Grandma"},
    )
    assert resp.status == 201
    body = await resp.json()
    assert {"guest_url", "guest_qr_code", "guest_token", "expires_at"} <= set(body)
    assert body["guest_url"].endswith(f"/#/room/station?guest_token={body['guest_token']}")
    assert body["guest_token"].startswith("ey")
    assert abs(body["expires_at"] - (time.time() + 3600)) < 5
    prefix = "data:image/png;base64,"
    assert body["guest_qr_code"].startswith(prefix)
    image = Image.open(BytesIO(base64.b64decode(body["guest_qr_code"][len(prefix) :])))
    decoded = zxingcpp.read_barcodes(image)
    assert [d.text for d in decoded] == [body["guest_url"]]
    # a quiet zone: the outer 4 modules (8 px each) are white
    assert image.convert("L").getpixel((5, 5)) == 255
    links = (await (await user.get("/api/rooms/station/guest-links")).json())["guest_links"]
    assert [(link["label"], link["max_uses"], link["uses"]) for link in links] == [
        ("Grandma", 3, 0)
    ]


async def test_qr_codes_are_drawn_off_the_event_loop(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guest link's code takes ~35 ms of pure Python (more on a Pi): drawn on the
    event loop it would hold up every call's signaling meanwhile."""
    import threading

    from appliance import qr

    drawn_in: list[str] = []
    real = qr.png_data_url

    def recording(data: str, **kwargs: Any) -> str:
        drawn_in.append(threading.current_thread().name)
        return real(data, **kwargs)

    monkeypatch.setattr(qr, "png_data_url", recording)
    user = await station.user()
    assert (await user.post("/api/rooms/station/generate-guest-link", json={})).status == 201
    kiosk = await station.kiosk()
    assert (await kiosk.post("/api/kiosk/guest-link")).status == 201
    loop_thread = threading.current_thread().name  # pytest-aiohttp runs the app here
    assert len(drawn_in) == 2 and loop_thread not in drawn_in, (drawn_in, loop_thread)


async def test_guest_link_uses_public_url(tmp_path: Any, aiohttp_client: Any) -> None:
    from appliance.app import create_app

    from .conftest import make_config

    app = create_app(
        make_config(tmp_path / "s", station={"public_url": "https://door.example.net/"})
    )
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    await client.post("/api/auth/login", json={"password": PASSWORD})
    body = await (await client.post("/api/rooms/station/generate-guest-link")).json()
    assert body["guest_url"].startswith("https://door.example.net/#/room/station?guest_token=ey")


# -- guest tokens ----------------------------------------------------------------------


def forge(
    station: ServiceHarness, claims: dict[str, Any], *, key: str | None = None, alg: str = ALGORITHM
) -> str:
    secret = key or station.auth._secret
    return jwt.encode(claims, secret, algorithm=alg)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def redeem(station: ServiceHarness, token: Any) -> Any:
    client = await station.client()
    return await client.post("/api/auth/guest", json={"guest_token": token})


async def test_a_valid_guest_token_gives_a_room_scoped_session(station: ServiceHarness) -> None:
    station.room("Kitchen")
    issued = station.auth.make_guest_link("kitchen", ttl=600)
    client = await station.client()
    resp = await client.post("/api/auth/guest", json={"guest_token": issued.token})
    assert await resp.json() == {"role": "guest", "room": "kitchen", "label": ""}
    assert (await client.get("/api/rooms/kitchen")).status == 200
    await error_of(await client.get("/api/rooms/station"), 403)
    await error_of(await client.get("/api/rooms"), 403)
    await error_of(await client.post("/api/rooms/kitchen/generate-guest-link"), 403)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("expired", 401, "token_expired"),
        ("tampered", 401, "invalid_token"),
        ("other_key", 401, "invalid_token"),
        ("alg_none", 401, "invalid_token"),
        ("hs_none_confusion", 401, "invalid_token"),
        ("session_token_as_guest", 401, "invalid_token"),
        ("unknown_jti", 401, "invalid_token"),
        ("revoked", 403, "guest_link_revoked"),
        ("used_up", 403, "guest_link_used_up"),
        ("garbage", 401, "invalid_token"),
    ],
)
async def test_bad_guest_tokens_are_refused(
    station: ServiceHarness, case: str, status: int, code: str
) -> None:
    now = int(time.time())
    issued = station.auth.make_guest_link("station", ttl=600, max_uses=1)
    good = {
        "sub": "guest",
        "role": "guest",
        "room": "station",
        "aud": GUEST_AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "jti": issued.link.jti,
    }
    token: Any
    if case == "expired":
        token = forge(station, {**good, "iat": now - 700, "exp": now - 100})
    elif case == "tampered":
        header, payload, sig = issued.token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        token = ".".join([header, b64({**claims, "room": "kitchen"}), sig])
    elif case == "other_key":
        token = forge(station, good, key="x" * 64)
    elif case == "alg_none":
        token = ".".join([b64({"alg": "none", "typ": "JWT"}), b64(good), ""])
    elif case == "hs_none_confusion":
        token = ".".join([b64({"alg": "HS512", "typ": "JWT"}), b64(good), "AAAA"])
    elif case == "session_token_as_guest":
        client = await station.user()
        token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["vs_session"].value
    elif case == "unknown_jti":
        token = forge(station, {**good, "jti": "nope"})
    elif case == "revoked":
        station.app[STORE].revoke_guest_link("station", issued.link.jti)
        token = issued.token
    elif case == "used_up":
        assert (await redeem(station, issued.token)).status == 200
        token = issued.token
    else:
        token = "not.a.jwt"
    err = await error_of(await redeem(station, token), status)
    assert err["code"] == code
    await assert_healthy(station)


async def test_revoking_a_link_ends_its_guest_sessions(station: ServiceHarness) -> None:
    issued = station.auth.make_guest_link("station", ttl=600)
    guest = await station.client()
    await guest.post("/api/auth/guest", json={"guest_token": issued.token})
    assert (await guest.get("/api/rooms/station")).status == 200
    user = await station.user()
    resp = await user.delete(f"/api/rooms/station/guest-links/{issued.link.jti}")
    assert (await resp.json())["revoked"] is True
    await error_of(await guest.get("/api/rooms/station"), 403)
    await error_of(await user.delete("/api/rooms/station/guest-links/nope"), 404)


async def test_kiosk_key_is_checked(station: ServiceHarness) -> None:
    client = await station.client()
    err = await error_of(await client.post("/api/auth/kiosk", json={"key": "wrong"}), 401)
    assert err["code"] == "invalid_token"
    body = await (await client.post("/api/auth/kiosk", json={"key": station.auth.kiosk_key})).json()
    assert body == {"role": "kiosk", "room": "station"}


async def test_kiosk_guest_link_is_for_the_station_room(station: ServiceHarness) -> None:
    kiosk = await station.kiosk()
    body = await (await kiosk.post("/api/kiosk/guest-link")).json()
    assert "/j/" in body["guest_url"] and "guest_token" not in body["guest_url"]
    phone = await station.client()
    path = "/j/" + body["guest_url"].rsplit("/j/", 1)[1]
    resp = await phone.get(path, allow_redirects=False)
    assert resp.headers["Location"] == "/#/room/station"


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data", "headers", "status", "code"),
    [
        ("/api/auth/login", b"", {}, 400, "invalid_json"),
        ("/api/auth/login", b"{not json", {}, 400, "invalid_json"),
        ("/api/auth/login", b"[1, 2]", {}, 400, "validation_error"),
        ("/api/auth/login", b'{"password": 5}', {}, 400, "validation_error"),
        ("/api/auth/login", b'{"pass": "x"}', {}, 400, "validation_error"),
        ("/api/auth/guest", b'{"guest_token": null}', {}, 400, "validation_error"),
        ("/api/auth/guest", b'{"guest_token": ["ey"]}', {}, 400, "validation_error"),
        ("/api/auth/login", b'{"password": "' + b"x" * 70000 + b'"}', {}, 413, "payload_too_large"),
        ("/api/auth/login", b"[" * 50000 + b"]" * 50000, {}, 413, "payload_too_large"),
        ("/api/auth/login", b"[" * 20000 + b"]" * 20000, {}, 400, "invalid_json"),
        ("/api/nope", b"{}", {}, 404, "not_found"),
    ],
)
async def test_bad_bodies_get_json_errors(
    station: ServiceHarness, path: str, data: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    client = await station.client()
    resp = await client.post(
        path, data=data, headers={"Content-Type": "application/json", **headers}
    )
    err = await error_of(resp, status)
    assert err["code"] == code
    await assert_healthy(station)


async def test_wrong_methods_get_405_with_allow(station: ServiceHarness) -> None:
    client = await station.client()
    resp = await client.put("/api/rooms", json={})
    err = await error_of(resp, 405)
    assert err["code"] == "method_not_allowed"
    assert resp.headers["Allow"] == "GET, HEAD, POST"
    err = await error_of(await client.patch("/api/nothing/here"), 404)
    assert err["code"] == "not_found"


async def test_bad_user_input_on_rooms_and_links(station: ServiceHarness) -> None:
    user = await station.user()
    cases = [
        ("POST", "/api/rooms", {"name": ""}, 400),
        ("POST", "/api/rooms", {"name": "x" * 61}, 400),
        ("POST", "/api/rooms", {"name": 7}, 400),
        ("POST", "/api/rooms/station/generate-guest-link", {"ttl_seconds": "60"}, 400),
        ("POST", "/api/rooms/station/generate-guest-link", {"ttl_seconds": True}, 400),
        ("POST", "/api/rooms/station/generate-guest-link", {"ttl_seconds": 10}, 400),
        ("POST", "/api/rooms/station/generate-guest-link", {"max_uses": 0}, 400),
        ("POST", "/api/rooms/station/generate-guest-link", {"label": "x" * 61}, 400),
        ("POST", "/api/rooms/nowhere/generate-guest-link", {}, 404),
        ("GET", "/api/rooms/nowhere", None, 404),
        ("DELETE", "/api/rooms/nowhere", None, 404),
        ("GET", "/api/rooms/nowhere/guest-links", None, 404),
    ]
    for method, path, body, status in cases:
        kwargs = {"json": body} if body is not None else {}
        await error_of(await user.request(method, path, **kwargs), status)
    rooms = (await (await user.get("/api/rooms")).json())["rooms"]
    assert [r["id"] for r in rooms] == ["station"]  # nothing half-made
    await assert_healthy(station)


async def test_cross_origin_state_changes_are_refused(station: ServiceHarness) -> None:
    client = await station.client()
    resp = await client.post(
        "/api/auth/login", json={"password": PASSWORD}, headers={"Origin": "https://evil.example"}
    )
    err = await error_of(resp, 403)
    assert err["code"] == "origin_rejected"
    same = f"http://{client.host}:{client.port}"
    resp = await client.post(
        "/api/auth/login", json={"password": PASSWORD}, headers={"Origin": same}
    )
    assert resp.status == 200


async def test_security_headers(station: ServiceHarness) -> None:
    client = await station.client()
    for path in ("/api/health/", "/"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_static_files_and_no_escape(station: ServiceHarness) -> None:
    client = await station.client()
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/__init__.py", "/nope.js"):
        assert (await client.get(path)).status == 404


async def test_health_reports_parts_without_secrets(station: ServiceHarness) -> None:
    client = await station.user()
    body = await (await client.get("/api/health/")).json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["reasons"] == []
    assert body["camera"] == "off (source: test)"  # closed while idle
    assert body["microphone"] == "off (source: test)"
    assert body["call"] == "idle" and body["uptime_seconds"] >= 0
    text = json.dumps(body)
    assert station.auth.kiosk_key not in text and station.auth._secret not in text


async def test_metrics_are_prometheus_text(station: ServiceHarness) -> None:
    user = await station.user()
    await user.post("/api/rooms/station/generate-guest-link")
    resp = await user.get("/api/metrics/")
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "# TYPE videostation_uptime_seconds gauge" in text
    assert 'videostation_logins_total{result="ok"} 1' in text
    assert "videostation_guest_links_created_total 1" in text
    assert "videostation_peers 0" in text


async def test_openapi_describes_every_route(station: ServiceHarness) -> None:
    client = await station.client()
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = set()
    for route in station.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/api/") and "{tail" not in path and route.method != "HEAD":
            routed.add((route.method, path))
    assert routed and routed == described


async def test_openapi_is_valid() -> None:
    import openapi_spec_validator

    from appliance.openapi import openapi_document

    openapi_spec_validator.validate(openapi_document("http://127.0.0.1:8080"))


# -- persistence -----------------------------------------------------------------------


async def test_rooms_links_and_revocations_survive_a_restart(
    config: Any, aiohttp_client: Any
) -> None:
    from appliance.app import create_app

    app = create_app(config)
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    await client.post("/api/auth/login", json={"password": PASSWORD})
    room = await (await client.post("/api/rooms", json={"name": "Attic"})).json()
    kept = await (await client.post(f"/api/rooms/{room['id']}/generate-guest-link")).json()
    gone = await (await client.post(f"/api/rooms/{room['id']}/generate-guest-link")).json()
    await client.delete(f"/api/rooms/{room['id']}/guest-links/{gone['jti']}")
    await client.close()

    app2 = create_app(config)
    client2 = await aiohttp_client(app2)
    assert (await client2.post("/api/auth/login", json={"password": PASSWORD})).status == 200
    rooms = (await (await client2.get("/api/rooms")).json())["rooms"]
    assert room["id"] in [r["id"] for r in rooms]
    assert (
        await client2.post("/api/auth/guest", json={"guest_token": kept["guest_token"]})
    ).status == 200
    resp = await client2.post("/api/auth/guest", json={"guest_token": gone["guest_token"]})
    assert resp.status == 403

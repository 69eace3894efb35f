"""The household's Settings API (issue 24, item 9) against a real aiohttp server and a
real SQLite file: who may read and change it, strict validation with nothing lost,
kept across a restart, in force at once (quiet hours, the kiosk's name, auto-answer per
guest link), the master password changed safely, and the caller named by the link's
label."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from appliance import config as config_mod
from appliance.app import create_app
from appliance.appkeys import AUTH, CALL_MACHINE, STORE
from appliance.settings import KEY, StationSettings, parse_patch
from appliance.store import Store

from .conftest import PASSWORD, ServiceHarness, make_config
from .helpers import connect
from .test_api import error_of

NEW_PASSWORD = "a longer new secret"
HOURS_NOW = {"start": "00:00", "end": "23:59"}  # quiet now, whatever the time (but 23:59)


@pytest.fixture
def config(tmp_path: Path) -> config_mod.Config:
    # answers at once when auto-answer applies; the file names the station "From file"
    return make_config(
        tmp_path / "state",
        station={"name": "From file"},
        call={"auto_answer_delay_seconds": 0},
    )


async def _role(station: ServiceHarness, role: str) -> Any:
    if role == "anonymous":
        return await station.client()
    if role == "guest":
        return await station.guest("station", label="Grandma")
    if role == "kiosk":
        return await station.kiosk()
    return await station.user()


ENDPOINTS = [
    ("GET", "/api/settings", None),
    ("PATCH", "/api/settings", {"name": "Hijacked"}),
    ("POST", "/api/settings/password", {"current_password": PASSWORD, "new_password": "x" * 12}),
    ("GET", "/api/settings/health", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("role", "status"), [("anonymous", 401), ("guest", 403), ("kiosk", 403)])
async def test_only_the_household_reads_or_changes_settings(
    station: ServiceHarness, method: str, path: str, body: Any, role: str, status: int
) -> None:
    client = await _role(station, role)
    await error_of(await client.request(method, path, json=body), status)
    user = await station.user()  # nothing changed: the name, the password
    assert (await (await user.get("/api/settings")).json())["name"] == "From file"


async def test_settings_change_at_once_and_survive_a_restart(
    station: ServiceHarness, config: config_mod.Config
) -> None:
    user = await station.user()
    got = await (await user.get("/api/settings")).json()
    assert got["name"] == "From file" and got["quiet_hours"] is None
    kiosk = await connect(await station.kiosk())
    welcome = await kiosk.join("station")
    assert welcome["station"]["name"] == "From file"
    assert welcome["call"]["quiet"] is False

    resp = await user.patch(
        "/api/settings", json={"name": "  Dacha  ", "language": "ru", "quiet_hours": HOURS_NOW}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["name"] == "Dacha" and body["language"] == "ru"
    assert body["quiet_hours"] == HOURS_NOW
    # the kiosk is told over its socket: the name and language, and the quiet now on
    assert await kiosk.expect("station") == {"type": "station", "name": "Dacha", "language": "ru"}
    state = await kiosk.expect("call-state")
    assert state["call"]["quiet"] is True
    station_info = await (await (await station.client()).get("/api/station")).json()
    assert (station_info["name"], station_info["language"]) == ("Dacha", "ru")

    # a restart: the database wins over the file, which is unchanged
    app = create_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        client = await station.make_client(server)
        again = await (await client.get("/api/station")).json()
        assert (again["name"], again["language"]) == ("Dacha", "ru")
        assert app[CALL_MACHINE].quiet.on
    finally:
        await server.close()
    assert config.station.name == "From file"

    # back to none: the quiet hours end at once
    resp = await user.patch("/api/settings", json={"quiet_hours": None})
    assert (await resp.json())["quiet_hours"] is None
    assert (await kiosk.expect("call-state"))["call"]["quiet"] is False


BAD = [
    {"colour": "red"},
    {},
    {"name": 42},
    {"name": "x" * 41},
    {"name": "tab\u200bhidden"},
    {"language": "de"},
    {"language": None},
    {"quiet_hours": "22:00-07:00"},
    {"quiet_hours": {"start": "24:00", "end": "07:00"}},
    {"quiet_hours": {"start": "7:00", "end": "08:00"}},
    {"quiet_hours": {"start": "22:00", "end": "22:00"}},
    {"quiet_hours": {"start": "22:00"}},
    {"quiet_hours": {"start": "22:00", "end": "07:00", "extra": 1}},
    {"auto_answer": "all"},
    {"auto_answer": ["no-such-link"]},
    {"name": "Fine", "language": "xx"},  # one bad field: the good one is not kept either
]


@pytest.mark.parametrize("body", BAD, ids=[str(i) for i in range(len(BAD))])
async def test_bad_settings_are_refused_whole_and_nothing_is_lost(
    station: ServiceHarness, body: dict[str, Any]
) -> None:
    user = await station.user()
    before = await (await user.get("/api/settings")).json()
    error = await error_of(await user.patch("/api/settings", json=body), 400)
    assert error["code"] == "validation_error"
    assert await (await user.get("/api/settings")).json() == before
    assert station.app[STORE].get_setting("household_settings") is None


async def test_another_sites_page_cannot_change_settings_or_the_password(
    station: ServiceHarness,
) -> None:
    user = await station.user()
    evil = {"Origin": "https://evil.example"}
    resp = await user.patch("/api/settings", json={"name": "Pwned"}, headers=evil)
    assert (await error_of(resp, 403))["code"] == "origin_rejected"
    resp = await user.post(
        "/api/settings/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=evil,
    )
    assert (await error_of(resp, 403))["code"] == "origin_rejected"
    assert (await (await user.get("/api/settings")).json())["name"] == "From file"
    fresh = await station.client()
    assert (await fresh.post("/api/auth/login", json={"password": PASSWORD})).status == 200


async def test_changing_the_password_needs_the_current_one_and_logs_the_others_out(
    station: ServiceHarness, config: config_mod.Config
) -> None:
    me, other = await station.user(), await station.user()
    other_ws = await connect(other)
    await other_ws.join("station", name="Dad")
    short = {"current_password": PASSWORD, "new_password": "short"}
    assert (await error_of(await me.post("/api/settings/password", json=short), 400))["message"]
    wrong = {"current_password": "not it at all", "new_password": NEW_PASSWORD}
    assert (await error_of(await me.post("/api/settings/password", json=wrong), 403))[
        "code"
    ] == "wrong_password"
    unknown = {**wrong, "current_password": PASSWORD, "keep": True}
    await error_of(await me.post("/api/settings/password", json=unknown), 400)

    ok = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    resp = await me.post("/api/settings/password", json=ok)
    assert resp.status == 200, await resp.text()
    assert (await me.get("/api/settings")).status == 200  # this session stays
    await error_of(await other.get("/api/settings"), 401)  # the other one is logged out
    assert (await other_ws.expect("bye"))["reason"] == "session_ended"
    anon = await station.client()
    assert (await anon.post("/api/auth/login", json={"password": PASSWORD})).status == 401
    assert (await anon.post("/api/auth/login", json={"password": NEW_PASSWORD})).status == 200
    # the hash lives in the database, which only the service's user may read
    db = config.state_path / "station.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert NEW_PASSWORD.encode() not in db.read_bytes()


async def test_wrong_current_passwords_are_rate_limited_like_logins(
    station: ServiceHarness,
) -> None:
    user = await station.user()
    wrong = {"current_password": "not it at all", "new_password": NEW_PASSWORD}
    for _ in range(station.app[AUTH].limiter.attempts):
        await error_of(await user.post("/api/settings/password", json=wrong), 403)
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    error = await error_of(await user.post("/api/settings/password", json=right), 429)
    assert error["code"] == "too_many_attempts"
    anon = await station.client()  # the same address: its logins wait too
    assert (await anon.post("/api/auth/login", json={"password": PASSWORD})).status == 429


async def test_the_kiosk_names_a_caller_by_the_links_label_not_what_was_typed(
    station: ServiceHarness,
) -> None:
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    labelled = await connect(await station.guest("station", label="Grandma"))
    await labelled.send(type="join", version=1, room="station", name="Santa Claus", ring=True)
    call = await _ringing(kiosk)
    assert [c["name"] for c in call["callers"]] == ["Grandma"]
    await kiosk.send(type="call", action="decline")
    unlabelled = await connect(await station.guest("station"))
    await unlabelled.send(type="join", version=1, room="station", name="Masha", ring=True)
    names: list[str] = []
    while "Masha" not in names:
        message = await kiosk.expect("call-state")
        names = [c["name"] for c in message["call"]["callers"]]
    assert names == ["Masha"]


async def _ringing(kiosk: Any) -> dict[str, Any]:
    """The next call-state with someone ringing (its call object)."""
    while True:
        message = await kiosk.expect("call-state")
        if message["call"]["callers"]:
            return dict(message["call"])


async def test_auto_answer_is_per_guest_link_and_off_by_default(station: ServiceHarness) -> None:
    user = await station.user()
    auth = station.auth
    mum = auth.make_guest_link("station", ttl=3600, label="Mum")
    auth.make_guest_link("station", ttl=3600, label="Plumber")
    got = await (await user.get("/api/settings")).json()
    assert got["auto_answer"] == []
    assert {m["label"]: m["auto_answer"] for m in got["members"]} == {
        "Mum": False,
        "Plumber": False,
    }
    resp = await user.patch("/api/settings", json={"auto_answer": [mum.link.jti]})
    assert resp.status == 200, await resp.text()
    members = {m["label"]: m["auto_answer"] for m in (await resp.json())["members"]}
    assert members == {"Mum": True, "Plumber": False}

    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    plumber = await station.guest("station", label="Plumber")  # another link, same label
    ws = await connect(plumber)
    await ws.send(type="join", version=1, room="station", name="x", ring=True)
    call = await _ringing(kiosk)
    assert call["auto_answer_at"] is None
    await kiosk.send(type="call", action="decline")

    client = await station.client()
    assert (await client.post("/api/auth/guest", json={"guest_token": mum.token})).status == 200
    ws = await connect(client)
    await ws.send(type="join", version=1, room="station", name="x", ring=True)
    while (await kiosk.expect("call-state"))["call"]["state"] != "in-call":
        pass


@pytest.mark.parametrize("row", ['{"name": 5}', "not json", '{"language": "xx"}', "[1]"])
def test_a_settings_row_spoiled_by_hand_is_ignored_not_fatal(tmp_path: Path, row: str) -> None:
    config = make_config(tmp_path / "state", station={"name": "From file"})
    store = Store(tmp_path / "station.db")
    store.set_setting(KEY, row)
    settings = StationSettings(config, store)
    assert (settings.name, settings.language) == ("From file", "auto")
    settings.update(parse_patch({"language": "en"}))  # and a change still works
    assert StationSettings(config, store).language == "en"
    store.close()

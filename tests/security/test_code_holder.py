"""What a photographed kiosk code buys (issue 22, item 2): a few sessions, each minutes
long unless it is in a call, and a call log that cannot grow without bound. On the
earlier code one code made unlimited sessions of 4 hours each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance import auth as auth_mod
from appliance import store as store_mod
from appliance.appkeys import CALL_MACHINE, HUB, STORE
from appliance.clock import FakeClock

from ..conftest import ServiceHarness
from ..helpers import connect


@pytest.fixture
def station_clock() -> FakeClock:
    return FakeClock(wall=time.time())


async def live_code(station: ServiceHarness) -> str:
    kiosk = await station.kiosk()
    resp = await kiosk.post("/api/kiosk/guest-link")
    assert resp.status == 201
    return str((await resp.json())["guest_token"])


async def scan(station: ServiceHarness, code: str) -> tuple[object, bool]:
    phone = await station.client()
    resp = await phone.get(f"/j/{code}", allow_redirects=False)
    return phone, resp.headers["Location"] == "/#/room/station" and "vs_session" in resp.cookies


async def test_one_code_opens_a_few_sessions(station: ServiceHarness) -> None:
    code = await live_code(station)
    opened = [(await scan(station, code))[1] for _ in range(auth_mod.KIOSK_CODE_SESSIONS + 3)]
    assert opened == [True] * auth_mod.KIOSK_CODE_SESSIONS + [False] * 3
    # the kiosk's next code works
    assert (await scan(station, await live_code(station)))[1]


async def test_a_code_session_lasts_minutes_unless_in_a_call(
    station: ServiceHarness, station_clock: FakeClock
) -> None:
    code = await live_code(station)
    idle_phone, ok = await scan(station, code)
    caller_phone, ok2 = await scan(station, code)
    assert ok and ok2
    hub = station.app[HUB]
    screen = await connect(await station.kiosk())
    await screen.join("station")
    idle = await connect(idle_phone)  # type: ignore[arg-type]
    await idle.join("station", "Neighbour")
    await idle.send(type="call", action="hangup")  # rang, gave up; stays on the page
    caller = await connect(caller_phone)  # type: ignore[arg-type]
    await caller.join("station", "Grandma")
    while station.app[CALL_MACHINE].state != "ringing":
        await caller.expect("call-state")
    await screen.send(type="call", action="answer")
    while station.app[CALL_MACHINE].state != "in-call":
        await caller.expect("call-state")
    # 20 minutes on: the idle code session is over; the one in the call is not
    station_clock.advance(20 * 60)
    assert await hub.revalidate_all() == 1
    assert (await idle.expect("bye"))["reason"] == "expired"
    assert station.app[CALL_MACHINE].state == "in-call"
    await screen.send(type="call", action="hangup")
    while station.app[CALL_MACHINE].state != "idle":
        await caller.expect("call-state")
    # after the call: a grace of minutes, then it ends too
    station_clock.advance(auth_mod.CALL_GRACE - 60)
    assert await hub.revalidate_all() == 0
    station_clock.advance(120)
    assert await hub.revalidate_all() == 1
    assert (await caller.expect("bye"))["reason"] == "expired"


async def test_the_call_log_keeps_its_newest_rows(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "CALL_LOG_ROWS", 5)
    store = station.app[STORE]
    ids = [store.call_started("station", f"ring {i}") for i in range(12)]
    assert [c.id for c in store.list_calls(limit=100)] == ids[:-6:-1]


def test_the_call_log_keeps_a_year_by_a_synchronized_clock(tmp_path: Path) -> None:
    clock = FakeClock(wall=1_800_000_000.0, synchronized=False)
    store = store_mod.Store(tmp_path / "station.db", clock=clock)
    old = store.call_started("station", "long ago")
    store.call_ended(old, "missed")
    # the clock jumps a year and more ahead, unsynchronized: nothing goes
    clock.jump(store_mod.CALL_LOG_DAYS * 86400 + 60)
    store.call_started("station", "now")
    assert [c.caller for c in store.list_calls()] == ["now", "long ago"]
    # synchronized (network time), the year-old call goes
    clock.set_synchronized(True)
    store.call_started("station", "later")
    assert [c.caller for c in store.list_calls()] == ["later", "now"]
    store.close()


async def test_the_household_disconnects_one_scanned_phone(station: ServiceHarness) -> None:
    """Each phone a code let in is listed under the code with the name it joined with,
    and can be disconnected alone: the code and the other phones stay."""
    code = await live_code(station)
    joined_phone, ok = await scan(station, code)
    other_phone, ok2 = await scan(station, code)
    assert ok and ok2
    screen = await connect(await station.kiosk())
    await screen.join("station")
    phone = await connect(joined_phone)  # type: ignore[arg-type]
    await phone.join("station", "Neighbour")
    user = await station.user()
    listed = (await (await user.get("/api/rooms/station/guest-links")).json())["guest_links"]
    (link,) = [entry for entry in listed if entry["kind"] == "kiosk-code"]
    sessions = link["sessions"]
    assert [(s["name"], s["ended"]) for s in sessions] == [("Neighbour", False), (None, False)]
    assert sessions[0]["state"] in ("waiting", "in-call") and sessions[1]["state"] == "away"
    base = f"/api/rooms/station/guest-links/{link['jti']}/sessions"
    # only the household; only a session of that code
    assert (await joined_phone.delete(f"{base}/{sessions[1]['id']}")).status == 403  # type: ignore[attr-defined]
    for wrong in (
        f"{base}/nosuch",
        f"/api/rooms/station/guest-links/other/sessions/{sessions[0]['id']}",
    ):
        resp = await user.delete(wrong)
        assert resp.status == 404, wrong
        assert (await resp.json())["error"]["code"] == "guest_link_not_found"
    resp = await user.delete(f"{base}/{sessions[0]['id']}")
    assert resp.status == 200, await resp.text()
    assert (await phone.expect("bye"))["reason"] == "revoked"
    assert (await joined_phone.get("/api/auth/me")).status == 401  # type: ignore[attr-defined]
    assert (await other_phone.get("/api/auth/me")).status == 200  # type: ignore[attr-defined]
    listed = (await (await user.get("/api/rooms/station/guest-links")).json())["guest_links"]
    (link,) = [entry for entry in listed if entry["kind"] == "kiosk-code"]
    assert [s["ended"] for s in link["sessions"]] == [True, False]
    assert not link["revoked"] and (await scan(station, code))[1]  # the code still works

"""Do not disturb (issue 24, item 1): quiet hours, ranges over midnight, and the
kiosk's toggle, which always has an end (the end of the quiet hours, else the next
07:00), is kept across a restart of a real ``videostation serve``, and ends at its end
for every screen. The clocks are injected (appliance.clock), nobody waits for 07:00."""

from __future__ import annotations

import doctest
import os
import time as walltime
from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path

import pytest

from appliance import quiet
from appliance.appkeys import CALL_MACHINE, CLOCK
from appliance.clock import FakeClock, ShiftedClock
from appliance.config import from_mapping
from appliance.errors import ConfigError
from appliance.quiet import QuietHours, QuietMode, at, local
from appliance.store import Store

from .conftest import ServiceHarness, start_live, stop_live
from .helpers import Client, connect, skip_or_fail


def test_doctest() -> None:
    assert doctest.testmod(quiet).failed == 0


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("22:00-07:00", time(22, 0), True),
        ("22:00-07:00", time(21, 59), False),
        ("22:00-07:00", time(0, 0), True),
        ("22:00-07:00", time(7, 0), False),
        ("13:00-15:30", time(14, 0), True),
        ("13:00-15:30", time(15, 30), False),
        ("", time(3, 0), False),
    ],
)
def test_ranges(text: str, now: time, expected: bool) -> None:
    assert QuietHours.parse(text).contains(now) is expected


@pytest.mark.parametrize("text", ["22-07", "25:00-07:00", "22:00-22:00", "10:60-11:00", "x"])
def test_bad_ranges_name_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"call\.quiet_hours"):
        from_mapping({"call": {"quiet_hours": text}})


@pytest.mark.parametrize(
    ("hours", "pressed", "ends"),
    [
        # no quiet hours: the next 07:00, never later
        ("", (14, 0), "2026-12-08 07:00"),
        ("", (2, 30), "2026-12-07 07:00"),
        ("", (23, 59), "2026-12-08 07:00"),
        # quiet hours that begin before then: their end
        ("22:00-07:00", (15, 0), "2026-12-08 07:00"),
        ("22:00-09:00", (15, 0), "2026-12-08 09:00"),
        ("13:00-15:30", (10, 0), "2026-12-07 15:30"),
        # quiet hours that begin after the next 07:00 do not stretch it to tomorrow 15:30
        ("13:00-15:30", (16, 0), "2026-12-08 07:00"),
    ],
)
def test_a_manual_do_not_disturb_always_has_an_end(
    hours: str, pressed: tuple[int, int], ends: str
) -> None:
    clock = FakeClock(wall=local(2026, 12, 7, *pressed))
    mode = QuietMode(QuietHours.parse(hours), clock=clock)
    mode.set(True)
    assert mode.on is True
    assert at(mode.until) == ends
    until = mode.until
    assert until is not None
    clock.advance(until - clock.now() - 1)
    assert mode.on is True
    clock.advance(1)  # its end: calls ring again (unless the hours say otherwise)
    assert mode.on is QuietHours.parse(hours).contains(datetime.fromtimestamp(until).time())
    assert mode.on is False


def test_switched_off_in_the_quiet_hours_calls_ring_until_they_end() -> None:
    clock = FakeClock(wall=local(2026, 11, 28, 23, 0))
    mode = QuietMode(QuietHours.parse("22:00-07:00"), clock=clock)
    assert (mode.on, at(mode.until)) == (True, "2026-11-29 07:00")
    mode.set(False)  # the household wants calls tonight after all
    assert (mode.on, mode.until) == (False, None)
    clock.advance(7 * 3600)  # 06:00
    assert mode.on is False
    clock.advance(16 * 3600 + 30 * 60)  # 22:30 the next evening: the hours rule again
    assert (mode.on, at(mode.until)) == (True, "2026-11-30 07:00")
    mode.set(True)  # on while already on: still until the hours end
    assert at(mode.until) == "2026-11-30 07:00"


def test_the_choice_is_kept_in_the_database_until_its_end(tmp_path: Path) -> None:
    clock = FakeClock(wall=local(2026, 12, 7, 20, 15))
    store = Store(tmp_path / "station.db", clock=clock)
    QuietMode(QuietHours(), clock=clock, settings=store).set(True)
    store.close()
    store = Store(tmp_path / "station.db", clock=clock)  # a restart
    again = QuietMode(QuietHours(), clock=clock, settings=store)
    assert (again.on, at(again.until)) == (True, "2026-12-08 07:00")
    clock.advance(11 * 3600)  # 07:15
    assert again.on is False
    assert store.get_setting(quiet.SETTING) is None  # ran out: forgotten
    assert QuietMode(QuietHours(), clock=clock, settings=store).on is False


THREE_DAYS_AHEAD = f'{{"on": true, "until": {local(2026, 12, 10, 7, 0)}}}'


@pytest.mark.parametrize(
    "kept", ['{"on": true, "until": 1e12}', THREE_DAYS_AHEAD, "not json", '{"on": true}']
)
def test_a_kept_choice_that_cannot_be_right_is_dropped(tmp_path: Path, kept: str) -> None:
    """One a clock far off wrote (or anything unreadable) does not silence the station."""
    clock = FakeClock(wall=local(2026, 12, 7, 20, 15))
    store = Store(tmp_path / "station.db", clock=clock)
    store.set_setting(quiet.SETTING, kept)
    assert QuietMode(QuietHours(), clock=clock, settings=store).on is False


# -- the service -----------------------------------------------------------------------


@pytest.fixture
def station_clock() -> ShiftedClock:
    return ShiftedClock(synchronized=True)


@pytest.fixture(autouse=True)
def _look_often(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The service looks whether do not disturb turned every 0.05 s, not every 5 s."""
    monkeypatch.setattr(quiet, "CHECK_SECONDS", 0.05)
    yield


async def _quiet_state(ws: object, on: bool, timeout: float = 5) -> dict[str, object]:
    """The next call-state whose ``quiet`` is ``on``."""
    deadline = walltime.monotonic() + timeout
    while True:
        left = max(0.01, deadline - walltime.monotonic())
        message = await ws.expect("call-state", timeout=left)  # type: ignore[attr-defined]
        if message["call"]["quiet"] is on:
            return dict(message["call"])


async def test_the_kiosk_toggle_ends_at_its_end_for_every_screen_and_the_caller_is_told(
    station: ServiceHarness,
) -> None:
    clock = station.app[CLOCK]
    assert isinstance(clock, ShiftedClock)
    kiosk = await station.kiosk()
    screen = await connect(kiosk)
    welcome = await screen.join("station", "Station")
    assert welcome["call"]["quiet"] is False and welcome["call"]["quiet_until"] is None
    resp = await kiosk.post("/api/kiosk/quiet", json={"on": True})
    body = await resp.json()
    until = body["quiet_until"]
    assert body["quiet"] is True and until > clock.now()
    assert datetime.fromtimestamp(until).time() == time(7, 0)
    call = await _quiet_state(screen, True)
    assert call["quiet_until"] == until

    # A caller meanwhile: nothing rings; the page learns until when.
    guest = await connect(await station.guest("station", label="Grandson"))
    await guest.join("station", "Grandson")
    told = await guest.expect("call-state")
    assert told["call"]["ended"] == "quiet" and told["call"]["quiet_until"] == until

    clock.jump(until - clock.now() + 1)  # 07:00:01 (the wall clock only)
    call = await _quiet_state(screen, False)  # told without a touch
    assert call["quiet_until"] is None
    assert station.app[CALL_MACHINE].quiet.on is False


async def test_the_watch_does_not_wake_the_screen(station: ServiceHarness) -> None:
    """A turn by the clock is news for the pages only: no call changed."""
    clock, mode = station.app[CLOCK], station.app[CALL_MACHINE].quiet
    assert isinstance(clock, ShiftedClock)
    seen: list[object] = []
    station.app[CALL_MACHINE].observers.append(seen.append)
    screen = await connect(await station.kiosk())
    await screen.join("station", "Station")
    mode.set(True)
    await _quiet_state(screen, True)
    assert mode.until is not None
    clock.jump(mode.until - clock.now() + 1)
    await _quiet_state(screen, False)
    assert seen == []


def _libfaketime() -> str | None:
    found = sorted(p for p in Path("/usr/lib").glob("*/faketime/libfaketime.so.1") if p.is_file())
    return str(found[0]) if found else None


async def test_a_manual_do_not_disturb_survives_a_restart_of_the_service_until_its_end(
    tmp_path: Path,
) -> None:
    """A real ``videostation serve``: switched on, restarted (SIGTERM, as systemd does),
    still on until the same end; that restart run under libfaketime, whose clock then
    moves to a second after that end: off, and every screen is told."""
    lib = _libfaketime()
    if lib is None:
        skip_or_fail("needs libfaketime (apt install faketime)")
    assert lib is not None
    live = start_live(tmp_path)
    try:
        kiosk = await Client.kiosk(live)
        resp = await kiosk.http.post("/api/kiosk/quiet", json={"on": True})
        body = await resp.json()
        assert body["quiet"] is True
        until = body.get("quiet_until")
        await kiosk.close()
    finally:
        assert stop_live(live) == 0

    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        **os.environ,
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    live = start_live(tmp_path, env=env)
    kiosk = await Client.kiosk(live)
    try:
        screen = await kiosk.join("Station")
        call = screen.seen[-1]["call"]
        assert call["quiet"] is True, "the restart dropped do not disturb"
        assert call["quiet_until"] == until, call
        assert until is not None and datetime.fromtimestamp(until).time() == time(7, 0)
        offset.write_text(f"+{int(until - walltime.time()) + 2}s\n")
        # The service looks every 5 s (quiet.CHECK_SECONDS); generous for a busy machine.
        call = await _quiet_state(screen, False, timeout=20)
        assert call["quiet_until"] is None
    finally:
        await kiosk.close()
        stop_live(live)

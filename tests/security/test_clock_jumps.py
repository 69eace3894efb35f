"""A Raspberry Pi has no clock battery (issue 22, item 1): its wall clock jumps by days
when network time arrives, or back when it had been ahead. Calls, credentials, the call
log and the resume record run on the monotonic clock; a jump changes nothing a person
notices, and a credential made while the clock was wrong lives no longer than its own
lifetime. These tests move the service's clock (``appliance.clock``); the one in
``tests/reliability/test_faketime.py`` moves a real process's with libfaketime."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import auth as auth_mod
from appliance.appkeys import AUTH, CALL_MACHINE, CLOCK, CONFIG, HUB, STORE
from appliance.auth import Auth, Session
from appliance.clock import FakeClock, ShiftedClock
from appliance.errors import InvalidToken, NotAuthenticated, TokenExpired
from appliance.store import Store

from ..conftest import ServiceHarness
from ..helpers import answered_call, connect

DAYS = 86400


@pytest.fixture
def station_clock() -> ShiftedClock:
    return ShiftedClock(synchronized=True)


def _clock(station: ServiceHarness) -> ShiftedClock:
    clock = station.app[CLOCK]
    assert isinstance(clock, ShiftedClock)
    return clock


@pytest.mark.parametrize("first", [+2 * DAYS, -2 * DAYS])
async def test_a_call_survives_jumps_of_days_and_logs_its_true_length(
    station: ServiceHarness, first: int
) -> None:
    clock = _clock(station)
    started = clock.now()
    kiosk, guest, caller = await answered_call(station)
    try:
        for jump in (first, -2 * first):  # there, and as far the other way
            clock.jump(jump)
            # what the periodic check of every socket does (every REVALIDATE_SECONDS)
            assert await station.app[HUB].revalidate_all() == 0
            assert station.app[CALL_MACHINE].state == "in-call"
            frames = await caller.frames("video", 2)
            assert frames, "the station's video stopped after the jump"
        await kiosk.send(type="call", action="hangup")
        while (await guest.expect("call-state"))["call"]["state"] != "idle":
            pass
    finally:
        await caller.close()
    (row,) = station.app[STORE].list_calls()
    assert row.outcome == "answered"
    assert row.answered_at is not None and row.ended_at is not None
    # the log's times come from the call's start plus the monotonic time since
    assert abs(row.started_at - started) < 60, row
    assert 0 <= row.ended_at - row.started_at < 60, row
    health = await (await station.user()).get("/api/health")
    clock_status = (await health.json())["clock"]
    assert clock_status["jumps"] == 2
    assert clock_status["last_jump_seconds"] == pytest.approx(-2 * first, abs=1)
    assert clock_status["synchronized"] is True


@pytest.mark.parametrize("jump", [-2 * DAYS, +2 * DAYS])
async def test_every_credential_works_after_a_jump(station: ServiceHarness, jump: int) -> None:
    clock = _clock(station)
    user = await station.user()
    kiosk = await station.kiosk()
    guest = await station.guest("station", label="Grandma", ttl=3600)
    link = station.app[AUTH].make_guest_link("station", ttl=3600, label="Grandpa")
    code = (await (await kiosk.post("/api/kiosk/guest-link")).json())["guest_token"]
    clock.jump(jump)
    for client, role in ((user, "user"), (kiosk, "kiosk"), (guest, "guest")):
        resp = await client.get("/api/auth/me")
        assert resp.status == 200, (role, await resp.text())
        assert (await resp.json())["role"] == role
    phone = await station.client()
    resp = await phone.post("/api/auth/guest", json={"guest_token": link.token})
    assert resp.status == 200, await resp.text()
    scan = await (await station.client()).get(f"/j/{code}", allow_redirects=False)
    assert scan.headers["Location"] == "/#/room/station"
    # and a fresh login, link and code work on the jumped clock
    assert (await (await station.user()).get("/api/auth/me")).status == 200
    ws = await connect(await station.guest("station", label="After"))
    assert (await ws.join("station", "After"))["role"] == "guest"


def _auth(tmp_path: Path, clock: FakeClock) -> Auth:
    store = Store(tmp_path / "station.db", clock=clock)
    store.ensure_station_room("station", "Station")
    return Auth(store, tmp_path, station_room="station", clock=clock)


def test_credentials_made_while_the_clock_was_ahead_live_only_their_lifetime(
    tmp_path: Path,
) -> None:
    clock = FakeClock(wall=1_800_000_000.0)
    auth = _auth(tmp_path, clock)
    clock.jump(+2 * DAYS)  # the Pi booted with a clock two days ahead
    link = auth.make_guest_link("station", ttl=600)
    cookie = auth.issue_session(Session("user", None, "user"), ttl=600)
    code, _ = auth.make_kiosk_code("station")
    clock.jump(-2 * DAYS)  # network time puts it right
    # nobody is locked out ("not yet valid")...
    assert auth.redeem_guest_token(link.token).room == "station"
    assert auth.read_session(cookie).role == "user"
    assert auth.redeem_kiosk_code(code, client="198.51.100.7").room == "station"
    # ...and nothing lives two days longer than it was made for
    clock.advance(600 + auth_mod.LEEWAY_SECONDS + 1)
    with pytest.raises(TokenExpired):
        auth.redeem_guest_token(link.token)
    with pytest.raises(TokenExpired):
        auth.read_session(cookie)
    with pytest.raises(InvalidToken):
        auth.redeem_kiosk_code(code, client="198.51.100.7")


def test_a_credential_runs_down_on_the_monotonic_clock(tmp_path: Path) -> None:
    clock = FakeClock(wall=1_800_000_000.0)
    auth = _auth(tmp_path, clock)
    cookie = auth.issue_session(Session("user", None, "user"), ttl=3600)
    assert auth.read_session(cookie).role == "user"
    clock.jump(+30 * DAYS)  # far past its expiry by the wall clock: still an hour's cookie
    assert auth.read_session(cookie).role == "user"
    clock.advance(3600 + auth_mod.LEEWAY_SECONDS + 1)
    with pytest.raises(TokenExpired):
        auth.read_session(cookie)


def test_a_logout_survives_a_jump_ahead_and_back(tmp_path: Path) -> None:
    clock = FakeClock(wall=1_800_000_000.0, synchronized=False)
    auth = _auth(tmp_path, clock)
    cookie = auth.issue_session(Session("user", None, "user"), ttl=3600)
    auth.end_session(auth.read_session(cookie))
    clock.jump(+30 * DAYS)
    # another logout on the clock that ran ahead: its prune must not drop the first
    auth.end_session(auth.read_session(auth.issue_session(Session("user", None, "user"), ttl=60)))
    clock.jump(-30 * DAYS)
    fresh = _auth(tmp_path, FakeClock(wall=1_800_000_000.0))  # and after a restart
    for judge in (auth, fresh):
        with pytest.raises(NotAuthenticated):
            judge.read_session(cookie)


@pytest.mark.parametrize("offset", [-2 * DAYS, +2 * DAYS])
def test_a_link_made_before_the_clock_was_set_keeps_its_true_life_across_a_restart(
    tmp_path: Path, offset: int
) -> None:
    """A link made while the clock was days off (not synchronised) gets true wall times
    once it is: after a restart it neither lost the days (made behind) nor gained the
    time that had passed (made ahead)."""
    true_start = 1_800_000_000.0
    clock = FakeClock(wall=true_start + offset, synchronized=False)
    auth = _auth(tmp_path, clock)
    link = auth.make_guest_link("station", ttl=DAYS)
    assert auth.settle() == 0  # not synchronised yet: nothing to go by
    clock.advance(3600)
    clock.jump(-offset)  # network time
    clock.set_synchronized(True)
    clock.advance(3600)
    assert auth.settle() == 1
    assert auth.settle() == 0
    # restart on the true clock: 22 h left, as on the monotonic clock before it
    later = FakeClock(wall=clock.now())
    fresh = _auth(tmp_path, later)
    later.advance(DAYS - 2 * 3600 - 60)
    assert fresh.redeem_guest_token(link.token).room == "station"
    later.advance(60 + auth_mod.LEEWAY_SECONDS + 1)
    with pytest.raises(TokenExpired):
        fresh.redeem_guest_token(link.token)


@pytest.mark.parametrize("offset", [-2 * DAYS, +2 * DAYS])
def test_a_cookie_issued_before_the_clock_was_set_is_issued_again_with_true_times(
    tmp_path: Path, offset: int
) -> None:
    true_start = 1_800_000_000.0
    clock = FakeClock(wall=true_start + offset, synchronized=False)
    auth = _auth(tmp_path, clock)
    cookie = auth.issue_session(Session("user", None, "user"), ttl=DAYS)
    session = auth.read_session(cookie)
    assert session.provisional and auth.settle_session(session) is None
    clock.advance(3600)
    clock.jump(-offset)
    clock.set_synchronized(True)
    settled = auth.settle_session(auth.read_session(cookie))
    assert settled is not None
    token, max_age = settled
    assert max_age == pytest.approx(DAYS - 3600, abs=2)
    again = auth.read_session(token)
    assert again.sid == session.sid and not again.provisional
    assert again.expires_at == pytest.approx(true_start + DAYS, abs=2)
    # a restart on the true clock: the settled cookie has its 23 h
    later = FakeClock(wall=clock.now())
    fresh = _auth(tmp_path, later)
    later.advance(DAYS - 3600 - 60)
    assert fresh.read_session(token).role == "user"
    later.advance(60 + auth_mod.LEEWAY_SECONDS + 1)
    with pytest.raises(TokenExpired):
        fresh.read_session(token)
    # a logout ends both cookies (one session), also after a restart; there the old
    # one is refused for its times already if it was made behind
    auth.end_session(again)
    fresh = _auth(tmp_path, FakeClock(wall=clock.now()))
    for judge, copy in ((auth, cookie), (auth, token), (fresh, token)):
        with pytest.raises(NotAuthenticated):
            judge.read_session(copy)
    with pytest.raises(NotAuthenticated if offset > 0 else TokenExpired):
        fresh.read_session(cookie)


async def test_the_browser_gets_the_settled_cookie_with_its_next_response(
    station: ServiceHarness,
) -> None:
    clock = _clock(station)
    clock.set_synchronized(False)
    clock.jump(-2 * DAYS)  # the Pi booted with the time it saved two days ago
    user = await station.user()
    first = user.session.cookie_jar.filter_cookies(user.make_url("/"))["vs_session"].value
    assert station.app[AUTH].read_session(first).provisional
    resp = await user.get("/api/auth/me")
    assert resp.status == 200 and "vs_session" not in resp.cookies  # nothing to go by yet
    clock.jump(+2 * DAYS)
    clock.set_synchronized(True)
    resp = await user.get("/api/auth/me")
    assert resp.status == 200 and "vs_session" in resp.cookies
    settled = station.app[AUTH].read_session(resp.cookies["vs_session"].value)
    assert not settled.provisional
    assert settled.expires_at == pytest.approx(
        clock.now() + station.app[CONFIG].auth.session_ttl_seconds, abs=10
    )
    resp = await user.get("/api/auth/me")  # once
    assert resp.status == 200 and "vs_session" not in resp.cookies
    # a logout clears it rather than sending it again
    resp = await user.post("/api/auth/logout")
    assert resp.cookies["vs_session"].value == ""


def test_the_resume_record_is_judged_on_the_monotonic_clock(tmp_path: Path) -> None:
    clock = FakeClock(wall=1_800_000_000.0)
    store = Store(tmp_path / "station.db", clock=clock)
    call_id = store.call_started("station", "Grandma")
    store.call_resumable(call_id, "station", "sid-1")
    clock.jump(+2 * DAYS)  # NTP arrived while the service restarted
    found = store.take_resumable(max_age=30)
    assert found is not None and found.sids == frozenset({"sid-1"})
    store.call_resumable(call_id, "station", "sid-1")
    clock.jump(-4 * DAYS)
    clock.advance(31)  # but a record the call stopped refreshing goes stale
    assert store.take_resumable(max_age=30) is None

"""The admission rules, each in its own home: ring cooldowns and budgets
(`appliance.admission`), who counts against a room's size (`appliance.rooms`) and who
comes back after a crash (`appliance.resume`). In-process, on a FakeClock; the attacks
they answer run against a real service in tests/security/test_ring_limits.py and
tests/reliability/test_resume.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from appliance import admission
from appliance.admission import RingGate
from appliance.clock import FakeClock
from appliance.errors import RingWait, RoomFull
from appliance.resume import Resume
from appliance.rooms import Peer, Rooms
from appliance.signaling import ring_address
from appliance.store import Store


async def _nowhere(message: Any) -> None:
    pass


def peer(
    sid: str, *, role: str = "guest", address: str = "192.0.2.1", resume: bool = False
) -> Peer:
    return Peer(
        "p-" + sid, "station", sid, role, "remote", _nowhere,  # type: ignore[arg-type]
        sid=sid, address=address, resume=resume,
    )  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=1_800_000_000.0)


# -- ring cooldowns and budgets ---------------------------------------------------------


def test_an_unanswered_ring_starts_a_cooldown_that_doubles(clock: FakeClock) -> None:
    gate = RingGate(clock=clock, cooldown=10, per_address=0)
    pest = peer("s1")
    gate.check(pest)
    gate.unanswered(pest, call_id=7)
    with pytest.raises(RingWait) as refused:
        gate.check(pest)
    assert refused.value.retry_after == 10 and refused.value.call_id == 7
    clock.advance(10)
    gate.check(pest)
    gate.unanswered(pest, call_id=8)
    clock.advance(19)
    with pytest.raises(RingWait) as refused:
        gate.check(pest)
    assert refused.value.call_id == 8  # counted on the newest row
    clock.advance(1)
    gate.check(pest)
    # capped at RING_COOLDOWN_MAX however many in a row
    for _ in range(40):
        gate.unanswered(pest, None)
    clock.advance(admission.RING_COOLDOWN_MAX)
    gate.check(pest)


def test_an_answer_resets_the_cooldown_and_others_do_not_wait(clock: FakeClock) -> None:
    gate = RingGate(clock=clock, cooldown=10, per_address=0)
    a, b = peer("a"), peer("b")
    gate.unanswered(a, 1)
    gate.check(b)  # another session does not wait for a's
    gate.answered(a)
    gate.check(a)


def test_the_household_never_waits(clock: FakeClock) -> None:
    gate = RingGate(clock=clock, cooldown=10, per_address=1)
    mum = peer("mum", role="user")
    for _ in range(5):
        gate.unanswered(mum, 1)
        gate.check(mum)


def test_an_address_has_a_budget_per_minute(clock: FakeClock) -> None:
    gate = RingGate(clock=clock, cooldown=0, per_address=3)
    for i in range(3):
        gate.check(peer(f"s{i}"))
    with pytest.raises(RingWait) as refused:
        gate.check(peer("s9"))
    assert refused.value.retry_after == admission.RING_WINDOW
    gate.check(peer("elsewhere", address="198.51.100.7"))  # another address does not wait
    clock.advance(admission.RING_WINDOW)
    gate.check(peer("s9"))


def test_a_whole_ipv6_64_is_one_address() -> None:
    assert ring_address("2001:db8:1:2::1") == ring_address("2001:db8:1:2:ffff::9")
    assert ring_address("2001:db8:1:3::1") != ring_address("2001:db8:1:2::1")
    assert ring_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert ring_address(None) == "?"


def test_the_gate_remembers_a_bounded_number_of_sessions(clock: FakeClock) -> None:
    gate = RingGate(clock=clock, cooldown=10, per_address=0)
    for i in range(admission.TRACKED + 50):
        gate.unanswered(peer(f"s{i}"), None)
    assert len(gate._sessions) == admission.TRACKED
    with pytest.raises(RingWait):
        gate.check(peer(f"s{admission.TRACKED + 49}"))  # the newest are kept


# -- the room's size --------------------------------------------------------------------


def test_guests_not_in_the_call_never_keep_the_household_out() -> None:
    rooms = Rooms(max_remotes=2)
    in_call, knocker = peer("g1"), peer("g2")
    rooms.add(in_call)
    rooms.add(knocker)
    with pytest.raises(RoomFull):
        rooms.add(peer("g3"))  # guests: every remote counts
    rooms.add(peer("mum", role="user"), in_call={in_call.id})  # Grandma and Mum: 2
    with pytest.raises(RoomFull):
        rooms.add(peer("dad", role="user"), in_call={in_call.id})


# -- who resumes ----------------------------------------------------------------------


@pytest.fixture
def resume(tmp_path: Path, clock: FakeClock) -> Resume:
    store = Store(tmp_path / "station.db", clock=clock)
    call_id = store.call_started("station", "Grandma")
    store.call_resumable(call_id, "station", "grandma")
    found = Resume(
        room="station",
        store=store,
        clock=clock,
        log=logging.getLogger("test"),
        record=lambda write, *args: write(*args),
        failed=lambda exc: None,
    )
    assert found.restore(grace=20)
    return found


def test_only_the_answered_call_s_people_resume(resume: Resume) -> None:
    call_id = resume.call_id
    grandma = peer("grandma", resume=True)
    assert resume.verdict(grandma, state="idle", call_id=None, indicator=True) == "resume"
    # without a screen or a live LED, she waits
    assert resume.verdict(grandma, state="idle", call_id=None, indicator=False) == "wait"
    # anyone else waits while the window is open, even claiming to resume
    assert resume.verdict(peer("x", resume=True), state="idle", call_id=None, indicator=True) == (
        "wait"
    )
    # a page that does not ask to resume waits too
    assert resume.verdict(peer("grandma"), state="idle", call_id=None, indicator=True) == "wait"
    # once resumed: the others are handled as in any call
    assert resume.claim(grandma) == call_id
    assert resume.verdict(peer("x"), state="in-call", call_id=call_id, indicator=True) == "no"
    # she resumes once
    assert resume.verdict(grandma, state="in-call", call_id=call_id, indicator=True) == "no"


def test_only_the_resumed_call_s_end_closes_the_window(resume: Resume) -> None:
    resume.call_ended(None)  # someone else's ring ended
    resume.call_ended(12345)
    assert resume.is_open()
    resume.call_ended(resume.call_id)
    assert not resume.is_open()


def test_the_window_closes_on_the_monotonic_clock(resume: Resume, clock: FakeClock) -> None:
    clock.jump(-86400)  # the wall clock does not matter
    assert resume.is_open() and 19 <= resume.seconds_left() <= 20
    clock.advance(20)
    assert not resume.is_open()
    assert resume.verdict(peer("grandma", resume=True), state="idle", call_id=None,
                          indicator=True) == "no"  # fmt: skip


def test_quiet_hours_rings_are_counted_on_one_row(clock: FakeClock) -> None:
    gate = RingGate(clock=clock, cooldown=10, per_address=0)
    pest, other = peer("s1"), peer("s2")
    assert gate.quiet_row(pest) is None
    gate.quiet_rang(pest, call_id=3)
    gate.check(pest)  # no cooldown: nothing rang
    assert gate.quiet_row(pest) == 3 and gate.quiet_row(other) is None
    assert gate.quiet_row(peer("mum", role="user")) is None  # the household: its own rows
    clock.advance(admission.RING_COOLDOWN_MAX)
    assert gate.quiet_row(pest) is None

"""The station's ICE keeps the best path it found (``appliance/media/ice.py``)."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from dataclasses import dataclass

import pytest
from aioice import Candidate, Connection
from aioice.candidate import candidate_priority
from aioice.ice import CandidatePair

import appliance.media.ice
from appliance.media.ice import keep_the_best_nominated_pair, wait_for_peer_reflexive

from .helpers import unanswered_mdns


@dataclass
class Endpoint:
    """What a pair needs of its STUN protocol: the local candidate it sends from."""

    local_candidate: Candidate


def candidate(kind: str, host: str, port: int) -> Candidate:
    return Candidate(
        foundation=kind, component=1, transport="udp",
        priority=candidate_priority(1, kind), host=host, port=port, type=kind,
    )  # fmt: skip


def succeeded(local: Candidate, remote: Candidate) -> CandidatePair:
    """A pair whose check carried USE-CANDIDATE and succeeded (aggressive nomination)."""
    pair = CandidatePair(Endpoint(local), remote)  # type: ignore[arg-type]
    pair.state = CandidatePair.State.SUCCEEDED
    pair.nominated = True
    return pair


def test_a_relayed_pair_that_succeeds_later_does_not_take_over_the_direct_one() -> None:
    keep_the_best_nominated_pair()
    keep_the_best_nominated_pair()  # idempotent: one wrapper, not two
    station = Connection(ice_controlling=True)
    direct = succeeded(candidate("host", "10.61.1.2", 5000), candidate("srflx", "198.18.1.2", 6000))
    relayed = succeeded(
        candidate("relay", "198.18.255.1", 49152), candidate("srflx", "198.18.1.2", 6000)
    )
    station.check_complete(direct)
    assert station._nominated[1] is direct
    station.check_complete(relayed)  # its TURN round trip was longer: it answered later
    assert station._nominated[1] is direct, "media stays on the direct path"
    assert relayed.state == CandidatePair.State.SUCCEEDED and not relayed.nominated


def test_a_better_pair_that_succeeds_later_takes_over() -> None:
    keep_the_best_nominated_pair()
    station = Connection(ice_controlling=True)
    relayed = succeeded(
        candidate("relay", "198.18.255.1", 49152), candidate("srflx", "198.18.1.2", 6000)
    )
    direct = succeeded(candidate("host", "10.61.1.2", 5000), candidate("srflx", "198.18.1.2", 6000))
    station.check_complete(relayed)  # the relay answered first (hole punching takes a try)
    station.check_complete(direct)
    assert station._nominated[1] is direct


def relay_answered_first(
    direct_state: CandidatePair.State,
) -> tuple[Connection, CandidatePair, CandidatePair]:
    """The station's check list: a direct pair not checked yet (``direct_state``) and a
    relayed pair whose check has just succeeded."""
    keep_the_best_nominated_pair()
    station = Connection(ice_controlling=True)
    direct = CandidatePair(
        Endpoint(candidate("host", "10.61.1.2", 5000)),  # type: ignore[arg-type]
        candidate("srflx", "198.18.1.2", 6000),
    )
    direct.state = direct_state
    relayed = succeeded(
        candidate("relay", "198.18.255.1", 49152), candidate("srflx", "198.18.1.2", 6000)
    )
    station._check_list = [direct, relayed]
    return station, direct, relayed


async def test_the_better_pairs_are_still_checked_after_a_relay_answered_first() -> None:
    """The relay's check answered before the direct pair's was even sent (a busy
    machine): media starts over the relay, and the direct pair still gets its check
    and takes over when it succeeds -- aioice alone dropped it and stayed relayed."""
    station, direct, relayed = relay_answered_first(CandidatePair.State.WAITING)
    checked: list[CandidatePair] = []
    answer = asyncio.Event()

    async def check_start(pair: CandidatePair) -> None:  # the STUN transaction, answered
        checked.append(pair)
        await answer.wait()
        pair.state = CandidatePair.State.SUCCEEDED
        pair.nominated = True
        station.check_complete(pair)

    station.check_start = check_start  # type: ignore[method-assign]
    station.check_complete(relayed)
    assert station._nominated[1] is relayed  # media flows at once, through the relay
    await asyncio.sleep(0)
    assert checked == [direct], "the direct pair was dropped unchecked"
    answer.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert station._nominated[1] is direct, "the direct path did not take over"
    await station.close()


async def test_closing_stops_the_checks_left_running() -> None:
    station, _, relayed = relay_answered_first(CandidatePair.State.FROZEN)
    started = asyncio.Event()

    async def check_start(pair: CandidatePair) -> None:  # a STUN transaction never answered
        started.set()
        await asyncio.Event().wait()

    station.check_start = check_start  # type: ignore[method-assign]
    station.check_complete(relayed)
    await started.wait()
    (task,) = station._videostation_better_checks  # type: ignore[attr-defined]
    await station.close()
    await asyncio.sleep(0)
    assert task.cancelled()


async def hidden_peer(
    monkeypatch: pytest.MonkeyPatch, *, wait: bool, checks: bool = True
) -> tuple[Connection, Connection, asyncio.Task[None] | None]:
    """The station's ICE agent and a browser's that hides its addresses behind mDNS
    names nobody answers for (Firefox; issue 27): the browser has the station's
    candidates and checks them at once; the station gets only the names, then
    end-of-candidates once they failed to resolve."""
    if wait:
        wait_for_peer_reflexive()

    unanswered_mdns(monkeypatch)
    station = Connection(ice_controlling=True, components=1, use_ipv6=False)
    browser = Connection(ice_controlling=False, components=1, use_ipv6=False)
    await asyncio.gather(station.gather_candidates(), browser.gather_candidates())
    station.remote_username = browser.local_username
    station.remote_password = browser.local_password
    browser.remote_username = station.local_username
    browser.remote_password = station.local_password
    for c in station.local_candidates:
        await browser.add_remote_candidate(c)
    await browser.add_remote_candidate(None)
    checking = asyncio.create_task(browser.connect()) if checks else None
    names = []
    for c in browser.local_candidates:
        name = copy.copy(c)
        name.host = f"{uuid.uuid4()}.local"
        names.append(name)
    await asyncio.gather(*(station.add_remote_candidate(c) for c in names))
    await station.add_remote_candidate(None)
    return station, browser, checking


async def test_a_peer_that_sends_only_mdns_names_is_reached_through_its_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    station, browser, checking = await hidden_peer(monkeypatch, wait=True)
    try:
        await asyncio.wait_for(station.connect(), 10)
        assert checking is not None
        await asyncio.wait_for(checking, 10)
        pair = station._nominated[1]
        assert pair.remote_candidate.type == "prflx", pair  # learnt from the browser's checks
        await station.send(b"the station's media")
        assert await asyncio.wait_for(browser.recv(), 5) == b"the station's media"
    finally:
        await asyncio.gather(station.close(), browser.close())


async def test_with_no_peer_checks_the_wait_ends_in_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing comes from the hidden peer (its checks blocked): ICE still fails, after
    the wait, not never."""
    monkeypatch.setattr(appliance.media.ice, "PRFLX_WAIT", 1.0)
    station, browser, _ = await hidden_peer(monkeypatch, wait=True, checks=False)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(station.connect(), 10)
        assert time.monotonic() - started < 5
    finally:
        await asyncio.gather(station.close(), browser.close())

"""The station's ICE keeps the best path it found (``appliance/media/ice.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from aioice import Candidate, Connection
from aioice.candidate import candidate_priority
from aioice.ice import CandidatePair

from appliance.media.ice import keep_the_best_nominated_pair


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

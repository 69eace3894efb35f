"""A weak phone and a strong one in the same call, both real Chromium on the test bed.

Two household members' phones sit behind the carrier's symmetric NAT (``netph1``,
``netph2``; media through coturn), the station at home auto-answers them. One phone's
downlink is then capped at 400 kbit/s with 3 % of its packets dropped. What a person
holding it sees is read from Chromium's own ``getStats`` for the station's video:
``framesDecoded``, ``freezeCount``/``totalFreezesDuration`` (Chromium's freeze
definition) and the frame size. The other phone must keep 720p meanwhile; the cap
lifted, the weak phone must be back on 720p within 20 s.

The same run measures the reference the test judges by on the same impaired link: the
station with ``camera.adaptive = false`` (one encode at the high rung for everybody, what
the shared encoder did before it had rungs). aiortc's own way (an encoder per viewer) is
compared in ``tests/bench/test_bench_weak_link.py``: a printed comparison, not a verdict,
it cost a third of this test's 7-10 minutes in every ``make test``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from .testbed import Testbed
from .weak_link import phones as launch_phones
from .weak_link import weak_and_strong

# two calls of ~1.5 min each (one rung, the rungs): 3-4 min, more under load
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture
def phones(bed: Testbed, tmp_path: Path) -> Iterator[list[Browser]]:
    """One Chromium per phone namespace."""
    with launch_phones(tmp_path) as launched:
        yield launched


def test_a_weak_chromium_phone_keeps_moving_and_the_strong_one_keeps_720p(
    bed: Testbed, tmp_path: Path, phones: list[Browser]
) -> None:
    """What the station decides, asserted: the weak phone's picture moving again on
    640x360 within 10 s of its link narrowing and staying there at >= 15 fps (or, on a
    machine too busy for that, >= 80 % of the strong phone's fps), the strong one on 720p
    throughout, the weak one back on 720p within 20 s of the cap lifted, and far more
    picture than one rung for everybody gives it. (aiortc's own per-peer encoders on the
    same link: the benchmark ``test_bench_weak_link.py``.) How often
    Chromium counts a freeze is printed, not asserted: two Chromiums, the station and
    coturn on two cores (and CI's emulated arm64 tests beside them) freeze the strong
    phone too — 6-10 % here with a perfect link — so the machine, not the link, sets
    that figure (docs/benchmarks.md: Weak links)."""
    reference = weak_and_strong(bed, tmp_path, phones, mode="one rung")
    print("net: one rung for everybody (reference):", reference, file=sys.stderr)
    adaptive = weak_and_strong(bed, tmp_path, phones, mode="rungs")
    print("net: two rungs, each phone on its own:", adaptive, file=sys.stderr)
    weak, strong = adaptive["weak"], adaptive["strong"]
    assert adaptive["down_seconds"] is not None and adaptive["down_seconds"] <= 10, adaptive
    assert weak["sizes"] == ["640x360"], adaptive
    # >= 15 fps; on a machine too busy to give even the strong phone (perfect link) 19,
    # as much as the strong one gets, less a fifth: the link must cost no more than that
    assert weak["fps"] >= min(15, 0.8 * strong["fps"]), adaptive
    assert strong["sizes"] == ["1280x720"], adaptive
    assert adaptive["climb_seconds"] is not None and adaptive["climb_seconds"] <= 20, adaptive
    # what the rungs buy: one rung for everybody leaves the weak phone nearly still
    gain = min(10, strong["fps"] / 2)
    assert weak["fps"] >= reference["weak"]["fps"] + gain, (adaptive, reference)

"""A weak phone and a strong one in the same call, both real Chromium on the network test
bed: what each person sees, read from Chromium's own ``getStats`` for the station's video.
Shared by the test (``test_weak_chromium.py``: the rungs against one rung for everybody)
and the benchmark (``tests/bench/test_bench_weak_link.py``: against aiortc's per-peer
encoders).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from playwright.sync_api import Browser, Page, sync_playwright

from .chromium import join, launch_phone  # skips, or fails under CI, without Playwright
from .services import SECRET, start_station, start_turn
from .testbed import PHONES, Testbed

# The station's video as the page receives it: one sample of the inbound video stream
# from the station peer (the counters are cumulative; the test takes differences).
STATION_VIDEO = """async () => {
  const client = window.videostation && window.videostation.client;
  if (!client) return null;
  for (const link of client.peers.values()) {
    if (link.participant !== 'station') continue;
    const report = await link.pc.getStats();
    let out = null;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.framesDecoded || 0) > 0) {
        out = { at: performance.now() / 1000, decoded: r.framesDecoded,
                dropped: r.framesDropped || 0,
                freezes: r.freezeCount || 0, frozen: r.totalFreezesDuration || 0,
                width: r.frameWidth || 0, height: r.frameHeight || 0,
                nacks: r.nackCount || 0, plis: r.pliCount || 0,
                state: link.pc.connectionState };
      }
    });
    if (out) return out;
  }
  return null;
}"""


@contextmanager
def phones(tmp_path: Path) -> Iterator[list[Browser]]:
    """One Chromium per phone namespace (the test bed up)."""
    with sync_playwright() as pw:
        launched = [launch_phone(pw.chromium, name, tmp_path) for name in PHONES]
        try:
            yield launched
        finally:
            for browser in launched:
                browser.close()


def sample(page: Page) -> dict[str, Any]:
    got: dict[str, Any] | None = page.evaluate(STATION_VIDEO)
    return got or {"at": time.monotonic(), "decoded": 0, "dropped": 0, "freezes": 0, "frozen": 0.0,
                   "width": 0, "height": 0, "nacks": 0, "plis": 0, "state": "none"}  # fmt: skip


def viewers(page: Page) -> list[str]:
    """The station's per-viewer gauges (rung, estimate, loss) as the household sees them."""
    text: str = page.evaluate(
        "() => fetch('/api/metrics/').then((r) => r.text()).catch((e) => String(e))"
    )
    return [line for line in text.splitlines() if line.startswith("videostation_viewer_")]


def wait_decoding(page: Page, *, width: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (s := sample(page))["width"] != width or s["decoded"] < 30:
        assert time.monotonic() < deadline, f"no {width}-wide picture from the station: {s}"
        time.sleep(0.5)


def until_width(page: Page, width: int, *, since: float, within: float) -> float | None:
    """Seconds from ``since`` until ``page`` decodes ``width``-wide frames (None: not
    within ``within`` seconds)."""
    while (elapsed := time.monotonic() - since) < within:  # bounded
        if sample(page)["width"] == width:
            return round(elapsed, 1)
        time.sleep(0.25)
    return None


def watch(pages: list[Page], seconds: int) -> list[list[dict[str, Any]]]:
    """One sample a second from each page for ``seconds`` (plus the first)."""
    series: list[list[dict[str, Any]]] = [[sample(p)] for p in pages]
    for _ in range(seconds):
        time.sleep(1)
        for run, page in zip(series, pages, strict=True):
            run.append(sample(page))
    return series


def summary(run: list[dict[str, Any]]) -> dict[str, Any]:
    """What a person saw over ``run``: frames a second, share of time frozen, sizes."""
    first, last = run[0], run[-1]
    seconds = max(0.001, last["at"] - first["at"])
    return {
        "fps": round((last["decoded"] - first["decoded"]) / seconds, 1),
        # frames the phone received but had no time to show: a starved browser, not a link
        "dropped": last["dropped"] - first["dropped"],
        "frozen_share": round((last["frozen"] - first["frozen"]) / seconds, 3),
        "freezes": last["freezes"] - first["freezes"],
        "sizes": sorted({f"{s['width']}x{s['height']}" for s in run[1:]}),
    }


Mode = Literal["rungs", "one rung", "per-peer"]
CAMERA: dict[Mode, str] = {
    "rungs": "",  # the product: the shared encoder's two rungs, each viewer on its own
    "one rung": "adaptive = false",  # the shared encoder before it had rungs
    "per-peer": 'encoding = "per-peer"',  # aiortc's own way: an encoder per viewer
}


def weak_and_strong(
    bed: Testbed,
    tmp_path: Path,
    phones: list[Browser],
    *,
    mode: Mode,
    seconds: int = 30,
    size: tuple[int, int] = (1280, 720),
) -> dict[str, Any]:
    """Both phones in a call, the first one's link impaired; (rungs) the seconds until
    the weak phone decodes the low rung, (references) 10 s, or ``seconds`` if shorter;
    then ``seconds`` measured on both; then (rungs only) the cap lifted and the seconds
    until the weak phone decodes 720p again. ``size``: the station camera's (the
    benchmark's quick mode keeps the bench working with a tiny one)."""
    adaptive = mode == "rungs"
    run_dir = tmp_path / mode.replace(" ", "-")
    run_dir.mkdir()
    turn = start_turn(run_dir, SECRET)
    station = start_station(run_dir, turn_secret=SECRET, camera=CAMERA[mode], size=size)
    pages: list[Page] = []
    try:
        pages = [
            join(browser, name) for browser, name in zip(phones, ("Weak", "Strong"), strict=True)
        ]
        weak = pages[0]
        for page in pages:
            wait_decoding(page, width=size[0])
        before = sample(weak)
        bed.impair(PHONES[0], kbit=400, loss_percent=3)
        impaired = time.monotonic()
        result: dict[str, Any] = {}
        if adaptive:
            # the weak phone's picture stops the moment its link narrows; how long until
            # it moves again, at the low rung, is the freeze a person sees
            result["down_seconds"] = until_width(weak, 640, since=impaired, within=30)
        else:
            time.sleep(min(10, seconds))  # longer than the rungs need here
        weak_run, strong_run = watch(pages, seconds)
        result |= {"weak": summary(weak_run), "strong": summary(strong_run)}
        # what decides a failure's cause: how busy the machine was while measured, and
        # what the station itself decided for each viewer (its rung gauges)
        result["load_average"] = [round(x, 1) for x in os.getloadavg()]
        result["station_rungs"] = [v for v in viewers(weak) if "low_rung" in v]
        # and all the weak phone saw from the moment its link narrowed: the switch's
        # freeze and any stall after it
        result["weak_from_cap"] = {
            "seconds": round(weak_run[-1]["at"] - before["at"], 1),
            "frozen_seconds": round(weak_run[-1]["frozen"] - before["frozen"], 2),
        }
        print("net: weak, per second (decoded, freezes, frozen s, NACKs, PLIs, width)", [
            (s["decoded"], s["freezes"], round(s["frozen"], 2), s["nacks"], s["plis"], s["width"])
            for s in weak_run
        ], file=sys.stderr)  # fmt: skip
        print("net: station's gauges", viewers(weak), file=sys.stderr)
        if adaptive:
            bed.impair(PHONES[0], kbit=None)
            result["climb_seconds"] = until_width(weak, size[0], since=time.monotonic(), within=30)
            print("net: station's gauges after the climb", viewers(weak), file=sys.stderr)
        return result
    finally:
        for page in pages:
            page.close()
        bed.impair(PHONES[0], kbit=None)
        station.kill()
        station.wait(timeout=10)
        turn.kill()
        turn.wait(timeout=10)

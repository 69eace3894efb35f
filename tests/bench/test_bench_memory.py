"""B4: the station's memory (RSS of the `videostation serve` process), idle and with
four viewers in one call for a minute.

A real service with the test pattern at its default size; four aiortc callers ring it
together, the kiosk (over its WebSocket) answers, and each caller decodes the station's
video and audio for ``SECONDS``; RSS is sampled once a second from /proc. Targets
(issue #10): idle <= 80 MB, four viewers <= 200 MB, no growth over the minute.
``BENCH_QUICK=1`` (what CI runs) keeps it to a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import start_live, stop_live
from tests.helpers import WS, AiortcCaller

pytestmark = pytest.mark.bench

QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = 8 if QUICK else 60
VIEWERS = 4
IDLE_TARGET_MB, CALL_TARGET_MB = 80, 200


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def session(base: str) -> aiohttp.ClientSession:
    # cookies of 127.0.0.1 (an IP address) need the unsafe jar
    return aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": base}
    )


async def post(client: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> None:
    async with client.post(path, json=body) as resp:
        assert resp.status == 200, await resp.text()


async def four_viewers(live: Any, pid: int, idle: list[float]) -> list[float]:
    """RSS samples (MB), one a second, while four callers decode the station; first
    appends to ``idle`` the RSS with the kiosk's screen connected, before any guest."""
    key = (live.state_dir / "kiosk.key").read_text().strip()
    clients = [session(live.base_url) for _ in range(VIEWERS + 1)]
    callers: list[AiortcCaller] = []
    try:
        await post(clients[0], "/api/auth/kiosk", {"key": key})
        kiosk = WS(await clients[0].ws_connect("/ws/"))
        await kiosk.join("station", "Station")
        await asyncio.sleep(1)
        idle.append(rss_mb(pid))  # the appliance's idle: its screen is always connected
        guests = []
        for i, client in enumerate(clients[1:]):
            token = live.guest_link(label=f"Viewer {i}").split("guest_token=", 1)[1]
            await post(client, "/api/auth/guest", {"guest_token": token})
            guest = WS(await client.ws_connect("/ws/"))
            await guest.join("station", f"Viewer {i}")
            guests.append(guest)
        state = await kiosk.expect("call-state", timeout=10)
        while len(state["call"]["callers"]) < VIEWERS:  # all four ring together
            state = await kiosk.expect("call-state", timeout=10)
        await kiosk.send(type="call", action="answer")
        callers = [AiortcCaller(guest) for guest in guests]
        await asyncio.gather(*(caller.accept_station() for caller in callers))
        await asyncio.gather(*(caller.frames("video", 5, timeout=30) for caller in callers))

        async def drain(caller: AiortcCaller) -> None:
            while True:
                for queue in (caller.video, caller.audio):
                    while not queue.empty():
                        queue.get_nowait()
                await asyncio.sleep(0.2)

        async def listen(ws: WS) -> None:  # reading answers the server's heartbeat
            while not ws.ws.closed:
                await ws.ws.receive()

        drains = [asyncio.ensure_future(drain(caller)) for caller in callers]
        drains += [asyncio.ensure_future(listen(ws)) for ws in (kiosk, *guests)]
        samples = []
        for _ in range(SECONDS):
            samples.append(rss_mb(pid))
            await asyncio.sleep(1)
        for task in drains:
            task.cancel()
        await kiosk.send(type="call", action="hangup")
        return samples
    finally:
        await asyncio.gather(*(caller.close() for caller in callers))
        await asyncio.gather(*(client.close() for client in clients))


def test_memory_idle_and_with_four_viewers(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    try:
        pid = live.proc.pid
        time.sleep(2)  # settled after start-up
        idle = [rss_mb(pid)]
        samples = asyncio.run(four_viewers(live, pid, idle))
        time.sleep(2)
        after = rss_mb(pid)
    finally:
        stop_live(live)
    half = max(1, len(samples) // 2)
    growth = statistics.mean(samples[half:]) - statistics.mean(samples[:half])
    print(f"\nB4 station RSS ({'quick' if QUICK else 'full'} run, {SECONDS} s with viewers):")
    print(f"  idle after start-up         {idle[0]:6.1f} MB   (target <= {IDLE_TARGET_MB} MB)")
    print(f"  idle, the kiosk connected   {idle[1]:6.1f} MB")
    peak = max(samples)
    print(f"  {VIEWERS} viewers, peak             {peak:6.1f} MB   (target <= {CALL_TARGET_MB} MB)")
    print(f"  growth, 2nd half vs 1st     {growth:+6.1f} MB")
    print(f"  idle again after the call   {after:6.1f} MB")
    assert peak <= CALL_TARGET_MB, samples
    assert max(idle) <= IDLE_TARGET_MB, idle  # the media stack is loaded only for a call
    if not QUICK:  # a few seconds say nothing about growth
        assert growth <= 5, samples

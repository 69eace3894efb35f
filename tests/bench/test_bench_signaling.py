"""B7: signaling under churn -- 200 clients in 50 rooms for 60 s against a real
`videostation serve` on loopback.

In each room two *steady* clients stay for the whole run and relay ICE candidates to
each other through the server (five a second each, stamped with their send time),
while two *churning* clients join, stay a moment and leave, over and over. Measured:
relay latency from send to receipt (p50/p99), lost relays between steady clients
(both were in the room throughout: every relay must arrive), and the service's RSS
(start / peak / end). Targets (issue #10): 0 lost, p99 relay <= 20 ms, bounded RSS.
``BENCH_QUICK=1`` runs 40 clients in 10 rooms for 8 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import start_live, stop_live

from .kit import Profile

pytestmark = pytest.mark.bench

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROOMS = 10 if QUICK else 50
SECONDS = 8 if QUICK else 60
RELAYS_PER_SECOND = 5
TARGET_P99_MS = 20


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@dataclass
class Tally:
    latency_ms: list[float] = field(default_factory=list)
    sent: int = 0
    received: int = 0
    churn_cycles: int = 0
    errors: list[str] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    """How late the load generator's own event loop woke (its share of the latency)."""


async def guest_session(base: str, token: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": base}
    )
    async with session.post("/api/auth/guest", json={"guest_token": token}) as resp:
        assert resp.status == 200, await resp.text()
    return session


async def send(ws: aiohttp.ClientWebSocketResponse, **message: Any) -> None:
    await ws.send_str(json.dumps(message))


async def steady_pair(base: str, tokens: list[str], room: str, until: float, tally: Tally) -> None:
    """Two clients that stay, relaying stamped candidates to each other."""
    sessions = [await guest_session(base, token) for token in tokens]
    sockets = [await s.ws_connect("/ws/") for s in sessions]
    ids: list[str] = []
    try:
        for i, ws in enumerate(sockets):
            await send(ws, type="join", version=1, room=room, name=f"steady {i}")
        for ws in sockets:
            while True:
                msg = json.loads((await ws.receive(timeout=20)).data)
                if msg["type"] == "welcome":
                    ids.append(msg["peer_id"])
                    break
        for me, ws in enumerate(sockets):  # a relay before `connect` is refused
            while True:
                msg = json.loads((await ws.receive(timeout=20)).data)
                if msg["type"] == "connect" and msg["peer_id"] == ids[1 - me]:
                    break

        async def talk(me: int) -> None:
            ws, other = sockets[me], ids[1 - me]
            seq = 0
            while time.monotonic() < until:
                seq += 1
                stamp = time.monotonic()
                candidate = f"candidate:{seq} 1 udp 2122252543 192.0.2.{me + 1} 9 typ host"
                await send(ws, type="signal", to=other, candidate={
                    "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0,
                    "usernameFragment": f"{stamp!r}",
                })  # fmt: skip
                tally.sent += 1
                await asyncio.sleep(1 / RELAYS_PER_SECOND)

        async def listen(me: int) -> None:
            ws = sockets[me]
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                data = json.loads(msg.data)
                if data["type"] == "signal" and data.get("candidate"):
                    sent = float(data["candidate"]["usernameFragment"])
                    tally.latency_ms.append((time.monotonic() - sent) * 1000)
                    tally.received += 1
                elif data["type"] == "error":
                    tally.errors.append(str(data))

        listeners = [asyncio.ensure_future(listen(i)) for i in range(2)]
        await asyncio.gather(talk(0), talk(1))
        await asyncio.sleep(2)  # the last relays arrive
        for task in listeners:
            task.cancel()
    finally:
        for ws in sockets:
            await ws.close()
        for s in sessions:
            await s.close()


async def churner(base: str, token: str, room: str, until: float, tally: Tally) -> None:
    """A client that joins, stays a moment, leaves, and comes back."""
    session = await guest_session(base, token)
    try:
        while time.monotonic() < until:
            async with session.ws_connect("/ws/") as ws:
                await send(ws, type="join", version=1, room=room, name="churn")
                msg = json.loads((await ws.receive(timeout=20)).data)
                if msg["type"] != "welcome":
                    tally.errors.append(str(msg))
                stay = time.monotonic() + random.uniform(0.2, 1.5)
                while time.monotonic() < stay:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await ws.receive(timeout=max(0.01, stay - time.monotonic()))
                await send(ws, type="leave")
            tally.churn_cycles += 1
            await asyncio.sleep(random.uniform(0.05, 0.5))
    finally:
        await session.close()


async def load(live: Any, pid: int) -> tuple[Tally, list[float]]:
    tally = Tally()
    async with aiohttp.ClientSession(
        base_url=live.base_url,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Origin": live.base_url},
    ) as user:
        async with user.post("/api/auth/login", json={"password": live.password}) as resp:
            assert resp.status == 200
        rooms, tokens = [], []
        for r in range(ROOMS):
            async with user.post("/api/rooms", json={"name": f"Bench {r}"}) as resp:
                assert resp.status == 201, await resp.text()
                room = (await resp.json())["id"]
            rooms.append(room)
            for c in range(4):
                path = f"/api/rooms/{room}/generate-guest-link"
                async with user.post(path, json={"label": f"b{r}-{c}"}) as resp:
                    assert resp.status == 201, await resp.text()
                    tokens.append((await resp.json())["guest_token"])
    until = time.monotonic() + 3 + SECONDS  # the clients join during the first seconds
    work = []
    for r, room in enumerate(rooms):
        mine = tokens[4 * r : 4 * r + 4]
        work.append(steady_pair(live.base_url, mine[:2], room, until, tally))
        work += [churner(live.base_url, token, room, until, tally) for token in mine[2:]]
    samples: list[float] = []

    async def sample() -> None:
        while time.monotonic() < until + 2:
            samples.append(rss_mb(pid))
            for _ in range(20):
                asked = time.monotonic()
                await asyncio.sleep(0.05)
                tally.lag_ms.append((time.monotonic() - asked - 0.05) * 1000)

    await asyncio.gather(sample(), *work)
    return tally, samples


def test_signaling_under_churn(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    try:
        pid = live.proc.pid
        start = rss_mb(pid)
        with Profile(pid, tmp_path / "b7-service.txt") as profile:
            tally, samples = asyncio.run(load(live, pid))
        end = rss_mb(pid)
        assert live.proc.poll() is None, live.log_path.read_text()[-3000:]
    finally:
        stop_live(live)
    ordered = sorted(tally.latency_ms)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    lost = tally.sent - tally.received
    print(f"\nB7 signaling, {ROOMS * 4} clients in {ROOMS} rooms, {SECONDS} s:")
    print(f"  relays between steady clients: {tally.sent} sent, {lost} lost")
    print(f"  relay latency p50 {p50:.1f} ms, p99 {p99:.1f} ms  (target p99 <= {TARGET_P99_MS} ms)")
    print(f"  churn: {tally.churn_cycles} join/leave cycles, {len(tally.errors)} errors")
    print(f"  RSS start {start:.1f} MB, peak {max(samples):.1f} MB, end {end:.1f} MB")
    lag = sorted(tally.lag_ms)
    print(
        f"  the load generator's loop woke late: p50 {statistics.median(lag):.1f} ms, "
        f"p99 {lag[round(0.99 * (len(lag) - 1))]:.1f} ms (part of every latency above)"
    )
    print(f"  the service's CPU (py-spy):\n{profile.report()}")
    assert lost == 0 and not tally.errors, tally.errors[:5]
    assert tally.churn_cycles >= ROOMS * 2  # every churning client came and went

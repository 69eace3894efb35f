"""Memory an anonymous client can take from a real `videostation serve` (issue 22, item 8).

A Pi has 512 MiB to 1 GiB. Two ways to make the service hold memory it does not need:

- wrong passwords from many addresses: each reaches scrypt (16 MiB of work memory a
  hash), and a pool of hashing threads kept 16 MiB each in its own malloc arena;
- signalling churn: aiohttp's heartbeat timer kept each closed WebSocket, with its
  request and transport, for the heartbeat period after the close.

Each test measures the service's RSS (``/proc/<pid>/status``) against its idle RSS,
taken after start and one warm-up login, with a margin of 40 MiB.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..conftest import PASSWORD, LiveStation, start_live, stop_live
from ..helpers import rss_kib

pytestmark = pytest.mark.slow

MARGIN_KIB = 40 * 1024
ATTACKERS = [f"127.0.0.{n}" for n in range(10, 60)]
WRONG_PASSWORDS = 1000
CHURN_SECONDS = 60.0
CHURNERS = 48
"""Household sessions churning at once (rooms of 4: the mesh limit)."""
PER_ROOM = 4
AHEAD = 16
"""Logins that may go before the household's besides each address's first guess: the
worker's queue (``MAX_WAITING``, 8, in appliance/hashing.py) and some slack."""


async def login(
    base: str, password: str, *, source: str | None = None
) -> tuple[int, float, dict[str, Any]]:
    """POST /api/auth/login from ``source``: status, seconds, body."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
    async with aiohttp.ClientSession(connector=connector, headers={"Origin": base}) as http:
        started = time.monotonic()
        async with http.post(f"{base}/api/auth/login", json={"password": password}) as resp:
            body = await resp.json()
            return resp.status, time.monotonic() - started, body


class Sampler:
    """The service's RSS every ``every`` seconds, while it runs."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append(rss_kib(self.pid))
            await asyncio.sleep(self.every)

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def trace(self, points: int = 12) -> str:
        step = max(1, len(self.samples) // points)
        return " ".join(f"{kib / 1024:.0f}" for kib in self.samples[::step])


async def idle_rss(live: LiveStation) -> int:
    """RSS after one warm-up login (the household's first login of the day)."""
    status, _, body = await login(live.base_url, PASSWORD)
    assert status == 200, body
    await asyncio.sleep(1)
    return rss_kib(live.proc.pid)


async def test_wrong_passwords_from_fifty_addresses_leave_memory_as_it_was(
    tmp_path: Path,
) -> None:
    """1,000 wrong passwords from 50 addresses (5 each reach scrypt per window, the
    rest are limited) and the household's login still works, in RSS idle + 40 MiB."""
    live = start_live(tmp_path)
    try:
        idle = await idle_rss(live)
        _, before, _ = await login(live.base_url, PASSWORD)
        statuses: dict[int, int] = {}
        household: list[tuple[int, float]] = []
        hashed_before_household: list[int] = []

        async def attacker(source: str, count: int) -> None:
            """``count`` wrong passwords, one at a time; each told "busy" is sent again."""
            connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=1)
            base = live.base_url
            async with aiohttp.ClientSession(connector=connector, headers={"Origin": base}) as s:
                sent = 0
                while sent < count:
                    async with s.post(f"{base}/api/auth/login", json={"password": "x"}) as resp:
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                        sent += resp.status != 503
                    if resp.status == 503:
                        await asyncio.sleep(0.02)  # as eager as a script; spares the CPU

        async def household_logs_in() -> None:
            """The household, during the attack: tries again while told "busy" (503)."""
            await asyncio.sleep(0.5)
            while True:
                status, took, _ = await login(live.base_url, PASSWORD)
                household.append((status, took))
                if status != 503:
                    hashed_before_household.append(statuses.get(401, 0))
                    return
                await asyncio.sleep(0.5)

        each = WRONG_PASSWORDS // len(ATTACKERS)
        with Sampler(live.proc.pid) as rss:
            started = time.monotonic()
            await asyncio.gather(household_logs_in(), *(attacker(a, each) for a in ATTACKERS))
            flood = time.monotonic() - started
            await asyncio.sleep(2)
        after = rss_kib(live.proc.pid)
        status, took, body = await login(live.base_url, PASSWORD)
        print(
            f"\nlogins: {sum(statuses.values())} wrong in {flood:.1f} s {statuses}; "
            f"household during the attack: {len(household)} tries, in after "
            f"{hashed_before_household} wrong passwords were checked; right password "
            f"{before * 1000:.0f} ms before, {took * 1000:.0f} ms after; RSS idle "
            f"{idle / 1024:.0f} MiB, peak {max(rss.samples) / 1024:.0f}, after "
            f"{after / 1024:.0f} (every {len(rss.samples) // 12 / 10:.1f} s: {rss.trace()})"
        )
        assert status == 200, body
        assert set(statuses) <= {401, 429, 503}, statuses
        # busy answers do not count against an address: each reaches scrypt 5 times
        assert statuses[401] == len(ATTACKERS) * 5, statuses
        assert statuses[401] + statuses[429] == WRONG_PASSWORDS, statuses
        assert household[-1][0] == 200, household
        # It goes before every address that has been wrong: only each address's first
        # guess (and the worker's queue) can come before it, however busy the machine.
        assert hashed_before_household[0] <= len(ATTACKERS) + AHEAD, hashed_before_household
        assert after - idle < MARGIN_KIB, (idle, after, rss.trace())
        assert max(rss.samples) - idle < MARGIN_KIB, (idle, max(rss.samples), rss.trace())
    finally:
        stop_live(live)


async def household_sessions(live: LiveStation, count: int) -> tuple[list[str], list[Any]]:
    """``count`` logged-in household sessions (cookie jars) and rooms of PER_ROOM."""
    base = live.base_url
    jars: list[Any] = []
    rooms: list[str] = []
    for n in range(count):
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, headers={"Origin": base}) as http:
            resp = await http.post(f"{base}/api/auth/login", json={"password": PASSWORD})
            assert resp.status == 200, await resp.text()
            if n % PER_ROOM == 0:
                resp = await http.post(f"{base}/api/rooms", json={"name": f"Churn {n}"})
                assert resp.status == 201, await resp.text()
                rooms.append((await resp.json())["id"])
        jars.append(jar)
    return rooms, jars


async def churn(base: str, jar: Any, room: str, until: float, counts: dict[str, int]) -> None:
    """Join, ping, leave, close; again until ``until``."""
    async with aiohttp.ClientSession(cookie_jar=jar, headers={"Origin": base}) as http:
        while time.monotonic() < until:
            async with http.ws_connect(f"{base}/ws/") as ws:

                async def answer(kind: str) -> None:
                    while True:
                        message = await ws.receive_json(timeout=10)
                        if message["type"] == kind:
                            return
                        assert message["type"] != "error", message

                await ws.send_json({"type": "join", "version": 1, "room": room, "name": "Churn"})
                await answer("welcome")
                await ws.send_json({"type": "ping"})
                await answer("pong")
                await ws.send_json({"type": "leave"})
                await answer("bye")
            counts["cycles"] += 1


async def test_signalling_churn_releases_each_closed_socket(tmp_path: Path) -> None:
    """A minute of join/leave cycles as fast as this machine runs them: RSS within
    idle + 40 MiB and flat over the second half (a closed socket's request, transport
    and buffers are let go at its close, not a heartbeat period later)."""
    live = start_live(tmp_path)
    try:
        rooms, jars = await household_sessions(live, CHURNERS)
        idle = await idle_rss(live)
        counts = {"cycles": 0}
        with Sampler(live.proc.pid, every=0.5) as rss:
            until = time.monotonic() + CHURN_SECONDS
            await asyncio.gather(
                *(
                    churn(live.base_url, jar, rooms[n // PER_ROOM], until, counts)
                    for n, jar in enumerate(jars)
                )
            )
        samples = rss.samples
        half = len(samples) // 2
        quarter = half // 2
        third_q, last_q = max(samples[half : half + quarter]), max(samples[half + quarter :])
        peak = max(samples)
        print(
            f"\nchurn: {counts['cycles']} join/leave cycles in {CHURN_SECONDS:.0f} s "
            f"({counts['cycles'] / CHURN_SECONDS:.0f}/s) by {CHURNERS} sessions; RSS idle "
            f"{idle / 1024:.0f} MiB, peak {peak / 1024:.0f}, third quarter "
            f"{third_q / 1024:.0f}, last {last_q / 1024:.0f} (every 5 s: {rss.trace()})"
        )
        assert counts["cycles"] >= 3000, "too little churn to mean anything"
        assert peak - idle < MARGIN_KIB, (idle, peak, rss.trace())
        assert last_q - third_q < 4 * 1024, (third_q, last_q, rss.trace())
    finally:
        stop_live(live)

"""Load against a real `videostation serve` on loopback (issue #7, faults and load).

200 signaling clients (one guest session each, 50 rooms of 4) join, ping, change their
mute state and leave again in a loop for 60 s, while 50 wrong-password logins a second
hammer the login for the same minute. Measured: lost messages (a request without its
answer, an event about a peer the client was never told about), the service's RSS
(start / peak / end), and what the login limiter let through.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from ..conftest import PASSWORD, LiveStation, start_live, stop_live
from ..helpers import rss_kib

pytestmark = pytest.mark.slow

CLIENTS = 200
PER_ROOM = 4  # the default mesh limit: every room is full, never over-full
DURATION = 60.0
LOGINS_PER_SECOND = 50
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = 10
REPLY_TIMEOUT = 10.0


@dataclass
class Tally:
    requests: int = 0
    answered: int = 0
    events: int = 0
    lost: list[str] = field(default_factory=list)
    cycles: int = 0


class LoadClient:
    """One phone: its own guest session; join, ping, mute, leave, again."""

    def __init__(self, http: aiohttp.ClientSession, token: str, room: str, tally: Tally) -> None:
        self.http, self.token, self.room, self.tally = http, token, room, tally
        self.cookies = aiohttp.CookieJar(unsafe=True)

    async def login(self, base: str) -> None:
        resp = await self.http.post(
            f"{base}/api/auth/guest", json={"guest_token": self.token}, headers={"Origin": base}
        )
        assert resp.status == 200, await resp.text()
        self.cookies.update_cookies(resp.cookies, resp.url)

    async def run(self, base: str, until: float) -> None:
        async with aiohttp.ClientSession(
            cookie_jar=self.cookies, headers={"Origin": base}
        ) as session:
            while time.monotonic() < until:
                await self.cycle(session, base)
                self.tally.cycles += 1
                await asyncio.sleep(random.uniform(0, 0.3))

    async def cycle(self, session: aiohttp.ClientSession, base: str) -> None:
        tally = self.tally
        roster: set[str] = set()
        async with session.ws_connect(f"{base}/ws/") as ws:

            async def answer(kind: str, what: str) -> dict[str, Any] | None:
                """Read until a ``kind`` message; events on the way are checked."""
                deadline = time.monotonic() + REPLY_TIMEOUT
                while True:
                    try:
                        msg = await ws.receive_json(timeout=max(0.01, deadline - time.monotonic()))
                    except (TimeoutError, TypeError, ValueError):
                        tally.lost.append(f"{what}: no {kind}")
                        return None
                    if msg["type"] == kind:
                        tally.answered += 1
                        return dict(msg)
                    tally.events += 1
                    if msg["type"] == "peer-joined":
                        roster.add(msg["peer"]["id"])
                    elif msg["type"] == "peer-left":
                        if msg["peer_id"] not in roster:
                            tally.lost.append(f"peer-left for a peer never announced ({what})")
                        roster.discard(msg["peer_id"])
                    elif msg["type"] == "peer-updated" and msg["peer"]["id"] not in roster:
                        tally.lost.append(f"peer-updated for a peer never announced ({what})")
                    elif msg["type"] == "error":
                        tally.lost.append(f"error {msg.get('code')} ({what})")

            tally.requests += 1
            await ws.send_json({"type": "join", "version": 1, "room": self.room, "name": "Load"})
            welcome = await answer("welcome", "join")
            if welcome is None:
                return
            roster.update(p["id"] for p in welcome["peers"])
            for i in range(random.randint(2, 5)):
                tally.requests += 1
                await ws.send_json({"type": "media", "audio": bool(i % 2), "video": False})
                tally.requests += 1
                await ws.send_json({"type": "ping"})
                if await answer("pong", "ping") is None:
                    return
                tally.requests -= 1  # `media` has no answer of its own: counted via pong
                await asyncio.sleep(random.uniform(0.05, 0.25))
            tally.requests += 1
            await ws.send_json({"type": "leave"})
            await answer("bye", "leave")


async def flood_logins(base: str, until: float) -> dict[int, int]:
    """LOGINS_PER_SECOND wrong passwords a second until ``until``; statuses counted."""
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=20)
    async with aiohttp.ClientSession(connector=connector, headers={"Origin": base}) as http:

        async def one() -> None:
            async with http.post(f"{base}/api/auth/login", json={"password": "wrong"}) as resp:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        sent = 0
        while (now := time.monotonic()) < until:
            due = int((now - start) * LOGINS_PER_SECOND)
            while sent < due:
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
    return statuses


async def login(base: str, password: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Origin": base}) as http,
        http.post(f"{base}/api/auth/login", json={"password": password}) as resp,
    ):
        return resp.status


async def setup_clients(live: LiveStation, tally: Tally) -> list[LoadClient]:
    base = live.base_url
    jar = aiohttp.CookieJar(unsafe=True)
    clients: list[LoadClient] = []
    async with aiohttp.ClientSession(cookie_jar=jar, headers={"Origin": base}) as user:
        resp = await user.post(f"{base}/api/auth/login", json={"password": PASSWORD})
        assert resp.status == 200, await resp.text()
        for r in range(CLIENTS // PER_ROOM):
            resp = await user.post(f"{base}/api/rooms", json={"name": f"Load {r}"})
            assert resp.status == 201, await resp.text()
            room = (await resp.json())["id"]
            for _ in range(PER_ROOM):
                resp = await user.post(f"{base}/api/rooms/{room}/generate-guest-link", json={})
                assert resp.status == 201, await resp.text()
                url = (await resp.json())["guest_url"]
                token = parse_qs(urlsplit(urlsplit(url).fragment).query)["guest_token"][0]
                clients.append(LoadClient(user, token, room, tally))
        for client in clients:
            await client.login(base)
    return clients


async def test_200_clients_churning_and_a_login_flood_lose_nothing(tmp_path: Path) -> None:
    config = tmp_path / "load.toml"
    config.write_text(
        f"[auth]\nlogin_attempts = {LOGIN_ATTEMPTS}\nlogin_window_seconds = {LOGIN_WINDOW}\n"
    )
    live = start_live(tmp_path, "--config", str(config))
    started = time.monotonic()
    try:
        tally = Tally()
        clients = await setup_clients(live, tally)
        pid = live.proc.pid
        rss_start = rss_kib(pid)
        samples = [rss_start]

        async def sample(until: float) -> None:
            while time.monotonic() < until:
                samples.append(rss_kib(pid))
                await asyncio.sleep(0.5)

        until = time.monotonic() + DURATION
        results = await asyncio.gather(
            flood_logins(live.base_url, until),
            sample(until),
            *(c.run(live.base_url, until) for c in clients),
        )
        statuses: dict[int, int] = results[0]
        # After the window (nothing wrong tried meanwhile) the right user gets in.
        await asyncio.sleep(LOGIN_WINDOW + 1)
        right_after_window = await login(live.base_url, PASSWORD)
        await asyncio.sleep(2)  # sockets closed, nothing left to free
        rss_end = rss_kib(pid)
        rss_peak = max(samples)
        # Bounded, not just "did not crash": RSS climbs while the churn warms up (socket
        # buffers, allocator arenas; how far depends on how fast this machine churns)
        # and then levels off: the last third of the minute adds little to the middle
        # one. Medians: a sample taken while a password is hashed carries scrypt's
        # 16 MiB, mapped for that hash only (appliance/hashing.py), which a maximum
        # caught in one third and not the other (a failure under load, 2026-12-07).
        third = len(samples) // 3
        rss_warm = statistics.median(samples[third : 2 * third])
        rss_late = statistics.median(samples[2 * third :])
        trace = " ".join(f"{kib / 1024:.0f}" for kib in samples[:: max(1, len(samples) // 12)])
        wall = time.monotonic() - started
        print(
            f"\nload: {CLIENTS} clients, {tally.cycles} join/leave cycles, "
            f"{tally.requests} requests, {tally.answered} answers, {tally.events} events, "
            f"{len(tally.lost)} lost; logins {statuses}; "
            f"RSS start {rss_start / 1024:.0f} MiB, peak {rss_peak / 1024:.0f} MiB, "
            f"end {rss_end / 1024:.0f} MiB (over the minute: {trace}); wall {wall:.0f} s"
        )
        assert tally.lost == [], tally.lost[:10]
        assert tally.requests == tally.answered
        assert tally.cycles >= CLIENTS * 5, "too little churn to mean anything"
        total = sum(statuses.values())
        assert total >= LOGINS_PER_SECOND * DURATION * 0.9, statuses
        assert set(statuses) <= {401, 429}, statuses
        # a sliding window of LOGIN_WINDOW s lets LOGIN_ATTEMPTS through per window
        windows = int(DURATION // LOGIN_WINDOW) + 1
        assert statuses.get(401, 0) <= LOGIN_ATTEMPTS * windows, statuses
        assert right_after_window == 200
        assert rss_late - rss_warm < 16 * 1024, (rss_warm, rss_late, trace)
        assert rss_peak - rss_start < 200 * 1024, (rss_start, rss_peak)
        assert rss_end <= rss_peak + 4 * 1024  # nothing grows once the load is gone
    finally:
        stop_live(live)

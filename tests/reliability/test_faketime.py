"""A real ``videostation serve`` whose wall clock jumps by days mid-call (issue 22,
item 1): libfaketime moves the process's CLOCK_REALTIME and leaves its monotonic clock
alone, as NTP does on a Raspberry Pi without a clock battery. The call goes on through
the periodic check of every socket, and the call log keeps its true length."""

from __future__ import annotations

import asyncio
import glob
import os
import time
from pathlib import Path

import pytest

from appliance.signaling import REVALIDATE_SECONDS

from ..conftest import start_live, stop_live
from ..helpers import Client, call_state, skip_or_fail

pytestmark = pytest.mark.slow
DAYS = 86400


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        skip_or_fail("needs libfaketime (apt install faketime)")
    return found[0]


async def _quiet_for(ws: object, seconds: float) -> None:
    """No ``bye`` reaches ``ws`` for ``seconds`` (one revalidation round and more)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await ws.recv(timeout=left)  # type: ignore[attr-defined]
        except TimeoutError:
            return
        assert message["type"] != "bye", message


async def test_a_real_call_survives_the_wall_clock_jumping_days(tmp_path: Path) -> None:
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        **os.environ,
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",  # read the file on every clock call: jumps take effect now
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    live = start_live(tmp_path, env=env)
    clients: list[Client] = []
    try:
        started = time.time()
        kiosk = await Client.kiosk(live)
        guest = await Client.guest(live, "Grandma")
        user = Client(live)
        clients += [kiosk, guest, user]
        resp = await user.http.post("/api/auth/login", json={"password": live.password})
        assert resp.status == 200
        screen = await kiosk.join("Station")
        phone = await guest.join("Grandma")
        await call_state(screen, "ringing")
        await screen.send(type="call", action="answer")
        await call_state(phone, "in-call")
        for jump in ("+2d", "-2d"):  # two days ahead, then two behind
            offset.write_text(f"{jump}\n")
            await _quiet_for(phone, REVALIDATE_SECONDS + 2)
            health = await (await user.http.get("/api/health")).json()
            assert health["call"] == "in-call", health
            # the service saw the jump (libfaketime works), and ran on
            assert abs(health["clock"]["last_jump_seconds"]) > DAYS, health["clock"]
        assert (await guest.http.get("/api/auth/me")).status == 200
        await screen.send(type="call", action="hangup")
        await call_state(phone, "idle")
        calls = (await (await user.http.get("/api/calls")).json())["calls"]
        row = calls[0]
        assert row["outcome"] == "answered", row
        # logged on the call's own clock: started when it started, lasted what it lasted
        assert abs(row["started_at"] - started) < 60, (row, started)
        assert 0 < row["ended_at"] - row["started_at"] < 2 * REVALIDATE_SECONDS + 60, row
        assert health["clock"]["jumps"] == 2, health["clock"]
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        assert stop_live(live) == 0

"""The kiosk session's watchdog (`videostation kiosk-watch`, run by kiosk-session) against
a real station: it returns 1 when the screen never joins the station room, and when the
screen leaves and does not come back; it stays while the screen is there. The restart
itself (the session stopping the compositor, systemd starting a fresh Chromium) is
proven in the VM: tests/vm/test_vm_x86.py::test_kiosk_watchdog_restarts_a_lost_screen."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from .conftest import LiveStation


def watcher(live: LiveStation, grace: float, lost: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "kiosk-watch", "--config", "/dev/null",
         "--state-dir", str(live.state_dir), "--port", str(live.port),
         "--grace", str(grace), "--lost", str(lost), "--every", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def kiosk_key(live: LiveStation) -> str:
    return live.kiosk_url.split("key=", 1)[1]


def test_a_screen_that_never_joins_ends_the_watch(live_station: LiveStation) -> None:
    started = time.monotonic()
    proc = watcher(live_station, grace=2, lost=1)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "never joined" in out
    assert time.monotonic() - started >= 2


async def _screen_comes_and_goes(live: LiveStation, tmp: Path) -> tuple[int, str, dict[str, str]]:
    base = live.base_url
    origin = {"Origin": base}
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as kiosk:
        resp = await kiosk.post("/api/auth/kiosk", json={"key": kiosk_key(live)}, headers=origin)
        assert resp.status == 200
        seen: dict[str, str] = {}
        seen["before"] = (await (await kiosk.get("/api/health/")).json())["kiosk_screen"]
        ws = await kiosk.ws_connect("/ws/", headers=origin)
        await ws.send_json({"type": "join", "version": 1, "room": "station", "name": "kiosk"})
        while json.loads((await ws.receive()).data)["type"] != "welcome":
            pass
        seen["joined"] = (await (await kiosk.get("/api/health/")).json())["kiosk_screen"]
        proc = watcher(live, grace=2, lost=2)
        # The screen stays: the watcher keeps running well past its grace period.
        await asyncio.sleep(4)
        assert proc.poll() is None, proc.communicate()[0]
        await ws.close()
        left = time.monotonic()
        while proc.poll() is None and time.monotonic() - left < 30:
            await asyncio.sleep(0.2)
        seen["seconds_to_exit"] = f"{time.monotonic() - left:.1f}"
        seen["after"] = (await (await kiosk.get("/api/health/")).json())["kiosk_screen"]
        out, _ = proc.communicate(timeout=10)
        return proc.returncode, out, seen


def test_a_lost_screen_ends_the_watch(live_station: LiveStation, tmp_path: Path) -> None:
    rc, out, seen = asyncio.run(_screen_comes_and_goes(live_station, tmp_path))
    assert seen["before"] == "absent" and seen["joined"] == "connected", seen
    assert seen["after"] == "absent", seen
    assert rc == 1, out
    assert "the screen is in the station room" in out and "was lost" in out, out
    assert 2 <= float(seen["seconds_to_exit"]) < 20, seen


def test_health_hides_the_screen_from_anonymous_callers(live_station: LiveStation) -> None:
    import urllib.request

    with urllib.request.urlopen(live_station.base_url + "/api/health/", timeout=10) as resp:
        body = json.loads(resp.read())
    assert "kiosk_screen" not in body

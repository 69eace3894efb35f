"""The station on the Raspberry Pi's architecture: arm64 Debian 12 under qemu-user-static.

Raspberry Pi OS (64-bit) is Debian Bookworm on arm64. A debootstrapped arm64 root
(cached) gets a venv with the wheel built from this checkout -- every runtime
dependency comes as an aarch64 wheel -- and runs ``videostation serve`` with the test
pattern and tone. The chroot shares this machine's network, so a real aiortc viewer
here calls it over loopback: it rings, the kiosk answers over the WebSocket, and the
viewer decodes the station's H.264 video. (The Ansible role applied into an arm64
root is in test_ansible.py, parametrized by architecture.)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..test_call import AiortcCaller
from ..test_signaling import WS
from .rootfs import Chroot, copy_checkout, debian_root
from .test_fresh_machine import _free_port, _health

PASSWORD = "arm64 station password"
VENV = "/opt/videostation/venv"
STATE = "/var/lib/videostation"


@dataclass
class Arm64Station:
    chroot: Chroot
    base: str
    proc: subprocess.Popen[bytes]
    log: Path
    timings: dict[str, float]


def _build_wheel(dest: Path) -> Path:
    """The wheel of this checkout, built from a copy (the clone stays clean)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        copy_checkout(source)
        subprocess.run(
            ["python3", "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(source)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    (wheel,) = dest.glob("videostation-*.whl")
    return wheel


@pytest.fixture(scope="module")
def arm64_station() -> Iterator[Arm64Station]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    with debian_root(arch="arm64") as chroot:
        timings["root"] = time.monotonic() - started
        assert chroot.run("uname", "-m").stdout.strip() == "aarch64"
        wheel = _build_wheel(chroot.root / "tmp")
        step = time.monotonic()
        chroot.run("python3", "-m", "venv", VENV, timeout=900)
        install = chroot.run(
            f"{VENV}/bin/pip", "install", "-q", f"/tmp/{wheel.name}", timeout=1800, check=False
        )
        assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
        timings["pip_install"] = time.monotonic() - step
        out = chroot.run(
            f"{VENV}/bin/videostation",
            "set-password",
            "--stdin",
            "--state-dir",
            STATE,
            "--config",
            "/dev/null",
            check=False,
            timeout=300,
            input=PASSWORD + "\n",
        )
        assert out.returncode == 0, out.stderr
        port = _free_port()
        log = chroot.root / "tmp/serve.log"
        step = time.monotonic()
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                chroot.command(
                    f"{VENV}/bin/videostation",
                    "serve",
                    "--config",
                    "/dev/null",
                    "--state-dir",
                    STATE,
                    "--port",
                    str(port),
                    "--camera",
                    "test",
                    "--microphone",
                    "test",
                ),
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 300
            while _health(port) is None and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(1)
            assert _health(port) is not None, log.read_text()[-4000:]
            timings["until_healthy"] = time.monotonic() - step
            yield Arm64Station(chroot, f"http://127.0.0.1:{port}", proc, log, timings)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            print(f"arm64 timings (s): { {k: round(v) for k, v in timings.items()} }")


@pytest.mark.slow
@pytest.mark.timeout(3000)  # builds the arm64 root on a cold cache
def test_the_wheel_installs_and_serves_on_arm64(arm64_station: Arm64Station) -> None:
    chroot = arm64_station.chroot
    machine = chroot.run(f"{VENV}/bin/python", "-c", "import platform; print(platform.machine())")
    assert machine.stdout.strip() == "aarch64"
    # Every native runtime dependency is an aarch64 build.
    probe = (
        "import aiortc, av, numpy, PIL, cryptography, pylibsrtp, json; "
        "print(json.dumps([m.__file__ for m in (av, numpy, PIL, cryptography, pylibsrtp)]))"
    )
    files = json.loads(chroot.run(f"{VENV}/bin/python", "-c", probe).stdout)
    for path in files:
        native = list((chroot.root / Path(path).parent.relative_to("/")).rglob("*.so"))
        assert native, path
        header = native[0].read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and header[18] == 0xB7, native[0]  # EM_AARCH64
    health = _health(int(arm64_station.base.rsplit(":", 1)[1]))
    assert health is not None and health["status"] == "ok"


def _session_for(base: str) -> aiohttp.ClientSession:
    # Cookies of 127.0.0.1 (an IP address) need the unsafe jar.
    return aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": base}
    )


async def _post(session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    async with session.post(path, json=body) as resp:
        assert resp.status in (200, 201), await resp.text()  # creating a link is 201
        return await resp.json()


def _first_video_codec(sdp: str) -> str:
    media = re.search(r"^m=video \d+ \S+ (\d+)", sdp, re.MULTILINE)
    assert media, sdp
    rtpmap = re.search(rf"^a=rtpmap:{media.group(1)} ([^/\s]+)", sdp, re.MULTILINE)
    assert rtpmap, sdp
    return rtpmap.group(1)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_call_to_the_arm64_station_decodes_h264(arm64_station: Arm64Station) -> None:
    base = arm64_station.base
    kiosk_key = (arm64_station.chroot.root / STATE.lstrip("/") / "kiosk.key").read_text().strip()
    user, kiosk_http, guest_http = (_session_for(base) for _ in range(3))
    caller: AiortcCaller | None = None
    try:
        await _post(user, "/api/auth/login", {"password": PASSWORD})
        link = await _post(user, "/api/rooms/station/generate-guest-link", {"label": "Grandma"})
        await _post(kiosk_http, "/api/auth/kiosk", {"key": kiosk_key})
        await _post(guest_http, "/api/auth/guest", {"guest_token": link["guest_token"]})
        kiosk = WS(await kiosk_http.ws_connect("/ws/"))
        await kiosk.join("station", "Station")
        guest = WS(await guest_http.ws_connect("/ws/"))
        welcome = await guest.join("station", "Grandma")
        assert welcome["call"]["state"] == "idle"
        ring = await kiosk.expect("call-state", timeout=20)
        assert ring["call"]["state"] == "ringing"
        await kiosk.send(type="call", action="answer")
        caller = AiortcCaller(guest)
        await caller.accept_station()
        assert caller.pc is not None
        assert _first_video_codec(caller.pc.localDescription.sdp) == "H264"
        frames = await caller.frames("video", 5, timeout=60)  # the encoder runs emulated
        assert frames[-1].width > 0 and frames[-1].height > 0
        audio = await caller.frames("audio", 3, timeout=60)
        assert audio[-1].sample_rate == 48000
        await kiosk.send(type="call", action="hangup")
        ended = await guest.expect("call-state", timeout=20)
        while ended["call"]["state"] != "idle":
            ended = await guest.expect("call-state", timeout=20)
    finally:
        if caller is not None:
            await caller.close()
        for session in (user, kiosk_http, guest_http):
            await session.close()
    assert arm64_station.proc.poll() is None, arm64_station.log.read_text()[-4000:]

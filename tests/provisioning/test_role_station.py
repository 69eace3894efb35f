"""The station the Ansible role installed, served and called, on x86 and on arm64.

Raspberry Pi OS (64-bit) is Debian Bookworm on arm64. The role installs the venv into
a debootstrapped root of each architecture (``provisioned`` in conftest.py; arm64 runs
under qemu-user-static), so what is called here is what a provisioned Pi runs: the
native libraries must be built for the root's architecture (every runtime dependency
comes as an aarch64 wheel), and ``videostation serve`` runs as the service user with
the test pattern and tone. The chroot shares this machine's loopback, so a real aiortc
viewer here calls it: it rings, the kiosk answers over the WebSocket, and the viewer
decodes the station's H.264 video.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..conftest import free_port
from ..helpers import WS, AiortcCaller, station_health
from .conftest import provisioned_chroot
from .rootfs import Chroot

PASSWORD = "role station password"
VENV = "/opt/videostation/venv"
STATE = "/var/lib/videostation"
# e_machine in an ELF header: what the root's native libraries must be built for
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass
class RootStation:
    chroot: Chroot
    arch: str
    base: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def station(provisioned: dict[str, Any]) -> Iterator[RootStation]:
    """``videostation serve`` from the venv the role installed, as the service user,
    with the test pattern and tone (the chroot shares this machine's loopback)."""
    chroot = provisioned_chroot(provisioned)
    as_service = ("runuser", "-u", "videostation", "--", f"{VENV}/bin/videostation")
    # its own password: test_ansible.py's first-boot test changes the role's
    chroot.run(
        *as_service,
        *("set-password", "--stdin", "--config", "/dev/null", "--state-dir", STATE),
        input=PASSWORD + "\n",
        timeout=300,
    )
    port = free_port()
    log = chroot.root / "tmp/serve.log"
    started = time.monotonic()
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            chroot.command(
                *as_service,
                *("serve", "--config", "/dev/null", "--state-dir", STATE),
                *("--port", str(port), "--camera", "test", "--microphone", "test"),
            ),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while station_health(port) is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
        assert station_health(port) is not None, log.read_text()[-4000:]
        print(f"{provisioned['arch']}: healthy after {time.monotonic() - started:.0f} s")
        yield RootStation(chroot, provisioned["arch"], f"http://127.0.0.1:{port}", proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_roles_venv_is_native_and_serves(station: RootStation) -> None:
    chroot = station.chroot
    machine = chroot.run(f"{VENV}/bin/python", "-c", "import platform; print(platform.machine())")
    assert machine.stdout.strip() == UNAME[station.arch]
    # Every native runtime dependency is a build for the root's architecture.
    probe = (
        "import aiortc, av, numpy, PIL, cryptography, pylibsrtp, json; "
        "print(json.dumps([m.__file__ for m in (av, numpy, PIL, cryptography, pylibsrtp)]))"
    )
    files = json.loads(chroot.run(f"{VENV}/bin/python", "-c", probe).stdout)
    for path in files:
        native = list((chroot.root / Path(path).parent.relative_to("/")).rglob("*.so"))
        assert native, path
        header = native[0].read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and header[18] == ELF_MACHINE[station.arch], native[0]
    health = station_health(int(station.base.rsplit(":", 1)[1]))
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
async def test_a_call_to_the_station_in_the_root_decodes_h264(station: RootStation) -> None:
    base = station.base
    kiosk_key = (station.chroot.root / STATE.lstrip("/") / "kiosk.key").read_text().strip()
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
    assert station.proc.poll() is None, station.log.read_text()[-4000:]

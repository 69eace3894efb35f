"""Calls across NATs and through TURN: the station on the network test bed.

Every test builds the namespaces of ``testbed.py``, starts coturn in the public part
(``use-auth-secret``, the station mints short-lived credentials from the same
secret, as the Ansible role sets it up) and the service at home, and runs aiortc
phones behind the carrier's symmetric NAT (or, for the direct path, behind a
port-preserving one with no TURN configured). Needs root, ``ip``, ``nft``, ``tc`` and
coturn's ``turnserver`` (the Makefile's apt list installs them). Weak links are
measured with real Chromium phones in ``test_weak_chromium.py``: what an aiortc
receiver does after a flood (it waits seconds for a lost packet where a browser asks
for a keyframe) is not what a person on a phone sees.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .services import PASSWORD, SECRET, start_station, start_turn
from .testbed import PHONES, STATION_PUBLIC, Testbed, popen

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Phone:
    """A running ``phone.py``: its JSON lines arrive in ``lines``."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def start_reader(self) -> None:
        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    continue

        threading.Thread(target=read, daemon=True).start()

    def next(self, timeout: float = 30) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        self.seen.append(line)
        return line

    def seconds(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` one-second summaries."""
        out: list[dict[str, Any]] = []
        for _ in range(n * 3):  # bounded: state lines come in between
            line = self.next()
            if "frames" in line:
                out.append(line)
                if len(out) == n:
                    break
        return out


def start_phone(name: str, seconds: int) -> Phone:
    proc = popen(
        name, [sys.executable, "-m", "tests.net.phone", f"http://{STATION_PUBLIC}:8080",
               PASSWORD, str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(ROOT),
    )  # fmt: skip
    phone = Phone(proc)
    phone.start_reader()
    return phone


def wait_state(phone: Phone, *states: str, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = phone.next(timeout=deadline - time.monotonic())
        if line.get("state") in states:
            return line
    raise AssertionError(f"no state {states}: {phone.seen}")


def test_phone_behind_symmetric_nat_reaches_the_station_through_turn(
    bed: Testbed, tmp_path: Path
) -> None:
    turn = start_turn(tmp_path, SECRET)
    start_station(tmp_path, turn_secret=SECRET)
    phone = start_phone(PHONES[0], 25)
    try:
        connected = wait_state(phone, "connected", "failed")
        assert connected["state"] == "connected", phone.seen
        # the carrier's symmetric NAT leaves no direct path: a relayed pair carries media
        assert "relay" in connected["pair"], connected
        seconds = phone.seconds(5)
        assert seconds[-1]["size"] == [1280, 720]
        assert sum(s["frames"] for s in seconds) >= 5 * 20, seconds
        assert "allocation" in (tmp_path / "turn.log").read_text().lower()
    finally:
        phone.proc.kill()
        turn.kill()


@pytest.mark.parametrize("relay_offered", [False, True], ids=["stun-only", "with-turn"])
def test_phone_behind_a_port_preserving_nat_reaches_the_station_directly(
    open_bed: Testbed, tmp_path: Path, relay_offered: bool
) -> None:
    """Where both NATs keep the port (the home router, a carrier that does not randomise),
    the station and the phone punch through both: with STUN alone, and also when a
    relay is on offer (the relayed pair may answer first -- the direct check's first
    request meets no hole yet -- and carry the first pictures, but the direct pair's
    check goes on and takes over within seconds: no call through coturn)."""
    turn = start_turn(tmp_path, SECRET)  # coturn answers STUN too
    start_station(tmp_path, turn_secret=SECRET if relay_offered else None)
    phone = start_phone(PHONES[0], 25)
    try:
        connected = wait_state(phone, "connected", "failed")
        assert connected["state"] == "connected", phone.seen
        if not relay_offered:
            assert "relay" not in connected["pair"], connected
        # within 5 s of connecting the path is direct, and stays so: [local, remote], the
        # phone's own address is its candidate's base (RFC 8445), the station's is its
        # home router's public one
        seconds = phone.seconds(10)
        direct = [s for s in seconds if s["pair"] and "relay" not in s["pair"]]
        assert direct and seconds.index(direct[0]) < 5, seconds
        assert seconds[seconds.index(direct[0]) :] == direct, seconds
        assert all(s["pair"][1] in ("srflx", "prflx") for s in direct), seconds
        assert seconds[-1]["size"] == [1280, 720]
        assert sum(s["frames"] for s in seconds[-5:]) >= 5 * 20, seconds
        for _ in range(60):  # bounded: the phone ends after 25 s with its last pair
            if "done" in (last := phone.next(timeout=40)):
                break
        assert last["pair"] and "relay" not in last["pair"], last  # never moved to a relay
        assert [float(line.split()[-1]) for line in last["station"]] == [0], last  # nor the station
    finally:
        phone.proc.kill()
        turn.kill()

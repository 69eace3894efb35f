"""coturn and the station, started inside the network test bed's namespaces (what the
test bed's tests share)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ..conftest import BIN
from .testbed import HOME, PUBLIC, TURN_ADDR, popen

PASSWORD = "net-test-password"


SECRET = "net-turn-secret-0123456789"


def write_turnserver_conf(path: Path, secret: str) -> None:
    """coturn as the role configures it; its pid file and database in the test's dir."""
    path.write_text(
        f"pidfile={path.parent / 'turnserver.pid'}\nuserdb={path.parent / 'turndb'}\n"
        f"listening-ip={TURN_ADDR}\nrelay-ip={TURN_ADDR}\nlistening-port=3478\n"
        "min-port=49152\nmax-port=49400\nrealm=videostation\nuse-auth-secret\n"
        f"static-auth-secret={secret}\nfingerprint\nno-tls\nno-dtls\nno-cli\n"
        "no-multicast-peers\nrelay-threads=1\nlog-file=stdout\nsimple-log\nverbose\n"
    )


def write_station_conf(
    path: Path,
    state: Path,
    *,
    secret: str | None,
    camera: str = "",
    auto_answer: bool = True,
    size: tuple[int, int] = (1280, 720),
) -> None:
    """``camera``: more lines for the ``[camera]`` section, e.g. ``'adaptive = false'``;
    ``secret`` None: no TURN, only the STUN server (coturn answers both); ``size``: the
    camera's width and height."""
    turn = (
        f'turn_urls = ["turn:{TURN_ADDR}:3478?transport=udp"]\nturn_secret = "{secret}"\n'
        if secret is not None
        else ""
    )
    path.write_text(
        f'[server]\nhost = "0.0.0.0"\nport = 8080\nstate_dir = "{state}"\n'
        f'[camera]\nsource = "test"\nwidth = {size[0]}\nheight = {size[1]}\nfps = 30\n'
        f"{camera}\n"
        '[microphone]\nsource = "test"\n'
        f"[call]\nauto_answer = {'true' if auto_answer else 'false'}\n"
        "auto_answer_delay_seconds = 0\n"
        f'[ice]\nstun_urls = ["stun:{TURN_ADDR}:3478"]\n{turn}'
        '[screen]\npower_command = ""\n'
    )


def start_turn(tmp_path: Path, secret: str) -> subprocess.Popen[str]:
    conf = tmp_path / "turnserver.conf"
    write_turnserver_conf(conf, secret)
    log = open(tmp_path / "turn.log", "w")  # noqa: SIM115 - lives as long as the process
    return popen(PUBLIC, ["turnserver", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)


def start_station(
    tmp_path: Path,
    *,
    turn_secret: str | None,
    camera: str = "",
    auto_answer: bool = True,
    size: tuple[int, int] = (1280, 720),
) -> subprocess.Popen[str]:
    """The station serving in the home namespace, once it answers its health check."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(
        [str(BIN / "videostation"), "set-password", "--stdin", "--state-dir", str(state)],
        input=PASSWORD, text=True, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    conf = tmp_path / "station.toml"
    write_station_conf(
        conf, state, secret=turn_secret, camera=camera, auto_answer=auto_answer, size=size
    )
    log = open(tmp_path / "station.log", "w")  # noqa: SIM115
    proc = popen(
        HOME, [str(BIN / "videostation"), "serve", "--config", str(conf)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    health = "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/api/health/', timeout=1)"
    for _ in range(150):  # bounded: 15 s
        probe = subprocess.run(
            ["ip", "netns", "exec", HOME, sys.executable, "-c", health],
            capture_output=True, timeout=10,
        )  # fmt: skip
        if probe.returncode == 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError("station did not start:\n" + (tmp_path / "station.log").read_text())

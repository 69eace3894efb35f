"""The README's Quick start on a fresh Debian 12 machine.

A minbase Debian 12 root with only ``git make python3 ca-certificates sudo`` (cached
as a tarball), a ``git clone`` of this checkout (so only committed files count), and
``make run`` in it until ``/api/health/`` answers on loopback; then the service is
stopped the way Ctrl-C or systemd would. The apt and pip download caches are shared
with the other provisioning tests, so a second run downloads nothing big.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import free_port
from ..helpers import station_health
from .rootfs import REPO, Chroot, chroot_env, debian_root

FRESH_PACKAGES = ("git", "make", "python3", "ca-certificates", "sudo")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def clone_into(chroot: Chroot) -> Path:
    """``git clone`` of this checkout into /root/videostation; uncommitted files do not
    come along."""
    dest = chroot.root / "root/videostation"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return dest


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_make_run_on_a_fresh_debian_root() -> None:
    started = time.monotonic()
    with debian_root(FRESH_PACKAGES, version="fresh-v1") as chroot:
        clone_into(chroot)
        port = free_port()
        log = chroot.root / "root/make-run.log"
        with log.open("w") as out:
            make = subprocess.Popen(
                chroot.command("make", "-C", "/root/videostation", "run", f"PORT={port}"),
                env=chroot_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 2000
            health = None
            while health is None and time.monotonic() < deadline and make.poll() is None:
                time.sleep(2)
                health = station_health(port)
            assert health is not None, f"make run exited {make.poll()}:\n{log.read_text()[-6000:]}"
            assert health.get("status") == "ok", health
            ready = time.monotonic() - started
            # Stop it as systemd would: SIGTERM to the service make started.
            serving = _children(make.pid)
            assert serving, "make run has no child process"
            for pid in serving:
                os.kill(pid, signal.SIGTERM)
            assert make.wait(timeout=60) == 0, log.read_text()[-6000:]
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait(timeout=30)
        output = log.read_text()
        print(f"fresh root: healthy after {ready:.0f} s\n{output}")
        # One line per step, nothing alarming on a first start on a machine with no display.
        for line in (
            "Installing system packages",
            "Creating the virtualenv",
            "Installing the station into .venv",
            "Development master password: videostation",
            f"Serving on http://127.0.0.1:{port}",
        ):
            assert line in output, output
        assert "logged out" not in output, output
        assert "WARNING" not in output and "Traceback" not in output, output
        assert "screen power control disabled" in output  # said once, at INFO
        # `make run` installed what running needs, not the test toolchain.
        pip = chroot.run(
            "/root/videostation/.venv/bin/python", "-m", "pip", "list", "--format=json"
        )
        installed = {p["name"].lower() for p in json.loads(pip.stdout)}
        assert {"aiohttp", "aiortc", "av"} <= installed
        for tool in ("ansible-core", "playwright", "mypy", "pytest", "ruff"):
            assert tool not in installed, tool
        dpkg = chroot.run("dpkg-query", "-W", "-f", "${Package}\n").stdout.split()
        for unwanted in ("avahi-daemon", "chromium", "gcc"):
            assert unwanted not in dpkg, unwanted

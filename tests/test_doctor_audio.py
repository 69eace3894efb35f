"""``videostation doctor --audio`` against a real private PipeWire 0.3.65 (slow).

Working: the role's echo-cancel drop-in in a virtual room (tests/pipewire_room.py),
the test sound is heard by the microphone and removed from ``echo-cancel-source``.
Broken: the same room without the drop-in (a station where the role's file is
missing): the doctor says echo cancelling is not loaded and how to fix it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import skip_or_fail
from tests.pipewire_room import PACKAGES, PipeWireRoom, missing_programs

pytestmark = [pytest.mark.slow, pytest.mark.realtime]  # alone in make test: see test_echo_cancel


@pytest.fixture(autouse=True)
def _needs_pipewire() -> None:
    missing = missing_programs()
    if missing:
        skip_or_fail(f"needs {', '.join(missing)} (apt install {PACKAGES})")


def doctor_audio(room: PipeWireRoom, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text('[microphone]\nsource = "pulse"\ndevice = "echo-cancel-source"\n')
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "doctor", "--audio", "--config", str(config)],
        env={**room.env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_doctor_audio_hears_the_room_and_the_echo_canceller(tmp_path: Path) -> None:
    with PipeWireRoom(tmp_path / "pw") as room:
        run = doctor_audio(room, tmp_path)
    out = run.stdout
    print(out)
    assert run.returncode == 0, out + run.stderr
    assert "[ok  ] echo cancelling " in out and "loaded: echo-cancel-source" in out
    assert "[ok  ] microphone hears the room" in out and "in room-mic" in out
    assert "[ok  ] echo cancellation " in out and "active: the test sound is" in out
    assert out.rstrip().endswith("All good.")


def test_doctor_audio_without_the_drop_in_says_how_to_fix_it(tmp_path: Path) -> None:
    with PipeWireRoom(tmp_path / "pw", drop_in=None) as room:
        run = doctor_audio(room, tmp_path)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "[FAIL] echo cancelling" in out
    assert "not loaded: no 'echo-cancel-source' and 'echo-cancel-sink' in PipeWire" in out
    assert "/etc/pipewire/pipewire.conf.d/60-videostation-echo-cancel.conf" in out
    assert "systemctl --user restart pipewire pipewire-pulse wireplumber" in out


def test_doctor_audio_without_pipewire_says_so(tmp_path: Path) -> None:
    runtime = tmp_path / "empty-run"
    runtime.mkdir(mode=0o700)
    config = tmp_path / "config.toml"
    config.write_text("")
    run = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "doctor", "--audio", "--config", str(config)],
        env={"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[FAIL] PipeWire" in run.stdout and "no PipeWire" in run.stdout
    assert "loginctl enable-linger" in run.stdout

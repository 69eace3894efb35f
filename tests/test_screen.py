"""Display power through a fake ``wlopm`` that records how it was called."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import appliance.screen
from appliance.config import ScreenConfig
from appliance.screen import ScreenPower

IDLE = 0.2


class FakeWlopm:
    """An executable that appends its arguments, ``|``-separated, to a log file."""

    def __init__(self, tmp_path: Path, *, body: str = "") -> None:
        self.log = tmp_path / "calls.log"
        self.path = tmp_path / "wlopm"
        self.path.write_text(
            "#!/bin/sh\n"
            f"{body}\n"
            f"for a in \"$@\"; do printf '%s|' \"$a\"; done >> '{self.log}'\n"
            f"echo >> '{self.log}'\n"
        )
        self.path.chmod(0o755)

    def calls(self) -> list[str]:
        if not self.log.exists():
            return []
        return [line.rstrip("|") for line in self.log.read_text().splitlines()]

    async def eventually(self, expected: list[str], *, timeout: float = 3.0) -> None:
        """Wait until the calls are ``expected`` (a loaded CI box spawns slowly)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.calls() != expected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert self.calls() == expected

    def config(self, idle: float = IDLE, **kwargs: str) -> ScreenConfig:
        # idle_blank_seconds is whole seconds in the config file; fractions keep tests fast.
        return ScreenConfig(idle_blank_seconds=idle, power_command=str(self.path), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def wlopm(tmp_path: Path) -> FakeWlopm:
    return FakeWlopm(tmp_path)


async def test_wake_switches_the_screen_on(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())
    await screen.wake()
    assert wlopm.calls() == ["--on|*"]
    await screen.close()


async def test_blanks_after_the_idle_time(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())
    await screen.wake()

    await asyncio.sleep(IDLE / 2)
    assert wlopm.calls() == ["--on|*"]
    await wlopm.eventually(["--on|*", "--off|*"])
    await screen.close()


async def test_an_untouched_station_goes_dark(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())  # no wake, no activity since start-up
    await wlopm.eventually(["--off|*"])
    await screen.close()


async def test_activity_restarts_the_idle_timer(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())
    await screen.wake()

    for _ in range(3):
        await asyncio.sleep(IDLE * 0.6)
        await screen.activity()
    assert wlopm.calls() == ["--on|*"]  # 0.36 s in, never 0.2 s idle

    await wlopm.eventually(["--on|*", "--off|*"])
    await screen.close()


async def test_activity_on_a_dark_screen_lights_it(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())
    await screen.wake()
    await wlopm.eventually(["--on|*", "--off|*"])

    await screen.activity()

    assert wlopm.calls() == ["--on|*", "--off|*", "--on|*"]
    await screen.close()


async def test_hold_prevents_blanking(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())
    await screen.wake()
    screen.hold(True)  # ringing

    await asyncio.sleep(IDLE * 3)
    assert wlopm.calls() == ["--on|*"]

    screen.hold(False)  # hung up: idle from now on
    await wlopm.eventually(["--on|*", "--off|*"])
    await screen.close()


async def test_wake_during_a_slow_blank_ends_with_the_screen_on(tmp_path: Path) -> None:
    wlopm = FakeWlopm(tmp_path, body='[ "$1" = --off ] && sleep 0.5')
    screen = ScreenPower(wlopm.config())
    await screen.wake()
    await asyncio.sleep(IDLE + 0.1)  # "--off" is running now

    await screen.wake()  # a ring

    await asyncio.sleep(0.6)
    assert wlopm.calls()[-1] == "--on|*"
    await screen.close()


async def test_zero_never_blanks(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config(idle=0))
    await screen.wake()
    await asyncio.sleep(0.3)
    assert wlopm.calls() == ["--on|*"]
    assert screen.describe().endswith("never blank")
    await screen.close()


async def test_output_is_passed_as_one_argument_not_through_a_shell(
    wlopm: FakeWlopm, tmp_path: Path
) -> None:
    screen = ScreenPower(wlopm.config(output=f"HDMI-A-1; touch {tmp_path}/pwned"))
    await screen.wake()
    assert wlopm.calls() == [f"--on|HDMI-A-1; touch {tmp_path}/pwned"]
    assert not (tmp_path / "pwned").exists()
    await screen.close()


async def test_close_stops_the_idle_timer(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(wlopm.config())
    await screen.wake()
    await screen.close()
    await screen.close()

    await asyncio.sleep(IDLE + 0.2)
    await screen.wake()  # after close: ignored
    assert wlopm.calls() == ["--on|*"]


async def test_missing_command_warns_once_and_does_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")  # a kiosk with a display
    config = ScreenConfig(power_command=str(tmp_path / "no-such-wlopm"))
    screen = ScreenPower(config)

    await screen.wake()
    await screen.activity()
    screen.hold(True)
    screen.hold(False)
    await screen.close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no-such-wlopm not found" in warnings[0].getMessage()
    assert screen.describe().startswith("unavailable:")


async def test_missing_command_without_a_display_is_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A development machine with no display: no warning, one INFO line."""
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    caplog.set_level(logging.INFO, logger="appliance.screen")
    screen = ScreenPower(ScreenConfig(power_command=str(tmp_path / "no-such-wlopm")))
    await screen.wake()
    await screen.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len([m for m in infos if "no-such-wlopm not found" in m]) == 1, infos


async def test_no_command_configured(caplog: pytest.LogCaptureFixture) -> None:
    screen = ScreenPower(ScreenConfig(power_command=""))
    await screen.wake()
    await screen.close()
    assert not caplog.records
    assert screen.describe() == "unavailable: no power command configured (the screen stays on)"


async def test_a_failing_command_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wlopm = FakeWlopm(tmp_path, body='echo "failed to connect to display" >&2; exit 1')
    screen = ScreenPower(wlopm.config())

    await screen.wake()
    await screen.wake()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "exit code 1: failed to connect to display" in warnings[0]
    await screen.close()


async def test_a_hanging_command_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(appliance.screen, "COMMAND_TIMEOUT_SECONDS", 0.2)
    wlopm = FakeWlopm(tmp_path, body="exec sleep 30")
    screen = ScreenPower(wlopm.config(idle=0))

    await asyncio.wait_for(screen.wake(), timeout=2)

    assert any("took longer" in r.getMessage() for r in caplog.records)
    await screen.close()


def test_describe(wlopm: FakeWlopm) -> None:
    screen = ScreenPower(ScreenConfig(power_command=str(wlopm.path), idle_blank_seconds=300))
    assert screen.describe() == f"{wlopm.path} --on/--off *, blank after 300 s idle"

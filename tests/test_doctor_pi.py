"""``videostation doctor`` on the Pi's architecture without Raspberry Pi OS: each
missing piece named with how to get it; on other architectures nothing is looked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import doctor

from .conftest import make_config


def test_each_missing_pi_piece_is_named_with_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    monkeypatch.setattr(doctor, "_is_raspberry_pi_os", lambda: False)
    findings = doctor.check_pi_pieces("aarch64")
    assert [f.what for f in findings] == ["picamera2", "lgpio", "labwc", "wlopm"]
    for finding in findings:
        assert not finding.ok and finding.warning  # the station runs without them
        assert "plain Debian" in finding.detail and "Get it: apt install" in finding.detail
    assert "python3-picamera2" in findings[0].detail
    assert "--system-site-packages" in findings[0].detail


def test_pieces_that_are_there_are_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/bin/{name}")
    findings = doctor.check_pi_pieces("aarch64")
    assert findings and all(f.ok for f in findings)


def test_not_looked_for_on_x86() -> None:
    assert doctor.check_pi_pieces("x86_64") == []


def test_doctor_prints_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(doctor.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(doctor, "_is_raspberry_pi_os", lambda: False)
    config = make_config(tmp_path / "state", server={"port": 1})
    doctor.run_doctor(config)
    out = capsys.readouterr().out
    for piece in ("picamera2", "lgpio"):
        assert any(line.startswith("[warn]") and f" {piece} " in line for line in out.splitlines())

"""The `videostation` command, run as a real process."""

from __future__ import annotations

import argparse
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.auth import Auth
from appliance.store import Store

from .conftest import PASSWORD, free_port, http_json, run_cli, start_live, stop_live


def test_help_lists_every_command() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("serve", "set-password", "guest-link", "kiosk-url", "doctor"):
        assert command in out.stdout


def test_runs_as_a_module_too(tmp_path: Path) -> None:
    """``python -m appliance.cli`` (how doctor --audio is run under sudo -u) dispatches
    like the console script: the command table exists before ``main`` runs."""
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "kiosk-url", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "/#/kiosk?key=" in out.stdout


def test_set_password_from_stdin(tmp_path: Path) -> None:
    state = tmp_path / "s"
    short = run_cli("set-password", "--stdin", "--state-dir", str(state), input="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    ok = run_cli("set-password", "--stdin", "--state-dir", str(state), input=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    # The first password logs nobody out; a change does, and says so.
    assert "logged out" not in ok.stdout and "Master password set" in ok.stdout
    again = run_cli("set-password", "--stdin", "--state-dir", str(state), input=PASSWORD + "\n")
    assert again.returncode == 0 and "Every user session was logged out" in again.stdout
    auth = Auth(Store(state / "station.db"), state, station_room="station")
    auth.check_password(PASSWORD, client="test")  # raises if wrong
    with pytest.raises(PermissionError):
        auth.check_password("wrong password", client="test")
    for name in ("secret.key", "kiosk.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_guest_link_prints_a_working_link_and_qr(tmp_path: Path) -> None:
    state = tmp_path / "s"
    out = run_cli(
        "guest-link",
        "--state-dir",
        str(state),
        "--label",
        "Grandma",
        "--ttl",
        "600",
        "--public-url",
        "https://door.example.net",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    url = lines[-1]
    assert url.startswith("https://door.example.net/#/room/station?guest_token=ey")
    assert len(lines) > 20 and "█" in lines[0]  # the QR code, drawn with blocks
    auth = Auth(Store(state / "station.db"), state, station_room="station")
    session = auth.redeem_guest_token(url.split("guest_token=")[1])
    assert session.room == "station" and session.label == "Grandma"
    bad = run_cli("guest-link", "nowhere", "--state-dir", str(state))
    assert bad.returncode == 1 and "no room 'nowhere'" in bad.stderr


def test_kiosk_url_carries_the_key_in_the_fragment(tmp_path: Path) -> None:
    state = tmp_path / "s"
    out = run_cli(
        "kiosk-url",
        "--state-dir",
        str(state),
        "--port",
        "9000",
        "--public-url",
        "https://door.example.net",
    )
    assert out.returncode == 0
    key = (state / "kiosk.key").read_text().strip()
    # without TLS the screen talks to the local address, not the public name
    assert out.stdout.strip() == f"http://127.0.0.1:9000/#/kiosk?key={key}"


def test_a_bad_config_stops_with_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[server]\nport = "eighty"\n')
    out = run_cli("serve", "--config", str(cfg), "--state-dir", str(tmp_path / "s"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "videostation: configuration error: server.port: expected an integer, got 'eighty'"
    ]
    cfg.write_text("[camera]\nsource = 'webcam'\n")
    out = run_cli("doctor", "--config", str(cfg))
    assert out.returncode == 2 and "camera.source: expected one of" in out.stderr
    cfg.write_text("[camera\n")
    out = run_cli("kiosk-url", "--config", str(cfg))
    assert out.returncode == 2 and "not valid TOML" in out.stderr
    out = run_cli("kiosk-url", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "file not found" in out.stderr


def test_doctor_says_what_is_wrong(tmp_path: Path) -> None:
    state = tmp_path / "s"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[camera]\nsource = "test"\n[microphone]\nsource = "test"\n'
        '[screen]\npower_command = ""\n[server]\nport = 18099\n'
    )
    before = run_cli("doctor", "--config", str(cfg), "--state-dir", str(state))
    assert before.returncode == 1
    assert "[FAIL] password" in before.stdout and "videostation set-password" in before.stdout
    assert "[warn] TLS" in before.stdout and "HTTPS" in before.stdout
    run_cli(
        "set-password",
        "--stdin",
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
        input=PASSWORD + "\n",
    )
    after = run_cli("doctor", "--config", str(cfg), "--state-dir", str(state))
    assert after.returncode == 0, after.stdout
    assert "[ok  ] camera" in after.stdout and "[ok  ] microphone" in after.stdout
    assert "All good." in after.stdout
    (state / "kiosk.key").chmod(0o644)
    loose = run_cli("doctor", "--config", str(cfg), "--state-dir", str(state))
    assert loose.returncode == 1 and "chmod 600" in loose.stdout


def test_tls_with_a_doctor_made_certificate(tmp_path: Path) -> None:
    state = tmp_path / "live-state"
    made = run_cli(
        "doctor", "--make-cert", "--state-dir", str(state), "--public-url", "https://localhost:8443"
    )
    assert "[ok  ] make-cert" in made.stdout, made.stdout
    cert, key = state / "tls-cert.pem", state / "tls-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    kiosk_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f"[server]\nkiosk_port = {kiosk_port}\n")
    live = start_live(
        tmp_path, "--cert", str(cert), "--key", str(key), "--config", str(config), tls=True
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        status, health, headers = http_json(f"{live.base_url}/api/health/", context=context)
        assert status == 200 and health["status"] == "ok"
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        login = {"password": PASSWORD}
        _, _, headers = http_json(f"{live.base_url}/api/auth/login", login, context=context)
        cookie = headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # The station's own screen uses a loopback-only plain-HTTP listener: Chromium on
        # the Pi needs no certificate for the public name (a self-signed one would stop it).
        kiosk_url = live.cli(
            "kiosk-url", "--cert", str(cert), "--key", str(key), "--config", str(config)
        ).stdout.strip()
        key_value = (state / "kiosk.key").read_text().strip()
        assert kiosk_url == f"http://127.0.0.1:{kiosk_port}/#/kiosk?key={key_value}"
        _, body, headers = http_json(
            f"http://127.0.0.1:{kiosk_port}/api/auth/kiosk", {"key": key_value}
        )
        assert body == {"role": "kiosk", "room": "station"}
        assert "Secure" not in headers["Set-Cookie"]
        assert "Strict-Transport-Security" not in headers
    finally:
        assert stop_live(live) == 0


def test_kiosk_url_says_when_its_screen_cannot_pair(tmp_path: Path) -> None:
    """Under TLS without the loopback listener, the screen loads the public URL, where
    the kiosk key is refused (issue 22, item 7): the operator is told."""
    config = tmp_path / "config.toml"
    config.write_text('[server]\nkiosk_port = 0\ncert = "c.pem"\nkey = "k.pem"\n')
    out = run_cli(
        "kiosk-url", "--state-dir", str(tmp_path / "s"), "--config", str(config),
        "--public-url", "https://door.example.net",
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.startswith("https://door.example.net/#/kiosk?key=")
    assert "is not a loopback address" in out.stderr and "server.kiosk_port" in out.stderr
    out = run_cli("kiosk-url", "--state-dir", str(tmp_path / "s"))
    assert out.returncode == 0 and out.stderr == ""


def test_serve_answers_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    # a figure for the notes; the benchmark in tests/bench compares it with a bare server
    print(f"videostation serve answered /api/health/ after {live.startup_seconds:.2f} s")
    assert stop_live(live) == 0
    assert "shutting down" in live.log_path.read_text()


def test_every_sub_command_has_its_handler() -> None:
    """The parser's sub-commands and the dispatch table are the same list."""
    from appliance.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)

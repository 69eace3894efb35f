"""The Ansible role ``videostation``: lint, syntax, and the role applied for real.

The slow test debootstraps Debian 12 (cached as a tarball under
``/var/cache/videostation-tests``), chroots into it with /proc, /sys and /dev
bind-mounted and applies the role through ``image/apply-role`` -- the same hook the
image build runs in its chroot -- with the Pi-only steps off. A second run must
change nothing. Needs root and debootstrap; without them the test is skipped,
except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..helpers import skip_or_fail
from .conftest import provisioned_chroot
from .rootfs import HOST_ARCH, RECAP, REPO, ansible_core_spec, chroot_env

ANSIBLE_DIR = REPO / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "videostation"
BIN = Path(sys.executable).parent
UNITS = ("videostation.service", "videostation-kiosk.service", "videostation-firstboot.service")


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed (pip install ansible-core ansible-lint)")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["NO_COLOR"] = "1"
    return env


# --- fast checks ------------------------------------------------------------------


def test_ansible_lint_production_profile_is_clean() -> None:
    result = subprocess.run(
        [_tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_syntax_check() -> None:
    result = subprocess.run(
        [_tool("ansible-playbook"), "--syntax-check", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@functools.cache
def _defaults() -> dict[str, object]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def var(provisioned: dict[str, object], name: str) -> Any:
    """A role variable of the provisioned root: its own, else the role's default."""
    given = provisioned["vars"]
    assert isinstance(given, dict)
    if name in given:
        return given[name]
    default = _defaults()[name]
    assert not (isinstance(default, str) and "{{" in default), f"{name}: a templated default"
    return default


def _uid(provisioned: dict[str, object]) -> int:
    return int(var(provisioned, "videostation_uid"))


def _specs() -> dict[str, dict[str, object]]:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def test_every_default_is_documented_and_in_argument_specs() -> None:
    defaults = _defaults()
    specs = _specs()
    assert set(defaults) == set(specs), "defaults/main.yml and argument_specs.yml differ"
    for name, spec in specs.items():
        assert spec.get("description"), f"{name} has no description"
    # A comment above every variable (or its group) in defaults/main.yml.
    lines = (ROLE / "defaults" / "main.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^videostation_\w+:", line):
            block = lines[max(0, index - 12) : index]
            assert any(b.startswith("#") for b in block), f"{line} has no comment above it"


def test_example_inventory_has_two_distinct_stations() -> None:
    inventory = yaml.safe_load((ANSIBLE_DIR / "inventory" / "example.yml").read_text())
    hosts = inventory["videostation"]["hosts"]
    assert len(hosts) == 2
    specs = _specs()
    keys = (
        "videostation_station_name",
        "videostation_public_url",
        "videostation_button_pin",
        "videostation_camera_source",
        "videostation_display_rotation",
    )
    first, second = hosts.values()
    for key in keys:
        assert key in first and key in second, key
        assert key in specs, key
    assert first["videostation_station_name"] != second["videostation_station_name"]
    assert first["videostation_public_url"] != second["videostation_public_url"]
    assert first["videostation_button_pin"] != second["videostation_button_pin"]


def test_inventory_parses_with_per_host_variables() -> None:
    result = subprocess.run(
        [_tool("ansible-inventory"), "-i", "inventory/example.yml", "--list"],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    hostvars = json.loads(result.stdout)["_meta"]["hostvars"]
    rotations = {h: v["videostation_display_rotation"] for h, v in hostvars.items()}
    assert sorted(rotations.values()) == [0, 90]


def test_secrets_are_never_logged() -> None:
    """Every task that touches the master password or the metrics tokens carries no_log."""
    for path in (ROLE / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            uses_password = any(
                secret in json.dumps(task.get(key, ""))
                for key in task
                if key not in ("when", "name")
                for secret in ("videostation_master_password", "videostation_metrics_tokens")
            )
            if uses_password:
                assert task.get("no_log") is True, f"{path.name}: {task['name']} lacks no_log"


# --- the role applied for real into a Debian 12 chroot -------------------------------


@pytest.mark.slow
@pytest.mark.timeout(5400)  # the first one also builds the chroot (arm64: emulated)
def test_role_converges_then_changes_nothing(provisioned: dict[str, object]) -> None:
    """The role converges; applied again it changes nothing. Every run checks the second
    apply on this machine's architecture; under arm64 emulation it runs nightly
    (``make test-nightly``), and ``make test`` checks the first run there."""
    first = provisioned["first"]
    second = provisioned["second"]
    assert isinstance(first, dict)
    timings = provisioned["timings"]
    print(f"chroot timings: {timings}")
    assert first["failed"] == 0 and first["changed"] > 0
    if provisioned["twice"]:
        assert isinstance(second, dict), "the second apply did not run"
        assert second["failed"] == 0
        assert second["changed"] == 0, str(provisioned["second_output"])[-8000:]
    else:
        assert second is None and provisioned["arch"] != HOST_ARCH
    # Plain Debian: the role says what it skipped (Raspberry Pi OS only packages).
    output = str(provisioned["first_output"])
    assert "Skipped (videostation_pi is false)" in output, output[-8000:]
    for piece in ("python3-picamera2", "python3-lgpio", "labwc", "wlopm"):
        assert piece in output.split("Skipped (videostation_pi is false)")[1][:600], piece


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_doctor_names_each_missing_pi_piece(provisioned: dict[str, object]) -> None:
    """On the Pi's architecture without Raspberry Pi OS: each missing piece and how to
    get it. On x86 the Pi pieces are not looked for."""
    result = provisioned_chroot(provisioned).run(
        "/opt/videostation/venv/bin/videostation",
        "doctor",
        "--config",
        "/etc/videostation/config.toml",
        "--port",
        "1",  # nothing listens there: the port check must not find another station
        check=False,
    )
    lines = result.stdout.splitlines()
    pieces = {
        "picamera2": "python3-picamera2",
        "lgpio": "python3-lgpio",
        "labwc": "labwc",
        "wlopm": "wlopm",
    }
    for piece, package in pieces.items():
        found = [line for line in lines if line.split("]", 1)[-1].split()[:1] == [piece]]
        if provisioned["arch"] == "arm64":
            assert len(found) == 1, result.stdout
            assert found[0].startswith("[warn]") and "plain Debian" in found[0], found[0]
            assert f"apt install {package}" in found[0], found[0]
        else:
            assert not found, result.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_videostation_cli_runs_from_the_venv(provisioned: dict[str, object]) -> None:
    result = provisioned_chroot(provisioned).run(
        "/opt/videostation/venv/bin/videostation", "--help"
    )
    assert "serve" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_config_is_rendered_and_valid(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    path = root / "etc/videostation/config.toml"
    config = tomllib.loads(path.read_text())
    name = var(provisioned, "videostation_station_name")
    assert config["station"]["name"] == name
    assert config["station"]["public_url"] == var(provisioned, "videostation_public_url")
    assert config["gpio"]["button_pin"] == var(provisioned, "videostation_button_pin")
    assert config["ice"]["turn_secret"] == var(provisioned, "videostation_turn_secret")
    assert config["microphone"]["device"] == "echo-cancel-source"
    assert config["screen"]["power_command"] == ""  # no wlopm on plain Debian
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.stat().st_gid == _uid(provisioned)
    # The service's own loader accepts it.
    result = provisioned_chroot(provisioned).run(
        "/opt/videostation/venv/bin/python",
        "-c",
        "import appliance.config as c; print(c.load(c.DEFAULT_CONFIG_PATH).station.name)",
    )
    assert result.stdout.strip() == name


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_coturn_secret_matches_the_station(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    conf = root / "etc/turnserver.conf"
    if not var(provisioned, "videostation_coturn_enabled"):  # the arm64 (VM) root's variables
        assert not conf.exists() and not (root / "usr/bin/turnserver").exists()
        return
    text = conf.read_text()
    assert f"static-auth-secret={var(provisioned, 'videostation_turn_secret')}\n" in text
    assert "use-auth-secret" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_service_user_has_the_fixed_uid(provisioned: dict[str, object]) -> None:
    chroot = provisioned_chroot(provisioned)
    entry = chroot.run("getent", "passwd", "videostation").stdout.strip().split(":")
    assert entry[2] == str(_uid(provisioned)) and entry[3] == str(_uid(provisioned))
    groups = chroot.run("id", "-nG", "videostation").stdout.split()
    assert {"video", "render", "audio", "gpio", "input"} <= set(groups)
    root = provisioned["root"]
    assert isinstance(root, Path)
    assert (root / "var/lib/systemd/linger/videostation").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_units_are_enabled(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    for unit in UNITS:
        result = subprocess.run(
            ["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True, text=True
        )
        assert result.stdout.strip() == "enabled", (unit, result.stdout, result.stderr)
    getty = subprocess.run(
        ["systemctl", f"--root={root}", "is-enabled", "getty@tty1.service"],
        capture_output=True,
        text=True,
    )
    assert getty.stdout.strip() != "enabled"
    assert os.readlink(root / "etc/systemd/system/default.target").endswith("graphical.target")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_installed_units_verify_and_match_the_repository(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    for unit in UNITS:
        installed = (root / "etc/systemd/system" / unit).read_text()
        expected = (REPO / "systemd" / unit).read_text()
        if unit == "videostation.service":
            expected = expected.replace("870", str(_uid(provisioned)))
        assert installed == expected, unit
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", f"--root={root}", unit],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    for source, target in (
        (
            "systemd/pipewire/60-videostation-echo-cancel.conf",
            "etc/pipewire/pipewire.conf.d/60-videostation-echo-cancel.conf",
        ),
        ("systemd/kiosk-session", "usr/local/libexec/videostation/kiosk-session"),
        ("systemd/pam.d/videostation-kiosk", "etc/pam.d/videostation-kiosk"),
        ("systemd/sysusers.d/videostation.conf", "etc/sysusers.d/videostation.conf"),
        ("systemd/tmpfiles.d/videostation.conf", "etc/tmpfiles.d/videostation.conf"),
    ):
        assert (root / target).read_text() == (REPO / source).read_text(), target
    policy = json.loads((root / "etc/chromium/policies/managed/videostation.json").read_text())
    shipped = (REPO / "systemd/chromium/videostation.json").read_text()
    # Under TLS the kiosk page comes from the loopback-only listener: the policies follow it.
    given = provisioned["vars"]
    assert isinstance(given, dict)
    if given.get("videostation_tls_cert") and given.get("videostation_tls_key"):
        shipped = shipped.replace("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    expected = shipped
    assert policy == json.loads(expected)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_echo_cancel_module_is_available(provisioned: dict[str, object]) -> None:
    """The drop-in names the WebRTC AEC plugin: the package providing it is installed."""
    root = provisioned["root"]
    assert isinstance(root, Path)
    found = list(root.glob("usr/lib/*/spa-0.2/aec/libspa-aec-webrtc.so"))
    assert found, "libspa-aec-webrtc.so missing (libspa-0.2-modules)"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_clock_is_kept_across_reboots(provisioned: dict[str, object]) -> None:
    """A Pi has no clock battery: systemd-timesyncd restores the last known time at boot
    (before time-sync.target, which the service starts after) and sets it from the
    network; the service's unit waits for that target."""
    root = provisioned["root"]
    assert isinstance(root, Path)
    assert (root / "usr/lib/systemd/systemd-timesyncd").exists() or (
        root / "lib/systemd/systemd-timesyncd"
    ).exists(), "systemd-timesyncd is not installed"
    unit = (root / "etc/systemd/system/videostation.service").read_text()
    assert "time-sync.target" in unit


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_master_password_was_set_once(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    stamp = root / "etc/videostation/.password-stamp"
    assert stamp.stat().st_mode & 0o777 == 0o600
    password = var(provisioned, "videostation_master_password")
    assert password and password not in stamp.read_text()
    for output in (provisioned["first_output"], provisioned["second_output"]):
        assert password not in str(output)
    assert "TASK [videostation : Set the master password]" in str(provisioned["first_output"])
    # Files the CLI wrote in the state dir belong to the service user.
    for path in (root / "var/lib/videostation").rglob("*"):
        assert path.stat().st_uid == _uid(provisioned), path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_metrics_token_is_written_for_the_service_only(
    provisioned: dict[str, object],
) -> None:
    """Issue 25: the vault's scrape token lands in the state dir, mode 0600, the service
    user's, and never in the role's output."""
    root = provisioned["root"]
    assert isinstance(root, Path)
    path = root / "var/lib/videostation/metrics.token"
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == _uid(provisioned)
    tokens = var(provisioned, "videostation_metrics_tokens")
    assert isinstance(tokens, list) and path.read_text().split() == tokens
    for output in (provisioned["first_output"], provisioned["second_output"]):
        assert tokens[0] not in str(output)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_firstboot_applies_and_scrubs_the_boot_file(provisioned: dict[str, object]) -> None:
    """The image's first-boot step, run inside the provisioned root."""
    root = provisioned["root"]
    assert isinstance(root, Path)
    chroot = provisioned_chroot(provisioned)
    boot = root / "boot/firmware"
    boot.mkdir(parents=True, exist_ok=True)
    config_path = root / "etc/videostation/config.toml"
    original = config_path.read_bytes()
    (boot / "videostation.txt").write_text(
        "# written on a laptop\r\n"
        'STATION_NAME=Hall "B"\r\n'
        "HOSTNAME=hall-b\r\n"
        "PASSWORD=first-boot-password\r\n"
        "WIFI_SSID=Office\r\n"
        "WIFI_PASSWORD=wifi-passphrase\r\n"
        "WIFI_COUNTRY=GB\r\n"
    )
    try:
        firstboot = "/usr/local/libexec/videostation/firstboot"
        result = chroot.run(firstboot, "/boot/firmware/videostation.txt", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        config = tomllib.loads(config_path.read_text())
        assert config["station"]["name"] == 'Hall "B"'
        left = (boot / "videostation.txt").read_text()
        assert "first-boot-password" not in left and "wifi-passphrase" not in left
        assert "WIFI_SSID=Office" in left
        wifi = root / "etc/NetworkManager/system-connections/videostation-wifi.nmconnection"
        assert wifi.stat().st_mode & 0o777 == 0o600
        assert "psk=wifi-passphrase" in wifi.read_text()
        assert (root / "etc/hostname").read_text() == "hall-b\n"
        assert config_path.stat().st_gid == _uid(provisioned)
        assert config_path.stat().st_mode & 0o777 == 0o640
    finally:
        config_path.write_bytes(original)


@pytest.mark.slow
@pytest.mark.timeout(900)
# The stage scripts are shell and the role they apply is checked on both architectures
# above; applying it a third time under arm64 emulation would add ~8 minutes.
@pytest.mark.parametrize("provisioned", ["amd64"], indirect=True)
def test_pi_gen_stage_applies_the_role_in_the_root(provisioned: dict[str, object]) -> None:
    """The image's pi-gen stage, run as pi-gen runs it: 00-run.sh on the build
    machine with ROOTFS_DIR, then 01-run-chroot.sh piped into bash in the chroot.
    Pi-only packages stay off through VIDEOSTATION_IMAGE_VARS. Runs last: the stage
    removes the source and the ansible venv from the root."""
    root = provisioned["root"]
    assert isinstance(root, Path)
    chroot = provisioned_chroot(provisioned)
    stage = REPO / "image/stage-videostation/00-videostation"
    (root / "boot/firmware/videostation.txt").unlink(missing_ok=True)
    subprocess.run(
        ["bash", "-e", str(stage / "00-run.sh")],
        env={**os.environ, "ROOTFS_DIR": str(root)},
        check=True,
        timeout=300,
    )
    assert (root / "boot/firmware/videostation.txt").exists()
    assert (root / "usr/src/videostation/ansible/site.yml").exists()
    result = subprocess.run(
        ["chroot", str(root), "/bin/bash", "-e", "-s"],
        input=(stage / "01-run-chroot.sh").read_text(),
        env={
            **chroot_env(),
            "ANSIBLE_CORE_SPEC": ansible_core_spec(),
            "VIDEOSTATION_IMAGE_VARS": "/usr/src/test-vars.yml",
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    recap = RECAP.search(output)
    assert recap and recap["failed"] == "0", output[-5000:]
    assert not (root / "usr/src/videostation").exists()
    assert not (root / "opt/videostation-ansible").exists()
    chroot.run("/opt/videostation/venv/bin/videostation", "--help")

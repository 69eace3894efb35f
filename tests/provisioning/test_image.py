"""The Raspberry Pi OS image: pi-gen stage, first-boot step, shell scripts.

The stage's chroot half (the Ansible role applied by ``image/apply-role``) runs for
real in tests/provisioning/test_ansible.py against a debootstrapped root; here the first-boot
script runs against a fake boot partition and a fake root, with a stand-in CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from ..helpers import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "image"
FIRSTBOOT = IMAGE / "firstboot/videostation-firstboot"
STAGE = IMAGE / "stage-videostation"
SCRIPT_DIRS = ("systemd", "image", "ansible")


def shell_scripts() -> list[Path]:
    """Every shell script we ship: by shebang, plus the rendered-shell templates."""
    found = []
    for directory in SCRIPT_DIRS:
        for path in sorted((REPO / directory).rglob("*")):
            if not path.is_file() or path.is_symlink() or ".pi-gen" in path.parts:
                continue
            with path.open("rb") as fh:
                head = fh.readline()
            if re.match(rb"#!\s*/bin/(ba|da)?sh\b|#!/usr/bin/env (ba)?sh\b", head):
                found.append(path)
    return found


def test_every_shell_script_is_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    for expected in (
        "systemd/kiosk-session",
        "image/firstboot/videostation-firstboot",
        "image/apply-role",
        "image/build.sh",
        "image/stage-videostation/prerun.sh",
        "image/stage-videostation/00-videostation/00-run.sh",
        "image/stage-videostation/00-videostation/01-run-chroot.sh",
        "ansible/roles/videostation/templates/certbot-deploy-hook.sh.j2",
    ):
        assert expected in names, expected


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck_is_clean(script: Path, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        skip_or_fail("shellcheck is not installed (apt-get install shellcheck)")
    target = script
    if script.suffix == ".j2":
        # Jinja expressions become plain words for shellcheck.
        target = tmp_path / script.stem
        target.write_text(re.sub(r"\{\{.*?\}\}", "value", script.read_text()))
    result = subprocess.run(
        ["shellcheck", "--external-sources", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=script.parent,
    )
    assert result.returncode == 0, result.stdout
    if script.suffix != ".j2":
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


# --- pi-gen stage ---------------------------------------------------------------------


def test_pi_gen_stage_layout() -> None:
    assert (STAGE / "prerun.sh").exists()
    assert "copy_previous" in (STAGE / "prerun.sh").read_text()
    assert "IMG_SUFFIX" in (STAGE / "EXPORT_IMAGE").read_text()
    run = STAGE / "00-videostation/00-run.sh"
    chroot = STAGE / "00-videostation/01-run-chroot.sh"
    assert "ROOTFS_DIR" in run.read_text()
    # The chroot half applies the same role as the fleet, through apply-role.
    text = chroot.read_text()
    assert "/usr/src/videostation/image/apply-role" in text
    assert "image-vars.yml" in text
    config = (IMAGE / "config").read_text()
    assert re.search(r"^RELEASE=bookworm$", config, re.MULTILINE)
    assert re.search(r"^ARCH=arm64$", config, re.MULTILINE)
    assert "stage2" in config and "VIDEOSTATION_STAGE_DIR" in config
    assert "DISABLE_FIRST_BOOT_USER_RENAME=1" in config  # tty1 is the kiosk's


def test_image_vars_are_role_variables() -> None:
    specs = yaml.safe_load(
        (REPO / "ansible/roles/videostation/meta/argument_specs.yml").read_text()
    )["argument_specs"]["main"]["options"]
    image_vars = yaml.safe_load((IMAGE / "image-vars.yml").read_text())
    assert set(image_vars) <= set(specs)
    assert image_vars["videostation_pi"] is True
    assert image_vars["videostation_firstboot_enabled"] is True
    assert image_vars["videostation_manage_services"] is False


def test_stage_host_hook_fills_a_root(tmp_path: Path) -> None:
    """00-run.sh, as pi-gen runs it, against an empty directory as ROOTFS_DIR."""
    root = tmp_path / "rootfs"
    root.mkdir()
    subprocess.run(
        ["bash", "-e", str(STAGE / "00-videostation/00-run.sh")],
        env={**os.environ, "ROOTFS_DIR": str(root)},
        check=True,
        timeout=120,
    )
    src = root / "usr/src/videostation"
    assert (src / "ansible/site.yml").exists()
    assert (src / "image/apply-role").stat().st_mode & stat.S_IXUSR
    assert (src / "pyproject.toml").exists()
    assert not (src / ".git").exists() and not (src / ".venv").exists()
    boot = root / "boot/firmware/videostation.txt"
    assert boot.read_text() == (IMAGE / "videostation.txt").read_text()


def test_stage_host_hook_needs_rootfs_dir() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROOTFS_DIR"}
    result = subprocess.run(
        ["bash", "-e", str(STAGE / "00-videostation/00-run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ROOTFS_DIR" in result.stderr


def test_apply_role_says_where_the_checkout_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(IMAGE / "apply-role")],
        env={**os.environ, "VIDEOSTATION_SRC": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "VIDEOSTATION_SRC" in result.stderr


# --- first boot -------------------------------------------------------------------------


CONFIG = """\
[station]
name = "Video Station"
public_url = ""

[server]
port = 8080
"""


@pytest.fixture
def station(tmp_path: Path) -> dict[str, Path]:
    """A fake root (config, hosts) and boot partition, and a stand-in CLI that
    records its arguments and stdin."""
    root = tmp_path / "root"
    (root / "etc/videostation").mkdir(parents=True)
    (root / "etc/videostation/config.toml").write_text(CONFIG)
    (root / "etc/videostation/config.toml").chmod(0o640)
    (root / "etc/hostname").write_text("videostation\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tvideostation\n")
    boot = tmp_path / "boot"
    boot.mkdir()
    cli = tmp_path / "videostation"
    cli.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\ncat > "$0.stdin"\nexit "${CLI_EXIT:-0}"\n'
    )
    cli.chmod(0o755)
    return {"root": root, "boot": boot / "videostation.txt", "cli": cli}


def _firstboot(station: dict[str, Path], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FIRSTBOOT), str(station["boot"])],
        env={
            "PATH": "/usr/bin:/bin",
            "VIDEOSTATION_ROOT": str(station["root"]),
            "VIDEOSTATION_BIN": str(station["cli"]),
            "VIDEOSTATION_RUNAS": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(station: dict[str, Path]) -> dict[str, dict[str, object]]:
    return tomllib.loads((station["root"] / "etc/videostation/config.toml").read_text())


def test_firstboot_applies_the_settings_and_removes_the_secrets(station: dict[str, Path]) -> None:
    station["boot"].write_text(
        "# from Windows Notepad\r\n"
        'STATION_NAME=Grandma\'s "kitchen" \\ door\r\n'
        "PUBLIC_URL='https://kitchen.example.net'\r\n"
        "HOSTNAME=kitchen\r\n"
        "PASSWORD = s3cret pass\r\n"
        "WIFI_SSID=Home Net\r\n"
        "WIFI_PASSWORD=wifi-s3cret\r\n"
        "WIFI_COUNTRY=DE\r\n"
    )
    result = _firstboot(station)
    assert result.returncode == 0, result.stderr

    config = _config(station)
    assert config["station"]["name"] == 'Grandma\'s "kitchen" \\ door'
    assert config["station"]["public_url"] == "https://kitchen.example.net"
    assert config["server"]["port"] == 8080
    mode = (station["root"] / "etc/videostation/config.toml").stat().st_mode & 0o777
    assert mode == 0o640

    # The password reaches the CLI on stdin, never as an argument.
    args = (station["cli"].parent / "videostation.args").read_text().splitlines()
    assert args == ["set-password", "--stdin", "--config", "/etc/videostation/config.toml"]
    assert (station["cli"].parent / "videostation.stdin").read_text() == "s3cret pass\n"

    left = station["boot"].read_text()
    assert "s3cret" not in left
    assert "PASSWORD=\n" in left and "WIFI_PASSWORD=\n" in left
    assert "WIFI_SSID=Home Net" in left

    wifi = station["root"] / "etc/NetworkManager/system-connections/videostation-wifi.nmconnection"
    assert wifi.stat().st_mode & 0o777 == 0o600
    text = wifi.read_text()
    assert "ssid=Home Net\n" in text and "psk=wifi-s3cret\n" in text
    assert (station["root"] / "etc/hostname").read_text() == "kitchen\n"
    assert "127.0.1.1\tkitchen" in (station["root"] / "etc/hosts").read_text()


def test_firstboot_scrubs_the_secrets_even_when_the_password_fails(
    station: dict[str, Path],
) -> None:
    station["boot"].write_text("PASSWORD=s3cret\nWIFI_SSID=Open\n")
    result = _firstboot(station, CLI_EXIT="1")
    assert result.returncode != 0
    assert "master password failed" in result.stderr
    assert "s3cret" not in station["boot"].read_text()
    # An open network: no security section.
    wifi = station["root"] / "etc/NetworkManager/system-connections/videostation-wifi.nmconnection"
    assert "wifi-security" not in wifi.read_text()


def test_firstboot_adds_missing_keys_and_sections(station: dict[str, Path]) -> None:
    (station["root"] / "etc/videostation/config.toml").write_text("[server]\nport = 8080\n")
    station["boot"].write_text("STATION_NAME=Workshop\n")
    result = _firstboot(station)
    assert result.returncode == 0, result.stderr
    assert _config(station)["station"]["name"] == "Workshop"
    assert not (station["cli"].parent / "videostation.args").exists()  # no password given


def test_firstboot_rejects_a_bad_host_name(station: dict[str, Path]) -> None:
    station["boot"].write_text("HOSTNAME=not a/host\n")
    result = _firstboot(station)
    assert result.returncode == 0
    assert (station["root"] / "etc/hostname").read_text() == "videostation\n"
    assert "not a valid host name" in result.stderr


def test_firstboot_without_the_file_does_nothing(station: dict[str, Path]) -> None:
    result = _firstboot(station)
    assert result.returncode == 0
    assert (station["root"] / "etc/videostation/config.toml").read_text() == CONFIG


def test_boot_file_template_names_every_setting() -> None:
    script = FIRSTBOOT.read_text()
    template = (IMAGE / "videostation.txt").read_text()
    keys = re.findall(r"^([A-Z_]+)=", template, re.MULTILINE)
    assert set(keys) == {
        "STATION_NAME",
        "PUBLIC_URL",
        "HOSTNAME",
        "PASSWORD",
        "WIFI_SSID",
        "WIFI_PASSWORD",
        "WIFI_COUNTRY",
    }
    for key in keys:
        assert f"get {key}" in script, key


def test_firstboot_unit_runs_before_the_service_and_the_network() -> None:
    unit = (REPO / "systemd/videostation-firstboot.service").read_text()
    assert "ConditionPathExists=/boot/firmware/videostation.txt" in unit
    before = re.search(r"^Before=(.*)$", unit, re.MULTILINE)
    assert before
    for name in ("videostation.service", "videostation-kiosk.service", "NetworkManager.service"):
        assert name in before.group(1)


def test_readme_names_the_tool_and_why() -> None:
    readme = (IMAGE / "README.md").read_text()
    assert "pi-gen" in readme and "rpi-image-gen" in readme
    assert "apply-role" in readme

"""The Ansible role ``videostation``: lint, syntax, and the role applied for real.

The slow test debootstraps Debian 12 (cached as a tarball under
``/var/cache/videostation-tests``), chroots into it with /proc, /sys and /dev
bind-mounted and applies the role through ``image/apply-role`` -- the same hook the
image build runs in its chroot -- with the Pi-only steps off. A second run must
change nothing. Needs root and debootstrap; without them the test is skipped,
except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "videostation"
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("VIDEOSTATION_TEST_CACHE", "/var/cache/videostation-tests"))
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
TEST_UID = 870
UNITS = ("videostation.service", "videostation-kiosk.service", "videostation-firstboot.service")
TURN_SECRET = "turn-secret-for-tests"
RECAP = re.compile(
    r"^localhost\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


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


def _defaults() -> dict[str, object]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


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
    """Every task that touches the master password carries no_log."""
    for path in (ROLE / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            uses_password = any(
                "videostation_master_password" in json.dumps(task.get(key, ""))
                for key in task
                if key not in ("when", "name")
            )
            if uses_password:
                assert task.get("no_log") is True, f"{path.name}: {task['name']} lacks no_log"


# --- the role applied for real into a Debian 12 chroot -------------------------------


def _mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1) and "/debian" in match.group(1):
                return match.group(1)
        one_line = r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\b"
        for match in re.finditer(one_line, text, re.MULTILINE):
            return match.group(1)
    return "http://deb.debian.org/debian"


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mount)"
    for tool in ("debootstrap", "chroot", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def _base_tarball() -> Path:
    """A debootstrapped minbase Debian 12 with Python, cached across runs."""
    mirror = _mirror()
    key = re.sub(r"[^A-Za-z0-9]+", "-", f"v2-{SUITE}-{mirror}-{'-'.join(BASE_PACKAGES)}")
    tarball = CACHE / f"{key}.tar.gz"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(root),
                mirror,
            ],
            capture_output=True,
            timeout=600,
        )
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = Path(tmp) / "base.tar.gz"
        _run(["tar", "-C", str(root), "-czf", str(partial), "."], timeout=300)
        partial.rename(tarball)
    return tarball


def _copy_checkout(dest: Path) -> None:
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "var",
        "__pycache__",
        "*.egg-info",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "node_modules",
        ".artifacts",
        "build",
        "dist",
    )
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


def _chroot_env() -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        # pip brings its own CA bundle: point it at the system's.
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_CACHE_DIR": "/var/cache/pip",
    }
    env.update({k: v for k, v in os.environ.items() if k.lower().endswith("_proxy")})
    return env


def _mount_points() -> list[Path]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(Path(field.encode().decode("unicode_escape")))
    return points


class Chroot:
    """A Debian root with /proc, /sys, /dev and the download caches mounted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounts: list[Path] = []

    def bind(self, source: Path, target: str, *, fstype: str | None = None) -> None:
        where = self.root / target.lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        if fstype:
            _run(["mount", "-t", fstype, fstype, str(where)])
        else:
            _run(["mount", "--bind", str(source), str(where)])
        self.mounts.append(where)

    def unmount_all(self) -> None:
        for where in reversed(self.mounts):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)
        self.mounts.clear()

    def run(
        self, *cmd: str, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        base = _chroot_env()
        return subprocess.run(
            ["chroot", str(self.root), *cmd],
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )


def _apply(chroot: Chroot, timeout: float = 900) -> tuple[str, dict[str, int], float]:
    import ansible  # the controller's version, so the chroot runs the same ansible-core

    started = time.monotonic()
    result = chroot.run(
        "/usr/src/videostation/image/apply-role",
        "-e",
        "@/usr/src/test-vars.yml",
        env={
            "KEEP_ANSIBLE": "1",
            "ANSIBLE_CORE_SPEC": f"ansible-core=={ansible.__version__}",
        },
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    match = RECAP.search(output)
    assert match, output[-5000:]
    return output, {k: int(v) for k, v in match.groupdict().items()}, elapsed


@pytest.fixture(scope="module")
def provisioned() -> Iterator[dict[str, object]]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"provisioning test cannot run under CI: {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    tarball = _base_tarball()
    (CACHE / "work").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=CACHE / "work"))
    root = workdir / "root"
    root.mkdir()
    chroot = Chroot(root)
    try:
        _run(["tar", "-C", str(root), "-xzf", str(tarball)], timeout=300)
        # Nothing starts services inside the chroot.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # Machines behind a TLS-inspecting proxy: the chroot trusts what the host trusts.
        local_cas = Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir() and any(local_cas.iterdir()):
            shutil.copytree(local_cas, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
            chroot.run("update-ca-certificates")
        chroot.bind(Path("/proc"), "/proc")
        chroot.bind(Path("/sys"), "/sys")
        chroot.bind(Path("/dev"), "/dev")
        chroot.bind(Path("/dev/pts"), "/dev/pts")
        caches = (("apt-archives", "/var/cache/apt/archives"), ("pip", "/var/cache/pip"))
        for cache, target in caches:
            (CACHE / cache / "partial").mkdir(parents=True, exist_ok=True)
            chroot.bind(CACHE / cache, target)
        _copy_checkout(root / "usr/src/videostation")
        (root / "usr/src/test-vars.yml").write_text(
            yaml.safe_dump(
                {
                    "videostation_pi": False,
                    "videostation_manage_services": False,
                    "videostation_source": "/usr/src/videostation",
                    "videostation_uid": TEST_UID,
                    "videostation_station_name": "Test station",
                    "videostation_public_url": "https://station.example.net",
                    # TLS files (not there: the service is not started) make the kiosk
                    # load its page from the loopback-only listener (kiosk_port).
                    "videostation_tls_cert": "/etc/videostation/tls/fullchain.pem",
                    "videostation_tls_key": "/etc/videostation/tls/privkey.pem",
                    "videostation_button_pin": 17,
                    "videostation_display_rotation": 90,
                    "videostation_master_password": "correct horse battery staple",
                    "videostation_coturn_enabled": True,
                    "videostation_turn_secret": TURN_SECRET,
                    "videostation_firstboot_enabled": True,
                }
            )
        )
        first_output, first, first_seconds = _apply(chroot)
        second_output, second, second_seconds = _apply(chroot)
        yield {
            "chroot": chroot,
            "root": root,
            "first": first,
            "second": second,
            "first_output": first_output,
            "second_output": second_output,
            "timings": {
                "until_first_run": round(
                    time.monotonic() - started - first_seconds - second_seconds
                ),
                "first_run": round(first_seconds),
                "second_run": round(second_seconds),
            },
        }
    finally:
        chroot.unmount_all()
        # Never rm -rf through a bind mount (/dev, /proc of this machine).
        mounted = [m for m in _mount_points() if m == workdir or workdir in m.parents]
        if mounted:
            print(f"left {workdir} in place: still mounted: {mounted}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _chroot(provisioned: dict[str, object]) -> Chroot:
    chroot = provisioned["chroot"]
    assert isinstance(chroot, Chroot)
    return chroot


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first one also builds the chroot
def test_role_converges_then_changes_nothing(provisioned: dict[str, object]) -> None:
    first = provisioned["first"]
    second = provisioned["second"]
    assert isinstance(first, dict) and isinstance(second, dict)
    timings = provisioned["timings"]
    print(f"chroot timings: {timings}")
    assert first["failed"] == 0 and first["changed"] > 0
    assert second["failed"] == 0
    assert second["changed"] == 0, str(provisioned["second_output"])[-8000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_videostation_cli_runs_from_the_venv(provisioned: dict[str, object]) -> None:
    result = _chroot(provisioned).run("/opt/videostation/venv/bin/videostation", "--help")
    assert "serve" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_config_is_rendered_and_valid(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    path = root / "etc/videostation/config.toml"
    config = tomllib.loads(path.read_text())
    assert config["station"]["name"] == "Test station"
    assert config["station"]["public_url"] == "https://station.example.net"
    assert config["gpio"]["button_pin"] == 17
    assert config["ice"]["turn_secret"] == TURN_SECRET
    assert config["microphone"]["device"] == "echo-cancel-source"
    assert config["screen"]["power_command"] == ""  # no wlopm on plain Debian
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.stat().st_gid == TEST_UID
    # The service's own loader accepts it.
    result = _chroot(provisioned).run(
        "/opt/videostation/venv/bin/python",
        "-c",
        "import appliance.config as c; print(c.load(c.DEFAULT_CONFIG_PATH).station.name)",
    )
    assert result.stdout.strip() == "Test station"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_coturn_secret_matches_the_station(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    text = (root / "etc/turnserver.conf").read_text()
    assert f"static-auth-secret={TURN_SECRET}\n" in text
    assert "use-auth-secret" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_service_user_has_the_fixed_uid(provisioned: dict[str, object]) -> None:
    chroot = _chroot(provisioned)
    entry = chroot.run("getent", "passwd", "videostation").stdout.strip().split(":")
    assert entry[2] == str(TEST_UID) and entry[3] == str(TEST_UID)
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
            expected = expected.replace("870", str(TEST_UID))
        assert installed == expected, unit
        result = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", unit], capture_output=True, text=True
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
    expected = shipped.replace("http://127.0.0.1:8080", "http://127.0.0.1:8081")
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
def test_master_password_was_set_once(provisioned: dict[str, object]) -> None:
    root = provisioned["root"]
    assert isinstance(root, Path)
    stamp = root / "etc/videostation/.password-stamp"
    assert stamp.stat().st_mode & 0o777 == 0o600
    assert "correct horse" not in stamp.read_text()
    for output in (provisioned["first_output"], provisioned["second_output"]):
        assert "correct horse" not in str(output)
    assert "TASK [videostation : Set the master password]" in str(provisioned["first_output"])
    # Files the CLI wrote in the state dir belong to the service user.
    for path in (root / "var/lib/videostation").rglob("*"):
        assert path.stat().st_uid == TEST_UID, path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_firstboot_applies_and_scrubs_the_boot_file(provisioned: dict[str, object]) -> None:
    """The image's first-boot step, run inside the provisioned root."""
    root = provisioned["root"]
    assert isinstance(root, Path)
    chroot = _chroot(provisioned)
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
        assert config_path.stat().st_gid == TEST_UID and config_path.stat().st_mode & 0o777 == 0o640
    finally:
        config_path.write_bytes(original)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pi_gen_stage_applies_the_role_in_the_root(provisioned: dict[str, object]) -> None:
    """The image's pi-gen stage, run as pi-gen runs it: 00-run.sh on the build
    machine with ROOTFS_DIR, then 01-run-chroot.sh piped into bash in the chroot.
    Pi-only packages stay off through VIDEOSTATION_IMAGE_VARS. Runs last: the stage
    removes the source and the ansible venv from the root."""
    import ansible

    root = provisioned["root"]
    assert isinstance(root, Path)
    chroot = _chroot(provisioned)
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
            **_chroot_env(),
            "ANSIBLE_CORE_SPEC": f"ansible-core=={ansible.__version__}",
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

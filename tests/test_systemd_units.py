"""systemd units and the kiosk session: verified by systemd itself, scored for
hardening, and the kiosk launcher driven with stand-in compositor and browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
UNITS = ("videostation.service", "videostation-kiosk.service", "videostation-firstboot.service")
KIOSK_SESSION = SYSTEMD / "kiosk-session"
FAKE_MEDIA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
SYSTEM_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        skip_or_fail(f"{tool} is not installed (apt-get install systemd)")
    assert path is not None
    return path


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as {section: [(key, value), ...]} (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"{section}.{key}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the system's own units, ours in /etc/systemd/system and the
    programs our units start at their real paths (so verify checks them)."""
    _need("systemd-analyze")
    root = tmp_path_factory.mktemp("root")
    system = next((d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if system is None:
        skip_or_fail("no systemd unit directory on this machine")
    shutil.copytree(system, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(SYSTEMD / unit, etc / unit)
    programs = {
        "opt/videostation/venv/bin/videostation": None,
        "usr/local/libexec/videostation/kiosk-session": KIOSK_SESSION,
        "usr/local/libexec/videostation/firstboot": REPO / "image/firstboot/videostation-firstboot",
        "usr/bin/touch": None,  # the first-boot unit's stamp
    }
    for target, source in programs.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            path.write_text("#!/bin/sh\nexit 0\n")
        else:
            shutil.copy(source, path)
        path.chmod(0o755)
    return root


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_is_clean(fake_root: Path, unit: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={fake_root}", unit],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr


def test_verify_notices_a_missing_program(fake_root: Path, tmp_path: Path) -> None:
    """The verify test above would catch a wrong ExecStart path."""
    broken = fake_root / "etc/systemd/system/videostation-broken.service"
    text = (SYSTEMD / "videostation.service").read_text()
    broken.write_text(text.replace("/venv/bin/videostation ", "/venv/bin/no-such-program "))
    try:
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", f"--root={fake_root}", broken.name],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        broken.unlink()
    assert result.returncode != 0
    assert "no-such-program" in result.stderr


def test_service_security_exposure_is_at_most_2_5() -> None:
    _need("systemd-analyze")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(SYSTEMD / "videostation.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for videostation\.service:\s*([0-9.]+)", output)
    assert match, output
    score = float(match.group(1))
    print(f"systemd-analyze security: {score}")
    assert score <= 2.5, output


def test_service_is_a_hardened_notify_service() -> None:
    unit = parse_unit(SYSTEMD / "videostation.service")
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert int(one(unit, "Service", "WatchdogSec")) > 0
    assert one(unit, "Service", "User") == "videostation"
    groups = set(one(unit, "Service", "SupplementaryGroups").split())
    assert {"video", "render", "audio", "gpio", "input"} <= groups
    for key in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert one(unit, "Service", key) == "videostation"
    assert one(unit, "Service", "DevicePolicy") == "closed"
    allowed = " ".join(values(unit, "Service", "DeviceAllow"))
    for device in ("video4linux", "media", "gpiochip", "alsa", "dma_heap"):
        assert f"char-{device}" in allowed, device
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert values(unit, "Service", "SystemCallFilter")
    exec_start = one(unit, "Service", "ExecStart").split()
    assert exec_start[:2] == ["/opt/videostation/venv/bin/videostation", "serve"]
    assert exec_start[2:] == ["--config", "/etc/videostation/config.toml"]
    assert "multi-user.target" in one(unit, "Install", "WantedBy")


def test_service_reaches_the_users_pipewire() -> None:
    """The echo-cancelled microphone lives in the service user's lingering session."""
    unit = parse_unit(SYSTEMD / "videostation.service")
    env = values(unit, "Service", "Environment")
    assert "XDG_RUNTIME_DIR=/run/user/870" in env
    assert "user@870.service" in " ".join(values(unit, "Unit", "After"))
    sysusers = (SYSTEMD / "sysusers.d/videostation.conf").read_text()
    assert re.search(r"^u videostation 870 ", sysusers, re.MULTILINE)
    tmpfiles = (SYSTEMD / "tmpfiles.d/videostation.conf").read_text()
    assert "/var/lib/systemd/linger/videostation" in tmpfiles


def test_kiosk_unit_owns_tty1() -> None:
    unit = parse_unit(SYSTEMD / "videostation-kiosk.service")
    assert one(unit, "Service", "PAMName") == "videostation-kiosk"
    assert (SYSTEMD / "pam.d/videostation-kiosk").exists()
    assert "pam_systemd.so" in (SYSTEMD / "pam.d/videostation-kiosk").read_text()
    assert one(unit, "Service", "TTYPath") == "/dev/tty1"
    assert "getty@tty1.service" in one(unit, "Unit", "Conflicts")
    assert one(unit, "Service", "Restart") == "always"
    # Same user as the service: the kiosk key in the state dir is 0600.
    service = parse_unit(SYSTEMD / "videostation.service")
    assert one(unit, "Service", "User") == one(service, "Service", "User")
    assert one(unit, "Service", "ExecStart") == "/usr/local/libexec/videostation/kiosk-session"
    assert "graphical.target" in one(unit, "Install", "WantedBy")


def test_sysusers_and_tmpfiles_apply_to_a_root(tmp_path: Path) -> None:
    _need("systemd-sysusers")
    _need("systemd-tmpfiles")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (tmp_path / "etc" / name).write_text("")
    # With --root, files are read from stdin ("-"): paths would be inside the root.
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", "-"],
        input=(SYSTEMD / "sysusers.d/videostation.conf").read_bytes(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = (tmp_path / "etc/passwd").read_text()
    assert re.search(r"^videostation:x:870:870:", passwd, re.MULTILINE), passwd
    group = (tmp_path / "etc/group").read_text()
    assert re.search(r"^gpio:x:\d+:.*videostation", group, re.MULTILINE), group
    result = subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", "-"],
        input=(SYSTEMD / "tmpfiles.d/videostation.conf").read_bytes(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    state = tmp_path / "var/lib/videostation"
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o750
    assert state.stat().st_uid == 870 and state.stat().st_gid == 870
    assert (tmp_path / "var/lib/systemd/linger/videostation").exists()


# --- the kiosk session -----------------------------------------------------------------


def _stub(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """Stand-ins for the CLI, the compositors, wlr-randr and Chromium; each records
    its arguments (one per line) in <name>.args."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = 'for a in "$@"; do printf "%s\\n" "$a"; done > "$0.args"\n'
    # The CLI records each sub-command's arguments in videostation.<command>.args;
    # kiosk-watch exits with $WATCH_EXIT after $WATCH_AFTER seconds (default: stays).
    _stub(
        bin_dir,
        "videostation",
        'for a in "$@"; do printf "%s\\n" "$a"; done > "$0.$1.args"\n'
        # (its output closed: a watcher the session's stop races past must not hold
        # the test's pipes; under systemd the unit's cgroup goes with the session)
        'if [ "$1" = kiosk-watch ]; then exec >/dev/null 2>&1; sleep "${WATCH_AFTER:-30}" &\n'
        "  pid=$!\n"
        "  trap 'kill $pid; exit 0' TERM; wait $pid; exit \"${WATCH_EXIT:-0}\"; fi\n"
        # kiosk-url --page FILE: the page that opens the kiosk URL, and its file:// URL
        'while [ $# -gt 1 ] && [ "$1" != --page ]; do shift; done\n'
        'printf "<meta http-equiv=refresh content=\\"0;url=%s\\">\\n" '
        '"http://127.0.0.1:8080/#/kiosk?key=k3y" > "$2"\n'
        'echo "file://$2"\n',
    )
    _stub(bin_dir, "cage", record + 'env > "$0.env"\n')
    _stub(bin_dir, "labwc", record + 'env > "$0.env"\n')
    _stub(bin_dir, "chromium", record)
    _stub(
        bin_dir,
        "wlr-randr",
        'if [ $# -eq 0 ]; then printf "HDMI-A-1 \\"Monitor\\"\\n  Enabled: yes\\n"; exit 0; fi\n'
        'printf "%s\\n" "$*" >> "$0.args"\n',
    )
    return bin_dir


def _kiosk(stubs: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    session = stubs.parent / "kiosk-session"
    shutil.copy(KIOSK_SESSION, session)
    base = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "VIDEOSTATION_BIN": str(stubs / "videostation"),
        "XDG_RUNTIME_DIR": str(stubs.parent),
    }
    return subprocess.run(
        [str(session), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_kiosk_session_starts_cage_without_vt_switching(stubs: Path) -> None:
    result = _kiosk(stubs, KIOSK_COMPOSITOR="cage", KIOSK_ROTATION="180")
    assert result.returncode == 0, result.stderr
    args = (stubs / "cage.args").read_text().splitlines()
    assert "-s" not in args  # no Ctrl+Alt+Fn out of the kiosk
    assert args[: args.index("--")] == ["-d", "-r", "-r"]  # 180 degrees
    assert args[-1] == "--inner" and args[-2].endswith("kiosk-session")
    env = (stubs / "cage.env").read_text()
    page = stubs.parent / "videostation-kiosk.html"  # in XDG_RUNTIME_DIR without systemd
    assert f"KIOSK_URL=file://{page}" in env and "k3y" not in env
    cli = (stubs / "videostation.kiosk-url.args").read_text().splitlines()
    assert cli == ["kiosk-url", "--config", "/etc/videostation/config.toml", "--page", str(page)]


def test_kiosk_session_stops_the_compositor_when_the_watchdog_says_so(stubs: Path) -> None:
    _stub(stubs, "cage", "sleep 25 & pid=$!; trap 'kill $pid; exit 143' TERM; wait $pid\n")
    started = time.monotonic()
    result = _kiosk(stubs, KIOSK_COMPOSITOR="cage", WATCH_AFTER="1", WATCH_EXIT="1")
    took = time.monotonic() - started
    # Stopped by the session (SIGTERM: 143), so the unit's Restart=always starts afresh.
    assert result.returncode == 143, result.stderr
    assert took < 15, took
    assert "the screen is not in the station room: restarting the kiosk" in result.stderr
    watch = (stubs / "videostation.kiosk-watch.args").read_text().splitlines()
    assert watch == [
        "kiosk-watch", "--config", "/etc/videostation/config.toml",
        "--grace", "180", "--lost", "60",
    ]  # fmt: skip


def test_kiosk_session_without_the_watchdog(stubs: Path) -> None:
    result = _kiosk(stubs, KIOSK_COMPOSITOR="cage", KIOSK_WATCH="no", WATCH_EXIT="1")
    assert result.returncode == 0, result.stderr
    assert not (stubs / "videostation.kiosk-watch.args").exists()


def test_kiosk_session_keeps_the_compositor_a_child_and_returns_its_status(
    stubs: Path,
) -> None:
    """cage 0.1.4 waits for any child when it fails early; under the unit's PAM session
    that would be the "(sd-pam)" helper, so the compositor must not be exec'ed: it runs
    as our child, and its exit status (or a stop signal) reaches systemd."""
    _stub(stubs, "cage", 'env > "$0.env"\necho "$PPID" > "$0.ppid"\nexit 3\n')
    result = _kiosk(stubs, KIOSK_COMPOSITOR="cage", KIOSK_RENDERER="pixman")
    assert result.returncode == 3, result.stderr
    assert "cage exited with status 3" in result.stderr
    assert "WLR_RENDERER=pixman" in (stubs / "cage.env").read_text()
    # Without KIOSK_RENDERER wlroots picks its renderer itself.
    _kiosk(stubs, KIOSK_COMPOSITOR="cage")
    assert "WLR_RENDERER" not in (stubs / "cage.env").read_text()


def test_kiosk_session_passes_a_stop_to_the_compositor(stubs: Path) -> None:
    _stub(
        stubs,
        "cage",
        "trap 'echo stopped > \"$0.stopped\"; exit 143' TERM\n"
        'echo ready > "$0.ready"\nwhile :; do sleep 0.1; done\n',
    )
    session = stubs.parent / "kiosk-session"
    shutil.copy(KIOSK_SESSION, session)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "VIDEOSTATION_BIN": str(stubs / "videostation"),
           "KIOSK_COMPOSITOR": "cage"}  # fmt: skip
    proc = subprocess.Popen([str(session)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (stubs / "cage.ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (stubs / "cage.ready").exists()
        proc.terminate()
        assert proc.wait(timeout=20) == 143
        assert (stubs / "cage.stopped").read_text().strip() == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_kiosk_session_starts_labwc_with_the_locked_down_config(stubs: Path) -> None:
    result = _kiosk(stubs, KIOSK_COMPOSITOR="labwc")
    assert result.returncode == 0, result.stderr
    args = (stubs / "labwc.args").read_text().splitlines()
    assert args[:2] == ["-C", "/etc/xdg/videostation-labwc"]
    assert args[2] == "-s" and args[3].endswith("kiosk-session --inner")


def test_kiosk_shows_only_chromium_kiosk_on_the_kiosk_url(stubs: Path) -> None:
    url = "file:///run/videostation-kiosk/videostation-kiosk.html"
    result = _kiosk(stubs, "--inner", KIOSK_URL=url, KIOSK_ROTATION="90", KIOSK_COMPOSITOR="labwc")
    assert result.returncode == 0, result.stderr
    args = (stubs / "chromium.args").read_text().splitlines()
    assert "--kiosk" in args
    assert args[-1] == url
    assert not [a for a in args if a.startswith(FAKE_MEDIA)]
    assert "--autoplay-policy=no-user-gesture-required" in args
    rotation = (stubs / "wlr-randr.args").read_text()
    assert "--output HDMI-A-1 --transform 90" in rotation


def test_kiosk_never_puts_a_key_on_chromiums_command_line(stubs: Path) -> None:
    result = _kiosk(stubs, "--inner", KIOSK_URL="http://127.0.0.1:8080/#/kiosk?key=k3y")
    assert result.returncode == 2
    assert "refusing to put the kiosk key on Chromium's command line" in result.stderr
    assert not (stubs / "chromium.args").exists()


def test_the_kiosk_key_is_on_no_command_line_and_in_no_environment(
    stubs: Path, tmp_path: Path
) -> None:
    """Issue 22, item 7: the session run with the real CLI (a fresh state dir makes the
    key) and cage running the inner session as the real one does. The stand-in
    Chromium records its arguments and environment and, while it runs, searches every
    process's command line and environment (what `ps` and /proc show) for the key."""
    import html
    import re
    import sys

    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nstate_dir = "{state}"\n')
    _stub(stubs, "videostation-real", f'exec "{sys.executable}" -m appliance.cli "$@"\n')
    _stub(stubs, "cage", 'while [ "$1" != -- ]; do shift; done; shift; "$@"\n')
    _stub(
        stubs,
        "chromium",
        'for a in "$@"; do printf "%s\\n" "$a"; done > "$0.args"\nenv > "$0.env"\n'
        'grep -lsaFf "$KEY_FILE" /proc/[0-9]*/cmdline /proc/[0-9]*/environ > "$0.leaks"\n'
        # the same search finds the key in the page it opens (the search works)
        'eval "last=\\${$#}"; grep -lsaFf "$KEY_FILE" "${last#file://}" > "$0.control"\n'
        "exit 0\n",
    )
    result = _kiosk(
        stubs,
        KIOSK_COMPOSITOR="cage",
        KIOSK_WATCH="no",
        VIDEOSTATION_BIN=str(stubs / "videostation-real"),
        VIDEOSTATION_CONFIG=str(config),
        KEY_FILE=str(state / "kiosk.key"),
        PYTHONPATH=str(REPO),
    )
    assert result.returncode == 0, result.stderr
    key = (state / "kiosk.key").read_text().strip()
    assert len(key) >= 40
    args = (stubs / "chromium.args").read_text()
    assert key not in args and "key=" not in args
    assert key not in (stubs / "chromium.env").read_text()
    assert (stubs / "chromium.leaks").read_text() == ""  # no process showed it
    assert (stubs / "chromium.control").read_text().strip() != ""
    # Chromium opens the page, which is private and leads to the key URL.
    page = stubs.parent / "videostation-kiosk.html"
    assert args.splitlines()[-1] == page.as_uri()
    assert page.stat().st_mode & 0o777 == 0o600
    refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', page.read_text())
    assert refresh is not None
    assert html.unescape(refresh.group(1)) == f"http://127.0.0.1:8080/#/kiosk?key={key}"


@pytest.mark.parametrize("flag", FAKE_MEDIA)
def test_kiosk_refuses_the_fake_media_flags(stubs: Path, flag: str) -> None:
    result = _kiosk(stubs, "--inner", KIOSK_URL="http://127.0.0.1:8080/", KIOSK_EXTRA_FLAGS=flag)
    assert result.returncode == 2
    assert "refusing" in result.stderr
    assert not (stubs / "chromium.args").exists()


def test_kiosk_waits_for_the_service_then_gives_up(stubs: Path) -> None:
    failing = _stub(stubs, "videostation-down", "exit 1\n")
    result = _kiosk(
        stubs, KIOSK_COMPOSITOR="cage", VIDEOSTATION_BIN=str(failing), KIOSK_URL_TRIES="2"
    )
    assert result.returncode == 1
    assert "is videostation.service running" in result.stderr
    assert not (stubs / "cage.args").exists()


def test_fake_media_flags_never_ship() -> None:
    """Only the launcher's refusal list may name them."""
    shipped = [SYSTEMD, REPO / "ansible", REPO / "image"]
    for directory in shipped:
        for path in directory.rglob("*"):
            if path.is_file() and not path.is_symlink() and path != KIOSK_SESSION:
                text = path.read_text(errors="replace")
                assert "use-fake-ui" not in text and "use-fake-device" not in text, path


def test_chromium_policy_allows_media_and_autoplay_only_on_the_kiosk_page() -> None:
    policy = json.loads((SYSTEMD / "chromium/videostation.json").read_text())
    local = ["http://127.0.0.1:8080"]
    assert policy["AutoplayAllowed"] is False
    assert policy["AutoplayAllowlist"] == local
    for kind in ("Audio", "Video"):
        assert policy[f"{kind}CaptureAllowed"] is False
        assert policy[f"{kind}CaptureAllowedUrls"] == local
    assert policy["URLBlocklist"] == ["*"]
    # and the page that opens the kiosk URL (kiosk-session, the kiosk unit's
    # RuntimeDirectory): nothing else of the file system
    page = "file:///run/videostation-kiosk/videostation-kiosk.html"
    assert policy["URLAllowlist"] == [*local, page]
    unit = parse_unit(SYSTEMD / "videostation-kiosk.service")
    assert one(unit, "Service", "RuntimeDirectory") == "videostation-kiosk"
    assert one(unit, "Service", "RuntimeDirectoryMode") == "0700"
    assert "/videostation-kiosk.html" in KIOSK_SESSION.read_text()
    assert policy["DeveloperToolsAvailability"] == 2


def test_echo_cancel_drop_in_makes_webrtc_aec_the_default() -> None:
    text = (SYSTEMD / "pipewire/60-videostation-echo-cancel.conf").read_text()
    body = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert body.count("{") == body.count("}") and body.count("[") == body.count("]")
    assert "name = libpipewire-module-echo-cancel" in body
    assert "library.name = aec/libspa-aec-webrtc" in body
    for props in ("source.props", "sink.props"):
        block = body[body.index(props) : body.index("}", body.index(props))]
        assert "priority.session" in block, props
    assert 'node.name = "echo-cancel-source"' in body
    defaults = (REPO / "ansible/roles/videostation/defaults/main.yml").read_text()
    assert "videostation_microphone_device: echo-cancel-source" in defaults


def test_labwc_config_has_no_way_out() -> None:
    import xml.etree.ElementTree as ET

    rc = ET.parse(SYSTEMD / "labwc/rc.xml").getroot()  # noqa: S314 - our own file
    actions = {a.get("name") for a in rc.iter("action")}
    assert actions <= {"Focus"}, actions
    # Defining bindings stops labwc from loading its default ones (terminal, menu, exit).
    assert rc.find("keyboard/keybind") is not None
    assert rc.find("keyboard/default") is None and rc.find("mouse/default") is None
    menu = ET.parse(SYSTEMD / "labwc/menu.xml").getroot()  # noqa: S314 - our own file
    assert not list(menu.iter("item"))


def test_firstboot_runs_once() -> None:
    """The scrubbed settings file stays on the boot partition as a record: a stamp,
    written only after a successful run, keeps later boots from applying it again."""
    unit = parse_unit(SYSTEMD / "videostation-firstboot.service")
    conditions = values(unit, "Unit", "ConditionPathExists")
    assert "!/var/lib/videostation-firstboot/done" in conditions
    assert one(unit, "Service", "StateDirectory") == "videostation-firstboot"
    stamp = "/usr/bin/touch /var/lib/videostation-firstboot/done"
    assert one(unit, "Service", "ExecStartPost") == stamp


@pytest.mark.parametrize(
    "unit", ["videostation.service", "videostation-kiosk.service", "videostation-firstboot.service"]
)
def test_the_shipped_unit_and_the_roles_template_say_the_same(unit: str) -> None:
    """The unit files in systemd/ (a manual install) and the role's templates (images,
    Ansible) differ only where the template fills in a value: a line added to one (as
    the kiosk's RuntimeDirectory once was to the first alone) fails here, not in a VM."""
    template = (REPO / "ansible/roles/videostation/templates" / f"{unit}.j2").read_text()
    shipped = (SYSTEMD / unit).read_text().splitlines()
    patterns = [
        re.compile(".*".join(re.escape(part) for part in re.split(r"\{\{.*?\}\}", line)) + "$")
        for line in template.splitlines()
    ]
    assert len(patterns) == len(shipped), f"{unit}: the line counts differ"
    for number, (pattern, line) in enumerate(zip(patterns, shipped, strict=True), 1):
        assert pattern.match(line), f"{unit}:{number}: {line!r} vs the template"

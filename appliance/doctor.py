"""``videostation doctor``: look at everything the station needs and say, in plain
words, what is wrong and how to fix it. Exit status 0 when all is well, 1 otherwise."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import socket
import ssl
import stat
import subprocess
import urllib.request
from dataclasses import dataclass

from .config import Config


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    """False: something the operator must fix."""
    what: str
    """The part checked."""
    detail: str
    """What was found, and for a problem how to fix it."""
    warning: bool = False
    """Not fatal (e.g. no camera: the test pattern is used)."""


def check_state_dir(config: Config) -> list[Finding]:
    state = config.state_path
    out: list[Finding] = []
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = state / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
        out.append(Finding(True, "state dir", f"{state} is writable"))
    except OSError as exc:
        return [
            Finding(
                False,
                "state dir",
                f"{state} is not writable ({exc.strerror}). "
                "Fix: run as the service user or pass --state-dir.",
            )
        ]
    for name in ("secret.key", "kiosk.key"):
        path = state / name
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                out.append(Finding(False, name, f"{path} has mode {mode:o}; fix: chmod 600 {path}"))
            else:
                out.append(Finding(True, name, f"mode {mode:o}"))
    return out


def check_password(config: Config) -> Finding:
    from .store import Store

    db = config.state_path / "station.db"
    if not db.exists():
        return Finding(False, "password", "no database yet; fix: videostation set-password")
    store = Store(db)
    try:
        if store.get_setting("password_hash"):
            return Finding(True, "password", "a master password is set")
    finally:
        store.close()
    return Finding(False, "password", "no master password; fix: videostation set-password")


def check_port(config: Config) -> Finding:
    host, port = config.server.host, config.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return Finding(True, "port", f"{host}:{port} is free for the service")
        except OSError as exc:
            busy = exc.errno == 98
    if busy:
        url = f"{config.local_url}/api/health/"
        try:
            context = ssl._create_unverified_context() if config.tls else None  # noqa: S323
            with urllib.request.urlopen(url, timeout=3, context=context) as resp:  # noqa: S310
                body = json.load(resp)
            return Finding(
                True,
                "port",
                f"the service is running on {host}:{port} "
                f"(version {body.get('version')}, status {body.get('status')})",
            )
        except (OSError, ValueError):
            return Finding(
                False,
                "port",
                f"{host}:{port} is used by another program; fix: stop it or set [server] port",
            )
    return Finding(
        False,
        "port",
        f"cannot listen on {host}:{port}; ports below 1024 need "
        "the service's CAP_NET_BIND_SERVICE (the systemd unit grants it)",
    )


def check_tls(config: Config) -> Finding:
    if not config.tls:
        return Finding(
            False,
            "TLS",
            "off: phones need HTTPS for their camera. Fix: set [server] "
            "cert and key (Let's Encrypt through Ansible) or run "
            "`videostation doctor --make-cert`",
            warning=True,
        )
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.server.cert, config.server.key)
    except FileNotFoundError as exc:
        return Finding(False, "TLS", f"missing file {exc.filename}; fix [server] cert/key")
    except PermissionError as exc:
        return Finding(
            False, "TLS", f"cannot read {exc.filename}; give the service user read access"
        )
    except ssl.SSLError as exc:
        return Finding(
            False,
            "TLS",
            f"certificate and key do not load ({exc.reason}); "
            "check they are PEM and belong together",
        )
    return Finding(True, "TLS", f"certificate {config.server.cert} loads")


def check_media(config: Config) -> list[Finding]:
    from .media import probe_camera, probe_microphone

    cam_ok, cam = probe_camera(config.camera)
    mic_ok, mic = probe_microphone(config.microphone)
    return [
        Finding(cam_ok, "camera", cam, warning=config.camera.source == "auto"),
        Finding(mic_ok, "microphone", mic, warning=config.microphone.source == "auto"),
    ]


def check_gpio(config: Config) -> Finding:
    from .gpio import probe_gpio

    ok, detail = probe_gpio(config.gpio)
    return Finding(ok, "GPIO", detail)


def check_screen(config: Config) -> Finding:
    command = config.screen.power_command
    if not command:
        return Finding(True, "screen", "display power control is off")
    if shutil.which(command):
        return Finding(True, "screen", f"{command} found: the screen wakes on ring")
    return Finding(
        False,
        "screen",
        f"{command} not found: the screen will not be blanked or "
        'woken; install it (apt install wlopm) or set [screen] power_command = ""',
        warning=True,
    )


# The pieces Raspberry Pi OS has and plain Debian (arm64 or not) does not: where each
# comes from and what the station does without it.
PI_PIECES: tuple[tuple[str, str, str, str], ...] = (
    (
        "picamera2",
        "module",
        "apt install python3-picamera2 (Raspberry Pi OS; the venv needs --system-site-packages)",
        "the Pi camera is not used; V4L2 or the test pattern is",
    ),
    (
        "lgpio",
        "module",
        "apt install python3-lgpio (Raspberry Pi OS) or pip install 'videostation[pi]'",
        "GPIO falls back to gpiozero's other pin factories",
    ),
    (
        "labwc",
        "program",
        "apt install labwc (Raspberry Pi OS), or run the kiosk under cage (apt install cage)",
        "the kiosk needs another Wayland compositor",
    ),
    (
        "wlopm",
        "program",
        "apt install wlopm (Raspberry Pi OS)",
        "the display is never blanked or woken",
    ),
)


def _is_raspberry_pi_os() -> bool:
    return os.path.exists("/etc/rpi-issue") or os.path.exists("/etc/apt/sources.list.d/raspi.list")


def check_pi_pieces(machine: str | None = None) -> list[Finding]:
    """On the Pi's architecture, each Raspberry Pi OS piece that is missing and how to get
    it (none of them is fatal: the station runs on plain Debian arm64 without them)."""
    if (machine or platform.machine()) not in ("aarch64", "arm64", "armv7l"):
        return []
    where = "Raspberry Pi OS" if _is_raspberry_pi_os() else "plain Debian (not Raspberry Pi OS)"
    out: list[Finding] = []
    for name, kind, how, without in PI_PIECES:
        if kind == "module":
            found = importlib.util.find_spec(name) is not None
        else:
            found = shutil.which(name) is not None
        if found:
            out.append(Finding(True, name, "found"))
        else:
            detail = f"missing on {where}: {without}. Get it: {how}"
            out.append(Finding(False, name, detail, warning=True))
    return out


def write_self_signed_cert(config: Config) -> Finding:
    """A self-signed certificate for the public host name (phones will warn once)."""
    from urllib.parse import urlsplit

    host = urlsplit(config.base_url).hostname or "localhost"
    state = config.state_path
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = state / "tls-cert.pem", state / "tls-key.pem"
    san = f"IP:{host}" if host.replace(".", "").isdigit() or ":" in host else f"DNS:{host}"
    old_umask = os.umask(0o077)  # the key is never readable by others, not even briefly
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "825",
                "-subj",
                f"/CN={host}",
                "-addext",
                f"subjectAltName={san},DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except FileNotFoundError:
        return Finding(False, "make-cert", "openssl is not installed; apt install openssl")
    except subprocess.CalledProcessError as exc:
        return Finding(False, "make-cert", exc.stderr.decode(errors="replace").strip()[:300])
    finally:
        os.umask(old_umask)
    os.chmod(key, 0o600)
    return Finding(
        True, "make-cert", f'wrote {cert} and {key}; set [server] cert = "{cert}" and key = "{key}"'
    )


def check_audio(config: Config) -> list[Finding]:
    from .audiocheck import check_audio as listen

    return [Finding(ok, what, detail) for ok, what, detail in listen(config.microphone)]


def run_doctor(config: Config, *, make_cert: bool = False, audio: bool = False) -> int:
    """Print every finding; ``audio``: only the audio check (it plays a test sound)."""
    findings: list[Finding] = []
    if audio:
        return report(check_audio(config))
    if make_cert:
        findings.append(write_self_signed_cert(config))
    findings += check_state_dir(config)
    findings.append(check_password(config))
    findings.append(check_port(config))
    findings.append(check_tls(config))
    findings += check_media(config)
    findings.append(check_gpio(config))
    findings.append(check_screen(config))
    findings += check_pi_pieces()
    return report(findings)


def report(findings: list[Finding]) -> int:
    width = max(len(f.what) for f in findings)
    problems = 0
    for f in findings:
        mark = "ok  " if f.ok else ("warn" if f.warning else "FAIL")
        problems += not f.ok and not f.warning
        print(f"[{mark}] {f.what.ljust(width)}  {f.detail}")
    print("All good." if problems == 0 else f"{problems} problem(s) need fixing.")
    return 0 if problems == 0 else 1

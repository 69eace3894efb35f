"""Typed configuration: a TOML file, overridden by command-line flags.

Every key is validated at start-up; a bad value raises :class:`ConfigError` whose
message names the key::

    >>> from_mapping({"server": {"port": 8443}}).server.port
    8443
    >>> from_mapping({"server": {"port": "x"}})
    Traceback (most recent call last):
    ...
    appliance.errors.ConfigError: server.port: expected an integer, got 'x'

Example ``/etc/videostation/config.toml``::

    [station]
    name = "Front door"
    public_url = "https://door.example.net"

    [server]
    host = "0.0.0.0"
    port = 443
    cert = "/etc/letsencrypt/live/door.example.net/fullchain.pem"
    key = "/etc/letsencrypt/live/door.example.net/privkey.pem"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .quiet import QuietHours

DEFAULT_CONFIG_PATH = Path("/etc/videostation/config.toml")
UNNAMED_STATION = "Video Station"
"""What the service calls a station nobody named, where no language is known (its log,
its room's row, its peer in the roster). The pages show their own language's default
("Video Station", "Видеостанция"): the API says ``name: ""``."""


def default_state_dir() -> Path:
    """The state dir when nothing is configured: systemd's, else the user's data dir."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "videostation"


@dataclass(frozen=True, slots=True)
class StationConfig:
    name: str = ""
    """Shown on the kiosk screen and to callers. Empty: each screen shows its language's
    default ("Video Station", "Видеостанция"), as a name the household set is shown as
    set."""
    public_url: str = ""
    """Base URL of every guest link and QR code, e.g. ``https://door.example.net``.
    Empty: derived from the listening address (fine on a laptop, useless for phones)."""
    room_id: str = "station"
    """ID of the station's own room: joining it rings the station."""
    language: str = "auto"
    """Language of the kiosk screen: ``en``, ``ru``, or ``auto`` (the browser's). Phones
    and browsers follow their own language."""

    @property
    def name_or_default(self) -> str:
        """The name, or :data:`UNNAMED_STATION` for the service's own use (never a page's).

        >>> StationConfig().name_or_default, StationConfig(name="Dacha").name_or_default
        ('Video Station', 'Dacha')
        """
        return self.name or UNNAMED_STATION


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` or ``::`` for every interface."""
    port: int = 8080
    """TCP port."""
    cert: str = ""
    """PEM certificate chain; with ``key``, the service serves HTTPS."""
    key: str = ""
    """PEM private key of ``cert``."""
    kiosk_port: int = 8081
    """Under TLS, the service also serves plain HTTP on 127.0.0.1 at this port for the
    station's own screen, which then needs no certificate for the public name (a
    self-signed one would stop it). 0: none; the screen loads ``public_url`` and cannot
    pair (the kiosk key is taken only over loopback)."""
    state_dir: str = ""
    """Where the database, secrets and kiosk key live. Empty: the default state dir."""
    max_body_bytes: int = 64 * 1024
    """Largest accepted request body; larger ones get 413."""
    trusted_origins: list[str] = field(default_factory=list)
    """Extra origins allowed to make state-changing requests (the service's own is always)."""


@dataclass(frozen=True, slots=True)
class AuthConfig:
    session_ttl_seconds: int = 30 * 24 * 3600
    """Lifetime of a user's login session."""
    guest_link_ttl_seconds: int = 7 * 24 * 3600
    """Default lifetime of a guest link."""
    guest_session_ttl_seconds: int = 12 * 3600
    """Lifetime of the session a guest link is exchanged for."""
    login_attempts: int = 5
    """Failed logins allowed per client within ``login_window_seconds``."""
    login_window_seconds: int = 300
    """Window of the login rate limit."""


@dataclass(frozen=True, slots=True)
class CameraConfig:
    source: str = "auto"
    """``auto`` | ``picamera2`` | ``v4l2`` | ``test`` (moving test pattern)."""
    device: str = "/dev/video0"
    """V4L2 device for ``v4l2``."""
    width: int = 1280
    """Capture and encode width in pixels."""
    height: int = 720
    """Capture and encode height in pixels."""
    fps: int = 30
    """Frames per second."""
    bitrate: int = 1_500_000
    """Highest video bitrate in bit/s (the high rung, while every viewer on it can take it)."""
    min_bitrate: int = 600_000
    """Lowest bitrate of the high rung: a viewer whose link carries less moves to the low rung."""
    low_width: int = 640
    """Width of the low rung, encoded only while some viewer on a weak link needs it
    (at the camera's aspect ratio, never larger than the camera)."""
    low_height: int = 360
    """Height of the low rung."""
    low_bitrate: int = 300_000
    """Bitrate of the low rung in bit/s."""
    adaptive: bool = True
    """Follow each viewer's link (REMB, loss); false: everybody gets the high rung."""
    encoding: str = "shared"
    """``shared``: the camera encoded once (per codec and rung) for every viewer;
    ``per-peer``: aiortc's own way, an encoder per viewer following its REMB (a core
    per 720p viewer on a Pi: kept as the reference measurements compare against)."""
    rotation: int = 0
    """Rotate the picture by 0, 90, 180 or 270 degrees."""
    vp8_rung: str = "low"
    """``low``: a viewer whose browser has no H.264 (e.g. Debian's Firefox) gets VP8 at
    the low rung's size and bitrate, so the second software encoder it needs costs about
    a quarter of a 720p one on the Pi; ``high``: VP8 viewers move between the rungs as
    H.264 viewers do."""


@dataclass(frozen=True, slots=True)
class MicrophoneConfig:
    source: str = "auto"
    """``auto`` | ``pulse`` (PipeWire/PulseAudio) | ``alsa`` | ``test`` (test tone)."""
    device: str = ""
    """Pulse source name (default: the echo-cancelled default source) or ALSA device."""


@dataclass(frozen=True, slots=True)
class CallConfig:
    ring_timeout_seconds: int = 45
    """An unanswered ring becomes a missed call after this long."""
    auto_answer: bool = False
    """Answer calls from logged-in users without a touch. (Guests: only from the guest
    links the household ticks in the app's Settings, docs/settings.md.)"""
    auto_answer_delay_seconds: int = 5
    """Countdown shown on the kiosk before an auto-answer."""
    max_remote_participants: int = 4
    """Mesh limit: remote participants in one room; one more is told the room is full."""
    quiet_hours: str = ""
    """``"22:00-07:00"``: do not disturb then (local time): the station does not ring,
    callers are told until when and the call is logged as missed. Empty: never (the
    kiosk has a Do not disturb button too, which ends with these hours or at 07:00)."""
    ring_cooldown_seconds: int = 10
    """A guest whose ring or knock was declined, given up or refused ("Not now") may
    ring again after this long, doubled for each in a row (at most 5 minutes); 0: no
    wait. The household never waits. (Rings in quiet hours are counted on one row.)"""
    guest_rings_per_minute: int = 6
    """Guest rings and knocks one address (an IPv6 /64) may start per minute; 0: no
    limit."""
    resume_seconds: int = 20
    """After a crash (kill -9, power cut) an answered call resumes without ringing for
    the sessions that were in it, if they are back within this many seconds of the
    start; 0: never resume."""


@dataclass(frozen=True, slots=True)
class IceConfig:
    stun_urls: list[str] = field(default_factory=list)
    """STUN servers, e.g. ``["stun:stun.example.net:3478"]``."""
    turn_urls: list[str] = field(default_factory=list)
    """TURN servers, e.g. ``["turn:turn.example.net:3478?transport=udp"]``."""
    turn_username: str = ""
    """Static TURN user name (with ``turn_credential``)."""
    turn_credential: str = ""
    """Static TURN password."""
    turn_secret: str = ""
    """coturn ``static-auth-secret``: when set, short-lived TURN credentials are minted."""


@dataclass(frozen=True, slots=True)
class GpioConfig:
    button_pin: int = 0
    """BCM pin of the answer button (to ground; internal pull-up). 0: no button."""
    ring_led_pin: int = 0
    """BCM pin of the ring LED (blinks while ringing). 0: none."""
    live_led_pin: int = 0
    """BCM pin of the camera-live LED (on while camera/mic are sent). 0: none."""
    long_press_seconds: float = 1.5
    """Holding the button this long declines a ring or hangs up."""
    bounce_seconds: float = 0.05
    """Debounce time of the button."""


@dataclass(frozen=True, slots=True)
class ScreenConfig:
    idle_blank_seconds: int = 300
    """Blank the display after this long idle; 0 never blanks."""
    power_command: str = "wlopm"
    """Program that switches the display (wlr-output-power-management); empty: none."""
    output: str = "*"
    """Display output name for the power command."""


@dataclass(frozen=True, slots=True)
class Config:
    station: StationConfig = field(default_factory=StationConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = field(default_factory=MicrophoneConfig)
    call: CallConfig = field(default_factory=CallConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)

    @property
    def state_path(self) -> Path:
        return Path(self.server.state_dir) if self.server.state_dir else default_state_dir()

    @property
    def tls(self) -> bool:
        return bool(self.server.cert and self.server.key)

    @property
    def base_url(self) -> str:
        """``public_url`` or, failing that, the URL of the listening address."""
        if self.station.public_url:
            return self.station.public_url.rstrip("/")
        return self.local_url

    @property
    def kiosk_base_url(self) -> str:
        """Where the station's own screen loads the page: the listening address, or
        under TLS the loopback-only plain-HTTP listener (``server.kiosk_port``)."""
        if not self.tls:
            return self.local_url
        if self.server.kiosk_port:
            return f"http://127.0.0.1:{self.server.kiosk_port}"
        return self.base_url

    @property
    def local_url(self) -> str:
        """The URL of the listening address as seen from this machine."""
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.server.port}"


_CHOICES: dict[str, tuple[str, ...]] = {
    "camera.source": ("auto", "picamera2", "v4l2", "test"),
    "microphone.source": ("auto", "pulse", "alsa", "test"),
    "station.language": ("auto", "en", "ru"),
}
_RANGES: dict[str, tuple[float, float]] = {
    "server.port": (1, 65535),
    "server.kiosk_port": (0, 65535),
    "server.max_body_bytes": (1024, 16 * 1024 * 1024),
    "camera.width": (16, 4096),
    "camera.height": (16, 4096),
    "camera.fps": (1, 120),
    "camera.bitrate": (50_000, 50_000_000),
    "camera.min_bitrate": (50_000, 50_000_000),
    "camera.low_width": (16, 4096),
    "camera.low_height": (16, 4096),
    "camera.low_bitrate": (30_000, 50_000_000),
    "call.ring_timeout_seconds": (1, 3600),
    "call.auto_answer_delay_seconds": (0, 120),
    "call.max_remote_participants": (1, 16),
    "call.resume_seconds": (0, 120),
    "call.ring_cooldown_seconds": (0, 300),
    "call.guest_rings_per_minute": (0, 1000),
    "gpio.button_pin": (0, 63),
    "gpio.ring_led_pin": (0, 63),
    "gpio.live_led_pin": (0, 63),
    "gpio.long_press_seconds": (0.1, 30),
    "gpio.bounce_seconds": (0, 5),
    "auth.session_ttl_seconds": (60, 10 * 365 * 24 * 3600),
    "auth.guest_link_ttl_seconds": (60, 10 * 365 * 24 * 3600),
    "auth.guest_session_ttl_seconds": (60, 365 * 24 * 3600),
    "auth.login_attempts": (1, 1000),
    "auth.login_window_seconds": (1, 24 * 3600),
    "screen.idle_blank_seconds": (0, 7 * 24 * 3600),
}


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return "a list of strings"


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the field type ``tp``; raise ConfigError naming ``key``."""
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:  # list[str]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if key in _RANGES:
        low, high = _RANGES[key]
        if not low <= value <= high:
            raise ConfigError(f"{key}: expected a value from {low:g} to {high:g}, got {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(f"{key}: expected one of {', '.join(_CHOICES[key])}, got {value!r}")
    return value


def _section(name: str, cls: type[Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(sorted(known))})")
        values[key] = _coerce(f"{name}.{key}", hints[key], value)
    return cls(**values)


def from_mapping(data: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from a parsed TOML document."""
    hints = typing.get_type_hints(Config)
    sections: dict[str, Any] = {}
    for name, raw in data.items():
        if name not in hints:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(sorted(hints))})")
        sections[name] = _section(name, hints[name], raw)
    config = Config(**sections)
    _check(config)
    return config


def _check(config: Config) -> None:
    """Cross-field checks."""
    url = config.station.public_url
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"station.public_url: expected an http:// or https:// URL, got {url!r}")
    if bool(config.server.cert) != bool(config.server.key):
        raise ConfigError("server.cert: cert and key must be given together")
    if config.camera.rotation not in (0, 90, 180, 270):
        raise ConfigError(
            f"camera.rotation: expected 0, 90, 180 or 270, got {config.camera.rotation!r}"
        )
    cam = config.camera
    if cam.encoding not in ("shared", "per-peer"):
        raise ConfigError(f"camera.encoding: expected shared or per-peer, got {cam.encoding!r}")
    if cam.vp8_rung not in ("low", "high"):
        raise ConfigError(f"camera.vp8_rung: expected low or high, got {cam.vp8_rung!r}")
    if not cam.low_bitrate < cam.min_bitrate <= cam.bitrate:
        raise ConfigError(
            "camera.min_bitrate: expected camera.low_bitrate < camera.min_bitrate <= "
            f"camera.bitrate, got {cam.low_bitrate} / {cam.min_bitrate} / {cam.bitrate}"
        )
    QuietHours.parse(config.call.quiet_hours)  # raises ConfigError naming the key
    room = config.station.room_id
    if not room or len(room) > 64 or not all(c.isalnum() or c in "-_" for c in room):
        raise ConfigError(f"station.room_id: expected 1-64 letters, digits, - or _, got {room!r}")


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (the default path if None; a missing default file is fine),
    apply ``overrides`` like ``{"server.port": 9000}`` and validate."""
    data: dict[str, Any] = {}
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config: file not found: {path}") from None
    except PermissionError:
        raise ConfigError(f"config: cannot read {path} (permission denied)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        table = data.setdefault(section, {})
        if isinstance(table, dict):
            table[key] = value
    return from_mapping(data)


def as_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)

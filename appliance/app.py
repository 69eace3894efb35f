"""The application factory and the serve loop.

``create_app(config)`` wires everything; every resource is a ``cleanup_ctx``
generator (set up, yield, tear down), so SIGTERM from systemd closes peers, sockets
and the database in order. ``serve(config)`` listens, then tells systemd READY=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import api, quiet, settings_api
from .appkeys import (
    AUTH,
    CALL_MACHINE,
    CLOCK,
    CONFIG,
    GPIO,
    HUB,
    MEDIA,
    METRICS,
    NOISE,
    NOTIFIER,
    PASSWORDS,
    PEERS,
    PIN_FACTORY,
    ROOMS,
    SCREEN,
    SETTINGS,
    STORE,
)
from .auth import Auth
from .call import CallMachine
from .clock import SYSTEM_CLOCK, Clock
from .config import Config
from .errors import StateDirUnusable
from .hashing import PasswordWorker
from .http import connections
from .http.connections import KEEPALIVE_TIMEOUT_SECONDS, StationRunner, admission_middleware
from .http.jsonerrors import error_middleware
from .http.security import check_origin, security_middleware
from .http.sessions import send_settled_cookie, session_of
from .logs import Coalesced
from .media.station import StationMedia
from .metrics import CALL_STATES, DEVICE_STATES, Labels, Metrics, build_info, one_hot, pi_gauges
from .protocol import CallObject, Description, Relayed
from .quiet import QuietHours, QuietMode
from .rooms import STATION_PEER_ID, Rooms
from .settings import StationSettings
from .signaling import Hub
from .static import StaticSite, static_handler, web_root
from .store import Store
from .systemd import Notifier, run_watchdog

if TYPE_CHECKING:
    from .media.peer import StationPeers

log = logging.getLogger(__name__)


def create_app(
    config: Config, *, pin_factory: Any | None = None, clock: Clock | None = None
) -> web.Application:
    """Build the service. ``pin_factory``: a gpiozero pin factory (MockFactory in tests);
    ``clock``: the wall and monotonic clocks (tests move them)."""
    app = web.Application(
        middlewares=[security_middleware, admission_middleware, error_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = config
    app[CLOCK] = clock or SYSTEM_CLOCK
    app[METRICS] = Metrics()
    app[NOTIFIER] = Notifier()
    app[NOISE] = Coalesced(connections.log)
    if pin_factory is not None:
        app[PIN_FACTORY] = pin_factory
    _describe_metrics(app[METRICS])
    # one context per resource, in the order they need each other (torn down backwards)
    app.cleanup_ctx.extend(
        [
            _store_ctx,  # STORE
            _auth_ctx,  # AUTH
            _settings_ctx,  # SETTINGS
            _passwords_ctx,  # PASSWORDS
            _rooms_ctx,  # ROOMS
            _media_ctx,  # MEDIA
            _peers_ctx,  # PEERS
            _call_ctx,  # CALL_MACHINE
            _quiet_ctx,  # the task that tells every screen when do not disturb turns
            _hub_ctx,  # HUB
            _gpio_ctx,  # GPIO
            _screen_ctx,  # SCREEN
            _systemd_ctx,  # the watchdog, STATUS=
        ]
    )
    app.on_shutdown.append(_close_sockets)
    app.on_response_prepare.append(send_settled_cookie)
    app.router.add_routes(settings_api.routes)  # before api.routes' catch-all /api/…
    app.router.add_routes(api.routes)
    app.router.add_get("/ws/", _ws)
    app.router.add_get("/ws", _ws)
    serve_static = static_handler(StaticSite(web_root()))
    app.router.add_get("/", serve_static)
    app.router.add_get("/{path:.*}", serve_static)
    return app


def _describe_metrics(metrics: Metrics) -> None:
    metrics.describe("signaling_messages_total", "Signaling messages received, by type")
    metrics.describe("signaling_errors_total", "Signaling messages refused, by error code")
    metrics.describe("websocket_connections_total", "WebSocket connections opened")
    metrics.describe("http_errors_total", "HTTP requests answered with an error, by code")
    metrics.describe("logins_total", "Login attempts, by result")
    metrics.describe("guest_links_created_total", "Guest links made")


async def _ws(request: web.Request) -> web.StreamResponse:
    """The signaling socket: the Origin and the session are checked here, by the REST
    plumbing, before the hub takes the connection."""
    check_origin(request)
    response: web.StreamResponse = await request.app[HUB].handle(request, session_of(request))
    return response


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """STORE: the SQLite database in the state dir (created on first start)."""
    config = app[CONFIG]
    state_dir = config.state_path
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = Store(state_dir / "station.db", clock=app[CLOCK])
        store.ensure_station_room(config.station.room_id, config.station.name_or_default)
        closed = store.close_open_calls()
    except (OSError, sqlite3.Error) as exc:
        raise _unusable(state_dir, exc) from exc
    if closed:
        log.info("closed %d call(s) left open by a crash", closed)
    app[STORE] = store
    app[METRICS].gauge("rooms", "Rooms in the database", lambda: float(len(store.list_rooms())))
    yield
    store.close()


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """AUTH: the master password, sessions, guest links and the kiosk key (its
    secrets are files in the state dir)."""
    config = app[CONFIG]
    try:
        app[AUTH] = Auth(
            app[STORE],
            config.state_path,
            station_room=config.station.room_id,
            login_attempts=config.auth.login_attempts,
            login_window=config.auth.login_window_seconds,
            clock=app[CLOCK],
        )
    except (OSError, sqlite3.Error) as exc:
        raise _unusable(config.state_path, exc) from exc
    yield


async def _settings_ctx(app: web.Application) -> AsyncIterator[None]:
    """SETTINGS: the config file's everyday settings, overlaid by what the household
    changed in the app (kept in the database; docs/settings.md)."""
    app[SETTINGS] = StationSettings(app[CONFIG], app[STORE])
    yield


def _unusable(state_dir: Path, exc: Exception) -> StateDirUnusable:
    return StateDirUnusable(f"the state dir {state_dir} is not usable ({exc}); it must be writable")


async def _passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    """PASSWORDS: the one thread that runs scrypt for logins."""
    worker = PasswordWorker()
    app[PASSWORDS] = worker
    yield
    worker.close()


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    """ROOMS: who is in which room, and which pairs may signal each other."""
    rooms = Rooms(max_remotes=app[CONFIG].call.max_remote_participants)
    app[ROOMS] = rooms
    app[METRICS].gauge("peers", "Peers connected to signaling", lambda: float(rooms.count()))
    app[METRICS].gauge(
        "rooms_active", "Rooms with someone in them", lambda: float(len(rooms.room_ids()))
    )
    yield


async def _media_ctx(app: web.Application) -> AsyncIterator[None]:
    """MEDIA: the station's camera and microphone (opened only while someone views)."""
    config = app[CONFIG]
    media = StationMedia(config.camera, config.microphone)
    app[MEDIA] = media
    for name in media.counters():
        app[METRICS].gauge(f"media_{name}", f"Media counter {name}", _counter_reader(media, name))
    yield
    await media.close()


async def _peers_ctx(app: web.Application) -> AsyncIterator[None]:
    """PEERS: the station's aiortc peers, one per viewer (opened only in a call; the
    media stack is imported when one is in sight, see StationPeers.prepare)."""
    from .media.peer import StationPeers
    from .turn import STATION_CREDENTIAL_TTL, ice_servers

    config = app[CONFIG]
    clock = app[CLOCK]
    room_id = config.station.room_id
    rooms = app[ROOMS]

    async def offer_to_browser(peer_id: str, offer: Description, session: int) -> None:
        """The station peer's offer, as a `signal` from peer "station" (if still there)."""
        relayed = Relayed(STATION_PEER_ID, offer, session=session)
        if not await rooms.send_to(room_id, peer_id, relayed):
            log.debug("station signal for a peer that left", extra={"peer_id": peer_id})

    peers = StationPeers(
        app[MEDIA],
        # minted for every connection, with a user name of its own (coturn counts its
        # quota per name): it only has to make the relay, which then outlives it
        ice_servers=lambda: ice_servers(
            config.ice,
            key=f"station:{secrets.token_hex(8)}",
            lifetime=STATION_CREDENTIAL_TTL,
            now=clock.now(),
        ),
        send=offer_to_browser,
        room_id=room_id,
    )
    app[PEERS] = peers
    _viewer_gauges(app[METRICS], peers)
    yield
    await peers.close_all()


async def _call_ctx(app: web.Application) -> AsyncIterator[None]:
    """CALL_MACHINE: the call machine (idle, ringing, in call) that opens the peers."""
    config = app[CONFIG]
    peers = app[PEERS]
    station = CallMachine(
        room=config.station.room_id,
        rooms=app[ROOMS],
        store=app[STORE],
        media=peers,
        ring_timeout=config.call.ring_timeout_seconds,
        auto_answer=config.call.auto_answer,
        auto_answer_delay=config.call.auto_answer_delay_seconds,
        auto_answer_links=app[SETTINGS].auto_answer,
        quiet=QuietMode(
            QuietHours.parse(app[SETTINGS].quiet_text), clock=app[CLOCK], settings=app[STORE]
        ),
        clock=app[CLOCK],
        ring_cooldown=config.call.ring_cooldown_seconds,
        guest_rings_per_minute=config.call.guest_rings_per_minute,
    )
    app[CALL_MACHINE] = station
    peers.on_lost(lambda peer_id: station.media_changed())  # e.g. ICE failed: tell everyone
    peers.on_connected(lambda peer_id: station.media_changed())  # live: media goes out now
    # A call that kill -9 or a power cut interrupted resumes, for its own people only,
    # if they come back within a few seconds of this start.
    if config.call.resume_seconds:
        station.restore(grace=config.call.resume_seconds)
    _call_gauges(app[METRICS], station, app[STORE])
    _station_gauges(app)
    yield
    await station.close()


async def _quiet_ctx(app: web.Application) -> AsyncIterator[None]:
    """Tells every screen when do not disturb turns by the clock (the kiosk's choice
    runs out at its end, the quiet hours begin or end)."""
    watch = asyncio.create_task(
        app[CALL_MACHINE].watch_quiet(quiet.CHECK_SECONDS), name="quiet-watch"
    )
    yield
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """HUB: every signaling socket, and the task that checks their sessions again."""
    hub = Hub(
        config=app[CONFIG],
        store=app[STORE],
        rooms=app[ROOMS],
        station=app[CALL_MACHINE],
        metrics=app[METRICS],
        auth=app[AUTH],
        settings=app[SETTINGS],
    )
    app[HUB] = hub
    app[CALL_MACHINE].on_evict(hub.evict)  # a knocker refused: bye, and the socket closes
    revalidation = asyncio.create_task(hub.run_revalidation(), name="revalidate-sessions")
    yield
    revalidation.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await revalidation


def _call_gauges(metrics: Metrics, station: CallMachine, store: Store) -> None:
    metrics.gauge(
        "call_live",
        "1 while the station's camera and microphone are sent",
        lambda: float(station.live),
    )
    metrics.gauge(
        "calls_answered",
        "Calls answered (call log)",
        lambda: float(store.count_calls().get("answered", 0)),
    )
    metrics.gauge(
        "calls_missed",
        "Calls missed (call log)",
        lambda: float(store.count_calls().get("missed", 0)),
    )
    metrics.gauge(
        "calls_declined",
        "Calls declined (call log)",
        lambda: float(store.count_calls().get("declined", 0)),
    )
    metrics.gauge(
        "call_log_write_failures",
        "Call-log writes that failed (the call went on)",
        lambda: float(station.store_errors),
    )


def _station_gauges(app: web.Application) -> None:
    """What an operator watching a fleet alerts on (monitoring/rules.yml): devices,
    the kiosk screen, the disk, missed calls, the clock, the build, a Pi's health."""
    metrics, station, media, store = app[METRICS], app[CALL_MACHINE], app[MEDIA], app[STORE]
    config, rooms, clock = app[CONFIG], app[ROOMS], app[CLOCK]
    for device in ("camera", "microphone"):
        metrics.labelled_gauge(
            f"{device}_state",
            f"The {device} as the last call found it (1 on the state): a device, a stand-in "
            "(test pattern or tone), none; unknown before the first call since the start",
            one_hot("state", DEVICE_STATES, functools.partial(lambda d: media.states()[d], device)),
        )
    metrics.labelled_gauge(
        "call_state",
        "The call machine's state (1 on it)",
        one_hot("state", CALL_STATES, lambda: station.state),
    )
    metrics.gauge(
        "kiosk_screen_joined",
        "1 while the kiosk's screen is in the station room",
        lambda: float(rooms.screen(station.room) is not None),
    )

    def disk() -> tuple[float, float] | None:
        try:
            usage = shutil.disk_usage(config.state_path)
        except OSError:
            return None
        return float(usage.free), float(usage.total)

    metrics.labelled_gauge(
        "state_free_bytes",
        "Free bytes on the state dir's filesystem",
        lambda: {(): d[0]} if (d := disk()) else {},
    )
    metrics.labelled_gauge(
        "state_size_bytes",
        "Size in bytes of the state dir's filesystem",
        lambda: {(): d[1]} if (d := disk()) else {},
    )
    metrics.gauge(
        "missed_calls_today",
        "Calls missed since local midnight",
        lambda: float(store.calls_since(_local_midnight(clock.now()))[0]),
    )
    metrics.labelled_gauge(
        "last_call_timestamp_seconds",
        "When the newest call in the log started (Unix time)",
        lambda: {(): t} if (t := store.calls_since(0)[1]) is not None else {},
    )
    metrics.labelled_gauge(
        "clock_synchronized",
        "1 once network time has set the clock (absent where it cannot be asked)",
        lambda: {(): float(s)} if (s := clock.synchronized()) is not None else {},
    )
    metrics.labelled_gauge(
        "video_encoder_running",
        "1 per video encoder running now: its codec, rung, FFmpeg encoder and size (a VP8 "
        "viewer adds one beside H.264)",
        lambda: {_encoder_labels(e): 1.0 for e in media.encoders()},
    )
    info = build_info()
    metrics.labelled_gauge("build_info", "The station's software", lambda: {info: 1.0})
    for name, help_text, read in pi_gauges():
        metrics.labelled_gauge(name, help_text, read)


def _encoder_labels(encoder: dict[str, Any]) -> Labels:
    """An encoder's labels: codec, rung, FFmpeg encoder, size (e.g. ``640x360``)."""
    return (
        ("codec", encoder["codec"]),
        ("rung", encoder["rung"]),
        ("implementation", encoder["implementation"]),
        ("size", f"{encoder['width']}x{encoder['height']}"),
    )


def _local_midnight(now: float) -> float:
    local = datetime.datetime.fromtimestamp(now).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _viewer_gauges(metrics: Metrics, peers: StationPeers) -> None:
    """Adaptive quality: one sample per viewer of the station camera."""
    snapshot = _StatsSnapshot(peers)
    for name, field_name, help_text in VIEWER_GAUGES:
        metrics.labelled_gauge(name, help_text, _viewer_reader(snapshot, field_name))


class _StatsSnapshot:
    """The viewers' stats, gathered once for every viewer gauge of one scrape (the
    gauges are read one after another, within a fraction of a second)."""

    FRESH_SECONDS = 0.25

    def __init__(self, peers: StationPeers) -> None:
        self._peers = peers
        self._taken = -self.FRESH_SECONDS
        self._viewers: dict[str, dict[str, Any]] = {}

    def viewers(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if now - self._taken >= self.FRESH_SECONDS:
            self._viewers, self._taken = self._peers.stats()["peers"], now
        return self._viewers


def _counter_reader(media: StationMedia, name: str) -> Callable[[], float]:
    return lambda: float(media.counters().get(name, 0))


VIEWER_GAUGES = (
    ("viewer_low_rung", "rung", "1 while the viewer gets the low rung (weak link), else 0"),
    ("viewer_relayed", "path", "1 while the viewer's media goes through a TURN relay, else 0"),
    ("viewer_estimated_bitrate", "estimated_bitrate", "Viewer's REMB estimate, bit/s"),
    ("viewer_loss_ratio", "loss", "Viewer's smoothed packet loss (0..1)"),
    ("viewer_rtt_seconds", "rtt", "Round-trip time to the viewer, s"),
    ("viewer_resent_packets", "resent", "Lost video packets sent again to the viewer"),
    (
        "viewer_resend_refused_packets",
        "resend_refused",
        "Lost video packets the viewer asked for and did not get again (too old, asked "
        "again within a round trip, or of a rung it left)",
    ),
)


def _viewer_reader(snapshot: _StatsSnapshot, field_name: str) -> Callable[[], dict[Labels, float]]:
    def read() -> dict[Labels, float]:
        samples: dict[Labels, float] = {}
        for peer_id, stats in snapshot.viewers().items():
            value = stats.get(field_name)
            if field_name == "rung" and value is not None:
                value = float(value == "low")
            elif field_name == "path" and value is not None:
                value = float(value == "relay")
            if value is not None:
                samples[(("peer", peer_id),)] = float(value)
        return samples

    return read


class _Spawned:
    """Tasks a context starts from device callbacks; cancelled at its teardown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _gpio_ctx(app: web.Application) -> AsyncIterator[None]:
    """GPIO: the button answers and hangs up, the LEDs follow the call."""
    from .gpio import StationControls

    station = app[CALL_MACHINE]
    spawn = _Spawned()
    controls = StationControls(
        app[CONFIG].gpio,
        loop=asyncio.get_running_loop(),
        on_press=lambda: spawn(station.button_pressed()),
        on_long_press=lambda: spawn(station.button_held()),
        pin_factory=app.get(PIN_FACTORY),
    )
    app[GPIO] = controls
    station.live_led = controls.has_live_led  # shows a resumed call going live

    def follow(call: CallObject) -> None:
        controls.set_ringing(call["state"] == "ringing")
        controls.set_live(bool(call["live"]))

    station.observers.append(follow)
    yield
    station.observers.remove(follow)
    await spawn.cancel()
    controls.close()


async def _screen_ctx(app: web.Application) -> AsyncIterator[None]:
    """SCREEN: the display wakes for a ring and stays on through a call."""
    from .screen import ScreenPower

    station = app[CALL_MACHINE]
    spawn = _Spawned()
    screen = ScreenPower(app[CONFIG].screen)
    app[SCREEN] = screen

    def follow(call: CallObject) -> None:
        busy = call["state"] != "idle"
        screen.hold(busy)
        if call["ended"] == "quiet" and not busy:
            return  # a call in quiet hours: nobody was rung, the screen stays as it is
        spawn(screen.wake() if call["state"] == "ringing" else screen.activity())

    station.observers.append(follow)
    yield
    station.observers.remove(follow)
    await spawn.cancel()
    await screen.close()


async def _systemd_ctx(app: web.Application) -> AsyncIterator[None]:
    notifier = app[NOTIFIER]
    station = app[CALL_MACHINE]

    def status(call: CallObject) -> None:
        notifier.status(station.status_line())

    station.observers.append(status)
    watchdog = asyncio.create_task(run_watchdog(notifier), name="watchdog")
    yield
    notifier.stopping()
    watchdog.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watchdog


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()


def ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.server.cert, config.server.key)
    return context


# Test-only hook, off unless the environment sets it (the VM tests do, in a drop-in):
# SIGUSR2 then blocks the event loop, so the watchdog pings stop and systemd must
# kill and restart the service. Without it, SIGUSR2 keeps its default (terminate).
TEST_HOOKS_ENV = "VIDEOSTATION_TEST_HOOKS"


def _block_event_loop() -> None:
    log.warning("test hook: blocking the event loop (SIGUSR2)")
    time.sleep(3600)


def _quiet_accept_errors(
    noise: Coalesced,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """asyncio logs a traceback for every failed ``accept()`` when descriptors run out
    (67,782 in 25 s under the slow-body attack of issue 22): one line a minute instead.
    The connection caps keep descriptors free, so this is the second line of defence."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            noise.warning("out of descriptors", "in accept(): %s", context.get("exception"))
        else:
            loop.default_exception_handler(context)

    return handle


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT: listen, notify READY=1, then shut down cleanly."""
    app = create_app(config)
    runner = StationRunner(
        app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.server.host,
        config.server.port,
        ssl_context=ssl_context(config),
        reuse_address=True,
    )
    await site.start()
    if config.tls and config.server.kiosk_port:
        # The station's own screen, over loopback only: no certificate needed for it.
        await web.TCPSite(runner, "127.0.0.1", config.server.kiosk_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_accept_errors(app[NOISE]))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if os.environ.get(TEST_HOOKS_ENV) == "1":
        loop.add_signal_handler(signal.SIGUSR2, _block_event_loop)
    notifier = app[NOTIFIER]
    notifier.ready()
    notifier.status(app[CALL_MACHINE].status_line())
    log.info("listening on %s (station %r)", config.base_url, config.station.name_or_default)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        notifier.stopping()
        await runner.cleanup()

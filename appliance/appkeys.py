"""The typed keys under which the application keeps its shared objects: every
``web.AppKey`` of the service, each set by one ``cleanup_ctx`` of ``app.py`` (named in
its comment)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .auth import Auth
from .clock import Clock
from .config import Config
from .hashing import PasswordWorker
from .logs import Coalesced
from .metrics import Metrics
from .rooms import Rooms
from .settings import StationSettings
from .store import Store
from .systemd import Notifier

if TYPE_CHECKING:
    from .call import CallMachine
    from .gpio import StationControls
    from .media import StationMedia
    from .media.peer import StationPeers
    from .screen import ScreenPower
    from .signaling import Hub

CONFIG = web.AppKey("config", Config)  # create_app
CLOCK = web.AppKey("clock", Clock)  # create_app: wall and monotonic time, jumps
METRICS = web.AppKey("metrics", Metrics)  # create_app
NOTIFIER = web.AppKey("notifier", Notifier)  # create_app: sd_notify
NOISE = web.AppKey("noise", Coalesced)  # create_app: lines strangers cause, one a minute per kind
PIN_FACTORY = web.AppKey("pin_factory", object)  # create_app: a gpiozero pin factory, in tests
STORE = web.AppKey("store", Store)  # _store_ctx
AUTH = web.AppKey("auth", Auth)  # _auth_ctx
SETTINGS = web.AppKey("settings", StationSettings)  # _settings_ctx: set in the app
PASSWORDS = web.AppKey("passwords", PasswordWorker)  # _passwords_ctx: the scrypt worker
ROOMS = web.AppKey("rooms", Rooms)  # _rooms_ctx
MEDIA: web.AppKey[StationMedia] = web.AppKey("media")  # _media_ctx
PEERS: web.AppKey[StationPeers] = web.AppKey("peers")  # _peers_ctx: the station's aiortc peers
CALL_MACHINE: web.AppKey[CallMachine] = web.AppKey("call_machine")  # _call_ctx: the call machine
HUB: web.AppKey[Hub] = web.AppKey("hub")  # _hub_ctx
GPIO: web.AppKey[StationControls] = web.AppKey("gpio")  # _gpio_ctx: button and LEDs
SCREEN: web.AppKey[ScreenPower] = web.AppKey("screen")  # _screen_ctx: display power

"""The typed keys under which the application keeps its shared objects: every
``web.AppKey`` of the service, each set by one ``cleanup_ctx`` of ``app.py`` (named in
its comment)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .auth import Auth
from .config import Config
from .metrics import Metrics
from .rooms import Rooms
from .store import Store
from .systemd import Notifier

if TYPE_CHECKING:
    from .call import CallMachine
    from .media import StationMedia
    from .media.peer import StationPeers
    from .signaling import Hub

CONFIG = web.AppKey("config", Config)  # create_app
METRICS = web.AppKey("metrics", Metrics)  # create_app
NOTIFIER = web.AppKey("notifier", Notifier)  # create_app: sd_notify
PIN_FACTORY = web.AppKey("pin_factory", object)  # create_app: a gpiozero pin factory, in tests
STORE = web.AppKey("store", Store)  # _state_ctx
AUTH = web.AppKey("auth", Auth)  # _state_ctx
ROOMS = web.AppKey("rooms", Rooms)  # _state_ctx
MEDIA: web.AppKey[StationMedia] = web.AppKey("media")  # _media_ctx
PEERS: web.AppKey[StationPeers] = web.AppKey("peers")  # _call_ctx: the station's aiortc peers
STATION: web.AppKey[CallMachine] = web.AppKey("station")  # _call_ctx: the call machine
HUB: web.AppKey[Hub] = web.AppKey("hub")  # _hub_ctx
HARDWARE: web.AppKey[dict[str, Any]] = web.AppKey("hardware")  # create_app, _hardware_ctx
"""Descriptions of the station's devices for /api/health/: {"gpio": "...", "screen": "..."}."""

"""The typed keys under which the application keeps its shared objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .auth import Auth
from .config import Config
from .metrics import Metrics
from .rooms import Rooms
from .store import Store

if TYPE_CHECKING:
    from .call import Station
    from .media import StationMedia
    from .signaling import Hub

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
AUTH = web.AppKey("auth", Auth)
METRICS = web.AppKey("metrics", Metrics)
ROOMS = web.AppKey("rooms", Rooms)
STATION: web.AppKey[Station] = web.AppKey("station")
HUB: web.AppKey[Hub] = web.AppKey("hub")
MEDIA: web.AppKey[StationMedia] = web.AppKey("media")
HARDWARE: web.AppKey[dict[str, Any]] = web.AppKey("hardware")
"""Descriptions of the station's devices for /api/health/: {"gpio": "...", "screen": "..."}."""

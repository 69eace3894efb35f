"""Station media: camera and microphone sources, encode-once fan-out, station peer.

``StationMedia`` owns the devices (opened only while some peer is sent to);
``StationPeers`` owns one send-only aiortc connection per viewer; ``probe_camera`` and
``probe_microphone`` back ``videostation doctor``.

The names below are looked up on first use (PEP 562): importing the package, or its
light modules (``station``, ``peer``), does not import aiortc, PyAV or numpy — about
45 MB the idle service does not pay for until a call needs them
(:meth:`StationPeers.prepare`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audio import AudioFanout, AudioFanoutTrack
    from .camera import camera_feed, open_camera, probe_camera
    from .microphone import microphone_feed, open_microphone, probe_microphone
    from .peer import StationPeers
    from .source import Resilient, Source
    from .station import StationMedia
    from .video import EncodedVideoTrack, VideoFanout

_HOMES = {
    "AudioFanout": "audio",
    "AudioFanoutTrack": "audio",
    "EncodedVideoTrack": "video",
    "Resilient": "source",
    "Source": "source",
    "StationMedia": "station",
    "StationPeers": "peer",
    "VideoFanout": "video",
    "camera_feed": "camera",
    "microphone_feed": "microphone",
    "open_camera": "camera",
    "open_microphone": "microphone",
    "probe_camera": "camera",
    "probe_microphone": "microphone",
}

__all__ = [
    "AudioFanout",
    "AudioFanoutTrack",
    "EncodedVideoTrack",
    "Resilient",
    "Source",
    "StationMedia",
    "StationPeers",
    "VideoFanout",
    "camera_feed",
    "microphone_feed",
    "open_camera",
    "open_microphone",
    "probe_camera",
    "probe_microphone",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{home}", __name__), name)

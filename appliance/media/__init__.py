"""Station media: camera and microphone sources, encode-once fan-out, station peer.

``StationMedia`` owns the devices (opened only while some peer is sent to);
``StationPeers`` owns one send-only aiortc connection per viewer; ``probe_camera`` and
``probe_microphone`` back ``videostation doctor``.
"""

from .audio import AudioFanout, AudioFanoutTrack
from .camera import camera_feed, open_camera, probe_camera
from .microphone import microphone_feed, open_microphone, probe_microphone
from .peer import StationPeers
from .source import Resilient, Source
from .station import StationMedia
from .video import EncodedVideoTrack, VideoFanout

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

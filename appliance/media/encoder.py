"""Encode the camera once, send the packets to every peer.

aiortc's ``RTCRtpSender`` takes an ``av.Packet`` from a track's ``recv()`` and only
packetizes it (``encoder.pack(packet)``): nothing is re-encoded per peer. So
:class:`VideoFanout` runs one H.264 encoder (the Pi's ``h264_v4l2m2m`` where it
works, else libx264 ultrafast/zerolatency, constrained baseline) and, only while some
peer negotiated VP8, one libvpx encoder; every peer's :class:`EncodedVideoTrack`
gets the packets of its codec::

    video = VideoFanout(CameraConfig(source="test", width=640, height=480))
    track = video.track()            # pc.addTransceiver(track, direction="sendonly")
    track.set_codec("H264")          # after the answer: the codec the sender got
    video.counters()["encoded_h264"] # frames encoded, once whatever the number of peers

A new viewer, a PLI/FIR from any viewer (see ``peer.py``) or a viewer that fell
behind asks the shared encoder for a keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.codeccontext import VideoCodecContext

from ..config import CameraConfig
from ..errors import MediaError
from .camera import camera_feed, output_size
from .fanout import Fanout
from .source import Resilient

logger = logging.getLogger(__name__)

CODECS = ("H264", "VP8")
TIME_BASE = fractions.Fraction(1, 90000)
KEYFRAME_MIN_INTERVAL = 0.3  # seconds: PLI storms from many viewers coalesce


class VideoEncoder:
    """One codec context, fed yuv420p frames, returning packets."""

    def __init__(self, codec: str, *, width: int, height: int, fps: int, bitrate: int) -> None:
        self.codec = codec
        self.width, self.height = width, height
        candidates = ["h264_v4l2m2m", "libx264"] if codec == "H264" else ["libvpx"]
        problems: list[str] = []
        for name in candidates:
            try:
                if name == "h264_v4l2m2m" and not serves_new_viewers(
                    self._open(name, fps, bitrate)
                ):
                    raise ValueError("forced keyframes carry no SPS/PPS: late viewers cannot join")
                self._context = self._open(name, fps, bitrate)
                self.implementation = name
                break
            except (av.FFmpegError, ValueError, OSError) as exc:
                problems.append(f"{name}: {exc}")
        else:
            raise MediaError(f"no {codec} encoder works: {'; '.join(problems)}")

    def _open(self, name: str, fps: int, bitrate: int) -> VideoCodecContext:
        ctx = cast(VideoCodecContext, av.CodecContext.create(name, "w"))
        ctx.width, ctx.height = self.width, self.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = fractions.Fraction(fps, 1)
        ctx.bit_rate = bitrate
        ctx.gop_size = fps * 10  # PLI and new viewers get keyframes on demand
        if name == "libx264":
            ctx.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "profile": "baseline",  # x264 baseline is constrained baseline (42e0..)
                "level": "31" if self.width * self.height <= 1280 * 720 else "40",
                "forced-idr": "1",
                "bf": "0",
            }
        elif name == "libvpx":
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "lag-in-frames": "0",
                "error-resilient": "1",
            }
        elif name == "h264_v4l2m2m":
            ctx.options = {"num_capture_buffers": "16"}
        ctx.open()
        return ctx

    def encode(self, frame: av.VideoFrame, *, keyframe: bool) -> list[av.Packet[Any]]:
        if (frame.width, frame.height) != (self.width, self.height) or frame.format.name != (
            "yuv420p"
        ):
            pts = frame.pts
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
            frame.pts, frame.time_base = pts, TIME_BASE
        picture = av.video.frame.PictureType
        frame.pict_type = picture.I if keyframe else picture.NONE
        packets: list[av.Packet[Any]] = list(self._context.encode(frame))
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets


def serves_new_viewers(ctx: VideoCodecContext) -> bool:
    """Does this H.264 encoder put SPS/PPS in front of a keyframe forced mid-stream?

    A viewer that joins late decodes from such a keyframe only. Hardware encoders
    (``h264_v4l2m2m``) exist in many FFmpeg builds, fail to open without the Pi's
    codec device, and on some kernels send the headers only once: then libx264 is used.
    """
    keyframes: list[bytes] = []
    blank = av.VideoFrame(ctx.width, ctx.height, "yuv420p")
    for index in range(30):
        blank.pts, blank.time_base = index * 3000, TIME_BASE
        blank.pict_type = (
            av.video.frame.PictureType.I if index == 10 else (av.video.frame.PictureType.NONE)
        )
        keyframes += [bytes(p) for p in ctx.encode(blank) if p.is_keyframe]
    later = keyframes[1:]
    return bool(later) and all(has_sps(k) for k in later)


def has_sps(data: bytes) -> bool:
    """Does this Annex B H.264 buffer hold a sequence parameter set (NAL type 7)?"""
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        if data[start + 3] & 0x1F == 7:
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False


class EncodedVideoTrack(MediaStreamTrack):
    """One peer's view of the shared encoder: the packets of its codec.

    Its queue holds at most ``depth`` packets; a peer that falls further behind
    loses what is queued and waits for the next keyframe (which it asks for), so it
    catches up instead of slowing everybody down.
    """

    kind = "video"

    def __init__(self, fanout: VideoFanout, *, depth: int = 15) -> None:
        super().__init__()
        self._fanout = fanout
        self._depth = depth
        self._packets: deque[av.Packet[Any]] = deque()
        self._ready = asyncio.Event()
        self._codec_known = asyncio.Event()
        self._need_keyframe = True
        self.codec: str | None = None
        """``"H264"`` or ``"VP8"``: what the peer's sender negotiated."""
        self.sent = 0
        """Packets handed to the sender."""
        self.dropped = 0
        """Packets dropped because the peer fell behind or waited for a keyframe."""

    def set_codec(self, codec: str) -> None:
        codec = codec.upper()
        if codec not in CODECS:
            raise MediaError(f"video codec {codec!r} is not one of {', '.join(CODECS)}")
        self.codec = codec
        self._need_keyframe = True
        self._codec_known.set()
        self._fanout.request_keyframe(codec)

    def request_keyframe(self) -> None:
        """A PLI or FIR from this peer: ask the shared encoder for a keyframe."""
        if self.codec is not None:
            self._fanout.request_keyframe(self.codec)

    def push(self, packet: av.Packet[Any]) -> None:
        if len(self._packets) >= self._depth:
            self.dropped += len(self._packets)
            self._packets.clear()
            self._need_keyframe = True
            self.request_keyframe()
        if self._need_keyframe and not packet.is_keyframe:
            self.dropped += 1
            return
        self._need_keyframe = False
        self._packets.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet[Any]:
        if self.codec is None:
            await self._codec_known.wait()
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        self._codec_known.set()
        self._ready.set()
        self._fanout._detach(self)


class VideoFanout(Fanout):
    """The camera, captured and encoded once per codec in use."""

    def __init__(
        self,
        cfg: CameraConfig,
        *,
        linger: float = 5.0,
        feed: Callable[[CameraConfig], Resilient[av.VideoFrame]] = camera_feed,
    ) -> None:
        super().__init__(name="camera", linger=linger)
        self._cfg = cfg
        self._feed = feed
        self._keyframe_wanted: set[str] = set()
        self._last_keyframe: dict[str, float] = {}
        self.frames = 0
        """Frames captured since start."""
        self.encoded = dict.fromkeys(CODECS, 0)
        """Frames encoded, per codec."""
        self.keyframes = dict.fromkeys(CODECS, 0)
        """Keyframes produced, per codec."""
        self.implementations: dict[str, str] = {}
        """The FFmpeg encoder behind each codec, e.g. ``{"H264": "libx264"}``."""

    def track(self) -> EncodedVideoTrack:
        track = EncodedVideoTrack(self)
        self._attach(track)
        return track

    def request_keyframe(self, codec: str) -> None:
        self._keyframe_wanted.add(codec)

    def _tracks(self) -> list[EncodedVideoTrack]:
        return [t for t in self._subscribers if isinstance(t, EncodedVideoTrack)]

    def _wants_keyframe(self, codec: str, now: float) -> bool:
        if codec not in self._keyframe_wanted:
            return False
        if now - self._last_keyframe.get(codec, 0.0) < KEYFRAME_MIN_INTERVAL:
            return False  # stays wanted: served by a later frame
        self._keyframe_wanted.discard(codec)
        return True

    async def _capture(self) -> None:
        feed = self._feed(self._cfg)
        width, height = output_size(self._cfg)
        encoders: dict[str, VideoEncoder] = {}
        started, last_pts = time.monotonic(), -1
        try:
            await feed.start()
            while True:
                frame = await feed.read()
                self.description = feed.describe()
                now = time.monotonic()
                # the wall clock, not the frame count: RTP timestamps stay true when
                # the camera drops frames or is replaced by the "unavailable" picture
                last_pts = max(last_pts + 1, int((now - started) * 90000))
                frame.pts, frame.time_base = last_pts, TIME_BASE
                self.frames += 1
                tracks = self._tracks()
                for codec in sorted({t.codec for t in tracks if t.codec is not None}):
                    if codec not in encoders:
                        encoders[codec] = await asyncio.to_thread(
                            VideoEncoder, codec, width=width, height=height,
                            fps=self._cfg.fps, bitrate=self._cfg.bitrate,
                        )  # fmt: skip
                        self.implementations[codec] = encoders[codec].implementation
                        logger.info("camera: %s encoder %s", codec, encoders[codec].implementation)
                    keyframe = self._wants_keyframe(codec, now)
                    packets = await asyncio.to_thread(
                        encoders[codec].encode, frame, keyframe=keyframe
                    )
                    for packet in packets:
                        self.encoded[codec] += 1
                        if packet.is_keyframe:
                            self.keyframes[codec] += 1
                            self._last_keyframe[codec] = now
                        for track in tracks:
                            if track.codec == codec:
                                track.push(packet)
                for codec in [c for c in encoders if all(t.codec != c for t in tracks)]:
                    del encoders[codec]  # the last VP8 peer left
        finally:
            await feed.close()

    def counters(self) -> dict[str, int]:
        tracks = self._tracks()
        return {
            "camera_frames": self.frames,
            "encoded_h264": self.encoded["H264"],
            "encoded_vp8": self.encoded["VP8"],
            "keyframes_h264": self.keyframes["H264"],
            "keyframes_vp8": self.keyframes["VP8"],
            "video_viewers": len(tracks),
            "video_packets_dropped": sum(t.dropped for t in tracks),
        }

"""The camera, encoded once, its packets sent to every peer.

aiortc's ``RTCRtpSender`` takes an ``av.Packet`` from a track's ``recv()`` and only
packetizes it (``encoder.pack(packet)``): nothing is re-encoded per peer. So
:class:`VideoFanout` runs one H.264 :class:`~.encoder.VideoEncoder` and, only while
some peer negotiated VP8, one VP8 encoder; every peer's :class:`EncodedVideoTrack`
gets the packets of its codec::

    video = VideoFanout(CameraConfig(source="test", width=640, height=480))
    track = video.track()            # pc.addTransceiver(track, direction="sendonly")
    track.set_codec("H264")          # after the answer: the codec the sender got
    video.counters()["encoded_h264"] # frames encoded, once whatever the number of peers

A new viewer, a PLI/FIR from any viewer (see ``peer.py``) or a viewer that fell
behind asks the shared encoder for a keyframe.

Weak links (see ``ratecontrol.py``): each track carries a :class:`ViewerLink` fed
from its viewer's RTCP. The camera is encoded at most twice per codec: the high rung
(camera size, its bitrate following the weakest viewer on it) and, only while some
viewer needs it, the low rung. A viewer moving between rungs keeps getting the old
rung until the new rung's keyframe (asked for on every switch) arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeAlias

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..config import CameraConfig
from ..errors import MediaError
from .camera import camera_feed, output_size
from .encoder import CODECS, TIME_BASE, VideoEncoder
from .fanout import Fanout
from .nack import Retransmissions
from .ratecontrol import Rung, RungPolicy, ViewerLink, high_bitrate, low_bitrate
from .source import Resilient

log = logging.getLogger(__name__)

RUNGS: tuple[Rung, ...] = ("high", "low")
KEYFRAME_MIN_INTERVAL = 0.3  # seconds: PLI storms from many viewers coalesce
BITRATE_INTERVAL = 1.0  # seconds between high-rung bitrate changes
BITRATE_STEP = 0.1  # smaller relative changes are not worth an encoder reconfiguration

Packets: TypeAlias = "dict[tuple[str, Rung], list[av.Packet[Any]]]"
"""One frame's packets per (codec, rung)."""


class RtpClock:
    """RTP timestamps (1/90000 s) from the wall clock, not the frame count: they stay
    true when the camera drops frames or is replaced by the "unavailable" picture.

    >>> clock = RtpClock(started=100.0)
    >>> clock.stamp(100.5), clock.stamp(100.5)  # never twice the same
    (45000, 45001)
    """

    def __init__(self, started: float) -> None:
        self._started = started
        self._last = -1

    def stamp(self, now: float) -> int:
        self._last = max(self._last + 1, int((now - self._started) * 90000))
        return self._last


def black_frame(width: int, height: int) -> av.VideoFrame:
    """A black yuv420p picture: what viewers get while the kiosk turned the camera off."""
    luma = np.full((height, width), 16, dtype=np.uint8)  # video-range black
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)  # U and V planes, no colour
    return av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")


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
        self.link = ViewerLink()
        """This viewer's link, from its RTCP; ``link.rung`` is the rung it should get."""
        self.rung: Rung = "high"
        """The rung this viewer gets now (follows ``link.rung`` at the next keyframe)."""
        self.codec: str | None = None
        """``"H264"`` or ``"VP8"``: what the peer's sender negotiated."""
        self.pinned: Rung | None = None
        """The rung this viewer keeps whatever its link (``camera.vp8_rung``), or None."""
        self.sent = 0
        """Packets handed to the sender."""
        self.dropped = 0
        """Packets dropped because the peer fell behind or waited for a keyframe."""
        self.retransmissions = Retransmissions()
        """Which of this viewer's lost packets are resent (``peer.py`` asks it)."""
        self._rung_since = 0.0

    @property
    def rung_since(self) -> float | None:
        """When this viewer's current rung began (monotonic seconds); None while it
        waits for the next rung's keyframe (nothing of the old rung is worth resending)."""
        return None if self.link.rung != self.rung else self._rung_since

    def set_codec(self, codec: str) -> None:
        codec = codec.upper()
        if codec not in CODECS:
            raise MediaError(f"video codec {codec!r} is not one of {', '.join(CODECS)}")
        self.codec = codec
        self.pinned = self._fanout.pinned_rung(codec)
        if self.pinned is not None:
            self.rung = self.link.rung = self.pinned
        self._need_keyframe = True
        self._codec_known.set()
        self._fanout.request_keyframe(codec, self.rung)

    def request_keyframe(self) -> None:
        """A PLI or FIR from this peer: ask the shared encoder for a keyframe."""
        if self.codec is not None:
            self._fanout.request_keyframe(self.codec, self.rung)

    def wants(self, rung: Rung) -> bool:
        """Does this track take packets of ``rung`` (its own, or the one it moves to)?"""
        return rung in (self.rung, self.link.rung)

    def push(self, packet: av.Packet[Any], rung: Rung = "high") -> None:
        if rung != self.rung:
            if rung != self.link.rung or not packet.is_keyframe:
                return
            self.rung = rung  # the switch: this keyframe starts the new rung
            self._rung_since = time.monotonic()
            self._need_keyframe = False
            # what is still queued of the old rung would only delay the keyframe on a
            # link that has just become too narrow (or wait behind it on a wide one)
            self.dropped += len(self._packets)
            self._packets.clear()
        elif self.link.rung != rung and self._need_keyframe:
            return  # a viewer between rungs waits for the new rung's keyframe
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

    # aiortc's sender packetizes an av.Packet with its encoder's pack(): tests/test_seams.py
    async def recv(self) -> av.Packet[Any]:
        if self.codec is None:
            await self._codec_known.wait()
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        packet = self._packets.popleft()
        self.link.on_sent(packet.size, now=time.monotonic())
        return packet

    def stop(self) -> None:
        super().stop()
        self._codec_known.set()
        self._ready.set()
        self._fanout._detach(self)


class RawVideoTrack(MediaStreamTrack):
    """One peer's camera pictures, not encoded: its aiortc sender encodes them itself
    (``camera.encoding = "per-peer"``, aiortc's own way, kept as a reference). Holds the
    newest picture only: a peer whose encoder falls behind skips pictures."""

    kind = "video"

    def __init__(self, fanout: VideoFanout) -> None:
        super().__init__()
        self._fanout = fanout
        self._frame: av.VideoFrame | None = None
        self._ready = asyncio.Event()
        self.sent = 0
        """Pictures handed to the sender's encoder."""
        self.dropped = 0
        """Pictures replaced by a newer one before the encoder took them."""

    def push(self, frame: av.VideoFrame) -> None:
        self.dropped += self._frame is not None
        self._frame = frame
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        while self._frame is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        self.sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
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
        self._keyframe_wanted: set[tuple[str, Rung]] = set()
        self._last_keyframe: dict[tuple[str, Rung], float] = {}
        self.policy = RungPolicy.from_config(cfg)
        """When viewers move between rungs (tests shorten its timings)."""
        self.high_bitrate = cfg.bitrate
        """The high rung's bitrate now."""
        self.low_bitrate = cfg.low_bitrate
        """The low rung's bitrate now."""
        self._bitrate_at = 0.0
        self.rung_switches = 0
        """Viewers moved between rungs."""
        self.encoded_low = 0
        """Frames encoded at the low rung (all codecs)."""
        self.frames = 0
        """Frames captured since start."""
        self.blanked = False
        """The kiosk turned the camera off: every viewer gets black pictures and the
        device is closed (its LED goes out); turning it on again re-opens it."""
        self.device_open = False
        """Is the camera device open (capturing) right now?"""
        self.encoded = dict.fromkeys(CODECS, 0)
        """Frames encoded, per codec."""
        self.keyframes = dict.fromkeys(CODECS, 0)
        """Keyframes produced, per codec."""
        self.implementations: dict[str, str] = {}
        """The FFmpeg encoder behind each codec, e.g. ``{"H264": "libx264"}``."""
        self._running: dict[tuple[str, Rung], VideoEncoder] = {}

    def track(self) -> EncodedVideoTrack:
        track = EncodedVideoTrack(self)
        self._attach(track)
        return track

    def raw_track(self) -> RawVideoTrack:
        """A viewer whose sender encodes the pictures itself (per-peer encoding)."""
        track = RawVideoTrack(self)
        self._attach(track)
        return track

    def request_keyframe(self, codec: str, rung: Rung = "high") -> None:
        self._keyframe_wanted.add((codec, rung))

    def pinned_rung(self, codec: str) -> Rung | None:
        """The rung every viewer of ``codec`` gets: VP8 viewers (browsers without H.264)
        the low one, unless ``camera.vp8_rung = "high"``: their encoder runs beside the
        H.264 one, and at 720p it would double what the Pi spends on encoding."""
        return "low" if codec == "VP8" and self._cfg.vp8_rung == "low" else None

    def encoders(self) -> list[dict[str, Any]]:
        """The encoders running now: codec, rung, FFmpeg encoder and size."""
        return [
            {"codec": codec, "rung": rung, "implementation": e.implementation,
             "width": e.width, "height": e.height}
            for (codec, rung), e in sorted(self._running.items())
        ]  # fmt: skip

    def _tracks(self) -> list[EncodedVideoTrack]:
        return [t for t in self._subscribers if isinstance(t, EncodedVideoTrack)]

    def _wants_keyframe(self, key: tuple[str, Rung], now: float) -> bool:
        if key not in self._keyframe_wanted:
            return False
        if now - self._last_keyframe.get(key, 0.0) < KEYFRAME_MIN_INTERVAL:
            return False  # stays wanted: served by a later frame
        self._keyframe_wanted.discard(key)
        return True

    def _adapt(self, tracks: list[EncodedVideoTrack], now: float) -> None:
        """Move viewers between rungs; set the high rung's bitrate."""
        if not self._cfg.adaptive:
            return
        switched = False
        for track in tracks:
            if track.pinned is not None:
                continue
            before = track.link.rung
            if self.policy.choose(track.link, now=now) != before:
                switched = True
                self.rung_switches += 1
                log.info(
                    "camera: viewer moves %s -> %s (estimate %s bit/s, loss %.1f%%, "
                    "queue %.2f s, paused %.2f s)",
                    before, track.link.rung, track.link.estimate, track.link.loss * 100,
                    track.link.queued(now=now), max(0.0, track.link.paused_until - now),
                )  # fmt: skip
            if (
                track.codec is not None
                and track.rung != track.link.rung
                and now >= track.link.paused_until
            ):
                self.request_keyframe(track.codec, track.link.rung)
        if switched or now - self._bitrate_at >= BITRATE_INTERVAL:
            # a viewer that moves gets a rung at what its link carries from the first
            # picture: the low rung opened at its full rate would keep a full link full
            self._bitrate_at = now
            self.high_bitrate = high_bitrate([t.link for t in tracks], cfg=self._cfg)
            self.low_bitrate = low_bitrate([t.link for t in tracks], cfg=self._cfg)

    def _size(self, rung: Rung) -> tuple[int, int]:
        width, height = output_size(self._cfg)
        if rung == "high":
            return width, height
        # the low rung keeps the camera's aspect ratio (a rotated camera stays upright)
        scale = min(1.0, (self._cfg.low_width * self._cfg.low_height / (width * height)) ** 0.5)
        return max(16, int(width * scale) // 2 * 2), max(16, int(height * scale) // 2 * 2)

    @staticmethod
    def _deliver(tracks: list[EncodedVideoTrack], produced: Packets, now: float) -> None:
        """Hand each viewer one rung's packets of this frame. A viewer moving between
        rungs takes the new rung's keyframe *instead of* the old rung's picture of the
        same frame: both carry the same RTP timestamp, and a receiver would glue them
        into one frame that no decoder can use (the viewer froze on the new rung). A
        viewer paused after a move down (``ViewerLink.paused_until``) gets nothing."""
        for track in tracks:
            if track.codec is None or now < track.link.paused_until:
                continue
            rung = track.rung
            if track.link.rung != rung:
                moving = produced.get((track.codec, track.link.rung), [])
                if any(packet.is_keyframe for packet in moving):
                    rung = track.link.rung
            for packet in produced.get((track.codec, rung), []):
                before = track.rung
                track.push(packet, rung)
                if track.rung != before:
                    log.info("camera: viewer now on the %s rung", rung)

    async def _capture(self) -> None:
        encoders: dict[tuple[str, Rung], VideoEncoder] = {}
        self._running = encoders  # what encoders() reports
        clock = RtpClock(time.monotonic())
        try:
            while True:
                if self.blanked:
                    await self._black(encoders, clock)
                await self._camera(encoders, clock)
        finally:
            encoders.clear()  # they end with the capture

    async def _camera(
        self, encoders: dict[tuple[str, Rung], VideoEncoder], clock: RtpClock
    ) -> None:
        """The camera's pictures to the viewers, until the kiosk turns it off."""
        feed = self._feed(self._cfg)
        try:
            await feed.start()
            self.device_open = True
            while True:
                frame = await feed.read()
                if self.blanked:  # turned off while the frame was on its way
                    break
                self.description = feed.describe()
                await self._send(frame, encoders, clock)
        finally:
            self.device_open = False
            await feed.close()

    async def _black(self, encoders: dict[tuple[str, Rung], VideoEncoder], clock: RtpClock) -> None:
        """Black pictures at the camera's rate, the device closed, until it is on again:
        the viewers' streams keep going (no renegotiation, no frozen last picture)."""
        self.description = "off (turned off at the kiosk)"
        width, height = output_size(self._cfg)
        black = black_frame(width // 2 * 2, height // 2 * 2)  # one picture, sent again
        period = 1 / self._cfg.fps
        due = time.monotonic()
        while self.blanked:
            await self._send(black, encoders, clock)
            due = max(due + period, time.monotonic() - period)
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _send(
        self, frame: av.VideoFrame, encoders: dict[tuple[str, Rung], VideoEncoder], clock: RtpClock
    ) -> None:
        """Encode one camera frame once per (codec, rung) some viewer takes, hand each
        viewer its packets, and close the encoders nobody takes any more."""
        now = time.monotonic()
        frame.pts, frame.time_base = clock.stamp(now), TIME_BASE
        self.frames += 1
        tracks = self._tracks()
        self._adapt(tracks, now)
        wanted = sorted({(t.codec, r) for t in tracks if t.codec for r in RUNGS if t.wants(r)})
        produced: Packets = {}
        for key in wanted:
            encoder = await self._encoder(encoders, key)
            produced[key] = await self._encode(encoder, key, frame, now)
        self._deliver(tracks, produced, now)
        for raw in self._subscribers:
            if isinstance(raw, RawVideoTrack):
                raw.push(frame)
        for key in [k for k in encoders if k not in wanted]:
            del encoders[key]  # the last viewer of this codec or rung left

    async def _encoder(
        self, encoders: dict[tuple[str, Rung], VideoEncoder], key: tuple[str, Rung]
    ) -> VideoEncoder:
        """The encoder of ``key`` at its rung's bitrate now (opened on first use)."""
        codec, rung = key
        bitrate = self.high_bitrate if rung == "high" else self.low_bitrate
        encoder = encoders.get(key)
        if encoder is None:
            width, height = self._size(rung)
            encoder = encoders[key] = await asyncio.to_thread(
                VideoEncoder, codec, width=width, height=height,
                fps=self._cfg.fps, bitrate=bitrate,
                max_bitrate=self._cfg.bitrate if rung == "high" else self._cfg.low_bitrate,
            )  # fmt: skip
            self.implementations[codec] = encoder.implementation
            log.info(
                "camera: %s %s encoder %s %dx%d",
                codec, rung, encoder.implementation, width, height,
            )  # fmt: skip
        elif abs(encoder.bitrate - bitrate) > BITRATE_STEP * bitrate:
            encoder.set_bitrate(bitrate)
        return encoder

    async def _encode(
        self, encoder: VideoEncoder, key: tuple[str, Rung], frame: av.VideoFrame, now: float
    ) -> list[av.Packet[Any]]:
        """One frame through one encoder (a keyframe if one is due), counted."""
        codec, rung = key
        keyframe = self._wants_keyframe(key, now)
        packets = await asyncio.to_thread(encoder.encode, frame, keyframe=keyframe)
        for packet in packets:
            self.encoded[codec] += 1
            self.encoded_low += rung == "low"
            if packet.is_keyframe:
                self.keyframes[codec] += 1
                self._last_keyframe[key] = now
        return packets

    def counters(self) -> dict[str, int]:
        tracks = self._tracks()
        return {
            "camera_frames": self.frames,
            "camera_open": int(self.device_open),
            "encoded_h264": self.encoded["H264"],
            "encoded_vp8": self.encoded["VP8"],
            "keyframes_h264": self.keyframes["H264"],
            "keyframes_vp8": self.keyframes["VP8"],
            "video_viewers": self.subscribers,
            "video_packets_dropped": sum(t.dropped for t in tracks),
            "encoded_low": self.encoded_low,
            "viewers_low": sum(t.rung == "low" for t in tracks),
            "rung_switches": self.rung_switches,
            "high_bitrate": self.high_bitrate,
            "low_bitrate": self.low_bitrate,
        }

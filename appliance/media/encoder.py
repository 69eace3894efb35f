"""One video encoder: a PyAV codec context fed yuv420p frames, returning packets.

:class:`VideoEncoder` opens the Pi's ``h264_v4l2m2m`` where it works (it must put
SPS/PPS in front of every forced keyframe, see :func:`serves_new_viewers`), else
libx264 ultrafast/zerolatency, constrained baseline; VP8 is libvpx. The fan-out
(``video.py``) runs one per codec and rung in use::

    encoder = VideoEncoder("H264", width=640, height=480, fps=30, bitrate=1_000_000)
    packets = encoder.encode(frame, keyframe=True)   # av.Packets, time base 1/90000
    encoder.set_bitrate(600_000)                     # libx264: in place, no keyframe
"""

from __future__ import annotations

import fractions
from typing import Any, cast

import av
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import VideoReformatter

from ..errors import MediaError

CODECS = ("H264", "VP8")
TIME_BASE = fractions.Fraction(1, 90000)

VBV_PER_SECOND = 4
"""libx264's VBV buffer holds 1/4 s of the bitrate it is opened with (the rung's highest)."""


class VideoEncoder:
    """One codec context, fed yuv420p frames, returning packets."""

    def __init__(
        self, codec: str, *, width: int, height: int, fps: int, bitrate: int,
        max_bitrate: int | None = None,
    ) -> None:  # fmt: skip
        """``max_bitrate`` (default ``bitrate``): the most :meth:`set_bitrate` may ask for
        later; libx264's VBV is sized from it."""
        self.codec = codec
        self.max_bitrate = max(bitrate, max_bitrate or bitrate)
        self.width, self.height = width, height
        self.fps, self.bitrate = fps, bitrate
        # one scaler for the encoder's life: a frame's own reformat() builds swscale's
        # context anew every frame, which cost more than the scaling (0.96 vs 0.34 ms a
        # 1280x720 frame to 640x360 here) and more than the low rung's encode
        self._scaler = VideoReformatter()
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
                # VBV: no picture (a keyframe above all) larger than a quarter second of
                # the bitrate. Uncapped, a keyframe is 10-30x a frame: a 400 kbit/s link's
                # queue drops its tail, the viewer asks for another keyframe, and freezes.
                "maxrate": str(self.max_bitrate),
                "bufsize": str(self.max_bitrate // VBV_PER_SECOND),
            }
        elif name == "libvpx":
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "lag-in-frames": "0",
                "error-resilient": "1",
                # one thread: FFmpeg's default (a thread per core) made libvpx spend 7-11
                # times the CPU on the same frames here (640x360: 3.3 against 24 ms a
                # frame; 1280x720: 6.8 against 64-77), waiting on each other on a busy
                # machine; what a Pi with a call to carry cannot afford
                "threads": "1",
            }
        elif name == "h264_v4l2m2m":
            ctx.options = {"num_capture_buffers": "16"}
        if name == "libx264":
            # opened at the most it may be asked for, then lowered in place: libx264's
            # rate control opened at a low bitrate stayed there when asked for three
            # times as much later (100 kbit/s at 640x360 for 15 s, asked for 300), while
            # one opened high goes down and back up within a second
            ctx.bit_rate = self.max_bitrate
            ctx.open()
            ctx.bit_rate = bitrate
        else:
            ctx.open()
        return ctx

    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bitrate. libx264 reconfigures in place (FFmpeg compares
        ``bit_rate`` before each frame); other encoders are re-opened (a keyframe)."""
        self.bitrate = bitrate
        if self.implementation == "libx264":
            self._context.bit_rate = bitrate
        else:
            self._context = self._open(self.implementation, self.fps, bitrate)

    def encode(self, frame: av.VideoFrame, *, keyframe: bool) -> list[av.Packet[Any]]:
        if (frame.width, frame.height) != (self.width, self.height) or frame.format.name != (
            "yuv420p"
        ):
            pts = frame.pts
            frame = self._scaler.reformat(
                frame, width=self.width, height=self.height, format="yuv420p"
            )
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

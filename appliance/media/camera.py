"""Camera sources: test pattern, V4L2 (USB webcams), picamera2 (the Pi camera).

``camera.source`` in the config picks one; ``auto`` tries picamera2, then the V4L2
device if it exists, then the test pattern, which always works. The chosen source
is wrapped by :func:`camera_feed` so a camera that fails mid-call shows a "camera
unavailable" picture while it is re-opened in the background::

    feed = camera_feed(CameraConfig(source="auto", width=1280, height=720))
    await feed.start()
    frame = await feed.read()     # av.VideoFrame, yuv420p, rotated as configured
    await feed.close()

``rotation`` turns hardware pictures (a camera mounted sideways or upside down);
the test pattern is drawn upright at the rotated size.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..config import CameraConfig
from ..errors import SourceUnavailable
from .pattern import (
    PatternPainter,
    Plane,
    even,
    from_planes,
    planes,
    unavailable_frame,
    yuv_array,
)
from .source import DeviceReader, Pacer, Resilient, Source, open_container, probe, resilient_feed

log = logging.getLogger(__name__)

V4L2_HINT = "plug the camera in, check `v4l2-ctl --list-devices`, camera.device in the config"
PICAMERA2_HINT = "install python3-picamera2 and create the venv with --system-site-packages"


def device_exists(path: str) -> bool:
    """A stat of /dev, instant: not worth a thread."""
    return os.path.exists(path)


def output_size(cfg: CameraConfig) -> tuple[int, int]:
    """Width and height of the pictures sent, after rotation."""
    w, h = even(cfg.width), even(cfg.height)
    return (h, w) if cfg.rotation in (90, 270) else (w, h)


class TestPattern:
    """A moving test pattern with the wall-clock time and a frame counter."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, width: int, height: int, fps: int) -> None:
        self._painter = PatternPainter(width, height)
        self._pacer = Pacer(1 / fps)
        self._fps = fps
        self._index = 0

    async def read(self) -> av.VideoFrame:
        await self._pacer.wait()
        frame = self._painter.paint(self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"test-pattern {self._painter.width}x{self._painter.height}@{self._fps}"


class V4l2Camera:
    """A V4L2 device (``/dev/videoN``) decoded by PyAV in a thread.

    Asks for MJPEG first (what USB webcams deliver at 720p30), then YUYV.
    """

    def __init__(self, reader: DeviceReader[av.VideoFrame], device: str, mode: str) -> None:
        self._reader = reader
        self._device = device
        self._mode = mode

    @classmethod
    async def open(cls, cfg: CameraConfig) -> V4l2Camera:
        if not device_exists(cfg.device):
            raise SourceUnavailable(f"v4l2: no device at {cfg.device} ({V4L2_HINT})")
        w, h = even(cfg.width), even(cfg.height)
        problem: SourceUnavailable | None = None
        for mode in ("mjpeg", "yuyv422", ""):
            options = {"video_size": f"{w}x{h}", "framerate": str(cfg.fps)}
            if mode:
                options["input_format"] = mode
            try:
                container = await asyncio.to_thread(
                    open_container, cfg.device, fmt="v4l2", options=options,
                    what="v4l2", hint=V4L2_HINT,
                )  # fmt: skip
            except SourceUnavailable as exc:
                problem = exc
                continue

            reader: DeviceReader[av.VideoFrame] = DeviceReader(
                container, kind="video", name=f"v4l2 {cfg.device}", convert=to_yuv420(w, h)
            )
            return cls(reader, cfg.device, mode or "native")
        assert problem is not None
        raise problem

    async def read(self) -> av.VideoFrame:
        return await self._reader.read()

    def close(self) -> None:
        self._reader.close()

    def describe(self) -> str:
        return f"v4l2 {self._device} ({self._mode})"


class Picamera2Camera:
    """The Raspberry Pi camera through picamera2 (libcamera), YUV420 frames."""

    def __init__(self, camera: Any, width: int, height: int, fps: int) -> None:
        self._camera = camera
        self._width, self._height, self._fps = width, height, fps
        self._closed = False

    @classmethod
    async def open(cls, cfg: CameraConfig) -> Picamera2Camera:
        try:
            module = importlib.import_module("picamera2")
        except ImportError as exc:
            raise SourceUnavailable(f"picamera2: not installed ({PICAMERA2_HINT})") from exc
        w, h = even(cfg.width), even(cfg.height)

        def start() -> Any:
            camera = module.Picamera2()
            try:
                config = camera.create_video_configuration(
                    main={"size": (w, h), "format": "YUV420"},
                    controls={"FrameRate": float(cfg.fps)},
                )
                camera.configure(config)
                camera.start()
            except BaseException:
                camera.close()
                raise
            return camera

        try:
            camera = await asyncio.to_thread(start)
        except Exception as exc:  # libcamera raises RuntimeError, IndexError...
            raise SourceUnavailable(f"picamera2: no camera could be started: {exc}") from exc
        return cls(camera, w, h, cfg.fps)

    async def read(self) -> av.VideoFrame:
        if self._closed:
            raise SourceUnavailable("picamera2: closed")
        try:
            array = await asyncio.to_thread(self._camera.capture_array, "main")
        except Exception as exc:  # mapped at the boundary
            raise SourceUnavailable(f"picamera2: capture failed: {exc}") from exc
        return yuv420_frame(np.asarray(array, dtype=np.uint8), self._width, self._height)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for step in (self._camera.stop, self._camera.close):
            try:
                step()
            except Exception as exc:  # closing must not raise
                log.debug("picamera2 close: %s", exc)

    def describe(self) -> str:
        return f"picamera2 {self._width}x{self._height}@{self._fps}"


def yuv420_frame(array: Plane, width: int, height: int) -> av.VideoFrame:
    """A frame from a YUV420 array whose rows may be padded (``stride >= width``)."""
    stride = array.shape[1] if array.ndim == 2 else width
    flat = array.reshape(-1)
    ysize, csize = height * stride, (height // 2) * (stride // 2)
    y = flat[:ysize].reshape(height, stride)[:, :width]
    u = flat[ysize : ysize + csize].reshape(height // 2, stride // 2)[:, : width // 2]
    v = flat[ysize + csize : ysize + 2 * csize].reshape(height // 2, stride // 2)[:, : width // 2]
    return from_planes(y, u, v)


def to_yuv420(width: int, height: int) -> Callable[[av.VideoFrame], list[av.VideoFrame]]:
    """A converter of a device's frames to yuv420p at ``width`` x ``height``. It keeps
    one scaler: a frame's own ``reformat()`` builds swscale's context anew every frame,
    which costs more than the conversion itself."""
    scaler = VideoReformatter()

    def convert(frame: av.VideoFrame) -> list[av.VideoFrame]:
        return [scaler.reformat(frame, width=width, height=height, format="yuv420p")]

    return convert


def rotate(frame: av.VideoFrame, degrees: int) -> av.VideoFrame:
    """``frame`` turned clockwise by 90, 180 or 270 degrees (yuv420p out)."""
    if degrees % 360 == 0:
        return frame
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    k = -(degrees // 90)  # np.rot90 turns counter-clockwise
    y, u, v = planes(yuv_array(frame), frame.width, frame.height)
    return from_planes(np.rot90(y, k), np.rot90(u, k), np.rot90(v, k))


class Rotated:
    """Turns every frame of a hardware source."""

    def __init__(self, source: Source[av.VideoFrame], degrees: int) -> None:
        self._source = source
        self._degrees = degrees

    async def read(self) -> av.VideoFrame:
        return rotate(await self._source.read(), self._degrees)

    def close(self) -> None:
        self._source.close()

    def describe(self) -> str:
        return f"{self._source.describe()} rotated {self._degrees}"


async def open_camera(
    cfg: CameraConfig, kind: str | None = None, *, fallback: bool = True
) -> Source[av.VideoFrame]:
    """Open the camera ``kind`` (default: ``cfg.source``); ``auto`` falls back in order
    picamera2, v4l2, test pattern (without ``fallback``: raises instead of the
    pattern). Raises SourceUnavailable for a named kind."""
    kind = kind or cfg.source
    if kind == "auto":
        problems = []
        for candidate in ("picamera2", "v4l2"):
            if candidate == "v4l2" and not device_exists(cfg.device):
                problems.append(f"v4l2: no device {cfg.device}")
                continue
            try:
                return await open_camera(cfg, candidate)
            except SourceUnavailable as exc:
                (log.info if fallback else log.debug)("camera auto: %s", exc)
                problems.append(str(exc))
        if not fallback:
            raise SourceUnavailable("; ".join(problems))
        kind = "test"
    source: Source[av.VideoFrame]
    if kind == "test":
        w, h = output_size(cfg)
        return TestPattern(w, h, cfg.fps)
    if kind == "v4l2":
        source = await V4l2Camera.open(cfg)
    elif kind == "picamera2":
        source = await Picamera2Camera.open(cfg)
    else:
        raise SourceUnavailable(f"camera.source: unknown source {kind!r}")
    return Rotated(source, cfg.rotation) if cfg.rotation else source


def kind_of(source: Source[av.VideoFrame]) -> str:
    name = source.describe().split(" ", 1)[0]
    return "test" if name == "test-pattern" else name


def camera_feed(
    cfg: CameraConfig,
    *,
    backoff: tuple[float, float] = (0.5, 10.0),
    search_backoff: tuple[float, float] = (1.0, 30.0),
) -> Resilient[av.VideoFrame]:
    """The station's camera: the configured source, kept alive by :class:`Resilient`
    (a "camera unavailable" picture while a failed camera is re-opened, as itself).
    With ``auto``, the test pattern stands in while no camera opens, and the cameras are
    tried again until one does (a USB camera plugged in later)."""
    w, h = output_size(cfg)
    return resilient_feed(
        lambda kind: open_camera(cfg, kind),
        kind_of=kind_of,
        placeholder=lambda: unavailable_frame(w, h),
        period=1 / cfg.fps,
        kind="camera",
        backoff=backoff,
        find_device=(lambda: open_camera(cfg, fallback=False)) if cfg.source == "auto" else None,
        search_backoff=search_backoff,
    )


def probe_camera(cfg: CameraConfig, *, timeout: float = 5.0) -> tuple[bool, str]:
    """For ``videostation doctor``: open the camera briefly, read one frame and say in
    plain words what was found and how to fix it. True when a real camera works
    (or the test pattern was asked for)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _probe(cfg, wait=timeout)).result()


async def _probe(cfg: CameraConfig, wait: float) -> tuple[bool, str]:
    if cfg.source == "test":
        w, h = output_size(cfg)
        return True, f"test pattern {w}x{h}@{cfg.fps} (camera.source = 'test')"
    found, notes = await probe(
        ["picamera2", "v4l2"] if cfg.source == "auto" else [cfg.source],
        lambda kind: open_camera(cfg, kind),
        wait=wait,
        close=lambda source: asyncio.to_thread(source.close),
        nothing="picture",
    )
    if found is not None:
        picture = f"{found.frame.width}x{found.frame.height}"
        return True, f"{found.source}: {picture} picture in {found.took:.2f} s"
    if cfg.source == "auto":
        return (
            False,
            f"no camera found ({'; '.join(notes)}); the station sends the test pattern instead",
        )
    return False, "; ".join(notes)

"""What every camera and microphone source has in common.

A *source* yields decoded frames, one ``await source.read()`` at a time, says what it
is with ``describe()`` and releases its device with ``close()`` (safe to call twice).
Devices that block (V4L2 through PyAV) are read by a
:class:`DeviceReader` thread so the event loop never waits on hardware.

:class:`Resilient` keeps a call up when a device fails: it hands out placeholder
frames ("camera unavailable", silence) while it re-opens the device with backoff::

    feed = Resilient(open_v4l2, placeholder=unavailable_frame, period=1 / 30, kind="camera")
    frame = await feed.read()   # a real frame, or the placeholder while the camera is gone
    await feed.close()

The camera and the microphone have the same shape: ``open_*(cfg, kind)`` opens a
kind of device (``auto`` falls back to a test source), :func:`resilient_feed` keeps
the kind that worked alive through failures, and :func:`probe` opens each kind in
turn for ``videostation doctor`` until one sends a frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import av

from ..errors import SourceUnavailable

log = logging.getLogger(__name__)

FrameT = TypeVar("FrameT", av.VideoFrame, av.AudioFrame)
FrameT_co = TypeVar("FrameT_co", av.VideoFrame, av.AudioFrame, covariant=True)


class Source(Protocol[FrameT_co]):
    """A camera (``av.VideoFrame``) or microphone (``av.AudioFrame``)."""

    async def read(self) -> FrameT_co:
        """The next frame; raises :class:`SourceUnavailable` when the device fails."""
        ...

    def close(self) -> None:
        """Release the device. Idempotent."""
        ...

    def describe(self) -> str:
        """Plain words for status pages, e.g. ``v4l2 /dev/video0``."""
        ...


class Pacer:
    """Sleeps so that successive ``wait()`` calls return ``period`` seconds apart.

    A source that falls behind (a busy CPU) skips ahead instead of bursting.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next == 0.0 or now - self._next > self.period * 3:
            self._next = now
        delay = self._next - now
        self._next += self.period
        if delay > 0:
            await asyncio.sleep(delay)


def open_container(url: str, *, fmt: str, options: dict[str, str], what: str, hint: str) -> Any:
    """``av.open`` for an input device, mapping every failure to SourceUnavailable."""
    if fmt not in _demuxers():
        raise SourceUnavailable(f"{what}: this PyAV build has no {fmt!r} input ({hint})")
    try:
        return av.open(url, format=fmt, options=options, timeout=5.0)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise SourceUnavailable(f"{what}: cannot open {url!r}: {exc} ({hint})") from exc


def _demuxers() -> set[str]:
    names: set[str] = set()
    for entry in av.formats_available:
        names.update(entry.split(","))
    return names


class DeviceReader(Generic[FrameT]):
    """Decodes one stream of an open PyAV container in a thread.

    ``convert`` (run in the thread) turns each decoded frame into zero or more
    frames the station uses (scaled to yuv420p, resampled to 20 ms of 48 kHz).

    Keeps only the newest ``depth`` frames: a slow consumer gets fresh frames, not
    a growing backlog. Errors of the thread surface at the next :meth:`read`.
    """

    def __init__(
        self,
        container: Any,
        *,
        kind: str,
        name: str,
        convert: Callable[[FrameT], list[FrameT]] | None = None,
        depth: int = 4,
    ) -> None:
        self._container = container
        self._convert: Callable[[FrameT], list[FrameT]] | None = convert
        self._kind = kind
        self._name = name
        self._frames: deque[FrameT] = deque(maxlen=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"read {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            stream = self._container.streams.get(**{self._kind: 0})
            for frame in self._container.decode(*stream):
                if self._stop.is_set():
                    return
                self._frames.extend(self._convert(frame) if self._convert else [frame])
                self._loop.call_soon_threadsafe(self._ready.set)
            self._error = SourceUnavailable(f"{self._name}: the device stopped sending")
        except BaseException as exc:  # handed to the reading task
            self._error = exc
        finally:
            with suppress(RuntimeError):  # the loop may be closed already
                self._loop.call_soon_threadsafe(self._ready.set)

    async def read(self) -> FrameT:
        while not self._frames:
            if self._error is not None or self._stop.is_set():
                exc = self._error
                raise SourceUnavailable(f"{self._name}: {exc or 'closed'}") from exc
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        # Closing the container unblocks a read stuck in the device.
        with suppress(Exception):
            self._container.close()
        self._thread.join(timeout=2.0)


class Resilient(Generic[FrameT]):
    """A source that survives its device: placeholders while re-opening with backoff.

    ``opener`` opens the device (blocking calls belong in a thread; it is awaited).
    ``placeholder()`` makes the frame shown while the device is gone, one per
    ``period`` seconds.

    ``stand_in(source)`` says whether ``source`` only stands in for a device (the test
    source that ``auto`` settles for when it finds none); while one does,
    ``find_device()`` is tried with backoff and the first device it opens takes over
    (a microphone whose PipeWire was still starting, a camera that came up late).
    """

    def __init__(
        self,
        opener: Callable[[], Awaitable[Source[FrameT]]],
        *,
        placeholder: Callable[[], FrameT],
        period: float,
        kind: str,
        backoff: tuple[float, float] = (0.5, 10.0),
        stand_in: Callable[[Source[FrameT]], bool] = lambda source: False,
        find_device: Callable[[], Awaitable[Source[FrameT]]] | None = None,
        search_backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self._opener: Callable[[], Awaitable[Source[FrameT]]] = opener
        self._stand_in: Callable[[Source[FrameT]], bool] = stand_in
        self._find_device: Callable[[], Awaitable[Source[FrameT]]] | None = find_device
        self._search_backoff = search_backoff
        self._search: asyncio.Task[None] | None = None
        self._placeholder: Callable[[], FrameT] = placeholder
        self._pacer = Pacer(period)
        self._kind = kind
        self._backoff = backoff
        self._source: Source[FrameT] | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._problem = "not opened yet"
        self._closed = False
        self.failures = 0
        """How often the device failed or could not be re-opened."""

    async def start(self) -> None:
        """Open the device now; on failure start the background re-open."""
        try:
            self._use(await self._opener())
        except SourceUnavailable as exc:
            self._lost(str(exc))

    def _use(self, source: Source[FrameT]) -> None:
        self._source = source
        searching = self._search is not None and not self._search.done()
        if self._find_device is not None and self._stand_in(source) and not searching:
            self._search = asyncio.create_task(self._search_loop(self._find_device))

    async def _search_loop(self, find: Callable[[], Awaitable[Source[FrameT]]]) -> None:
        delay, limit = self._search_backoff
        while not self._closed:
            await asyncio.sleep(delay)
            current = self._source
            if current is None or not self._stand_in(current):
                return  # a failure or a re-open took the device in the meantime
            try:
                device = await find()
            except SourceUnavailable as exc:
                log.debug("%s: still no device: %s", self._kind, exc)
                delay = min(delay * 2, limit)
                continue
            if self._closed or self._source is not current:
                device.close()
                return
            self._source = device
            await asyncio.to_thread(current.close)
            log.info("%s found: %s (was %s)", self._kind, device.describe(), current.describe())
            return

    def describe(self) -> str:
        if self._source is not None:
            return self._source.describe()
        return f"unavailable: {self._problem}"

    @property
    def available(self) -> bool:
        return self._source is not None

    async def read(self) -> FrameT:
        source = self._source
        if source is not None:
            try:
                return await source.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any device failure keeps the call up
                if source is self._source:
                    self._source = None
                    source.close()
                    self._lost(str(exc) or type(exc).__name__)
        await self._pacer.wait()
        return self._placeholder()

    def _lost(self, problem: str) -> None:
        self.failures += 1
        self._problem = problem
        log.warning("%s unavailable: %s; re-opening in the background", self._kind, problem)
        if not self._closed and (self._reopen is None or self._reopen.done()):
            self._reopen = asyncio.create_task(self._reopen_loop())

    async def _reopen_loop(self) -> None:
        delay, limit = self._backoff
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                source = await self._opener()
            except SourceUnavailable as exc:
                self.failures += 1
                self._problem = str(exc)
                delay = min(delay * 2, limit)
                continue
            if self._closed:
                source.close()
                return
            self._use(source)
            log.info("%s back: %s", self._kind, source.describe())
            return

    async def close(self) -> None:
        self._closed = True
        for task in (self._reopen, self._search):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self._source is not None:
            source, self._source = self._source, None
            await asyncio.to_thread(source.close)


def resilient_feed(
    open_kind: Callable[[str | None], Awaitable[Source[FrameT]]],
    *,
    kind_of: Callable[[Source[FrameT]], str],
    placeholder: Callable[[], FrameT],
    period: float,
    kind: str,
    backoff: tuple[float, float],
    find_device: Callable[[], Awaitable[Source[FrameT]]] | None = None,
    search_backoff: tuple[float, float] = (1.0, 30.0),
) -> Resilient[FrameT]:
    """A :class:`Resilient` feed of the configured source that, after a failure,
    re-opens the kind that had worked (a webcam that was unplugged comes back as
    itself, not as the test pattern).

    ``open_kind(None)`` opens the configured kind (``auto`` picks one),
    ``open_kind(k)`` opens kind ``k``; ``kind_of(source)`` names what was opened
    (``"test"`` for the test sources). With ``find_device`` (``auto`` without its test
    fallback), a test source that ``auto`` settled for is replaced by the first device
    that ``find_device()`` opens later.
    """
    chosen: list[str] = []

    def choose(source: Source[FrameT]) -> Source[FrameT]:
        if not chosen and kind_of(source) != "test":
            chosen.append(kind_of(source))
        return source

    async def opener() -> Source[FrameT]:
        return choose(await open_kind(chosen[0] if chosen else None))

    async def device() -> Source[FrameT]:
        assert find_device is not None
        return choose(await find_device())

    return Resilient(
        opener,
        placeholder=placeholder,
        period=period,
        kind=kind,
        backoff=backoff,
        stand_in=lambda source: kind_of(source) == "test",
        find_device=device if find_device is not None else None,
        search_backoff=search_backoff,
    )


@dataclass(frozen=True)
class Probed(Generic[FrameT]):
    """The first source that sent a frame, for ``videostation doctor``."""

    source: str
    """What it is (its ``describe()``)."""
    frame: FrameT
    took: float
    """Seconds from opening the device to its first frame."""


async def probe(
    kinds: Iterable[str],
    open_kind: Callable[[str], Awaitable[Source[FrameT]]],
    *,
    wait: float,
    close: Callable[[Source[FrameT]], Awaitable[None]],
    nothing: str,
) -> tuple[Probed[FrameT] | None, list[str]]:
    """Open each kind in turn, read one frame within ``wait`` seconds, close it.

    Returns the first that sent a frame (or None) and a note on each that did not
    (``nothing`` names what it failed to send: ``"picture"``, ``"sound"``).
    """
    notes: list[str] = []
    for kind in kinds:
        started = time.monotonic()
        try:
            source = await open_kind(kind)
        except SourceUnavailable as exc:
            notes.append(str(exc))
            continue
        try:
            frame = await asyncio.wait_for(source.read(), wait)
        except (SourceUnavailable, TimeoutError) as exc:
            notes.append(f"{source.describe()} opened but sent no {nothing}: {exc or 'timeout'}")
            continue
        finally:
            await close(source)
        return Probed(source.describe(), frame, time.monotonic() - started), notes
    return None, notes

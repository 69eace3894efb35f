"""Capture once, hand to many: the part of fan-out shared by camera and microphone.

A :class:`Fanout` captures only while someone listens. The first subscriber starts
the capture task (the device is opened then, never while the station is idle); when
the last one leaves, capture stops after ``linger`` seconds, so a quick re-connect
does not re-open the camera. Each subscriber is an aiortc ``MediaStreamTrack`` with a
small queue of its own, so one slow peer never holds up the others.

:class:`AudioFanout` is the microphone's: every peer gets the same 20 ms frames and
its sender encodes them to Opus (cheap next to video)::

    audio = AudioFanout(MicrophoneConfig(source="test"))
    track = audio.track()          # give it to pc.addTrack / a transceiver
    ...
    track.stop()                   # the microphone closes ``linger`` s after the last
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..config import MicrophoneConfig
from .microphone import SAMPLE_RATE, microphone_feed
from .pcm import dbfs, silence
from .source import Resilient

logger = logging.getLogger(__name__)


class Fanout(ABC):
    """Runs :meth:`_capture` while at least one subscriber is attached."""

    def __init__(self, *, name: str, linger: float) -> None:
        self.name = name
        self.linger = linger
        self._subscribers: set[MediaStreamTrack] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._closed = False
        self.description = "off"
        """What is being captured, for status pages ("off" while idle)."""

    @property
    def capturing(self) -> bool:
        """True while the device is open (including the linger after the last peer)."""
        return any(t is not None and not t.done() for t in (self._task, self._stopping))

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _attach(self, track: MediaStreamTrack) -> None:
        if self._closed:
            raise MediaStreamError(f"{self.name}: closed")
        self._subscribers.add(track)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is None:
            logger.info("%s: first viewer, starting capture", self.name)
            previous, self._stopping = self._stopping, None
            self._task = asyncio.create_task(self._run(previous), name=f"capture {self.name}")

    def _detach(self, track: MediaStreamTrack) -> None:
        if track not in self._subscribers:
            return
        self._subscribers.discard(track)
        if not self._subscribers and self._task is not None and self._linger is None:
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(self.linger, self._linger_over)

    def _linger_over(self) -> None:
        self._linger = None
        if not self._subscribers and self._task is not None:
            logger.info("%s: no viewer for %.1f s, stopping capture", self.name, self.linger)
            self._stopping, self._task = self._task, None
            self._stopping.cancel()

    async def _run(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # the device is closed before it is re-opened
        try:
            await self._capture()
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("%s: capture failed", self.name)
        finally:
            self.description = "off"
            if self._task is asyncio.current_task():
                self._task = None
                for track in list(self._subscribers):
                    track.stop()

    @abstractmethod
    async def _capture(self) -> None:
        """Open the device, feed the subscribers until cancelled, close the device."""

    async def close(self) -> None:
        """Stop capturing now and end every track. Idempotent."""
        self._closed = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        for track in list(self._subscribers):
            track.stop()
        tasks = [t for t in (self._task, self._stopping) if t is not None]
        self._task = self._stopping = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


class AudioFanoutTrack(MediaStreamTrack):
    """One peer's view of the shared microphone."""

    kind = "audio"

    def __init__(self, fanout: AudioFanout, *, depth: int = 10) -> None:
        super().__init__()
        self._fanout = fanout
        self._frames: deque[av.AudioFrame] = deque(maxlen=depth)
        self._ready = asyncio.Event()
        self.sent = 0
        """Frames handed to the sender."""

    def push(self, frame: av.AudioFrame) -> None:
        self._frames.append(frame)  # a full queue drops the oldest 20 ms
        self._ready.set()

    async def recv(self) -> av.AudioFrame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()
        self._fanout._detach(self)


class AudioFanout(Fanout):
    """The microphone, captured once for every peer."""

    def __init__(
        self,
        cfg: MicrophoneConfig,
        *,
        linger: float = 5.0,
        feed: Callable[[MicrophoneConfig], Resilient[av.AudioFrame]] = microphone_feed,
    ) -> None:
        super().__init__(name="microphone", linger=linger)
        self._cfg = cfg
        self._feed = feed
        self.frames = 0
        """20 ms frames captured since start."""
        self.muted = False
        """The kiosk muted the station: every listener gets silence instead of the
        microphone (the device stays open, so unmuting is instant)."""
        self._squares = 0.0
        self._samples = 0

    def take_level(self) -> float | None:
        """The RMS level (dBFS) of what was sent since the last call, or None when
        nothing was (no call, the microphone not open yet)."""
        squares, samples = self._squares, self._samples
        self._squares, self._samples = 0.0, 0
        return dbfs(squares, samples) if samples else None

    def _measure(self, frame: av.AudioFrame) -> None:
        data = frame.to_ndarray().astype(np.float64)
        self._squares += float(np.dot(data.ravel(), data.ravel()))
        self._samples += data.size

    def track(self) -> AudioFanoutTrack:
        track = AudioFanoutTrack(self)
        self._attach(track)
        return track

    async def _capture(self) -> None:
        feed = self._feed(self._cfg)
        time_base = fractions.Fraction(1, SAMPLE_RATE)
        samples = 0
        try:
            await feed.start()
            while True:
                frame = await feed.read()
                self.description = feed.describe()
                if self.muted:
                    frame = silence()
                self._measure(frame)
                # one continuous clock, whatever source (or silence) the frame came from
                frame.pts, frame.time_base = samples, time_base
                samples += frame.samples
                self.frames += 1
                for track in list(self._subscribers):
                    if isinstance(track, AudioFanoutTrack):
                        track.push(frame)
        finally:
            await feed.close()

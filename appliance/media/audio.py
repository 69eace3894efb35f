"""The microphone, captured once: every peer gets the same 20 ms frames and its
sender encodes them to Opus (cheap next to video)::

    audio = AudioFanout(MicrophoneConfig(source="test"))
    track = audio.track()          # give it to pc.addTrack / a transceiver
    ...
    track.stop()                   # the microphone closes ``linger`` s after the last
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..config import MicrophoneConfig
from .fanout import Fanout
from .microphone import SAMPLE_RATE, microphone_feed
from .pcm import dbfs, silence
from .source import Resilient


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

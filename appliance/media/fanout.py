"""Capture once, hand to many: the fan-out shared by the camera and the microphone.

A :class:`Fanout` captures only while someone listens. The first subscriber starts
the capture task (the device is opened then, never while the station is idle); when
the last one leaves, capture stops after ``linger`` seconds, so a quick re-connect
does not re-open the camera. Each subscriber is an aiortc ``MediaStreamTrack`` with a
small queue of its own, so one slow peer never holds up the others. The two media
are its subclasses: ``video.py`` (:class:`~.video.VideoFanout`, the camera encoded
once) and ``audio.py`` (:class:`~.audio.AudioFanout`, the microphone).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)


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
        self._description = "off"
        self.found = ""
        """What the device was the last time it was open ("" before that): while idle
        the station still knows whether it has a camera or a stand-in (metrics)."""

    @property
    def description(self) -> str:
        """What is being captured, for status pages ("off" while idle)."""
        return self._description

    @description.setter
    def description(self, value: str) -> None:
        self._description = value
        if not value.startswith("off"):
            self.found = value

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
            log.info("%s: first viewer, starting capture", self.name)
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
            log.info("%s: no viewer for %.1f s, stopping capture", self.name, self.linger)
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
            log.exception("%s: capture failed", self.name)
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

"""Raw PCM from a capture program, cut into the station's 20 ms audio frames.

The station's audio format is signed 16-bit mono at 48 kHz, in ``av.AudioFrame``s of
960 samples with ``pts`` counted in samples (``time_base`` 1/48000): what aiortc's
Opus encoder takes. :class:`PcmCapture` runs a program that records in exactly that
format to its stdout (``pw-record``, ``parec`` or ``arecord``; never through a shell)
and hands out one frame per 1920 bytes it writes. When the program ends (no
PipeWire, a busy or unplugged device) the next read raises
:class:`SourceUnavailable` with the program's last words from stderr::

    mic = await PcmCapture.start(["arecord", "-q", "-t", "raw", "-f", "S16_LE",
                                  "-r", "48000", "-c", "1"], name="alsa default")
    frame = await mic.read()    # 960 samples, s16 mono, 48 kHz
    mic.close()                 # kills the program; from any thread, any number of times
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import os
import re
import subprocess
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import av
import numpy as np

from ..errors import SourceUnavailable

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2  # s16 mono
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
START_TIMEOUT = 3.0
"""Seconds a capture program gets to send its first 20 ms before we give up on it."""
STALL_TIMEOUT = 2.0
"""Seconds of no sound after which a running program counts as failed (and is
replaced), so that a call hears silence rather than nothing at all."""

# "ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) " and "arecord: main:831: " say where in
# the C source a message came from, which helps nobody reading `videostation doctor`.
_SOURCE_LOCATION = re.compile(r"^(ALSA lib \S+:\d+:\(\w+\)|\S+: \w+:\d+:)\s*")
# A program given an option it does not know says so, then prints its usage (an
# indented option list after "pw-record [options] ..."): the first line is the news.
_USAGE = re.compile(r"^(\s|\S+ \[options\])")


def audio_frame(samples: np.ndarray[Any, np.dtype[np.int16]], pts: int) -> av.AudioFrame:
    """A mono s16 48 kHz frame holding ``samples``."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def silence(pts: int = 0) -> av.AudioFrame:
    """20 ms of silence (what a call hears while the microphone is re-opened)."""
    return audio_frame(np.zeros(FRAME_SAMPLES, dtype=np.int16), pts)


LEVEL_FLOOR_DBFS = -90.0
"""The quietest level reported: digital silence reads as this, not minus infinity."""


def dbfs(sum_squares: float, count: int) -> float:
    """The RMS level of ``count`` s16 samples whose squares sum to ``sum_squares``, in
    dB below a full-scale square wave (a full-scale sine reads -3 dBFS)::

        >>> dbfs(0.0, 960)
        -90.0
        >>> round(dbfs(960 * 32768.0**2, 960), 1)
        0.0
    """
    if count <= 0 or sum_squares <= 0:
        return LEVEL_FLOOR_DBFS
    rms = math.sqrt(sum_squares / count) / 32768.0
    return max(LEVEL_FLOOR_DBFS, 20 * math.log10(rms))


def pcm_frame(chunk: bytes, pts: int) -> av.AudioFrame:
    """The frame for ``chunk``: little-endian s16 samples as the programs write them."""
    return audio_frame(np.frombuffer(chunk, dtype="<i2").astype(np.int16, copy=False), pts)


class _Pipes(asyncio.SubprocessProtocol):
    """Collects the program's stdout in whole frames and the tail of its stderr."""

    def __init__(self, program: str, depth: int) -> None:
        self.program = program
        self.partial = bytearray()
        self.chunks: deque[bytes] = deque(maxlen=depth)
        self.dropped = 0
        self.stderr: deque[str] = deque(maxlen=6)
        self._stderr_partial = b""
        self.stdout_closed = False
        self.changed = asyncio.Event()
        self.finished = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        if fd == 1:
            self.partial += data
            whole = len(self.partial) - len(self.partial) % FRAME_BYTES
            if whole:
                for start in range(0, whole, FRAME_BYTES):
                    if len(self.chunks) == self.chunks.maxlen:
                        self.dropped += 1  # a stalled reader gets fresh sound, not delay
                    self.chunks.append(bytes(self.partial[start : start + FRAME_BYTES]))
                del self.partial[:whole]
                self.changed.set()
        elif fd == 2:
            *lines, self._stderr_partial = (self._stderr_partial + data).split(b"\n")
            for line in lines:
                self._said(line)

    def _said(self, raw: bytes) -> None:
        text = raw.decode(errors="replace")
        if _USAGE.match(text):
            log.debug("%s: %s", self.program, text.strip())
            return
        line = _SOURCE_LOCATION.sub("", text.strip())
        if line:
            log.debug("%s: %s", self.program, line)
            self.stderr.append(line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.stdout_closed = True
            self.changed.set()
        elif fd == 2 and self._stderr_partial:
            self._said(self._stderr_partial)
            self._stderr_partial = b""

    def process_exited(self) -> None:
        self.changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        # the program has exited and both of its pipes are closed
        self.finished.set()
        self.changed.set()


class PcmCapture:
    """A capture program's stdout as a microphone source (see the module docstring).

    Keeps only the newest ``depth`` frames when nobody reads, like the camera.
    """

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        pipes: _Pipes,
        *,
        name: str,
        stall: float = STALL_TIMEOUT,
    ) -> None:
        self._transport = transport
        self._pipes = pipes
        self._name = name
        self._stall = stall
        self._loop = asyncio.get_running_loop()
        self._samples = 0
        self._closed = False

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        name: str,
        startup: float = START_TIMEOUT,
        stall: float = STALL_TIMEOUT,
        depth: int = 25,
    ) -> PcmCapture:
        """Run ``argv`` and wait for its first 20 ms of sound.

        Raises :class:`SourceUnavailable` when the program is missing, ends before it
        sends sound, or sends none within ``startup`` seconds. Later, :meth:`read`
        raises it when the program ends or sends nothing for ``stall`` seconds.
        """
        program = argv[0]
        loop = asyncio.get_running_loop()
        # English messages: they are shown to operators and matched by the caller.
        env = {**os.environ, "LC_ALL": "C"}
        try:
            transport, pipes = await loop.subprocess_exec(
                lambda: _Pipes(program, depth),
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError as exc:
            raise SourceUnavailable(f"{program} not found") from exc
        except OSError as exc:
            raise SourceUnavailable(f"{program} cannot run: {exc.strerror or exc}") from exc
        capture = cls(transport, pipes, name=name, stall=stall)
        try:
            async with asyncio.timeout(startup):
                while not pipes.chunks:
                    if pipes.stdout_closed:
                        raise SourceUnavailable(await capture._ended())
                    pipes.changed.clear()
                    await pipes.changed.wait()
        except TimeoutError:
            capture.close()
            raise SourceUnavailable(f"{program} sent no sound within {startup:g} s") from None
        except BaseException:
            capture.close()
            raise
        return capture

    @property
    def pid(self) -> int:
        return self._transport.get_pid()

    @property
    def returncode(self) -> int | None:
        """The program's exit status once it has ended (negative: killed by a signal)."""
        return self._transport.get_returncode()

    @property
    def dropped(self) -> int:
        """Frames thrown away because nobody read them in time."""
        return self._pipes.dropped

    async def read(self) -> av.AudioFrame:
        pipes = self._pipes
        try:
            async with asyncio.timeout(self._stall):
                while not pipes.chunks:
                    if self._closed:
                        raise SourceUnavailable(f"{self._name}: closed")
                    if pipes.stdout_closed:
                        raise SourceUnavailable(f"{self._name}: {await self._ended()}")
                    pipes.changed.clear()
                    await pipes.changed.wait()
        except TimeoutError:
            raise SourceUnavailable(
                f"{self._name}: {pipes.program} sent no sound for {self._stall:g} s"
            ) from None
        frame = pcm_frame(pipes.chunks.popleft(), self._samples)
        self._samples += FRAME_SAMPLES
        return frame

    async def _ended(self) -> str:
        """Why the program stopped, in its own words (waits briefly for all of them)."""
        try:
            async with asyncio.timeout(1.0):
                await self._pipes.finished.wait()
        except TimeoutError:
            pass
        code = self._transport.get_returncode()
        if code is None:
            status = "closed its output"
        elif code < 0:
            status = f"killed by signal {-code}"
        else:
            status = f"exit status {code}"
        words = "; ".join(list(self._pipes.stderr)[-2:]) or "no message"
        return f"{self._pipes.program} stopped ({status}): {words}"

    async def wait_closed(self) -> None:
        """Wait until the program has exited and been reaped (after :meth:`close`)."""
        await self._pipes.finished.wait()

    def close(self) -> None:
        """Kill the program. Idempotent, and safe from a worker thread (``to_thread``)."""
        if self._closed:
            return
        self._closed = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._shutdown()
            return
        try:
            self._loop.call_soon_threadsafe(self._shutdown)
        except RuntimeError:  # its loop is gone: at least stop the program
            with suppress(ProcessLookupError):
                self._transport.kill()

    def _shutdown(self) -> None:
        # kills the program if it still runs and closes our ends of its pipes; the
        # child watcher reaps it, so no zombie is left behind
        self._transport.close()
        self._pipes.changed.set()

    def describe(self) -> str:
        return self._name

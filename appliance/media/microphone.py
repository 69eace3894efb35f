"""Microphone sources: test tone, PulseAudio/PipeWire, ALSA.

Every source yields 20 ms ``av.AudioFrame``s of signed 16-bit mono at 48 kHz with
``pts`` counted in samples (``time_base`` 1/48000), which is what aiortc's Opus
encoder takes. ``microphone.source = "auto"`` tries PulseAudio (PipeWire's
echo-cancelled default source on the appliance), then ALSA, then the test tone::

    mic = microphone_feed(MicrophoneConfig(source="auto"))
    await mic.start()
    frame = await mic.read()     # 960 samples, s16 mono, 48 kHz
    await mic.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
import math
import time
from typing import Any

import av
import numpy as np

from ..config import MicrophoneConfig
from ..errors import SourceUnavailable
from .source import DeviceReader, Pacer, Resilient, Source, open_container

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
HINTS = {
    "pulse": "is PipeWire/PulseAudio running for the service user? `pactl list sources short`",
    "alsa": "check `arecord -l` and microphone.device (e.g. 'hw:1,0'), and the audio group",
}


def audio_frame(samples: np.ndarray[Any, np.dtype[np.int16]], pts: int) -> av.AudioFrame:
    """A mono s16 48 kHz frame holding ``samples``."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def silence(pts: int = 0) -> av.AudioFrame:
    return audio_frame(np.zeros(FRAME_SAMPLES, dtype=np.int16), pts)


class TestTone:
    """A 440 Hz sine at a quarter of full scale, paced in real time."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.25) -> None:
        self._frequency = frequency
        self._amplitude = amplitude
        self._pacer = Pacer(FRAME_SAMPLES / SAMPLE_RATE)
        self._samples = 0

    async def read(self) -> av.AudioFrame:
        await self._pacer.wait()
        t = (self._samples + np.arange(FRAME_SAMPLES)) / SAMPLE_RATE
        wave = np.sin(2 * math.pi * self._frequency * t) * self._amplitude * 32767
        frame = audio_frame(wave.astype(np.int16), self._samples)
        self._samples += FRAME_SAMPLES
        return frame

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"test-tone {self._frequency:g} Hz"


class DeviceMicrophone:
    """A PulseAudio (``pulse``) or ALSA (``alsa``) capture device through PyAV."""

    def __init__(self, reader: DeviceReader[av.AudioFrame], fmt: str, device: str) -> None:
        self._reader = reader
        self._fmt = fmt
        self._device = device
        self._samples = 0

    @classmethod
    async def open(cls, fmt: str, device: str) -> DeviceMicrophone:
        device = device or "default"
        options = {"sample_rate": str(SAMPLE_RATE), "channels": "1"}
        container = await asyncio.to_thread(
            open_container, device, fmt=fmt, options=options, what=fmt, hint=HINTS[fmt]
        )
        resampler = av.AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES
        )

        def convert(frame: av.AudioFrame) -> list[av.AudioFrame]:
            frame.pts = None  # device clocks are not ours; we count samples
            return list(resampler.resample(frame))

        reader: DeviceReader[av.AudioFrame] = DeviceReader(
            container, kind="audio", name=f"{fmt} {device}", convert=convert, depth=25
        )
        return cls(reader, fmt, device)

    async def read(self) -> av.AudioFrame:
        frame = await self._reader.read()
        frame.pts = self._samples
        frame.time_base = TIME_BASE
        self._samples += frame.samples
        return frame

    def close(self) -> None:
        self._reader.close()

    def describe(self) -> str:
        return f"{self._fmt} {self._device}"


async def open_microphone(cfg: MicrophoneConfig, kind: str | None = None) -> Source[av.AudioFrame]:
    """Open the microphone ``kind`` (default ``cfg.source``); ``auto`` falls back in
    order pulse, alsa, test tone. Raises SourceUnavailable for a named kind."""
    kind = kind or cfg.source
    if kind == "auto":
        for candidate in ("pulse", "alsa"):
            try:
                return await DeviceMicrophone.open(candidate, cfg.device)
            except SourceUnavailable as exc:
                logger.info("microphone auto: %s", exc)
        kind = "test"
    if kind == "test":
        return TestTone()
    if kind in ("pulse", "alsa"):
        return await DeviceMicrophone.open(kind, cfg.device)
    raise SourceUnavailable(f"microphone.source: unknown source {kind!r}")


def microphone_feed(
    cfg: MicrophoneConfig, *, backoff: tuple[float, float] = (0.5, 10.0)
) -> Resilient[av.AudioFrame]:
    """The station's microphone: silence while a failed device is re-opened."""
    chosen: list[str] = []

    async def opener() -> Source[av.AudioFrame]:
        source = await open_microphone(cfg, chosen[0] if chosen else None)
        if not chosen:
            name = source.describe().split(" ", 1)[0]
            chosen.append("test" if name == "test-tone" else name)
        return source

    return Resilient(
        opener,
        placeholder=silence,
        period=FRAME_SAMPLES / SAMPLE_RATE,
        kind="microphone",
        backoff=backoff,
    )


def probe_microphone(cfg: MicrophoneConfig, *, timeout: float = 3.0) -> tuple[bool, str]:
    """For ``videostation doctor``: open the microphone briefly, read 20 ms and say in
    plain words what was found and how to fix it. True when a real device works (or
    the test tone was asked for)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _probe(cfg, wait=timeout)).result()


async def _probe(cfg: MicrophoneConfig, wait: float) -> tuple[bool, str]:
    if cfg.source == "test":
        return True, "test tone 440 Hz (microphone.source = 'test')"
    notes: list[str] = []
    for kind in ("pulse", "alsa") if cfg.source == "auto" else (cfg.source,):
        try:
            source = await DeviceMicrophone.open(kind, cfg.device)
        except SourceUnavailable as exc:
            notes.append(str(exc))
            continue
        started = time.monotonic()
        try:
            frame = await asyncio.wait_for(source.read(), wait)
        except (SourceUnavailable, TimeoutError) as exc:
            notes.append(f"{source.describe()} opened but sent no sound: {exc or 'timeout'}")
            continue
        finally:
            await asyncio.to_thread(source.close)
        peak = int(np.abs(frame.to_ndarray()).max())
        took = time.monotonic() - started
        level = "silent (muted?)" if peak == 0 else f"peak {peak}/32767"
        return True, f"{source.describe()}: sound in {took:.2f} s, {level}"
    found = "; ".join(notes)
    if cfg.source == "auto":
        return False, f"no microphone found ({found}); the station sends a test tone instead"
    return False, found

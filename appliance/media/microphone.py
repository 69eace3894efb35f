"""Microphone sources: test tone, PipeWire/PulseAudio, ALSA.

Every source yields 20 ms ``av.AudioFrame``s of signed 16-bit mono at 48 kHz with
``pts`` counted in samples (``time_base`` 1/48000), which is what aiortc's Opus
encoder takes. ``microphone.source = "auto"`` tries PulseAudio (PipeWire's
echo-cancelled default source on the appliance), then ALSA, then the test tone::

    mic = microphone_feed(MicrophoneConfig(source="auto"))
    await mic.start()
    frame = await mic.read()     # 960 samples, s16 mono, 48 kHz
    await mic.close()

The devices are recorded by the sound system's own command-line tools, whose raw
output :class:`~.pcm.PcmCapture` cuts into frames (PyAV's wheels cannot do it: they
have no PulseAudio input, and their bundled alsa-lib finds no ALSA configuration):

``pulse``
    ``pw-record`` (Debian package ``pipewire-bin``), else ``parec``
    (``pulseaudio-utils``). ``microphone.device`` names the source
    (``pactl list sources short``); empty means the default source. PipeWire 1.x's
    ``pw-record`` needs ``--raw`` to write bare samples to ``-`` (without it, a Sun
    ``.au`` header comes first); 0.3.x (Debian 12 and Raspberry Pi OS Bookworm ship
    0.3.65) rejects ``--raw`` and always writes bare samples there. Both are tried,
    ``--raw`` first.
``alsa``
    ``arecord`` (``alsa-utils``). ``microphone.device`` is the ALSA device, e.g.
    ``plughw:1,0`` (``arecord -l``); empty means ``default``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import pwd

import av
import numpy as np

from ..config import MicrophoneConfig
from ..errors import SourceUnavailable
from .pcm import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    START_TIMEOUT,
    TIME_BASE,
    PcmCapture,
    audio_frame,
    silence,
)
from .source import Pacer, Resilient, Source, probe, resilient_feed

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "TIME_BASE",
    "TestTone",
    "audio_frame",
    "capture_commands",
    "microphone_feed",
    "open_device",
    "open_microphone",
    "probe_microphone",
    "silence",
]

log = logging.getLogger(__name__)

PACKAGES = {"pw-record": "pipewire-bin", "parec": "pulseaudio-utils", "arecord": "alsa-utils"}
"""The Debian package that brings each capture program."""
LATENCY_MS = 20
"""Ask the sound system for sound every 20 ms (one frame), not in 100+ ms bursts."""
SEARCH_START_TIMEOUT = 10.0
"""How long a device found while the test tone stands in may take to send its first
sound. A call does not wait for it (the tone plays), so it can be patient: PipeWire
takes 2.2-3.5 s to an echo-cancelled source's first sound in the arm64 test VM when
idle, longer during a call, and the 3 s a call's first try gets never sufficed."""


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


def capture_commands(kind: str, device: str) -> list[list[str]]:
    """The programs that record ``kind`` (``pulse`` or ``alsa``), in the order tried;
    each writes raw s16le mono 48 kHz to stdout."""
    if kind == "pulse":
        pw_args = ["--rate", str(SAMPLE_RATE), "--channels", "1", "--format", "s16"]
        pw_args += ["--latency", f"{LATENCY_MS}ms"]
        parec = ["parec", "--raw", "--format=s16le", f"--rate={SAMPLE_RATE}", "--channels=1"]
        parec += [f"--latency-msec={LATENCY_MS}"]
        if device:
            pw_args += ["--target", device]
            parec += [f"--device={device}"]
        # "-" is stdout; PipeWire 1.x, then 0.3.x (no --raw, bare samples anyway)
        return [["pw-record", "--raw", *pw_args, "-"], ["pw-record", *pw_args, "-"], parec]
    if kind == "alsa":
        arecord = ["arecord", "-q", "-t", "raw", "-f", "S16_LE", "-r", str(SAMPLE_RATE)]
        arecord += ["-c", "1", f"--period-time={LATENCY_MS * 1000}"]
        return [[*arecord, "-D", device]] if device else [arecord]
    raise SourceUnavailable(f"microphone.source: unknown source {kind!r}")


async def open_device(kind: str, device: str, *, startup: float = START_TIMEOUT) -> PcmCapture:
    """Record from ``kind`` with the first of its programs that sends sound within
    ``startup`` seconds.

    Raises :class:`SourceUnavailable` saying, for each program, what went wrong and
    how to fix it.
    """
    name = f"{kind} {device or 'default'}"
    missing: dict[str, str] = {}
    problems: dict[str, str] = {}  # the last word of each program
    retry: set[str] = set()  # programs that only refused our options
    for argv in capture_commands(kind, device):
        program = argv[0]
        if program in missing or (program in problems and program not in retry):
            continue  # the same program with other options would fail the same way
        try:
            return await PcmCapture.start(argv, name=f"{name} ({program})", startup=startup)
        except SourceUnavailable as exc:
            advice = explain(kind, program, device, str(exc))
            (missing if str(exc) == f"{program} not found" else problems)[program] = advice
            if _refuses_options(str(exc)):
                retry.add(program)
            else:
                retry.discard(program)
            log.debug("%s: %s", name, advice)
    # a missing fallback program is beside the point when another one said why it failed
    raise SourceUnavailable(f"{kind}: " + "; ".join((problems or missing).values()))


def _refuses_options(problem: str) -> bool:
    words = problem.lower()
    return "unrecognized option" in words or "invalid option" in words


def explain(kind: str, program: str, device: str, problem: str) -> str:
    """What is wrong and how to fix it, in plain words for the person setting up the
    station, then ``problem`` (what :class:`PcmCapture` reported) as evidence."""
    words = problem.lower()
    user = _user()
    package = PACKAGES.get(program, program)
    if problem == f"{program} not found":
        return f"{program} not found: apt install {package}"
    if _refuses_options(problem):
        return f"{program} is too old for our options: upgrade {package} ({problem})"
    if kind == "pulse":
        if any(s in words for s in ("host is down", "connection refused", "context_connect")):
            runtime = os.environ.get("XDG_RUNTIME_DIR")
            where = f"XDG_RUNTIME_DIR={runtime}" if runtime else "XDG_RUNTIME_DIR is not set"
            return (
                f"no PipeWire for user {user}: is the service's user session running "
                f"(loginctl enable-linger {user}; {where})? ({problem})"
            )
        if "no such entity" in words or ("target" in words and "not found" in words):
            return f"no source {device!r}: see `pactl list sources short` ({problem})"
        if "sent no sound" in words:
            which = f"source {device!r}" if device else "default source"
            return f"no sound from the {which}: see `pactl list sources short` ({problem})"
        return f"is PipeWire running for user {user}? see `pactl list sources short` ({problem})"
    dev = device or "default"
    if "busy" in words:
        return (
            f"ALSA device {dev!r} is busy, probably held by PipeWire: use "
            f"microphone.source = 'pulse' ({problem})"
        )
    if "permission denied" in words:
        return f"user {user} may not record: add it to the audio group ({problem})"
    if "non available" in words:
        return f"{dev!r} cannot record 48 kHz mono s16: use a 'plughw:' device ({problem})"
    if any(s in words for s in ("unknown pcm", "no such file", "no such device", "find card")):
        return (
            f"no ALSA device {dev!r}: check `arecord -l` and microphone.device, "
            f"e.g. 'plughw:1,0' ({problem})"
        )
    return f"check `arecord -l`, microphone.device and the audio group ({problem})"


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


async def open_microphone(
    cfg: MicrophoneConfig,
    kind: str | None = None,
    *,
    fallback: bool = True,
    startup: float = START_TIMEOUT,
) -> Source[av.AudioFrame]:
    """Open the microphone ``kind`` (default ``cfg.source``); ``auto`` falls back in
    order pulse, alsa, test tone (without ``fallback``: raises instead of the tone).
    A device has ``startup`` seconds to send its first sound. Raises SourceUnavailable
    for a named kind."""
    kind = kind or cfg.source
    if kind == "auto":
        problems = []
        for candidate in ("pulse", "alsa"):
            try:
                return await open_device(candidate, cfg.device, startup=startup)
            except SourceUnavailable as exc:
                (log.info if fallback else log.debug)("microphone auto: %s", exc)
                problems.append(str(exc))
        if not fallback:
            raise SourceUnavailable("; ".join(problems))
        kind = "test"
    if kind == "test":
        return TestTone()
    if kind in ("pulse", "alsa"):
        return await open_device(kind, cfg.device, startup=startup)
    raise SourceUnavailable(f"microphone.source: unknown source {kind!r}")


def kind_of(source: Source[av.AudioFrame]) -> str:
    name = source.describe().split(" ", 1)[0]
    return "test" if name == "test-tone" else name


def microphone_feed(
    cfg: MicrophoneConfig,
    *,
    backoff: tuple[float, float] = (0.5, 10.0),
    search_backoff: tuple[float, float] = (1.0, 30.0),
) -> Resilient[av.AudioFrame]:
    """The station's microphone: silence while a failed device is re-opened. With
    ``auto``, a test tone stands in while no device sends sound, and the devices are
    tried again until one does (PipeWire still starting when a call began)."""
    return resilient_feed(
        lambda kind: open_microphone(cfg, kind),
        kind_of=kind_of,
        placeholder=silence,
        period=FRAME_SAMPLES / SAMPLE_RATE,
        kind="microphone",
        backoff=backoff,
        find_device=(
            (lambda: open_microphone(cfg, fallback=False, startup=SEARCH_START_TIMEOUT))
            if cfg.source == "auto"
            else None
        ),
        search_backoff=search_backoff,
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

    async def close(source: Source[av.AudioFrame]) -> None:
        source.close()
        if isinstance(source, PcmCapture):
            with contextlib.suppress(TimeoutError):  # reaped before asyncio.run ends
                await asyncio.wait_for(source.wait_closed(), 2.0)

    found, notes = await probe(
        ("pulse", "alsa") if cfg.source == "auto" else (cfg.source,),
        lambda kind: open_device(kind, cfg.device),
        wait=wait,
        close=close,
        nothing="sound",
    )
    if found is not None:
        peak = int(np.abs(found.frame.to_ndarray()).max())
        level = "silent (muted?)" if peak == 0 else f"peak {peak}/32767"
        return True, f"{found.source}: sound in {found.took:.2f} s, {level}"
    if cfg.source == "auto":
        return (
            False,
            f"no microphone found ({'; '.join(notes)}); the station sends a test tone instead",
        )
    return False, "; ".join(notes)

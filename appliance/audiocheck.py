"""``videostation doctor --audio``: does the station hear the room, and does it cancel
its own speaker?

Looks at the service user's PipeWire (``pw-dump``), then plays a test sound through
``echo-cancel-sink`` (where the kiosk's Chromium plays callers) while recording, with
the service's own microphone code, both the raw microphone (whatever the echo
canceller records from) and ``echo-cancel-source`` (what callers hear)::

    for ok, what, detail in check_audio(MicrophoneConfig(device="echo-cancel-source")):
        print(ok, what, detail)

Every finding that is not ok says what to run to fix it (``wpctl``, the drop-in).
Every PipeWire tool runs under a timeout: a stuck daemon never hangs the doctor.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from .config import MicrophoneConfig
from .errors import SourceUnavailable
from .media.microphone import open_device
from .media.pcm import SAMPLE_RATE

SINK = "echo-cancel-sink"
CAPTURE = "echo-cancel-capture"
DROP_IN = "/etc/pipewire/pipewire.conf.d/60-videostation-echo-cancel.conf"
RESTART = "systemctl --user restart pipewire pipewire-pulse wireplumber"
HEARS_DB = 10.0
"""The test sound must stand this far above the room's noise in the raw microphone."""
CANCELS_DB = 10.0
"""...and be this much quieter in the echo-cancelled source over the sound's last
:data:`WINDOW_SECONDS` (the canceller has had only a few seconds to adapt; a call gets
20 dB and more)."""
SOUND_SECONDS = 6.0
WINDOW_SECONDS = 2.0
"""Measured from where the sound is heard, not from when the player was asked to start:
with two 2-second sweeps, measured on a fixed window over the second, the check failed
now and then (6 dB on a quiet machine, 19 the next run)."""

Check = tuple[bool, str, str]


def pipewire_objects(timeout: float = 10.0) -> list[dict[str, Any]]:
    """``pw-dump``'s objects; raises :class:`SourceUnavailable` without PipeWire."""
    try:
        out = subprocess.run(
            ["timeout", f"{timeout:g}", "pw-dump"], capture_output=True, timeout=timeout + 5
        )
    except FileNotFoundError as exc:
        raise SourceUnavailable("pw-dump not found: apt install pipewire-bin") from exc
    if out.returncode != 0 or not out.stdout.strip():
        runtime = os.environ.get("XDG_RUNTIME_DIR", "not set")
        words = out.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise SourceUnavailable(
            f"no PipeWire (XDG_RUNTIME_DIR {runtime}): {words[0]}; as the service user: "
            f"loginctl enable-linger; {RESTART}"
        )
    objects: dict[int, dict[str, Any]] = {}
    decoder, text, at = json.JSONDecoder(), out.stdout.decode(errors="replace"), 0
    while True:  # pw-dump may print updates as a second array: later objects win
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        batch, at = decoder.raw_decode(text, at)
        for obj in batch:
            objects[obj["id"]] = obj
    return [o for o in objects.values() if o.get("info") is not None]


def babble(path: Path, seconds: float = 2.0, seed: int = 7) -> None:
    """A speech-like test sound as a WAV file: band-limited noise (300 Hz to 3 kHz) in
    syllables of random length (0.1-0.3 s) and random pauses (0.04-0.25 s), at
    -18 dBFS RMS while it sounds.

    Why not something simpler: a sweep repeated eight times a second gave PipeWire's
    WebRTC canceller one candidate delay per period (25 dB in the first second, 4-7 dB
    three seconds later); steady noise is what a noise suppressor removes, so it measured
    the suppressor, not the canceller (5 dB with the suppressor off). Like speech, this
    has one delay that fits and starts and stops."""
    rng = np.random.default_rng(seed)
    count = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(count))
    freqs = np.fft.rfftfreq(count, 1 / SAMPLE_RATE)
    spectrum[(freqs < 300.0) | (freqs > 3000.0)] = 0
    noise = np.fft.irfft(spectrum, count)
    envelope = np.zeros(count)
    at = int(0.05 * SAMPLE_RATE)
    while at < count:
        length = int(rng.uniform(0.10, 0.30) * SAMPLE_RATE)
        shape = np.sin(np.linspace(0.0, np.pi, length)) ** 0.5  # a syllable's swell
        end = min(count, at + length)
        envelope[at:end] = shape[: end - at] * rng.uniform(0.6, 1.0)
        at = end + int(rng.uniform(0.04, 0.25) * SAMPLE_RATE)
    sound = noise * envelope
    sounding = envelope > 0.05
    sound /= np.sqrt(np.mean(sound[sounding] ** 2))  # unit RMS while it sounds
    pcm = np.clip(sound * 0.125 * 32767, -32767, 32767).astype("<i2")  # -18 dBFS RMS
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def level_db(samples: np.ndarray[Any, Any]) -> float:
    return float(10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1e-9))


def last_window(mic: np.ndarray[Any, Any], noise_db: float, after: int) -> slice:
    """The test sound's last :data:`WINDOW_SECONDS` in ``mic``, counted from where it is
    heard (the first 20 ms after ``after`` samples that stand :data:`HEARS_DB` above the
    room's noise), not from when the player was asked to start.

    >>> quiet = np.zeros(SAMPLE_RATE // 2, dtype=np.int16)
    >>> late = np.zeros(SAMPLE_RATE // 5, dtype=np.int16)  # the player started late
    >>> tone = (8000 * np.ones(int(SOUND_SECONDS * SAMPLE_RATE))).astype(np.int16)
    >>> found = last_window(np.concatenate([quiet, late, tone]), 0.0, len(quiet))
    >>> (found.start - len(quiet) - len(late)) / SAMPLE_RATE, found.stop - found.start
    (4.0, 96000)
    >>> last_window(np.zeros(6 * SAMPLE_RATE, dtype=np.int16), 0.0, 0)  # nothing heard
    slice(192000, 288000, None)
    """
    block = SAMPLE_RATE // 50
    onset = after
    for start in range(after, len(mic) - block, block):
        if level_db(mic[start : start + block]) >= noise_db + HEARS_DB:
            onset = start
            break
    first = onset + int((SOUND_SECONDS - WINDOW_SECONDS) * SAMPLE_RATE)
    return slice(first, first + int(WINDOW_SECONDS * SAMPLE_RATE))


def check_audio(mic: MicrophoneConfig) -> list[Check]:
    """The findings of ``doctor --audio`` (see the module docstring)."""
    source = mic.device or "echo-cancel-source"
    try:
        objects = pipewire_objects()
    except SourceUnavailable as exc:
        return [(False, "PipeWire", str(exc))]
    names = {
        o["id"]: o["info"]["props"].get("node.name", "")
        for o in objects
        if o.get("type") == "PipeWire:Interface:Node"
    }
    ids = {name: node_id for node_id, name in names.items()}
    out: list[Check] = []
    if source not in ids or SINK not in ids:
        return [
            (
                False,
                "echo cancelling",
                f"not loaded: no {source!r} and {SINK!r} in PipeWire. Fix: install {DROP_IN} "
                f"(the Ansible role does), then as the service user: {RESTART}",
            )
        ]
    out.append(
        (True, "echo cancelling", f"loaded: {source} (id {ids[source]}), {SINK} (id {ids[SINK]})")
    )
    links = [
        (names.get(o["info"]["output-node-id"], ""), names.get(o["info"]["input-node-id"], ""))
        for o in objects
        if o.get("type") == "PipeWire:Interface:Link"
    ]
    raw = next((src for src, dst in links if dst == CAPTURE), None)
    if raw is None:
        out.append(
            (
                False,
                "microphone",
                f"the echo canceller records from nothing: no microphone linked to {CAPTURE}. "
                "Fix: plug one in (`arecord -l`), `wpctl status` must list it under Sources; "
                f"then {RESTART}",
            )
        )
        return out
    out += asyncio.run(_listen(source, raw, ids))
    return out


async def _listen(source: str, raw: str, ids: dict[str, int]) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="videostation-sound-") as tmp:
        wav = Path(tmp) / "sound.wav"
        babble(wav, SOUND_SECONDS)
        try:
            cancelled = await open_device("pulse", source)
        except SourceUnavailable as exc:
            return [(False, "microphone", f"cannot record {source}: {exc}")]
        try:
            room = await open_device("pulse", raw)
        except SourceUnavailable as exc:
            cancelled.close()
            return [(False, "microphone", f"cannot record {raw}: {exc}")]
        heard: dict[str, list[np.ndarray[Any, Any]]] = {source: [], raw: []}

        async def record(mic: Any, into: list[np.ndarray[Any, Any]], frames: int) -> None:
            for _ in range(frames):
                into.append((await mic.read()).to_ndarray().reshape(-1))

        try:
            quiet = 25  # 0.5 s of the room before the test sound
            await asyncio.gather(
                record(cancelled, heard[source], quiet), record(room, heard[raw], quiet)
            )
            # the canceller adapts during the first seconds, the last two are measured
            play = await asyncio.create_subprocess_exec(
                "pw-play",
                "--target",
                SINK,
                str(wav),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # the test sounds, the player's start and the way through the room (50 frames a second)
            frames = int((SOUND_SECONDS + 1.0) * 50)
            await asyncio.wait_for(
                asyncio.gather(
                    record(cancelled, heard[source], frames), record(room, heard[raw], frames)
                ),
                30,
            )
            await asyncio.wait_for(play.wait(), 10 + SOUND_SECONDS)
        except (SourceUnavailable, TimeoutError) as exc:
            return [(False, "microphone", f"recording stopped: {exc}")]
        finally:
            cancelled.close()
            room.close()
    mic = np.concatenate(heard[raw])
    ec = np.concatenate(heard[source])
    noise = max(0.0, level_db(mic[: quiet * 960]))  # digital silence counts as 1 LSB
    measured = last_window(mic, noise, quiet * 960)
    loud = level_db(mic[measured])
    left = level_db(ec[measured])
    out: list[Check] = []
    if loud - noise < HEARS_DB:
        out.append(
            (
                False,
                "microphone hears the room",
                f"no: the test sound through the speaker is {loud - noise:.0f} dB above the room's "
                f"noise in {raw} (need {HEARS_DB:g}). Fix: turn the speaker up "
                f"(`wpctl set-volume {ids.get(SINK)} 0.8`), unmute the microphone "
                f"(`wpctl set-mute {ids.get(raw)} 0`, `wpctl set-volume {ids.get(raw)} 1.0`)",
            )
        )
        return out
    out.append(
        (
            True,
            "microphone hears the room",
            f"yes: the test sound is {loud - noise:.0f} dB above the noise in {raw}",
        )
    )
    if loud - left < CANCELS_DB:
        out.append(
            (
                False,
                "echo cancellation",
                f"not working: the test sound is only {loud - left:.0f} dB quieter in {source} "
                f"(need {CANCELS_DB:g}). Fix: play calls into {SINK} "
                f"(`wpctl set-default {ids.get(SINK)}`) and check {DROP_IN}; then {RESTART}",
            )
        )
    else:
        out.append(
            (
                True,
                "echo cancellation",
                f"active: the test sound is {loud - left:.0f} dB quieter in {source}",
            )
        )
    return out

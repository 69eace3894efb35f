"""``videostation doctor --audio``: does the station hear the room, and does it cancel
its own speaker?

Looks at the service user's PipeWire (``pw-dump``), then plays a short chirp through
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
import math
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
"""The chirp must stand this far above the room's noise in the raw microphone."""
CANCELS_DB = 10.0
"""...and be this much quieter in the echo-cancelled source (a short chirp: the
canceller has had only a few seconds to adapt; a call gets 20 dB and more)."""

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


def chirp(path: Path, seconds: float = 2.0, sweep: float = 0.25) -> None:
    """Quick 300 Hz to 3 kHz sweeps at -12 dBFS, back to back for ``seconds``, as a
    WAV file: every frequency the canceller adapts comes round eight times a second."""
    t = np.arange(int(sweep * SAMPLE_RATE)) / SAMPLE_RATE
    f0, f1 = 300.0, 3000.0
    rise = math.log(f1 / f0)
    one = np.sin(2 * math.pi * f0 * sweep / rise * (np.exp(t / sweep * rise) - 1))
    wave_ = np.tile(one, int(seconds / sweep))
    ends = np.arange(len(wave_)) / SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(ends, seconds - ends) / 0.05)
    pcm = (wave_ * fade * 0.25 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def level_db(samples: np.ndarray[Any, Any]) -> float:
    return float(10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1e-9))


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
    with tempfile.TemporaryDirectory(prefix="videostation-chirp-") as tmp:
        wav = Path(tmp) / "chirp.wav"
        chirp(wav)
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
            quiet = 25  # 0.5 s of the room before the chirp
            await asyncio.gather(
                record(cancelled, heard[source], quiet), record(room, heard[raw], quiet)
            )
            # twice: the canceller adapts during the first, the second is measured
            play = await asyncio.create_subprocess_exec(
                "pw-play",
                "--target",
                SINK,
                str(wav),
                str(wav),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            frames = 250  # 5 s: two chirps and the way through the room
            await asyncio.wait_for(
                asyncio.gather(
                    record(cancelled, heard[source], frames), record(room, heard[raw], frames)
                ),
                30,
            )
            await asyncio.wait_for(play.wait(), 10)
        except (SourceUnavailable, TimeoutError) as exc:
            return [(False, "microphone", f"recording stopped: {exc}")]
        finally:
            cancelled.close()
            room.close()
    mic = np.concatenate(heard[raw])
    ec = np.concatenate(heard[source])
    noise = max(0.0, level_db(mic[: quiet * 960]))  # digital silence counts as 1 LSB
    second = slice(int(2.5 * SAMPLE_RATE), int(4.5 * SAMPLE_RATE))  # the second chirp
    loud = level_db(mic[second])
    left = level_db(ec[second])
    out: list[Check] = []
    if loud - noise < HEARS_DB:
        out.append(
            (
                False,
                "microphone hears the room",
                f"no: the chirp through the speaker is {loud - noise:.0f} dB above the room's "
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
            f"yes: the chirp is {loud - noise:.0f} dB above the noise in {raw}",
        )
    )
    if loud - left < CANCELS_DB:
        out.append(
            (
                False,
                "echo cancellation",
                f"not working: the chirp is only {loud - left:.0f} dB quieter in {source} "
                f"(need {CANCELS_DB:g}). Fix: play calls into {SINK} "
                f"(`wpctl set-default {ids.get(SINK)}`) and check {DROP_IN}; then {RESTART}",
            )
        )
    else:
        out.append(
            (
                True,
                "echo cancellation",
                f"active: the chirp is {loud - left:.0f} dB quieter in {source}",
            )
        )
    return out

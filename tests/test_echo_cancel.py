"""Echo cancellation on a real PipeWire 0.3.65, heard by a caller over a real call.

A private PipeWire daemon loads the role's own drop-in
(``60-videostation-echo-cancel.conf``) next to a virtual room (tests/pipewire_room.py).
The caller's voice (espeak-ng, 10 s) is played into ``echo-cancel-sink``, as the
kiosk's Chromium does; then a different voice speaks in the room. The station's own
microphone code (``pw-record`` through :class:`AudioFanout`) captures
``echo-cancel-source`` and, for reference, the raw room microphone at the same time;
both go over real aiortc calls (Opus) to a viewer, and the test measures what the
viewer hears:

* ERLE (echo return loss enhancement): far-end energy from the raw microphone over
  far-end energy from the echo-cancelled source, in 1 s windows from 3 s after the
  caller starts talking. Target: the median window ≥ 20 dB.
* near-end survival: the person in the room through the echo canceller vs the raw
  microphone. Target: within 3 dB.

Marked slow (about 30 s). The figures are printed and kept as test properties.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from appliance.config import CameraConfig, MicrophoneConfig
from appliance.media import StationMedia, StationPeers
from appliance.protocol import Description
from tests.helpers import skip_or_fail
from tests.pipewire_room import DROP_IN, PACKAGES, RATE, PipeWireRoom, missing_programs, speech

# realtime: make test runs it alone and first, on a quiet machine (beside the emulated arm64
# tests, and once right after them, its echo canceller lost its convergence in CI)
pytestmark = [pytest.mark.slow, pytest.mark.realtime]

FAR_TEXT = (
    "The quick brown fox jumps over the lazy dog. We are calling from far away to see "
    "how the echo canceller handles a long sentence spoken through the loudspeaker of "
    "the station, with pauses, numbers like three hundred and twenty one, and questions."
)
NEAR_TEXT = (
    "Hello, this is the person standing at the station in the hallway. I am answering "
    "your call now, and I hope you can hear my voice clearly."
)
FAR_SECONDS = 10.0
NEAR_SECONDS = 6.0
ERLE_TARGET_DB = 20.0
CONVERGED_AFTER = 3.0
NEAR_TOLERANCE_DB = 3.0
MAX_ATTEMPTS = 3


class Listener:
    """A caller's browser stand-in: answers an offer and keeps every sample it hears,
    with the time the first one arrived."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.chunks: list[tuple[int, np.ndarray[Any, Any]]] = []
        """(pts, samples): the RTP timestamps place each frame on the station's
        sample clock, so a frame lost or late on the way leaves a gap, not a shift."""
        self.first: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._task = asyncio.ensure_future(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                if self.first is None:
                    self.first = time.monotonic() - frame.samples / RATE
                self.chunks.append((int(frame.pts), pcm.astype(np.float64)))
        except MediaStreamError:
            pass

    async def answer(self, offer: Description) -> Description:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return Description("answer", self.pc.localDescription.sdp)

    def heard(self) -> np.ndarray[Any, Any]:
        """Everything heard on the station's clock from the first frame; NaN in gaps."""
        if not self.chunks:
            return np.zeros(0)
        start = self.chunks[0][0]
        end = max(pts + len(pcm) for pts, pcm in self.chunks)
        out = np.full(end - start, np.nan)
        for pts, pcm in self.chunks:
            out[pts - start : pts - start + len(pcm)] = pcm
        return out

    def share(self) -> float:
        """How much of the call's audio arrived (1.0: every frame)."""
        heard = self.heard()
        return float(np.mean(~np.isnan(heard))) if len(heard) else 0.0

    async def close(self) -> None:
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()


class Call:
    """The station peer sending one microphone to one listener over loopback."""

    def __init__(self, device: str) -> None:
        camera = CameraConfig(source="test", width=160, height=120, fps=5)
        self.media = StationMedia(camera, MicrophoneConfig(source="pulse", device=device))
        self.listener = Listener()
        self.peers = StationPeers(self.media, ice_servers=[], send=self._send)
        self._answered = asyncio.Event()

    async def _send(self, peer_id: str, offer: Description, session: int) -> None:
        answer = await self.listener.answer(offer)
        await self.peers.handle_signal(peer_id, answer)
        self._answered.set()

    async def start(self) -> None:
        await self.peers.open("caller", audio=True, video=False)
        await asyncio.wait_for(self._answered.wait(), 20)

    async def close(self) -> None:
        await self.peers.close_all()
        await self.listener.close()
        await self.media.close()


def level_db(x: np.ndarray[Any, Any]) -> float:
    """Mean power in dB (re 1 LSB²), ignoring gaps (NaN)."""
    x = x[~np.isnan(x)]
    return float(10 * np.log10(np.mean(x**2) + 1e-9)) if len(x) else float("nan")


def first_loud(x: np.ndarray[Any, Any], after: float, *, db: float = 40.0) -> float | None:
    """Seconds into ``x`` of the first 10 ms louder than ``db``, from ``after`` on."""
    for i in range(int(after * RATE), len(x) - 480, 480):
        if level_db(x[i : i + 480]) > db:
            return i / RATE
    return None


def window(x: np.ndarray[Any, Any], start: float, end: float) -> np.ndarray[Any, Any]:
    return x[max(0, int(start * RATE)) : max(0, int(end * RATE))]


@pytest.fixture
def voices(tmp_path: Path) -> tuple[Path, Path]:
    missing = missing_programs() + [p for p in ("espeak-ng", "sox") if not _has(p)]
    if missing:
        skip_or_fail(f"needs {', '.join(missing)} (apt install {PACKAGES} espeak-ng sox)")
    far, near = tmp_path / "far.wav", tmp_path / "near.wav"
    speech(far, FAR_TEXT, voice="en-us", seconds=FAR_SECONDS)
    speech(near, NEAR_TEXT, voice="en+f3", seconds=NEAR_SECONDS)
    return far, near


def _has(program: str) -> bool:
    return shutil.which(program) is not None


async def test_echo_cancel_drop_in_removes_the_callers_voice_and_keeps_the_room(
    tmp_path: Path,
    voices: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    record_property: Any,
) -> None:
    assert DROP_IN.is_file(), f"the role's drop-in is missing: {DROP_IN}"
    # Real-time audio needs the CPU on time. On a machine so busy that PipeWire's
    # graph itself runs slow (10 s of speech taking over 11.5 s to play) the figures
    # say nothing about the echo canceller: measure again with a fresh daemon.
    # The canceller itself (WebRTC's AEC of webrtc-audio-processing 0.3, PipeWire
    # 0.3.65) now and then never converges in a call: 1 of 25 runs here with the noise
    # suppressor off (docs/benchmarks.md). One such call is a fact about that library,
    # not a verdict: after one, two more calls must both meet the targets.
    verdicts: list[bool] = []
    attempt, figures = 0, ""
    while len(verdicts) < (1 if not verdicts or verdicts[0] else 3):
        attempt += 1
        if attempt > MAX_ATTEMPTS + 2:
            pytest.fail(f"this machine is too busy for real-time audio: {figures}")
        erle, near_db, played, figures = await measure(
            tmp_path / f"attempt{attempt}", voices, monkeypatch
        )
        print(f"attempt {attempt}: {figures}")
        if played > FAR_SECONDS * 1.15:
            continue
        record_property(f"echo_cancel_{attempt}", figures)
        verdicts.append(erle >= ERLE_TARGET_DB and abs(near_db) <= NEAR_TOLERANCE_DB)
    assert all(verdicts[1:]) if len(verdicts) > 1 else verdicts[0], figures


async def measure(
    base: Path, voices: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> tuple[float, float, float, str]:
    """(median ERLE after convergence, near-end change, seconds the far end took to
    play, the figures in words), measured once on a fresh daemon."""
    far, near = voices
    with PipeWireRoom(base) as room:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(room.runtime))
        # the role's node names, as the service is configured to capture them
        names = room.node_names()
        for node in ("echo-cancel-source", "echo-cancel-sink"):
            assert node in names, f"{node} not loaded from {DROP_IN.name}: {sorted(names)}"

        cancelled, raw = Call("echo-cancel-source"), Call("room-mic")
        try:
            await asyncio.gather(cancelled.start(), raw.start())
            # both listeners hear sound before the caller starts talking
            for _ in range(100):
                if cancelled.listener.first and raw.listener.first:
                    break
                await asyncio.sleep(0.1)
            links = room.links()
            assert ("echo-cancel-source", "pw-record") in links, links
            assert ("room-mic", "echo-cancel-capture") in links, links
            await asyncio.sleep(1.0)
            started = time.monotonic()
            # the caller talks, then (once the speaker is quiet) the person in the room
            talking = room.play(far, "echo-cancel-sink")
            await asyncio.to_thread(talking.wait, 60)
            played = time.monotonic() - started
            await asyncio.sleep(1.0)
            answering = room.play(near, "room")
            await asyncio.to_thread(answering.wait, 60)
            await asyncio.sleep(0.5)
            ended = time.monotonic()
        finally:
            await asyncio.gather(cancelled.close(), raw.close())

    # Time is the station's sample clock (frame pts), not the wall clock: on a busy
    # machine the capture can fall behind and skip, so each stream is anchored on the
    # near-end voice's first word, which both hear loudly.
    mic, ec = raw.listener.heard(), cancelled.listener.heard()
    far_at = first_loud(mic, 0.0)
    assert far_at is not None, "the room microphone heard nothing: is the room linked?"
    near_mic = first_loud(mic, far_at + FAR_SECONDS + 0.3)
    # searched from half a second before the raw microphone's (the two calls start
    # together; the caller's last word ended a second before): residual echo at the end
    # of the caller's speech can never pass for the person in the room
    near_ec = first_loud(ec, max(0.0, near_mic - 0.5)) if near_mic is not None else None
    assert near_mic is not None and near_ec is not None, "the person in the room was not heard"
    shift = near_ec - near_mic
    seconds = [(far_at + k, far_at + k + 1) for k in range(int(FAR_SECONDS) - 1)]
    per_second = [
        level_db(window(mic, *w)) - level_db(window(ec, w[0] + shift, w[1] + shift))
        for w in seconds
    ]
    # a pause in the caller's speech says nothing about the echo canceller
    loudest = max(level_db(window(mic, *w)) for w in seconds)
    converged = [
        erle
        for (w, erle) in zip(seconds, per_second, strict=True)
        if w[0] >= far_at + CONVERGED_AFTER
        and level_db(window(mic, *w)) > loudest - 20.0
        and not np.isnan(erle)
    ]
    assert len(converged) >= 4, f"the caller hardly spoke: {per_second}"
    erle = float(np.median(converged))
    near_raw = level_db(window(mic, near_mic + 0.2, near_mic + NEAR_SECONDS - 0.5))
    near_out = level_db(window(ec, near_ec + 0.2, near_ec + NEAR_SECONDS - 0.5))
    figures = (
        f"ERLE per second from the caller's first word: "
        f"{', '.join(f'{v:.1f}' for v in per_second)} dB; median after "
        f"{CONVERGED_AFTER:g} s {erle:.1f} dB (min {min(converged):.1f}); near-end "
        f"{near_out - near_raw:+.1f} dB vs the raw microphone"
    )
    figures += (
        f"; frames that arrived: cancelled {cancelled.listener.share():.0%}, "
        f"raw {raw.listener.share():.0%}; "
        f"{FAR_SECONDS:g} s of speech played in {played:.1f} s; "
        f"{ended - started:.1f} s of call heard as {len(ec) / RATE:.1f} s"
    )
    assert near_raw > 50.0, f"the person in the room was not heard at all: {figures}"
    return erle, near_out - near_raw, played, figures

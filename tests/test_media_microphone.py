"""The microphone through pw-record, parec and arecord: what a caller would hear.

The capture programs are faked by small Python scripts put first (and alone) on PATH:
they write known s16le samples to stdout, or fail with the words the real programs
use. The last tests drive the real ``arecord`` against ALSA devices that need no
sound card, when it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import shutil
import signal
import struct
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from appliance.config import MicrophoneConfig
from appliance.errors import SourceUnavailable
from appliance.media.audio import AudioFanout, AudioFanoutTrack
from appliance.media.microphone import (
    capture_commands,
    microphone_feed,
    open_device,
    open_microphone,
    probe_microphone,
)
from appliance.media.pcm import PcmCapture
from appliance.media.source import Source

from .helpers import skip_or_fail

PROLOGUE = """\
import math, os, struct, sys, time
name = os.path.basename(sys.argv[0])
here = os.path.dirname(os.path.abspath(sys.argv[0]))
with open(os.path.join(here, name + ".log"), "a") as log:
    log.write(str(os.getpid()) + " " + " ".join(sys.argv[1:]) + "\\n")
out = sys.stdout.buffer

def pcm(values):
    out.write(struct.pack("<%dh" % len(values), *values))
    out.flush()

def paced(value, frames=1500):
    for _ in range(frames):
        pcm([value] * 960)
        time.sleep(0.02)
"""


class FakeBin:
    """A directory of fake capture programs; the only one on PATH."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, name: str, body: str) -> None:
        program = self.path / name
        program.write_text(f"#!{sys.executable}\n{PROLOGUE}{body}\n")
        program.chmod(0o755)

    def fail(self, name: str, stderr: str, status: int = 1) -> None:
        self.add(name, f"sys.stderr.write({stderr!r} + '\\n')\nsys.exit({status})")

    def runs(self, name: str) -> list[tuple[int, list[str]]]:
        """(pid, arguments) of every run of ``name``, oldest first."""
        log = self.path / f"{name}.log"
        if not log.exists():
            return []
        runs = []
        for line in log.read_text().splitlines():
            pid, *args = line.split(" ")
            runs.append((int(pid), [a for a in args if a]))
        return runs


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBin:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return FakeBin(path)


async def shut(mic: Source[av.AudioFrame]) -> None:
    """Close ``mic`` and, for a capture program, wait until it has been reaped."""
    mic.close()
    if isinstance(mic, PcmCapture):
        await asyncio.wait_for(mic.wait_closed(), 2.0)


def samples(frame: av.AudioFrame) -> np.ndarray:
    return frame.to_ndarray().reshape(-1)


async def gone(pid: int, within: float = 2.0) -> bool:
    """True once ``pid`` no longer exists, not even as a zombie (it was reaped)."""
    for _ in range(int(within / 0.02)):
        try:
            os.kill(pid, 0)  # succeeds for a zombie too
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.02)
    return False


# --- the sound itself ---------------------------------------------------------------


async def test_frames_are_exact_20ms_chunks_of_the_programs_samples(fake_bin: FakeBin) -> None:
    # 5 frames and a bit, written in odd pieces that split samples between writes
    fake_bin.add(
        "arecord",
        """
data = struct.pack("<4900h", *range(4900))
for i in range(0, len(data), 777):
    out.write(data[i:i + 777]); out.flush(); time.sleep(0.002)
time.sleep(30)
""",
    )
    mic = await open_microphone(MicrophoneConfig(source="alsa"))
    try:
        assert mic.describe() == "alsa default (arecord)"
        frames = [await mic.read() for _ in range(5)]
        for i, frame in enumerate(frames):
            assert (frame.sample_rate, frame.format.name, frame.layout.name) == (
                48000,
                "s16",
                "mono",
            )
            assert frame.samples == 960
            assert frame.pts == i * 960 and frame.time_base == fractions.Fraction(1, 48000)
            assert samples(frame).tolist() == list(range(i * 960, (i + 1) * 960))
        # the last 100 samples are not a whole frame: nothing more to hear yet
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(mic.read(), 0.2)
    finally:
        await shut(mic)
    (_, args), *_ = fake_bin.runs("arecord")
    assert args == [
        *["-q", "-t", "raw", "-f", "S16_LE", "-r", "48000", "-c", "1"],
        "--period-time=20000",
    ]


async def test_alsa_device_is_passed_to_arecord(fake_bin: FakeBin) -> None:
    fake_bin.add("arecord", "paced(7)")
    mic = await open_microphone(MicrophoneConfig(source="alsa", device="plughw:1,0"))
    assert samples(await mic.read()).tolist() == [7] * 960
    assert mic.describe() == "alsa plughw:1,0 (arecord)"
    await shut(mic)
    assert fake_bin.runs("arecord")[0][1][-2:] == ["-D", "plughw:1,0"]


async def test_pulse_prefers_pw_record_and_names_the_source(fake_bin: FakeBin) -> None:
    fake_bin.add("pw-record", "paced(11)")
    fake_bin.add("parec", "paced(22)")
    mic = await open_microphone(MicrophoneConfig(source="pulse", device="echo-cancel-source"))
    assert samples(await mic.read()).tolist() == [11] * 960
    assert mic.describe() == "pulse echo-cancel-source (pw-record)"
    await shut(mic)
    (_, args), *_ = fake_bin.runs("pw-record")
    assert args == [
        *["--raw", "--rate", "48000", "--channels", "1", "--format", "s16", "--latency", "20ms"],
        *["--target", "echo-cancel-source", "-"],
    ]
    assert not fake_bin.runs("parec")


async def test_pulse_records_with_pipewire_0_3_pw_record(fake_bin: FakeBin) -> None:
    # Debian 12's pw-record (PipeWire 0.3.65) has no --raw and writes bare samples to
    # "-"; given --raw it says so, then prints its usage
    fake_bin.add(
        "pw-record",
        """
if "--raw" in sys.argv:
    sys.stderr.write("pw-record: unrecognized option '--raw'\\n"
                     "pw-record [options] [<file>|-]\\n"
                     "  -h, --help                            Show this help\\n\\n"
                     "  -q  --quality                         Resampler quality\\n")
    sys.exit(1)
paced(33)
""",
    )
    fake_bin.add("parec", "paced(22)")
    mic = await open_microphone(MicrophoneConfig(source="pulse", device="echo-cancel-source"))
    assert samples(await mic.read()).tolist() == [33] * 960
    assert mic.describe() == "pulse echo-cancel-source (pw-record)"
    await shut(mic)
    (_, first), (_, second) = fake_bin.runs("pw-record")
    assert first[0] == "--raw" and second == first[1:]
    assert not fake_bin.runs("parec")


async def test_pw_record_failing_for_another_reason_is_not_run_twice(fake_bin: FakeBin) -> None:
    fake_bin.fail("pw-record", "error: pw_context_connect() failed: Host is down")
    fake_bin.add("parec", "paced(22)")
    mic = await open_microphone(MicrophoneConfig(source="pulse"))
    assert mic.describe() == "pulse default (parec)"
    await shut(mic)
    assert len(fake_bin.runs("pw-record")) == 1


async def test_pulse_falls_back_to_parec(fake_bin: FakeBin) -> None:
    fake_bin.add("parec", "paced(22)")  # no pw-record on PATH
    mic = await open_microphone(MicrophoneConfig(source="pulse"))
    assert samples(await mic.read()).tolist() == [22] * 960
    assert mic.describe() == "pulse default (parec)"
    await shut(mic)
    (_, args), *_ = fake_bin.runs("parec")
    assert args == ["--raw", "--format=s16le", "--rate=48000", "--channels=1", "--latency-msec=20"]
    # an old pw-record that does not know our options is passed over too
    fake_bin.fail("pw-record", "pw-record: unrecognized option '--raw'")
    mic = await open_microphone(MicrophoneConfig(source="pulse", device="mic"))
    assert mic.describe() == "pulse mic (parec)"
    await shut(mic)
    assert fake_bin.runs("parec")[-1][1][-1] == "--device=mic"


# --- programs that cannot record ----------------------------------------------------


async def test_program_that_exits_at_once_is_reported(fake_bin: FakeBin) -> None:
    fake_bin.fail(
        "arecord",
        "ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM hw:7\n"
        "arecord: main:831: audio open error: No such file or directory",
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SourceUnavailable) as caught:
        await open_microphone(MicrophoneConfig(source="alsa", device="hw:7"))
    assert loop.time() - started < 2.0, "an early exit must not wait for the timeout"
    assert str(caught.value) == (
        "alsa: no ALSA device 'hw:7': check `arecord -l` and microphone.device, "
        "e.g. 'plughw:1,0' (arecord stopped (exit status 1): Unknown PCM hw:7; "
        "audio open error: No such file or directory)"
    )
    (pid, _), *_ = fake_bin.runs("arecord")
    assert await gone(pid)


async def test_program_that_sends_nothing_is_given_up(fake_bin: FakeBin) -> None:
    fake_bin.add("pw-record", "time.sleep(30)")
    with pytest.raises(SourceUnavailable, match=r"pw-record sent no sound within 0\.3 s"):
        await PcmCapture.start(["pw-record", "-"], name="pulse default", startup=0.3)
    # On a loaded machine the fake may be killed before it even logged its start
    # (Python starting up takes longer than 0.3 s): then no process of it may be left.
    program = str(fake_bin.path / "pw-record")
    for pid, _ in fake_bin.runs("pw-record"):
        assert await gone(pid), "the silent program must be killed"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            assert program.encode() not in cmdline.read_bytes(), "the program is still there"


async def test_program_that_stops_sending_mid_call_is_given_up(fake_bin: FakeBin) -> None:
    # e.g. a PipeWire stream whose source went away: the program lives on, silent
    fake_bin.add("pw-record", "pcm([9] * 960); time.sleep(30)")
    mic = await PcmCapture.start(["pw-record", "-"], name="pulse default", stall=0.3)
    try:
        assert samples(await mic.read()).tolist() == [9] * 960
        with pytest.raises(SourceUnavailable, match=r"pw-record sent no sound for 0\.3 s"):
            await mic.read()
    finally:
        await shut(mic)


async def test_auto_falls_back_pulse_then_alsa_then_tone(fake_bin: FakeBin) -> None:
    fake_bin.fail("pw-record", "error: pw_context_connect() failed: Host is down")
    fake_bin.add("arecord", "paced(5)")
    mic = await open_microphone(MicrophoneConfig(source="auto"))
    assert mic.describe() == "alsa default (arecord)"
    assert samples(await mic.read()).tolist() == [5] * 960
    await shut(mic)

    fake_bin.fail("arecord", "arecord: main:831: audio open error: Device or resource busy")
    mic = await open_microphone(MicrophoneConfig(source="auto"))
    assert mic.describe() == "test-tone 440 Hz"
    mic.close()


def test_probe_explains_what_was_found_and_how_to_fix_it(
    fake_bin: FakeBin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    ok, text = probe_microphone(MicrophoneConfig(source="auto"))
    assert not ok
    assert "pw-record not found: apt install pipewire-bin" in text
    assert "parec not found: apt install pulseaudio-utils" in text
    assert "arecord not found: apt install alsa-utils" in text
    assert text.endswith("the station sends a test tone instead")

    fake_bin.fail("pw-record", "error: pw_context_connect() failed: Host is down")
    fake_bin.fail("arecord", "arecord: main:831: audio open error: Device or resource busy")
    ok, text = probe_microphone(MicrophoneConfig(source="auto"))
    assert not ok
    assert "no PipeWire for user " in text and "loginctl enable-linger " in text
    assert "XDG_RUNTIME_DIR is not set" in text and "Host is down" in text
    assert "parec" not in text, "a missing fallback is noise once pw-record said why"
    assert "ALSA device 'default' is busy, probably held by PipeWire" in text

    fake_bin.add("pw-record", "pcm([0] * 960); paced(300)")
    ok, text = probe_microphone(MicrophoneConfig(source="pulse"))
    assert ok and text.startswith("pulse default (pw-record): sound in ")
    assert text.endswith("silent (muted?)")
    assert all(gone_now(pid) for pid, _ in fake_bin.runs("pw-record"))


def gone_now(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- closing and failing mid-call ---------------------------------------------------


@pytest.mark.parametrize("where", ["loop", "thread"])
async def test_close_kills_the_program_and_leaves_no_zombie(fake_bin: FakeBin, where: str) -> None:
    fake_bin.add("arecord", "pcm([1] * 960); time.sleep(30)")
    mic = await open_device("alsa", "")
    await mic.read()
    pid = mic.pid
    if where == "thread":  # as Resilient.close does
        await asyncio.to_thread(mic.close)
    else:
        mic.close()
    mic.close()
    await asyncio.wait_for(mic.wait_closed(), 2.0)
    assert mic.returncode == -signal.SIGKILL
    assert await gone(pid)
    with pytest.raises(SourceUnavailable, match="closed"):
        await mic.read()


async def test_program_dying_mid_call_gives_silence_then_recovers(
    fake_bin: FakeBin, caplog: pytest.LogCaptureFixture
) -> None:
    # 1st run: 3 frames, then the USB microphone is pulled; 2nd: still busy; 3rd: back
    fake_bin.add(
        "arecord",
        """
runs = len(open(os.path.join(here, name + ".log")).readlines())
if runs == 1:
    pcm([1001] * 960 * 3)
    sys.stderr.write("arecord: pcm_read:2221: read error: No such device\\n")
    sys.exit(1)
if runs == 2:
    sys.stderr.write("arecord: main:831: audio open error: Device or resource busy\\n")
    sys.exit(1)
paced(1003)
""",
    )
    caplog.set_level(logging.WARNING, "appliance.media.source")
    feed = microphone_feed(MicrophoneConfig(source="alsa"), backoff=(0.05, 0.1))
    await feed.start()
    heard = []
    try:
        for _ in range(200):
            frame = await asyncio.wait_for(feed.read(), 2.0)
            assert (frame.samples, frame.format.name, frame.sample_rate) == (960, "s16", 48000)
            value = int(samples(frame)[0])
            heard.append({1001: "first", 0: "silence", 1003: "back"}[value])
            if heard.count("back") >= 3:
                break
        assert heard[:3] == ["first"] * 3
        assert heard[3] == "silence" and heard[-1] == "back"
        assert feed.failures == 2 and feed.describe() == "alsa default (arecord)"
        assert (
            "microphone unavailable: alsa default (arecord): arecord stopped "
            "(exit status 1): read error: No such device"
        ) in caplog.text
    finally:
        await feed.close()
    pids = [pid for pid, _ in fake_bin.runs("arecord")]
    assert len(pids) == 3
    for pid in pids:
        assert await gone(pid), f"arecord {pid} left behind"


async def test_fanout_hears_the_program(fake_bin: FakeBin) -> None:
    fake_bin.add(
        "arecord",
        """
for n in range(1500):
    t = [(n * 960 + i) / 48000 for i in range(960)]
    pcm([int(8000 * math.sin(2 * math.pi * 440 * x)) for x in t])
    time.sleep(0.02)
""",
    )
    fanout = AudioFanout(MicrophoneConfig(source="alsa"), linger=0.0)
    track = fanout.track()
    assert isinstance(track, AudioFanoutTrack)
    try:
        frames = [await asyncio.wait_for(track.recv(), 2.0) for _ in range(5)]
        assert fanout.description == "alsa default (arecord)"
    finally:
        track.stop()
        await fanout.close()
    wave = np.concatenate([samples(f) for f in frames]).astype(np.int32)
    assert [f.pts for f in frames] == [i * 960 for i in range(5)]
    assert 7000 < np.abs(wave).max() <= 8000
    crossings = int(np.sum(np.diff(np.sign(wave)) != 0))
    assert 80 <= crossings <= 96, f"{crossings} zero crossings in 100 ms is not 440 Hz"
    (pid, _), *_ = fake_bin.runs("arecord")
    assert await gone(pid)


# --- the real arecord ---------------------------------------------------------------


@pytest.fixture
def real_arecord() -> None:
    """arecord and ALSA's configuration (alsa-utils; `make deps` installs it for CI)."""
    if shutil.which("arecord") is None or not Path("/usr/share/alsa/alsa.conf").exists():
        skip_or_fail("needs arecord (apt install alsa-utils)")


@pytest.mark.usefixtures("real_arecord")
async def test_real_arecord_null_device() -> None:
    # ALSA's null device needs no sound card. It records whatever arecord's buffer
    # holds (not necessarily silence) as fast as it is read: the format is what counts.
    mic = await open_microphone(MicrophoneConfig(source="alsa", device="null"))
    try:
        assert mic.describe() == "alsa null (arecord)"
        for i in range(3):
            frame = await mic.read()
            assert (frame.samples, frame.format.name, frame.layout.name) == (960, "s16", "mono")
            assert frame.pts == i * 960
    finally:
        await shut(mic)


@pytest.mark.usefixtures("real_arecord")
async def test_real_arecord_records_known_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ALSA's file plugin feeds a capture from a file: a microphone with known sound.
    recording = tmp_path / "counter.raw"
    recording.write_bytes(struct.pack("<4800h", *range(4800)))
    (tmp_path / ".asoundrc").write_text(
        f'pcm.counter {{ type file; slave.pcm null; file "/dev/null"; '
        f'infile "{recording}"; format raw }}\n'
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    # null records faster than real time: keep every frame rather than the newest
    (argv,) = capture_commands("alsa", "counter")
    mic = await PcmCapture.start(argv, name="alsa counter", depth=10_000)
    try:
        frames = [await mic.read() for _ in range(3)]
    finally:
        await shut(mic)
    heard = np.concatenate([samples(f) for f in frames]).tolist()
    assert heard == list(range(3 * 960))

    with pytest.raises(SourceUnavailable, match="no ALSA device 'no-such-device'"):
        await open_microphone(MicrophoneConfig(source="alsa", device="no-such-device"))

"""Camera and microphone sources: what a viewer would see and hear."""

from __future__ import annotations

import asyncio
import fractions
import sys
import time
import types
from typing import Any

import av
import numpy as np
import pytest

from appliance.config import CameraConfig, MicrophoneConfig
from appliance.errors import MediaError, SourceUnavailable
from appliance.media import camera as camera_mod
from appliance.media.camera import (
    TestPattern,
    camera_feed,
    open_camera,
    probe_camera,
    rotate,
    to_yuv420,
)
from appliance.media.microphone import (
    TestTone,
    microphone_feed,
    open_microphone,
    probe_microphone,
)
from appliance.media.pattern import PatternPainter, planes, unavailable_frame, yuv_array
from appliance.media.source import Resilient

NO_DEVICE = "/dev/video-does-not-exist"


@pytest.fixture(autouse=True)
def no_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has no Pi camera; make sure a stray install cannot change that."""
    monkeypatch.setitem(sys.modules, "picamera2", None)


def luma(frame: av.VideoFrame) -> np.ndarray:
    return planes(yuv_array(frame), frame.width, frame.height)[0]


# --- test pattern -------------------------------------------------------------------


async def test_pattern_has_configured_size_and_moves() -> None:
    source = TestPattern(320, 240, 30)
    started = time.monotonic()
    frames = [await source.read() for _ in range(10)]
    took = time.monotonic() - started
    assert all((f.width, f.height, f.format.name) == (320, 240, "yuv420p") for f in frames)
    assert 0.25 < took < 1.0, f"10 frames at 30 fps took {took:.2f} s"
    a, b = luma(frames[0]), luma(frames[1])
    changed = np.argwhere(a != b)
    assert len(changed) > 50, "consecutive frames must differ"
    # both the moving box (upper half of the black band) and the text line change
    rows = set(changed[:, 0].tolist())
    assert any(130 <= r < 160 for r in rows), "the moving box did not move"
    assert any(168 <= r < 192 for r in rows), "the clock/counter line did not change"
    assert source.describe() == "test-pattern 320x240@30"


def test_pattern_shows_counter_and_clock() -> None:
    painter = PatternPainter(320, 240)
    same_time = 1_700_000_000.0
    a, b = painter.paint(1, same_time), painter.paint(2, same_time)
    c = painter.paint(1, same_time + 1.0)
    text_rows = slice(168, 192)
    # only the counter differs between a and b, only the clock between a and c
    diff_ab = np.argwhere(luma(a)[text_rows] != luma(b)[text_rows])
    diff_ac = np.argwhere(luma(a)[text_rows] != luma(c)[text_rows])
    assert len(diff_ab) and len(diff_ac)
    assert diff_ab[:, 1].min() > diff_ac[:, 1].max(), "counter is right of the clock"


def test_pattern_is_cheap_at_720p() -> None:
    painter = PatternPainter(1280, 720)
    started = time.process_time()
    for i in range(30):
        painter.paint(i)
    per_frame = (time.process_time() - started) / 30
    assert per_frame < 0.008, f"{per_frame * 1000:.1f} ms per 720p frame"


# --- test tone ----------------------------------------------------------------------


async def test_tone_is_48k_s16_20ms_and_audible() -> None:
    tone = TestTone()
    frames = [await tone.read() for _ in range(5)]
    for i, frame in enumerate(frames):
        assert (frame.sample_rate, frame.format.name, frame.samples) == (48000, "s16", 960)
        assert frame.layout.name == "mono"
        assert frame.pts == i * 960 and frame.time_base == fractions.Fraction(1, 48000)
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int32)
    assert np.abs(samples).max() > 5000
    crossings = int(np.sum(np.diff(np.sign(samples)) != 0))
    assert 80 <= crossings <= 96, f"{crossings} zero crossings in 100 ms is not 440 Hz"


# --- devices that are not there -----------------------------------------------------


async def test_v4l2_without_device_fails_cleanly() -> None:
    with pytest.raises(SourceUnavailable, match="no device at /dev/video-does-not-exist"):
        await open_camera(CameraConfig(source="v4l2", device=NO_DEVICE))


async def test_v4l2_device_that_is_not_a_camera_fails_cleanly(tmp_path: Any) -> None:
    fake = tmp_path / "video9"
    fake.write_bytes(b"not a camera")
    with pytest.raises(SourceUnavailable, match="v4l2"):
        await open_camera(CameraConfig(source="v4l2", device=str(fake)))


async def test_picamera2_missing_fails_cleanly() -> None:
    with pytest.raises(SourceUnavailable, match="picamera2: not installed"):
        await open_camera(CameraConfig(source="picamera2"))


@pytest.fixture
def no_sound_system(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No pw-record, parec or arecord: whatever this machine has installed."""
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.mark.parametrize(
    ("kind", "advice"),
    [("pulse", "apt install pipewire-bin"), ("alsa", "apt install alsa-utils")],
)
async def test_microphone_without_device_fails_cleanly(
    kind: str, advice: str, no_sound_system: None
) -> None:
    with pytest.raises(SourceUnavailable, match=f"{kind}: .*{advice}"):
        await open_microphone(MicrophoneConfig(source=kind, device="no-such-device"))


async def test_auto_falls_back_to_test_sources(no_sound_system: None) -> None:
    cam = await open_camera(CameraConfig(source="auto", device=NO_DEVICE, width=320, height=240))
    mic = await open_microphone(MicrophoneConfig(source="auto", device="no-such-device"))
    try:
        assert cam.describe() == "test-pattern 320x240@30"
        assert mic.describe().startswith("test-tone")
        assert (await cam.read()).width == 320
    finally:
        cam.close()
        mic.close()


def test_probes_explain_what_is_missing(no_sound_system: None) -> None:
    ok, text = probe_camera(CameraConfig(source="auto", device=NO_DEVICE))
    assert not ok and "no camera found" in text and "test pattern" in text
    assert "picamera2" in text
    ok, text = probe_camera(CameraConfig(source="test"))
    assert ok and "test pattern" in text
    ok, text = probe_microphone(MicrophoneConfig(source="alsa", device="no-such-device"))
    assert not ok and "arecord not found: apt install alsa-utils" in text
    ok, text = probe_microphone(MicrophoneConfig(source="test"))
    assert ok


# --- picamera2 (faked: it only exists on a Pi) ---------------------------------------


class FakePicamera2:
    """The few picamera2 calls the source makes, with a padded YUV420 buffer."""

    instances: list[FakePicamera2] = []

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.started = self.closed = False
        self.captures = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return {"main": main, **kw}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started and name == "main"
        width, height = self.config["main"]["size"]
        stride = width + 32  # libcamera pads rows
        y = np.full((height, stride), 100, np.uint8)
        y[:10, :10] = 250  # a bright mark in the top-left corner
        u = np.full((height // 2, stride // 2), 90, np.uint8)
        v = np.full((height // 2, stride // 2), 160, np.uint8)
        flat = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
        self.captures += 1
        return flat.reshape(height * 3 // 2, stride)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    return FakePicamera2


async def test_picamera2_source(fake_picamera2: type[FakePicamera2]) -> None:
    cfg = CameraConfig(source="auto", width=320, height=240, fps=15)
    source = await open_camera(cfg)
    assert source.describe() == "picamera2 320x240@15"
    cam = fake_picamera2.instances[0]
    assert cam.config["main"] == {"size": (320, 240), "format": "YUV420"}
    frame = await source.read()
    assert (frame.width, frame.height) == (320, 240)
    y, u, v = planes(yuv_array(frame), 320, 240)
    assert y[0, 0] == 250 and y[100, 100] == 100 and u[5, 5] == 90 and v[5, 5] == 160
    source.close()
    source.close()
    assert cam.closed and not cam.started


async def test_rotation_turns_hardware_pictures(fake_picamera2: type[FakePicamera2]) -> None:
    source = await open_camera(CameraConfig(source="picamera2", width=320, height=240, rotation=90))
    frame = await source.read()
    source.close()
    assert (frame.width, frame.height) == (240, 320)
    y = luma(frame)
    # clockwise: the top-left mark lands in the top-right corner
    assert y[0, 239] == 250 and y[0, 0] == 100
    flipped = rotate(unavailable_frame(320, 240), 180)
    assert (flipped.width, flipped.height) == (320, 240)


# --- a camera that fails mid-call ---------------------------------------------------


class FlakyCamera:
    """Sends ``good`` frames, then fails; re-opening fails ``refusals`` times."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.sent = 0
        self.closed = False

    async def read(self) -> av.VideoFrame:
        await asyncio.sleep(0.005)
        if self.sent >= self.good:
            raise OSError("USB camera unplugged")
        self.sent += 1
        frame = av.VideoFrame.from_ndarray(np.full((360, 320), 200, np.uint8), format="yuv420p")
        return frame

    def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return "flaky"


async def test_failing_camera_shows_unavailable_and_recovers() -> None:
    opened: list[FlakyCamera] = []
    refusals = [1]

    async def opener() -> FlakyCamera:
        if opened and refusals[0]:
            refusals[0] -= 1
            raise SourceUnavailable("still unplugged")
        opened.append(FlakyCamera(good=3))
        return opened[-1]

    feed = Resilient(
        opener,
        placeholder=lambda: unavailable_frame(320, 240),
        period=0.01,
        kind="camera",
        backoff=(0.02, 0.05),
    )
    await feed.start()
    kinds = []
    for _ in range(40):
        frame = await feed.read()
        assert (frame.width, frame.height) == (320, 240)
        kinds.append("real" if luma(frame)[0, 0] == 200 else "unavailable")
        if kinds.count("real") >= 6:
            break
    # 3 real frames, placeholders while it is gone (one re-open refused), then back
    assert kinds[:3] == ["real"] * 3
    assert "unavailable" in kinds[3:]
    assert kinds[-1] == "real" and len(opened) == 2
    assert opened[0].closed and feed.failures == 2
    await feed.close()
    assert opened[1].closed


async def test_auto_microphone_takes_the_device_that_comes_up_after_the_call_began(
    tmp_path: Any, no_sound_system: None
) -> None:
    """A call that begins while the station's PipeWire is still starting gets the test
    tone, and the microphone as soon as it sends sound: not the tone for the whole call.
    The device found is slow to start (3.5 s to its first sound, over the 3 s a call's
    first try gets: PipeWire in the arm64 VM), and the search waits for it."""
    feed = microphone_feed(MicrophoneConfig(source="auto"), search_backoff=(0.05, 0.1))
    await feed.start()
    try:
        assert feed.describe().startswith("test-tone")
        assert np.abs((await feed.read()).to_ndarray()).max() > 1000  # the tone
        # PipeWire comes up: pw-record now records (a constant level, 20 ms at a time)
        recorder = tmp_path / "pw-record"
        recorder.write_text(
            f"#!{sys.executable}\n"
            "import sys, time\n"
            "time.sleep(3.5)\n"
            "chunk = (1234).to_bytes(2, 'little') * 960\n"
            "while True:\n"
            "    sys.stdout.buffer.write(chunk); sys.stdout.buffer.flush(); time.sleep(0.02)\n"
        )
        recorder.chmod(0o755)
        levels = set()
        for _ in range(600):  # bounded: 12 s of 20 ms frames
            frame = await feed.read()
            levels = set(np.unique(frame.to_ndarray()).tolist())
            if levels == {1234}:
                break
        assert levels == {1234}, "the microphone never replaced the test tone"
        assert feed.describe().startswith("pulse default (pw-record)")
    finally:
        await feed.close()


async def test_auto_camera_takes_a_camera_that_comes_up_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = CameraConfig(source="auto", device=NO_DEVICE, width=320, height=240, fps=30)
    feed = camera_feed(cfg, search_backoff=(0.05, 0.1))
    await feed.start()
    try:
        assert feed.describe() == "test-pattern 320x240@30"
        module = types.ModuleType("picamera2")
        module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
        FakePicamera2.instances = []
        monkeypatch.setitem(sys.modules, "picamera2", module)  # the camera is there now
        for _ in range(200):
            frame = await feed.read()
            if luma(frame)[0, 0] == 250:  # the fake camera's bright corner
                break
        assert luma(frame)[0, 0] == 250, "the camera never replaced the test pattern"
        assert feed.describe() == "picamera2 320x240@30"
    finally:
        await feed.close()
    assert FakePicamera2.instances[0].closed


async def test_a_configured_test_source_is_never_replaced(
    fake_picamera2: type[FakePicamera2],
) -> None:
    feed = camera_feed(
        CameraConfig(source="test", width=320, height=240), search_backoff=(0.01, 0.01)
    )
    await feed.start()
    for _ in range(10):
        await feed.read()
    assert feed.describe() == "test-pattern 320x240@30" and not fake_picamera2.instances
    await feed.close()


async def test_camera_feed_named_source_missing_shows_unavailable() -> None:
    feed = camera_feed(CameraConfig(source="v4l2", device=NO_DEVICE, width=320, height=240))
    await feed.start()
    frame = await feed.read()
    assert (frame.width, frame.height) == (320, 240)
    assert feed.describe().startswith("unavailable: v4l2: no device")
    await feed.close()


def test_errors_are_media_errors() -> None:
    assert issubclass(SourceUnavailable, MediaError) and issubclass(SourceUnavailable, OSError)
    assert camera_mod.output_size(CameraConfig(width=1280, height=720, rotation=270)) == (720, 1280)


def test_the_pattern_stamps_its_capture_time_as_bits() -> None:
    from appliance.media.pattern import STAMP_BITS, STAMP_CHECK, STAMP_CHECK_BITS

    for width, height in ((1280, 720), (640, 360)):
        painter = PatternPainter(width, height)
        now = 1_795_000_000.123
        y, _, _ = planes(yuv_array(painter.paint(7, now)), width, height)
        row = y[height - max(2, height // 48)]
        bits = [int(row[(2 * b + 1) * width // (2 * STAMP_BITS)] > 128) for b in range(STAMP_BITS)]
        value = int("".join(map(str, bits)), 2)
        millis, check = value >> STAMP_CHECK_BITS, value % 2**STAMP_CHECK_BITS
        assert millis == int(now * 1000) % 2**30 and check == millis % STAMP_CHECK


def test_a_device_s_frames_become_yuv420_at_the_configured_size() -> None:
    """A V4L2 camera's frames (here rgb24 and yuyv422, as webcams give them) come out
    as yuv420p at the configured size, every frame, through one kept scaler."""
    convert = to_yuv420(320, 180)
    for fmt in ("rgb24", "yuyv422", "rgb24"):
        source = av.VideoFrame.from_ndarray(
            np.full((360, 640, 3), 200, dtype=np.uint8), format="rgb24"
        ).reformat(format=fmt)
        (out,) = convert(source)
        assert (out.width, out.height, out.format.name) == (320, 180, "yuv420p")
        luma = out.to_ndarray()[:180]
        assert abs(int(luma.mean()) - 187) <= 3, luma.mean()  # rgb 200 grey, video range

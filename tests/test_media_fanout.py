"""Encode once, send to many: the shared encoder and the per-peer tracks, no network."""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from appliance.config import CameraConfig, MicrophoneConfig
from appliance.errors import MediaError, SourceUnavailable
from appliance.media.audio import AudioFanout
from appliance.media.camera import TestPattern
from appliance.media.encoder import VBV_PER_SECOND, VideoEncoder, has_sps, serves_new_viewers
from appliance.media.pattern import unavailable_frame
from appliance.media.source import Resilient
from appliance.media.video import EncodedVideoTrack, VideoFanout

CAMERA = CameraConfig(source="test", width=320, height=240, fps=30)


class CountingFeed:
    """camera_feed stand-in that records when the camera is opened and closed."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.opened = 0
        self.closed = 0
        self.fail_after = fail_after

    def __call__(self, cfg: CameraConfig) -> Resilient[av.VideoFrame]:
        counter = self

        class Source(TestPattern):
            def __init__(self) -> None:
                super().__init__(cfg.width, cfg.height, cfg.fps)
                self.count = 0

            async def read(self) -> av.VideoFrame:
                self.count += 1
                if counter.fail_after is not None and self.count > counter.fail_after:
                    raise OSError("camera unplugged")
                return await super().read()

            def close(self) -> None:
                counter.closed += 1

        async def opener() -> Source:
            if counter.fail_after is not None and counter.opened:
                raise SourceUnavailable("still unplugged")
            counter.opened += 1
            return Source()

        return Resilient(
            opener,
            placeholder=lambda: unavailable_frame(cfg.width, cfg.height),
            period=1 / cfg.fps,
            kind="camera",
            backoff=(0.05, 0.1),
        )


async def next_packets(track: EncodedVideoTrack, n: int) -> list[av.Packet[Any]]:
    return [await asyncio.wait_for(track.recv(), 5) for _ in range(n)]


def decode(codec: str, packets: list[av.Packet[Any]]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264" if codec == "H264" else "libvpx", "r")
    frames: list[av.VideoFrame] = []
    for packet in packets:
        frames += decoder.decode(av.Packet(bytes(packet)))
    return frames


async def test_idle_until_first_track_and_closed_after_linger() -> None:
    feed = CountingFeed()
    # a linger long enough that a busy machine's stall between two lines does not end it
    video = VideoFanout(CAMERA, linger=1.5, feed=feed)
    await asyncio.sleep(0.1)
    states = [(video.capturing, feed.opened)]
    track = video.track()
    track.set_codec("H264")
    await next_packets(track, 2)
    states.append((video.capturing, feed.opened))
    track.stop()
    await asyncio.sleep(0.1)
    states.append((video.capturing, feed.opened))
    # idle: closed; first viewer: opened once; it lingers for a quick re-connect
    assert states == [(False, 0), (True, 1), (True, 1)]
    again = video.track()  # within the linger: same capture, no re-open
    again.set_codec("H264")
    await next_packets(again, 2)
    assert feed.opened == 1
    again.stop()
    for _ in range(100):  # bounded: closed 1.5 s after the last viewer left
        if not video.capturing:
            break
        await asyncio.sleep(0.1)
    assert not video.capturing and feed.closed == 1
    with pytest.raises(MediaStreamError):
        await again.recv()
    await video.close()


async def test_three_viewers_one_encode() -> None:
    video = VideoFanout(CAMERA, linger=0.1)
    tracks = [video.track() for _ in range(3)]
    for track in tracks:
        track.set_codec("H264")
    first = [await next_packets(t, 1) for t in tracks]
    assert all(p[0].is_keyframe for p in first), "every new viewer starts on a keyframe"
    before = video.counters()
    received = await asyncio.gather(*(next_packets(t, 15) for t in tracks))
    after = video.counters()
    captured = after["camera_frames"] - before["camera_frames"]
    encoded = after["encoded_h264"] - before["encoded_h264"]
    assert captured >= 14
    assert abs(encoded - captured) <= 1, f"{encoded} encodes for {captured} frames"
    # everybody got the very same packets
    assert [bytes(p) for p in received[0]] == [bytes(p) for p in received[1]]
    frames = decode("H264", first[0] + received[0])
    assert frames and (frames[-1].width, frames[-1].height) == (320, 240)
    await video.close()
    assert all(t.readyState == "ended" for t in tracks)


async def test_vp8_encoder_only_for_vp8_viewers() -> None:
    video = VideoFanout(CAMERA, linger=0.1)
    h264, vp8 = video.track(), video.track()
    h264.set_codec("H264")
    vp8.set_codec("vp8")
    h_packets, v_packets = await asyncio.gather(next_packets(h264, 5), next_packets(vp8, 5))
    assert video.implementations == {"H264": "libx264", "VP8": "libvpx"}
    assert decode("VP8", v_packets)[-1].width == 320
    assert decode("H264", h_packets)[-1].width == 320
    vp8.stop()
    await next_packets(h264, 3)
    stopped_at = video.counters()["encoded_vp8"]
    await next_packets(h264, 5)
    assert video.counters()["encoded_vp8"] == stopped_at, "no VP8 viewer, no VP8 encoding"
    with pytest.raises(MediaError):
        video.track().set_codec("AV1")
    await video.close()


async def test_slow_viewer_drops_to_next_keyframe_without_slowing_others() -> None:
    video = VideoFanout(CAMERA, linger=0.1)
    fast, slow = video.track(), video.track()
    fast.set_codec("H264")
    slow.set_codec("H264")
    keyframes = video.counters()["keyframes_h264"]
    fast_packets = await next_packets(fast, 40)  # slow never reads meanwhile
    assert len(fast_packets) == 40 and fast.dropped == 0
    assert slow.dropped > 0, "the slow viewer's backlog was dropped"
    assert video.counters()["keyframes_h264"] > keyframes, "and it asked for a keyframe"
    resumed = await asyncio.wait_for(slow.recv(), 5)
    assert resumed.is_keyframe, "after a drop the slow viewer restarts on a keyframe"
    await video.close()


async def test_a_viewer_moving_down_gets_the_new_rungs_keyframe_next() -> None:
    """What was queued of the old rung is dropped at the switch: on a link that has just
    narrowed it would only delay the picture that ends the freeze."""
    cam = CameraConfig(source="test", width=320, height=240, fps=30, low_width=160, low_height=120)
    video = VideoFanout(cam, linger=0.1)
    track = video.track()
    track.set_codec("H264")
    await next_packets(track, 3)
    for _ in range(100):  # bounded: the high rung's packets pile up unread
        if len(track._packets) >= 5:
            break
        await asyncio.sleep(0.02)
    assert len(track._packets) >= 5
    track.link.rung = "low"  # what the rung policy decides for a weak link
    for _ in range(100):
        if track.rung == "low":
            break
        await asyncio.sleep(0.02)
    assert track.rung == "low" and track.dropped >= 5
    first = await asyncio.wait_for(track.recv(), 5)
    assert first.is_keyframe, "the first packet after the switch is the new rung's keyframe"
    assert decode("H264", [first])[0].width == 160 and track.rung_since is not None
    await video.close()


async def test_a_viewer_paused_after_moving_down_gets_nothing_then_the_new_keyframe() -> None:
    """While the queue the old rung filled drains (``ViewerLink.paused_until``), the
    viewer is sent no video at all; then the new rung's keyframe comes first."""
    cam = CameraConfig(source="test", width=320, height=240, fps=30, low_width=160, low_height=120)
    video = VideoFanout(cam, linger=0.1)
    track = video.track()
    track.set_codec("H264")
    await next_packets(track, 3)
    track.link.rung = "low"
    track.link.paused_until = time.monotonic() + 0.6
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(track.recv(), 0.4)  # a frame is due every 33 ms
    first = await asyncio.wait_for(track.recv(), 5)
    assert time.monotonic() >= track.link.paused_until
    assert first.is_keyframe, "after the pause, the new rung's keyframe comes first"
    assert decode("H264", [first])[0].width == 160
    await video.close()


async def test_keyframe_requests_are_served_and_coalesced() -> None:
    video = VideoFanout(CAMERA, linger=0.1)
    track = video.track()
    track.set_codec("H264")
    await next_packets(track, 12)  # past the first keyframe and the rate limit
    base = video.counters()["keyframes_h264"]
    for _ in range(5):
        track.request_keyframe()  # a PLI storm
    packets = await next_packets(track, 3)
    assert any(p.is_keyframe for p in packets)
    assert video.counters()["keyframes_h264"] == base + 1
    await video.close()


async def test_failing_camera_keeps_sending() -> None:
    feed = CountingFeed(fail_after=5)
    video = VideoFanout(CAMERA, linger=0.1, feed=feed)
    track = video.track()
    track.set_codec("H264")
    packets = await next_packets(track, 20)
    assert video.description.startswith("unavailable: ")
    frames = decode("H264", packets)
    assert len(frames) >= 15 and all(f.width == 320 for f in frames)
    # the "camera unavailable" picture is uniform grey around the text
    corner = frames[-1].to_ndarray()[:20, :20].astype(int)
    assert int(corner.max() - corner.min()) < 10
    await video.close()
    assert feed.closed == 1


async def test_audio_captured_once_for_every_listener() -> None:
    audio = AudioFanout(MicrophoneConfig(source="test"), linger=0.1)
    assert not audio.capturing
    tracks = [audio.track() for _ in range(3)]
    got = [[await asyncio.wait_for(t.recv(), 2) for _ in range(5)] for t in tracks]
    assert audio.description.startswith("test-tone")
    assert audio.frames < 12, "one capture, not one per listener"
    assert got[0][0].pts == got[1][0].pts == got[2][0].pts, "the same frames for everybody"
    pts = [f.pts or 0 for f in got[0]]
    assert pts == sorted(pts) and pts[1] - pts[0] == 960
    for track in tracks:
        track.stop()
    await asyncio.sleep(0.3)
    assert not audio.capturing
    await audio.close()


def x264(*, global_header: bool) -> Any:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 90000)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency"}
    if global_header:  # headers once, out of band: what a bad hardware encoder does
        ctx.flags |= av.codec.context.Flags.global_header
    ctx.open()
    return ctx


def test_encoder_check_rejects_keyframes_without_headers() -> None:
    """h264_v4l2m2m is used only when a forced keyframe lets a late viewer join."""
    assert serves_new_viewers(x264(global_header=False))
    assert not serves_new_viewers(x264(global_header=True))
    assert has_sps(b"\x00\x00\x00\x01\x67\x42") and not has_sps(b"\x00\x00\x01\x65\x88")


def test_keyframes_fit_a_weak_link_queue() -> None:
    """A keyframe of the low rung is no larger than a quarter second of its bitrate (VBV):
    a 400 kbit/s link's queue (tbf: 200 ms + 8 KB) takes it whole instead of dropping
    its tail, which made the viewer ask for keyframe after keyframe and freeze."""
    bitrate = 250_000
    encoder = VideoEncoder("H264", width=640, height=360, fps=30, bitrate=bitrate)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(360 * 3 // 2, 640), dtype=np.uint8)  # worst case
    keyframes: list[int] = []
    for i in range(60):
        frame = av.VideoFrame.from_ndarray(np.roll(noise, 4 * i, axis=1), format="yuv420p")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        packets = encoder.encode(frame, keyframe=i % 20 == 0)
        keyframes += [p.size for p in packets if p.is_keyframe]
    assert len(keyframes) == 3
    budget = bitrate / VBV_PER_SECOND / 8  # 7.8 KB; uncapped a noisy keyframe is ~90 KB
    assert max(keyframes) <= budget * 1.1, keyframes


def test_an_encoder_opened_below_its_ceiling_climbs_to_it() -> None:
    """The low rung opens at what the weakest viewer's estimate allows and must follow
    it back up: libx264 opened at a low bitrate stayed there when asked for more."""
    encoder = VideoEncoder(
        "H264", width=320, height=180, fps=30, bitrate=50_000, max_bitrate=150_000
    )
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(180 * 3 // 2, 320), dtype=np.uint8)  # uses any rate
    sent = [0, 0, 0]  # bytes in three 3-second windows
    for i in range(270):
        if i == 90:
            encoder.set_bitrate(150_000)
        frame = av.VideoFrame.from_ndarray(np.roll(noise, 3 * i, axis=1), format="yuv420p")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        sent[i // 90] += sum(p.size for p in encoder.encode(frame, keyframe=i == 0))
    rates = [8 * n / 3 for n in sent]
    assert rates[0] < 70_000, rates  # what it was opened at
    assert rates[2] > 120_000, rates  # and what it was asked for later

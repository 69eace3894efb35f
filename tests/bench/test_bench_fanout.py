"""CPU of the station process: shared encoder vs aiortc's one-encoder-per-peer.

Run with ``pytest -m bench -s tests/bench/test_bench_fanout.py``. The viewers run in
a child process (their decoding is not the station's cost); the station's CPU time
is ``resource.getrusage(RUSAGE_SELF)`` over a fixed window at 1280x720@30.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.contrib.media import MediaRelay

from appliance.config import CameraConfig, MicrophoneConfig
from appliance.media import StationMedia, StationPeers
from appliance.media.pattern import PatternPainter
from appliance.media.peer import video_codec_preferences
from appliance.protocol import Description

pytestmark = pytest.mark.bench

WIDTH, HEIGHT, FPS = 1280, 720, 30
# BENCH_QUICK=1 (CI): a short window that only keeps the benchmark working
QUICK = os.environ.get("BENCH_QUICK") == "1"
WINDOW = 1.5 if QUICK else 5.0
PAIRS = 1 if QUICK else 3

VIEWERS = r"""
import asyncio, json, sys
from aiortc import RTCPeerConnection, RTCSessionDescription

async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pcs, frames = {}, {}

    async def consume(pid, track):
        while True:
            try:
                await track.recv()
            except Exception:
                return
            frames[pid] = frames.get(pid, 0) + 1

    while line := await reader.readline():
        msg = json.loads(line)
        if msg["op"] == "offer":
            pid = msg["id"]
            pc = pcs[pid] = RTCPeerConnection()
            pc.on("track", lambda t, pid=pid: asyncio.ensure_future(consume(pid, t)))
            if msg.get("codecs"):  # a browser with only these (e.g. Firefox: no H.264)
                from aiortc import RTCRtpReceiver
                t = pc.addTransceiver("video", direction="recvonly")
                t.setCodecPreferences([c for c in RTCRtpReceiver.getCapabilities("video").codecs
                                       if c.name in msg["codecs"]])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            out = {"id": pid, "sdp": pc.localDescription.sdp}
        elif msg["op"] == "frames":
            out = dict(frames)
        else:
            await asyncio.gather(*(pc.close() for pc in pcs.values()))
            out = {}
        print(json.dumps(out), flush=True)
        if msg["op"] == "quit":
            return

asyncio.run(main())
"""


class ViewerProcess:
    """Receiving peers in a child process, driven over stdin/stdout JSON lines."""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", VIEWERS,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        reply: dict[str, Any] = json.loads(await self.proc.stdout.readline())
        return reply

    async def stop(self) -> None:
        await self.ask({"op": "quit"})
        await self.proc.wait()


class PatternTrack(VideoStreamTrack):
    """Raw test-pattern frames, the input of aiortc's per-peer encoders."""

    def __init__(self) -> None:
        super().__init__()
        self.painter = PatternPainter(WIDTH, HEIGHT)
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self.painter.paint(self.index)
        frame.pts, frame.time_base = pts, fractions.Fraction(time_base)
        self.index += 1
        return frame


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(viewers: ViewerProcess, ids: list[str]) -> tuple[float, int]:
    await asyncio.sleep(1.5)  # connected, first keyframes out
    before_frames = await viewers.ask({"op": "frames"})
    before, started = cpu(), time.monotonic()
    await asyncio.sleep(WINDOW)
    used, elapsed = cpu() - before, time.monotonic() - started
    after_frames = await viewers.ask({"op": "frames"})
    received = min(after_frames.get(i, 0) - before_frames.get(i, 0) for i in ids)
    return used / elapsed, round(received / elapsed)


@contextlib.asynccontextmanager
async def station_viewed_by(
    ids: list[str], *, vp8: tuple[str, ...] = (), vp8_rung: str = "low"
) -> AsyncIterator[tuple[ViewerProcess, StationMedia, StationPeers]]:
    """The station's media at 1280x720@30 (adaptive encoder, the default) with one
    connected viewer per id in a child process, those in ``vp8`` offering VP8 only;
    everything closed afterwards."""
    viewers = ViewerProcess()
    await viewers.start()
    camera = CameraConfig(source="test", width=WIDTH, height=HEIGHT, fps=FPS, vp8_rung=vp8_rung)
    media = StationMedia(camera, MicrophoneConfig(source="test"), linger=0.1)
    peers: StationPeers

    async def send(peer_id: str, offer: Description, session: int) -> None:
        codecs = ["VP8", "rtx"] if peer_id in vp8 else []
        answer = await viewers.ask(
            {"op": "offer", "id": peer_id, "sdp": offer.sdp, "codecs": codecs}
        )
        await peers.handle_signal(peer_id, Description("answer", answer["sdp"]))

    peers = StationPeers(media, ice_servers=[], send=send)
    try:
        for peer_id in ids:
            await peers.open(peer_id, audio=False)
        yield viewers, media, peers
    finally:
        await peers.close_all()
        await media.close()
        await viewers.stop()


async def shared(n: int) -> tuple[float, int, dict[str, int]]:
    ids = [f"v{i}" for i in range(n)]
    async with station_viewed_by(ids) as (viewers, media, _):
        c0 = media.counters()
        load, fps = await measure(viewers, ids)
        c1 = media.counters()
    return load, fps, {k: c1[k] - c0[k] for k in ("camera_frames", "encoded_h264")}


async def rungs(*, weak: bool) -> tuple[float, int, dict[str, int]]:
    """Two viewers of the adaptive encoder; with ``weak`` one of them reports 25 % loss
    (as a phone on a bad link would), which holds it on the low rung: both encodes run."""
    ids = ["strong", "weak"]
    async with station_viewed_by(ids) as (viewers, media, peers):
        return await _measure_rungs(viewers, media, peers, ids, weak=weak)


async def _measure_rungs(
    viewers: ViewerProcess, media: StationMedia, peers: StationPeers, ids: list[str], *, weak: bool
) -> tuple[float, int, dict[str, int]]:
    link = peers._peers["weak"].video_track.link  # type: ignore[union-attr]

    async def lossy_reports() -> None:
        while True:  # cancelled below
            link.on_report(64, rtt=0.05, now=time.monotonic())
            await asyncio.sleep(0.1)

    feeder = asyncio.ensure_future(lossy_reports()) if weak else None
    if weak:
        for _ in range(100):  # bounded: 10 s for the move down (1.5 s hold + dwell)
            if media.counters()["viewers_low"] == 1:
                break
            await asyncio.sleep(0.1)
    c0 = media.counters()
    load, fps = await measure(viewers, ids)
    c1 = media.counters()
    if feeder is not None:
        feeder.cancel()
    counts = {k: c1[k] - c0[k] for k in ("camera_frames", "encoded_h264", "encoded_low")}
    return load, fps, {**counts, "viewers_low": c1["viewers_low"]}


async def test_bench_two_rungs_vs_one() -> None:
    """Issue #10: station CPU with both rungs active <= 1.6 x one rung. One rung and two
    are measured by turns, ``PAIRS`` times; the median of the pairs' ratios is the
    figure (one 5 s pair swung between 1.34 and 1.64 on a quiet machine)."""
    pairs = []
    for _ in range(PAIRS):
        pairs.append((await rungs(weak=False), await rungs(weak=True)))
    print(f"\nadaptive encoder, 2 viewers at {WIDTH}x{HEIGHT}@{FPS}, {WINDOW:.0f} s windows")
    print(f"{'rungs':<26} {'CPU (cores)':>11} {'fps/viewer':>10}  low encodes/captured")
    for (one_load, one_fps, one), (two_load, two_fps, two) in pairs:
        print(f"{'one (both on 720p)':<26} {one_load:>11.2f} {one_fps:>10}  "
              f"{one['encoded_low']}/{one['camera_frames']}")  # fmt: skip
        print(f"{'two (one viewer on 360p)':<26} {two_load:>11.2f} {two_fps:>10}  "
              f"{two['encoded_low']}/{two['camera_frames']}")  # fmt: skip
    ratios = [two[0] / one[0] for one, two in pairs]
    ratio = statistics.median(ratios)
    listed = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"ratio two/one: {ratio:.2f}, the median of {listed} (target <= 1.6)")
    for (_, _, one), (_, two_fps, two) in pairs:
        # the low rung runs only while a viewer needs it, and then for every frame
        assert one["encoded_low"] == 0, one
        assert two["viewers_low"] == 1, two
        assert two["encoded_low"] >= two["camera_frames"] // 2, two
        if not QUICK:
            assert two_fps >= 20, "both viewers keep moving"
    if not QUICK:
        assert ratio <= 1.6, f"two rungs cost {ratio:.2f} x one"


async def with_vp8(vp8: tuple[str, ...], vp8_rung: str = "low") -> tuple[float, int, list[str]]:
    """Two viewers; those named in ``vp8`` have no H.264: the station's CPU, their fps and
    the encoders that ran."""
    ids = ["h264", "other"]
    async with station_viewed_by(ids, vp8=vp8, vp8_rung=vp8_rung) as (viewers, media, _):
        load, fps = await measure(viewers, ids)
        running = [f"{e['codec']} {e['width']}x{e['height']}" for e in media.encoders()]
    return load, fps, running


async def test_bench_a_vp8_viewer_beside_h264_ones() -> None:
    """Issue #27: a browser without H.264 (Debian's Firefox) needs a VP8 encoder beside the
    H.264 one; on the low rung's size (the default, ``camera.vp8_rung = "low"``) the
    station's CPU with one such viewer <= 1.5 x with H.264 viewers alone. Measured by turns,
    ``PAIRS`` times, the median ratio; VP8 at the camera's size (``vp8_rung = "high"``)
    beside, for the record."""
    if QUICK:  # keeps it working beside the VMs: one call, the encoders it runs
        load, fps, running = await with_vp8(("other",))
        assert sorted(running) == [f"H264 {WIDTH}x{HEIGHT}", "VP8 640x360"], running
        return
    rows = []
    for _ in range(PAIRS):
        rows.append(
            (await with_vp8(()), await with_vp8(("other",)), await with_vp8(("other",), "high"))
        )
    print(f"\nstation CPU, 2 viewers at {WIDTH}x{HEIGHT}@{FPS}, {WINDOW:.0f} s windows")
    print(f"{'viewers':<34} {'CPU (cores)':>11} {'fps/viewer':>10}  encoders")
    names = ("2 x H.264", "H.264 + VP8 (VP8 on the low rung)", "H.264 + VP8 at 720p (reference)")
    for row in rows:
        for name, (load, fps, running) in zip(names, row, strict=True):
            print(f"{name:<34} {load:>11.2f} {fps:>10}  {', '.join(running)}")
    low = statistics.median(vp8[0] / h264[0] for h264, vp8, _ in rows)
    high = statistics.median(full[0] / h264[0] for h264, _, full in rows)
    print(f"ratio with a VP8 viewer / H.264 alone: {low:.2f} (target <= 1.5); "
          f"with VP8 at 720p: {high:.2f}")  # fmt: skip
    for h264, vp8, full in rows:
        assert h264[2] == [f"H264 {WIDTH}x{HEIGHT}"], h264
        assert sorted(vp8[2]) == [f"H264 {WIDTH}x{HEIGHT}", "VP8 640x360"], vp8
        assert sorted(full[2]) == [f"H264 {WIDTH}x{HEIGHT}", f"VP8 {WIDTH}x{HEIGHT}"], full
    # both viewers keep moving (a station that sent less would look cheap): the viewers'
    # process decodes both, so its share of a busy machine sets their fps; against the
    # H.264 pair measured just before
    assert all(vp8[1] >= min(20, 0.7 * h264[1]) for h264, vp8, _ in rows), rows
    assert low <= 1.5, f"a VP8 viewer costs {low:.2f} x H.264 viewers alone"


async def per_peer(n: int) -> tuple[float, int]:
    viewers = ViewerProcess()
    await viewers.start()
    relay, source = MediaRelay(), PatternTrack()
    pcs: list[RTCPeerConnection] = []
    ids = [f"v{i}" for i in range(n)]
    for peer_id in ids:
        pc = RTCPeerConnection()
        pcs.append(pc)
        transceiver = pc.addTransceiver(relay.subscribe(source), direction="sendonly")
        transceiver.setCodecPreferences(video_codec_preferences())  # H.264 too
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        answer = await viewers.ask({"op": "offer", "id": peer_id, "sdp": sdp})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    load, fps = await measure(viewers, ids)
    await asyncio.gather(*(pc.close() for pc in pcs))
    await viewers.stop()
    return load, fps


async def test_bench_shared_encoder_vs_per_peer() -> None:
    rows = []
    for n in (1, 4):
        load, fps, counts = await shared(n)
        rows.append(("shared encoder", n, load, fps, counts))
        base_load, base_fps = await per_peer(n)
        rows.append(("aiortc per-peer", n, base_load, base_fps, {}))
    print(f"\nstation CPU at {WIDTH}x{HEIGHT}@{FPS}, {WINDOW:.0f} s window")
    print(f"{'mode':<16} {'viewers':>7} {'CPU (cores)':>11} {'fps/viewer':>10}  encoded/captured")
    for mode, n, load, fps, counts in rows:
        ratio = f"{counts['encoded_h264']}/{counts['camera_frames']}" if counts else "-"
        print(f"{mode:<16} {n:>7} {load:>11.2f} {fps:>10}  {ratio}")
    counts_4 = rows[2][4]
    # frames encoded equal frames captured whatever the number of viewers (one encode)
    assert counts_4["encoded_h264"] <= counts_4["camera_frames"] + 1, counts_4
    if QUICK:  # a 1.5 s window on a shared CI machine measures noise, not cost
        return
    shared_1, shared_4 = rows[0][2], rows[2][2]
    per_peer_4 = rows[3][2]
    assert shared_4 < per_peer_4, "sharing the encoder must cost less with 4 viewers"
    assert shared_4 < shared_1 * 2.5, "the shared encoder's cost must not grow with viewers"

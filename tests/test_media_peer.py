"""The station peer against real aiortc viewers over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.clock import current_ntp_time
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
)

from appliance.config import CameraConfig, MicrophoneConfig
from appliance.config import load as load_config
from appliance.errors import ConfigError, MalformedMessage, UnknownPeer
from appliance.media import StationMedia, StationPeers
from appliance.media.nack import seconds_since
from appliance.media.peer import close_connection, negotiated_codec
from appliance.media.ratecontrol import RungPolicy, ViewerLink, high_bitrate
from appliance.protocol import Candidate, Description, EndOfCandidates, Restart, parse_payload
from appliance.systemd import JournalFields

from .helpers import Viewer, ViewerHub, unanswered_mdns

CAMERA = CameraConfig(source="test", width=320, height=240, fps=30)
MICROPHONE = MicrophoneConfig(source="test")


@contextlib.asynccontextmanager
async def station_with(
    camera: CameraConfig,
) -> AsyncIterator[tuple[StationMedia, StationPeers, ViewerHub]]:
    """The station's media and peers for ``camera``, viewers in memory; all closed after."""
    media = StationMedia(camera, MICROPHONE, linger=0.5)
    hub = ViewerHub()
    peers = StationPeers(
        media, ice_servers=[], send=hub.send, on_closed=hub.on_closed, room_id="station"
    )
    hub.peers = peers
    try:
        yield media, peers, hub
    finally:
        await peers.close_all()
        await asyncio.gather(*(v.close() for v in hub.viewers.values()))
        await media.close()


@pytest.fixture
async def station() -> AsyncIterator[tuple[StationMedia, StationPeers, ViewerHub]]:
    async with station_with(CAMERA) as parts:
        yield parts


async def connect(
    hub: ViewerHub, peers: StationPeers, viewer: Viewer, *, audio: bool = True
) -> None:
    hub.viewers[viewer.peer_id] = viewer
    await peers.open(viewer.peer_id, audio=audio)
    await hub.settle()


async def until_live(peers: StationPeers) -> None:
    """Until a connection that carries the microphone is connected (bounded: 30 s)."""
    for _ in range(600):
        if peers.live:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never live: {peers.stats()['peers']}")


async def first_frames(viewer: Viewer, n: int = 3) -> list[Any]:
    # generous: a frame comes in milliseconds on a quiet machine, but per-peer VP8
    # encoding beside two Chromiums (make test's other worker) once missed 10 s
    await asyncio.wait_for(viewer.got_track.wait(), 30)
    return [await asyncio.wait_for(viewer.tracks["video"].recv(), 30) for _ in range(n)]


def station_transceivers(peers: StationPeers, peer_id: str) -> list[Any]:
    return list(peers._peers[peer_id].pc.getTransceivers())


def ends(viewer: Viewer, peers: StationPeers, kind: str = "video") -> tuple[Any, Any]:
    """The viewer's receiver and the station's sender of ``kind``: one stream's ends."""
    assert viewer.pc is not None
    receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == kind)
    sender = next(t.sender for t in station_transceivers(peers, viewer.peer_id) if t.kind == kind)
    return receiver, sender


async def test_three_viewers_decode_one_encoding(station: Any) -> None:
    media, peers, hub = station
    assert not peers.live and media.status()["camera"] == "off"
    viewers = [Viewer(f"remote{i}") for i in range(3)]
    for viewer in viewers:
        await connect(hub, peers, viewer)
    await until_live(peers)
    assert [session for _, _, session in hub.offers] == [1, 2, 3]
    for viewer in viewers:
        frames = await first_frames(viewer)
        assert all(isinstance(f, av.VideoFrame) for f in frames)
        assert (frames[-1].width, frames[-1].height) == (320, 240)
        sound = await asyncio.wait_for(viewer.tracks["audio"].recv(), 10)
        assert isinstance(sound, av.AudioFrame) and sound.sample_rate == 48000
    for viewer in viewers:
        video = [t for t in station_transceivers(peers, viewer.peer_id) if t.kind == "video"]
        assert negotiated_codec(video[0]) == "H264"
        assert video[0]._codecs[0].parameters["profile-level-id"] == "42e01f"
        assert viewer.pc is not None
        received = [t for t in viewer.pc.getTransceivers() if t.kind == "video"]
        assert received[0]._codecs[0].mimeType == "video/H264"
    before = media.counters()
    await asyncio.gather(*(first_frames(v, 15) for v in viewers))
    after = media.counters()
    captured = after["camera_frames"] - before["camera_frames"]
    encoded = after["encoded_h264"] - before["encoded_h264"]
    assert captured >= 10 and abs(encoded - captured) <= 2, (captured, encoded)
    assert after["encoded_vp8"] == 0 and after["video_viewers"] == 3
    stats = peers.stats()["peers"]
    assert set(stats) == {"remote0", "remote1", "remote2"}
    assert all(s["codec"] == "H264" and s["video_packets"] > 10 for s in stats.values())
    assert media.status()["camera"] == "test-pattern 320x240@30"


async def test_every_connection_gets_freshly_minted_turn_credentials() -> None:
    """A station runs for months and TURN credentials expire after a day: the ICE
    servers are made for each connection, not once at start-up."""
    from appliance.config import IceConfig
    from appliance.turn import ice_servers

    ice = IceConfig(turn_urls=["turn:127.0.0.1:9"], turn_secret="s3cret")
    minted: list[list[dict[str, Any]]] = []

    def servers() -> list[dict[str, Any]]:
        minted.append(ice_servers(ice, key="station:test", lifetime=300, now=time.time()))
        return []  # no relay to gather here (nothing listens): a fast test

    media = StationMedia(CAMERA, MICROPHONE, linger=0.5)
    hub = ViewerHub()
    peers = StationPeers(media, ice_servers=servers, send=hub.send, on_closed=hub.on_closed)
    hub.peers = peers
    viewers = [Viewer("first"), Viewer("second")]
    try:
        await connect(hub, peers, viewers[0], audio=False)
        await asyncio.sleep(1.1)  # the user name carries the expiry, in seconds
        await connect(hub, peers, viewers[1], audio=False)
        assert len(minted) == 2, "not made for each connection"
        first, second = (m[-1]["username"] for m in minted)
        assert int(second.split(":")[0]) > int(first.split(":")[0]), (first, second)
    finally:
        await peers.close_all()
        await asyncio.gather(*(v.close() for v in viewers))
        await media.close()


async def test_per_peer_encoding_gives_each_viewer_its_own_encoder() -> None:
    """``camera.encoding = "per-peer"`` (the reference measurements compare against):
    aiortc encodes each viewer's pictures itself; the shared encoder stays unused."""
    cam = CameraConfig(source="test", width=320, height=240, fps=30, encoding="per-peer")
    media = StationMedia(cam, MICROPHONE, linger=0.5)
    hub = ViewerHub()
    peers = StationPeers(
        media, ice_servers=[], send=hub.send, on_closed=hub.on_closed, room_id="station"
    )
    hub.peers = peers
    try:
        viewers = [Viewer("one"), Viewer("two", codecs=["VP8"])]
        for viewer in viewers:
            await connect(hub, peers, viewer)
        for viewer in viewers:
            frames = await first_frames(viewer, 10)
            assert (frames[-1].width, frames[-1].height) == (320, 240)
        counters = media.counters()
        assert counters["encoded_h264"] == counters["encoded_vp8"] == 0
        assert counters["video_viewers"] == 2
        stats = peers.stats()["peers"]
        assert {pid: s["codec"] for pid, s in stats.items()} == {"one": "H264", "two": "VP8"}
        assert all(s["video_packets"] >= 10 and "rung" not in s for s in stats.values())
    finally:
        await peers.close_all()
        await asyncio.gather(*(v.close() for v in hub.viewers.values()))
        await media.close()


async def test_vp8_only_viewer_gets_vp8(station: Any) -> None:
    media, peers, hub = station
    modern, old = Viewer("modern"), Viewer("old", codecs=["VP8", "rtx"])
    await connect(hub, peers, modern)
    await connect(hub, peers, old, audio=False)
    frames = await first_frames(old, 5)
    assert (frames[-1].width, frames[-1].height) == (320, 240)
    assert (await first_frames(modern, 2))[-1].width == 320
    codecs = {pid: s["codec"] for pid, s in peers.stats()["peers"].items()}
    assert codecs == {"modern": "H264", "old": "VP8"}
    counters = media.counters()
    assert counters["encoded_vp8"] > 0 and counters["encoded_h264"] > 0
    assert "audio" not in old.tracks


@pytest.mark.parametrize("vp8_rung", ["low", "high"])
async def test_a_vp8_viewer_costs_the_low_rungs_encoder(vp8_rung: str) -> None:
    """A browser without H.264 (Debian's Firefox) needs a second software encoder beside
    the H.264 one: by default it runs at the low rung's size (a quarter of the pixels of
    the camera's), whatever the viewer's link; ``camera.vp8_rung = "high"`` gives it the
    camera's size. The metrics' encoder list says which run."""
    camera = CameraConfig(
        source="test", width=640, height=360, fps=30, low_width=320, low_height=180,
        vp8_rung=vp8_rung,
    )  # fmt: skip
    async with station_with(camera) as (media, peers, hub):
        modern, old = Viewer("modern"), Viewer("old", codecs=["VP8", "rtx"])
        await connect(hub, peers, modern, audio=False)
        await connect(hub, peers, old, audio=False)
        vp8 = (await first_frames(old, 5))[-1]
        h264 = (await first_frames(modern, 5))[-1]
        assert (h264.width, h264.height) == (640, 360)
        expected = (320, 180) if vp8_rung == "low" else (640, 360)
        assert (vp8.width, vp8.height) == expected
        running = {(e["codec"], e["rung"], e["width"], e["height"]) for e in media.encoders()}
        assert running == {("H264", "high", 640, 360), ("VP8", vp8_rung, *expected)}, running
        assert {e["implementation"] for e in media.encoders() if e["codec"] == "VP8"} == {"libvpx"}
    assert media.encoders() == [], "no capture, no encoder"


async def test_pli_from_a_viewer_makes_a_keyframe(station: Any) -> None:
    media, peers, hub = station
    viewer = Viewer("remote")
    await connect(hub, peers, viewer)
    await first_frames(viewer, 15)
    base = media.counters()["keyframes_h264"]
    receiver, sender = ends(viewer, peers)
    await receiver._send_rtcp_pli(sender._ssrc)  # a real RTCP PLI over the connection
    for _ in range(50):
        await asyncio.sleep(0.05)
        if media.counters()["keyframes_h264"] > base:
            break
    assert media.counters()["keyframes_h264"] == base + 1


async def test_a_lost_packet_is_resent_once_a_round_trip_and_only_while_it_helps(
    station: Any,
) -> None:
    """Real NACKs from an aiortc viewer: the station resends a packet once, not again
    before a round trip has passed, never once it is a second old, and nothing of a rung
    the viewer has left (aiortc alone resends whatever a NACK names)."""
    _media, peers, hub = station
    viewer = Viewer("remote")
    await connect(hub, peers, viewer)
    await first_frames(viewer, 10)
    receiver, sender = ends(viewer, peers)
    track = peers._peers["remote"].video_track
    history = sender._RTCRtpSender__rtp_history
    resent: list[int] = []
    original = sender._retransmit

    async def retransmit(seq: int) -> None:
        resent.append(seq)
        await original(seq)

    sender._retransmit = retransmit

    def newest() -> int:
        return max(history.values(), key=lambda p: p.extensions.abs_send_time).sequence_number

    async def nack(seq: int, *, then: int) -> None:
        """NACK ``seq`` and wait until the station has decided ``then`` NACKed packets."""
        await receiver._send_rtcp_nack(sender._ssrc, [seq])
        for _ in range(100):  # bounded: 5 s
            counts = track.retransmissions
            if counts.resent + counts.refused >= then:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"NACK for {seq} not handled")

    seq = newest()

    # the viewer's own NACKs (a packet lost on a busy loopback) may add others: only
    # the packets this test asks for are looked at
    def asked(*seqs: int) -> list[int]:
        return [s for s in resent if s in seqs]

    await nack(seq, then=1)
    await nack(seq, then=2)  # asked again at once: the first answer is on its way
    assert asked(seq) == [seq] and track.retransmissions.refused >= 1
    await asyncio.sleep(0.25)  # longer than a loopback round trip (or the 0.1 s default)
    await nack(seq, then=3)
    assert asked(seq) == [seq, seq]
    kept = history[seq % RTP_HISTORY_SIZE]
    while seconds_since(kept.extensions.abs_send_time, current_ntp_time()) < 1.05:  # ~0.7 s
        await asyncio.sleep(0.02)
    assert kept is history[seq % RTP_HISTORY_SIZE], "still kept by aiortc (128 packets)"
    await nack(seq, then=4)
    assert asked(seq) == [seq, seq], "a packet a second old was resent"
    # the viewer moves to the low rung: what it got of the high one is not resent
    before = newest()
    track.link.rung = "low"
    for _ in range(100):  # bounded: 5 s
        if track.rung == "low":
            break
        await asyncio.sleep(0.05)
    assert track.rung == "low"
    decided = track.retransmissions.resent + track.retransmissions.refused
    await nack(before, then=decided + 1)
    assert before not in resent
    await asyncio.sleep(0.1)
    fresh = newest()
    await nack(fresh, then=decided + 2)
    assert asked(fresh) == [fresh]
    assert peers.stats()["peers"]["remote"]["resent"] == len(resent)


async def test_the_viewers_audio_reports_reach_its_video_link(station: Any) -> None:
    """A real RTCP receiver report for the station's audio, from an aiortc viewer:
    its loss is what the rung policy reads as the path's loss (audio is never resent)."""
    _media, peers, hub = station
    viewer = Viewer("remote")
    await connect(hub, peers, viewer)
    await first_frames(viewer, 3)
    await send_loss(viewer, peers, 8, kind="audio")
    link = peers._peers["remote"].video_track.link
    seen = []
    for _ in range(1000):  # bounded: 5 s (the viewer's own reports, 0 lost, follow)
        seen.append(link.audio_loss)
        if link.audio_loss == 8 / 256:
            break
        await asyncio.sleep(0.005)
    assert 8 / 256 in seen, seen[-5:]


async def test_nothing_before_open_and_nothing_after_close_all(station: Any) -> None:
    media, peers, hub = station
    await asyncio.sleep(0.2)
    assert not peers.live and not media.capturing
    assert media.status() == {"camera": "off", "microphone": "off"}
    assert media.counters()["camera_frames"] == 0
    viewers = [Viewer("a"), Viewer("b")]
    for viewer in viewers:
        await connect(hub, peers, viewer)
        await first_frames(viewer, 2)
    senders = [t.sender for v in viewers for t in station_transceivers(peers, v.peer_id)]
    await peers.close_all()
    assert not peers.live and peers.stats()["peers"] == {}

    async def sent() -> int:
        total = 0
        for sender in senders:
            stats = await sender.getStats()
            total += sum(s.packetsSent for s in stats.values() if s.type == "outbound-rtp")
        return total

    frozen = await sent()
    await asyncio.sleep(0.3)
    assert await sent() == frozen, "nothing is sent after hang-up"
    await asyncio.sleep(0.5)  # the linger
    assert not media.capturing
    assert media.status() == {"camera": "off", "microphone": "off"}
    assert hub.closed == [], "on_closed is for connections that end on their own"


async def test_candidates_restart_and_errors(station: Any) -> None:
    media, peers, hub = station
    viewer = Viewer("remote")
    hub.viewers["remote"] = viewer
    hub.auto = False
    with pytest.raises(UnknownPeer):
        await peers.handle_signal("nobody", EndOfCandidates())
    await peers.open("remote", audio=True)
    _, offer, session = hub.offers[-1]
    answer = await viewer.answer(offer, session)
    # the browser's candidates may arrive before its answer: buffered, then applied
    assert viewer.pc is not None
    lines = [x[2:] for x in viewer.pc.localDescription.sdp.splitlines() if x.startswith("a=cand")]
    for line in lines:
        await peers.handle_signal("remote", Candidate(line, sdp_mid="0"))
    await peers.handle_signal("remote", EndOfCandidates())
    assert len(peers._peers["remote"].pending) == len(lines) + 1
    await peers.handle_signal("remote", answer)
    assert peers._peers["remote"].pending == []
    await first_frames(viewer, 2)
    for bad in (
        {},
        {"description": "answer"},
        {"description": {"type": "offer", "sdp": "v=0"}},
        {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"},
        {"candidate": {"candidate": "garbage", "sdpMid": "0"}},
        {"candidate": {"candidate": lines[0]}},
    ):
        with pytest.raises(MalformedMessage):  # refused by the codec or by the station
            await peers.handle_signal("remote", parse_payload(bad))
    with pytest.raises(MalformedMessage):  # a second answer in the wrong state
        await peers.handle_signal("remote", answer)
    # restart: a new session and a new offer, answered on a fresh connection
    viewer.got_track.clear()
    hub.auto = True
    await peers.handle_signal("remote", Restart())
    await hub.settle()
    assert [session for _, _, session in hub.offers] == [1, 2]
    assert viewer.sessions == [1, 2]
    assert (await first_frames(viewer, 2))[-1].width == 320
    assert peers.live and media.counters()["video_viewers"] == 1


async def test_connection_that_ends_is_discarded_and_reported(station: Any) -> None:
    media, peers, hub = station
    screen = Viewer("screen")
    await connect(hub, peers, screen, audio=False)
    await first_frames(screen, 2)
    assert media.counters()["audio_listeners"] == 0, "the screen peer gets no audio"
    assert not peers.live, "the kiosk's own preview is not what LIVE means"
    await peers._peers["screen"].pc.close()  # as when ICE fails
    for _ in range(20):
        await asyncio.sleep(0.05)
        if "screen" not in peers:
            break
    assert "screen" not in peers and hub.closed == ["screen"]
    await peers.close("screen")  # closing again is harmless


async def test_the_lines_of_an_ended_connection_carry_its_ids_as_fields(
    station: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`journalctl PEER_ID=…` finds every line of a failed call: the ids are record
    fields (journal fields under systemd), not only words in the text."""
    _, peers, hub = station
    caplog.set_level(logging.INFO, logger="appliance.media.peer")
    viewer = Viewer("gA1")
    await connect(hub, peers, viewer, audio=True)
    await first_frames(viewer, 2)
    await peers._peers["gA1"].pc.close()  # as when ICE fails
    for _ in range(20):
        await asyncio.sleep(0.05)
        if hub.closed:
            break
    assert hub.closed == ["gA1"]
    lines = [r for r in caplog.records if r.name == "appliance.media.peer"]
    texts = [r.getMessage() for r in lines]
    assert "offer, session 1" in texts and "connection closed" in texts, texts
    assert any(t.startswith("answered, video codec") for t in texts), texts
    for record in lines:
        assert (record.__dict__.get("peer_id"), record.__dict__.get("room_id")) == (
            "gA1",
            "station",
        ), record.getMessage()
        assert "gA1" not in record.getMessage()  # the id is a field, not only text
    journal = JournalFields()
    for record in lines:
        journal.filter(record)
        assert (record.__dict__["PEER_ID"], record.__dict__["ROOM_ID"]) == ("gA1", "station")


ADAPTIVE_CAMERA = CameraConfig(
    source="test", width=640, height=360, fps=30,
    bitrate=800_000, min_bitrate=400_000, low_width=320, low_height=180, low_bitrate=150_000,
)  # fmt: skip


async def send_remb(viewer: Viewer, peers: StationPeers, bitrate: int) -> None:
    """The viewer's receiver sends a real RTCP REMB (what a congested browser sends)."""
    receiver, sender = ends(viewer, peers)
    remb = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=1234, media_ssrc=0, fci=pack_remb_fci(bitrate, [sender._ssrc])
    )
    await receiver._send_rtcp(remb)


async def send_loss(
    viewer: Viewer, peers: StationPeers, fraction_lost: int, *, kind: str = "video"
) -> None:
    """The viewer's receiver reports losing ``fraction_lost``/256 of the station's
    ``kind`` (a real RTCP receiver report, beside the ones its own receiver sends)."""
    receiver, sender = ends(viewer, peers, kind)
    info = RtcpReceiverInfo(
        ssrc=sender._ssrc, fraction_lost=fraction_lost, packets_lost=0,
        highest_sequence=0, jitter=0, lsr=0, dlsr=0,
    )  # fmt: skip
    await receiver._send_rtcp(RtcpRrPacket(ssrc=1234, reports=[info]))


async def frame_size(viewer: Viewer, size: tuple[int, int], *, within: float) -> bool:
    """Does ``viewer`` decode frames of ``size`` before ``within`` seconds pass?"""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        frame = await asyncio.wait_for(viewer.tracks["video"].recv(), 10)
        if (frame.width, frame.height) == size:
            return True
    return False


async def keeps_decoding(viewer: Viewer, size: tuple[int, int], *, frames: int) -> int:
    """Frames of ``size`` that ``viewer`` decodes in the next 4 s, up to ``frames``: a
    viewer that froze after a switch (one picture, then nothing) gets far fewer."""
    loop = asyncio.get_running_loop()
    deadline, count = loop.time() + 4.0, 0
    while count < frames and loop.time() < deadline:
        try:
            frame = await asyncio.wait_for(viewer.tracks["video"].recv(), deadline - loop.time())
        except TimeoutError:
            break
        count += (frame.width, frame.height) == size
    return count


async def test_weak_viewer_gets_the_low_rung_and_climbs_back() -> None:
    media = StationMedia(ADAPTIVE_CAMERA, MICROPHONE, linger=0.5)
    media.video.policy = RungPolicy(
        min_bitrate=400_000, low_bitrate=150_000, up_hold=1.5, min_dwell=0.5
    )
    hub = ViewerHub()
    peers = StationPeers(media, ice_servers=[], send=hub.send, on_closed=hub.on_closed)
    hub.peers = peers
    # both estimates come from the test (an overloaded test machine makes aiortc's own
    # receiver-side estimate fall, which would be a true weak link for the station)
    weak, strong = Viewer("weak", own_remb=False), Viewer("strong", own_remb=False)
    try:
        for viewer in (weak, strong):
            await connect(hub, peers, viewer)
            assert (await first_frames(viewer, 2))[-1].width == 640
        assert media.counters()["encoded_low"] == 0  # no second encode while nobody needs it
        keyframes = media.counters()["keyframes_h264"]

        # the weak viewer's link carries 100 kbit/s: its browser says so in REMBs, and
        # its receiver reports show what the full link loses
        async def link_carries(bitrate: int) -> None:
            for n in range(400):
                await send_remb(weak, peers, bitrate)
                await send_remb(strong, peers, 2_000_000)
                if bitrate < 400_000 and n % 4 == 0:
                    await send_loss(weak, peers, 40)  # 16 %
                await asyncio.sleep(0.05)

        await send_remb(weak, peers, 450_000)  # the estimate it started with
        pressure = asyncio.create_task(link_carries(100_000))
        assert await frame_size(weak, (320, 180), within=30)
        # and keeps moving there: the switch's keyframe came alone, not glued to the
        # old rung's picture of the same frame (same RTP timestamp)
        assert await keeps_decoding(weak, (320, 180), frames=15) == 15
        assert await frame_size(strong, (640, 360), within=10)
        stats = peers.stats()["peers"]
        assert stats["weak"]["rung"] == "low" and stats["strong"]["rung"] == "high"
        assert stats["weak"]["estimated_bitrate"] < 400_000
        assert stats["weak"]["loss"] > 0.02
        # the round-trip time needs a sender report answered by a receiver report (RTCP
        # runs every ~1 s, later on a loaded machine): it shows up within a few intervals
        for _ in range(100):
            if peers.stats()["peers"]["weak"]["rtt"] is not None:
                break
            await asyncio.sleep(0.1)
        assert peers.stats()["peers"]["weak"]["rtt"] is not None
        counters = media.counters()
        assert counters["encoded_low"] > 0 and counters["viewers_low"] == 1
        assert counters["keyframes_h264"] > keyframes  # the switch started on a keyframe
        # the strong viewer keeps 640x360 while the weak one is low (every frame of two
        # seconds; how many a loaded test machine decodes is not the station's rate)
        started, frames, other = asyncio.get_running_loop().time(), 0, 0
        while asyncio.get_running_loop().time() - started < 2.0:
            frame = await asyncio.wait_for(strong.tracks["video"].recv(), 10)
            if (frame.width, frame.height) == (640, 360):
                frames += 1
            else:
                other += 1
        assert frames >= 5 and other == 0

        # the link recovers: the browser's estimate goes up
        pressure.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pressure
        pressure = asyncio.create_task(link_carries(2_000_000))
        assert await frame_size(weak, (640, 360), within=40)
        assert await keeps_decoding(weak, (640, 360), frames=15) == 15
        assert peers.stats()["peers"]["weak"]["rung"] == "high"
        assert peers.stats()["peers"]["weak"]["rung_switches"] == 2
        low_frames = media.counters()["encoded_low"]
        await asyncio.sleep(1.0)
        assert media.counters()["encoded_low"] == low_frames  # the low encoder stopped
        pressure.cancel()
    finally:
        await peers.close_all()
        await asyncio.gather(weak.close(), strong.close())
        await media.close()


async def test_high_rung_bitrate_follows_the_weakest_viewer_on_it() -> None:
    cam = ADAPTIVE_CAMERA
    links = [ViewerLink(estimate=1_000_000), ViewerLink(estimate=600_000)]
    assert high_bitrate(links, cfg=cam) == 506_000  # 95 % of 600 k, less the audio
    links[1].rung = "low"  # a viewer on the low rung no longer holds the others back
    assert high_bitrate(links, cfg=cam) == 800_000  # the ceiling (95 % of 1 M is more)
    assert high_bitrate([ViewerLink(estimate=100_000)], cfg=cam) == 400_000


def test_policy_hysteresis_and_backoff() -> None:
    policy = RungPolicy(min_bitrate=600_000, low_bitrate=300_000, up_hold=5, min_dwell=2)
    link = ViewerLink()
    link.sent_rate = 900_000
    link.on_remb(900_000, now=9)
    link.on_remb(100_000, now=10)  # the estimate falls below what is sent
    link.loss = 0.03  # and the link loses packets: it is full
    assert policy.choose(link, now=10) == "high"  # one REMB is not enough
    assert policy.choose(link, now=11.5) == "low"
    link.sent_rate = 300_000  # what the low rung sends
    # a short dip of the estimate does not bounce the viewer; loss holds it down
    link.estimate, link.loss = 700_000, 0.03
    assert policy.choose(link, now=20) == "low"
    link.loss = 0.0
    assert policy.choose(link, now=21) == "low"  # clean, but not for up_hold yet
    assert policy.choose(link, now=25.9) == "low"
    assert policy.choose(link, now=26) == "high"
    link.sent_rate = 900_000  # the high rung's rate
    # the climb is on trial: the first loss it causes undoes it at once, and the next
    # climb waits twice as long
    link.on_remb(100_000, now=28)
    link.loss = 0.03
    assert policy.choose(link, now=28) == "low" and link.failed_climbs == 1
    link.estimate, link.sent_rate, link.loss = 700_000, 300_000, 0.0
    assert policy.choose(link, now=31.5) == "low"
    assert policy.choose(link, now=41.4) == "low"
    assert policy.choose(link, now=41.5) == "high"
    # heavy loss alone moves a viewer down, after down_hold
    link.loss = 0.2
    assert policy.choose(link, now=50) == "high"
    assert policy.choose(link, now=51.5) == "low"
    # an estimate below min_bitrate while little is sent is no congestion
    calm = ViewerLink(sent_rate=200_000)
    calm.on_remb(300_000, now=0)
    assert policy.choose(calm, now=5) == "high"


def test_an_estimate_that_falls_alone_is_no_weak_link() -> None:
    """Chromium's estimate falls on the jitter of a busy phone, with nothing lost and
    no queue: the viewer stays on the high rung (its rate follows the estimate down);
    the same fall with round trips growing (a queue filling) moves it down."""
    policy = RungPolicy(min_bitrate=600_000, low_bitrate=300_000, up_hold=5, min_dwell=2)
    busy = ViewerLink(sent_rate=1_200_000)
    busy.on_report(0, rtt=0.03, now=0)
    busy.on_remb(1_400_000, now=0)
    busy.on_remb(200_000, now=1)
    busy.on_remb(200_000, now=1.5)
    assert all(policy.choose(busy, now=t) == "high" for t in (1, 2, 4, 8, 16))
    busy.on_report(0, rtt=0.35, now=17)  # 320 ms of queue: the link is full
    assert policy.choose(busy, now=17) == "high"
    assert policy.choose(busy, now=18.5) == "low"


def test_a_viewer_moved_down_over_a_queue_waits_for_it_to_drain() -> None:
    """The old rung filled the bottleneck's queue: the move down pauses the viewer's
    video for twice the queue (at most a second), measured from the freshest signal --
    how old the packets it asks for again are -- when the receiver reports' round trip
    predates the queue; a link that only loses moves down with no pause."""
    policy = RungPolicy(min_bitrate=600_000, low_bitrate=300_000, up_hold=5, min_dwell=2)
    full = ViewerLink(sent_rate=1_500_000)
    full.on_report(0, rtt=0.01, now=0)
    full.on_report(int(0.3 * 256), rtt=0.012, now=1)  # the report came before the queue
    full.on_remb(1_500_000, now=0)
    full.on_remb(150_000, now=1)
    full.on_nack(3, age=0.4, now=1.2)  # a packet lost in a queue 0.4 s long
    full.on_report(int(0.3 * 256), rtt=0.012, now=2)
    assert policy.choose(full, now=1.0) == "high"
    full.on_nack(2, age=0.41, now=2.6)
    assert policy.choose(full, now=2.7) == "low"
    assert full.paused_until == pytest.approx(2.7 + 0.8, abs=0.01)

    lossy = ViewerLink(sent_rate=1_500_000)
    lossy.on_report(0, rtt=0.01, now=0)
    for t in (1, 2, 3):
        lossy.on_report(int(0.4 * 256), rtt=0.012, now=t)  # 40 % lost, no queue
        lossy.on_nack(5, age=0.03, now=t)
    assert policy.choose(lossy, now=1) == "high"
    assert policy.choose(lossy, now=3) == "low"
    assert lossy.paused_until == 3.0  # the moment it moved: no pause


def test_a_capped_link_tries_a_climb_rarely_and_a_lossy_one_never() -> None:
    policy = RungPolicy(min_bitrate=600_000, low_bitrate=300_000, up_hold=5, min_dwell=2)
    # clean, the estimate above the low rung but not above what the viewer receives
    # (a full link's estimator stays there), nothing lost: a trial climb after up_hold;
    # each one the link cannot carry comes back at its first loss and doubles the wait
    capped = ViewerLink(rung="low", sent_rate=240_000, estimate=348_000)
    climbs: list[int] = []
    for t in range(600):  # ten minutes, a report a second
        capped.loss = 0.04 if capped.rung == "high" else 0.0
        before = capped.rung
        if policy.choose(capped, now=t) == "high" and before == "low":
            climbs.append(t)
    # (each gap: the dwell after the failed climb, then the wait, doubling up to 120 s)
    gaps = [b - a for a, b in itertools.pairwise(climbs)]
    assert gaps[:4] == [13, 23, 43, 83] and set(gaps[4:]) == {123}, climbs
    assert len(climbs) == 8, climbs  # in ten minutes: 8 seconds or so of a full link
    assert capped.failed_climbs == len(climbs) - (capped.rung == "high")
    # the cap lifted: the estimate grows past the rate, a climb that holds
    capped.estimate, capped.loss = 480_000, 0.0
    at = climbs[-1] + 200
    assert policy.choose(capped, now=at) in ("low", "high")
    assert any(policy.choose(capped, now=at + s) == "high" for s in range(0, 121))
    # a link losing 3 % of its packets at random never tries
    lossy = ViewerLink(rung="low", sent_rate=240_000, estimate=900_000, loss=0.03)
    assert all(policy.choose(lossy, now=t) == "low" for t in range(0, 600, 5))
    # one losing 1 % climbs only on an estimate with room
    slight = ViewerLink(rung="low", sent_rate=240_000, estimate=348_000, loss=0.01)
    assert all(policy.choose(slight, now=t) == "low" for t in range(0, 120, 5))
    slight.estimate = 480_000
    assert policy.choose(slight, now=120) == "low"
    assert policy.choose(slight, now=125) == "high"
    # one whose reports say nothing is lost because resends recovered it (Chromium
    # counts those as received) still asks for 3 % again: no trial climb either
    repaired = ViewerLink(rung="low", sent_rate=240_000, estimate=348_000)
    highest = 0
    for t in range(600):
        repaired.on_nack(3)  # 3 of every 100 packets asked for again
        highest += 100
        repaired.on_report(0, rtt=0.03, now=t, highest=highest)
        assert policy.choose(repaired, now=t) == "low", (t, repaired)
    assert repaired.loss == 0.0 and repaired.nack_loss > 0.02
    # one whose video shows nothing (few packets, all repaired) but whose audio, never
    # repaired, reports 3 % lost: no trial climb either
    hushed = ViewerLink(rung="low", sent_rate=240_000, estimate=348_000)
    hushed.on_audio_report(8)  # 8/256: 3 %
    assert all(policy.choose(hushed, now=t) == "low" for t in range(600))
    hushed.on_audio_report(0)  # the next report: the path loses nothing now
    assert any(policy.choose(hushed, now=600 + t) == "high" for t in range(10))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"camera.min_bitrate": 2_000_000}, "camera.min_bitrate"),
        ({"camera.low_bitrate": 700_000}, "camera.min_bitrate"),
        ({"camera.low_width": 8}, "camera.low_width"),
        ({"camera.low_bitrate": 10}, "camera.low_bitrate"),
        ({"camera.encoding": "twice"}, "camera.encoding"),
    ],
)
def test_rung_config_is_checked(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(Path(os.devnull), overrides)
    assert load_config(Path(os.devnull), {}).camera.low_height == 360


@pytest.mark.parametrize("shielded", [False, True])
async def test_a_cancelled_close_leaves_the_connection_closing_whole(shielded: bool) -> None:
    """aiortc closes a connection itself when the far side ends it; a hang-up that
    closes it too and is cut short must not break that close half way (without the
    shield -- the parameter shows the failure it prevents -- aiortc's close fails)."""
    from aiortc import RTCPeerConnection

    a, b = RTCPeerConnection(), RTCPeerConnection()
    a.addTransceiver("audio")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    aiortc_own = asyncio.ensure_future(a.close())
    await asyncio.sleep(0)
    hang_up = asyncio.ensure_future(close_connection(a) if shielded else a.close())
    await asyncio.sleep(0)
    hang_up.cancel()
    try:
        if shielded:
            await aiortc_own
            assert a.connectionState == "closed"
        else:
            with pytest.raises(asyncio.InvalidStateError):
                await aiortc_own
    finally:
        await b.close()


async def test_an_mdns_candidate_is_looked_up_without_holding_the_peer_up(
    station: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser that hides its addresses trickles ``<uuid>.local`` names; aioice waits
    up to a second for each to resolve. The station's signal path takes the next
    message at once (issue 27): before, each name held the peer's messages a second."""
    looked_up = unanswered_mdns(monkeypatch)
    _media, peers, hub = station
    viewer = Viewer("remote")
    hub.viewers["remote"] = viewer
    hub.auto = False
    await peers.open("remote", audio=True)
    _, offer, session = hub.offers[-1]
    answer = await viewer.answer(offer, session)
    # a browser that trickles: the answer without its candidates, they come after it
    lines = answer.sdp.splitlines(keepends=True)
    found = [x[2:].strip() for x in lines if x.startswith("a=candidate")]
    bare = "".join(x for x in lines if not x.startswith(("a=candidate", "a=end-of-candidates")))
    await peers.handle_signal("remote", Description("answer", bare))
    names = [
        f"candidate:{i} 1 udp 2122260223 {uuid.uuid4()}.local 5{i}00 typ host" for i in range(3)
    ]
    started = time.monotonic()
    for line in names:
        await peers.handle_signal("remote", Candidate(line, sdp_mid="0"))
    assert time.monotonic() - started < 0.5, "the names held the signal path up"
    for line in found:
        await peers.handle_signal("remote", Candidate(line, sdp_mid="0"))
    await peers.handle_signal("remote", EndOfCandidates())
    await first_frames(viewer, 2)  # the call goes on over the candidates that work
    assert len(looked_up) == 3, looked_up
    await peers.close("remote")  # lookups still running end with the connection
    assert not peers._peers


class HiddenOnce(Viewer):
    """A browser whose first answer names only ``<uuid>.local`` host candidates nobody
    answers for and which then sends no checks (its side closed): the station's first
    connection to it fails. It answers every later offer as any browser would."""

    async def answer(self, offer: Description, session: int) -> Description:
        answer = await super().answer(offer, session)
        if len(self.sessions) > 1:
            return answer
        lines = []
        for line in answer.sdp.splitlines(keepends=True):
            if line.startswith("a=candidate:"):
                fields = line.split(" ")
                fields[4] = f"{uuid.uuid4()}.local"
                line = " ".join(fields)
            lines.append(line)
        assert self.pc is not None
        await self.pc.close()
        return Description("answer", "".join(lines))


async def failed_then_back(
    peers: StationPeers, hub: ViewerHub, peer_id: str
) -> tuple[float, float, float]:
    """When the station's first connection to ``peer_id`` failed (it left the peers),
    when the station sent its next offer, and when that connection connected
    (monotonic seconds, to 0.05 s)."""
    failed_at = offered_at = connected_at = None
    for _ in range(600):  # bounded: 30 s
        state = peers.stats()["peers"].get(peer_id, {}).get("state")
        offers = sum(1 for p, _, _ in hub.offers if p == peer_id)
        now = time.monotonic()
        if failed_at is None and state is None:
            failed_at = now
        if failed_at is not None and offered_at is None and offers >= 2:
            offered_at = now
        if offered_at is not None and state == "connected":
            connected_at = now
            break
        await asyncio.sleep(0.05)
    assert failed_at and offered_at and connected_at, (failed_at, offered_at, connected_at)
    return failed_at, offered_at, connected_at


async def test_a_failed_connection_gets_a_new_offer_and_connects(
    station: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #27: ICE fails on the station's side (the viewer's names do not resolve, no
    check comes from it); the station does not leave the viewer with nothing until the
    browser gives up too: it offers again by itself, and the call has its picture back
    within 5 s of the failure."""
    import appliance.media.ice

    monkeypatch.setattr(appliance.media.ice, "PRFLX_WAIT", 1.0)
    unanswered_mdns(monkeypatch)
    _media, peers, hub = station
    viewer = HiddenOnce("hidden")
    await connect(hub, peers, viewer)
    failed_at, offered_at, connected_at = await failed_then_back(peers, hub, "hidden")
    sessions = [session for peer_id, _, session in hub.offers if peer_id == "hidden"]
    assert len(sessions) == 2 and sessions[0] < sessions[1], sessions
    # what the station decides: the new offer 1 s after the failure (REOFFER_DELAYS;
    # up to 2 s more on a busy machine). The connection it makes then is ICE and DTLS
    # on this machine: about a second when quiet, so the picture is back within 5 s;
    # asserted with room for a busy machine, printed for the record.
    assert offered_at - failed_at <= 3, offered_at - failed_at
    print(f"new offer {offered_at - failed_at:.1f} s, connected again "
          f"{connected_at - failed_at:.1f} s after the failure")  # fmt: skip
    assert connected_at - failed_at <= 15, connected_at - failed_at
    for _ in range(100):  # bounded: the new connection's track
        if "video" in viewer.tracks:
            break
        await asyncio.sleep(0.05)
    frame = await asyncio.wait_for(viewer.tracks["video"].recv(), 30)
    assert frame.width == 320
    assert peers.live


async def test_a_viewer_closed_after_a_failure_gets_no_new_offer(
    station: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new offer waits a second: a viewer the call closes meanwhile (it left) gets
    none."""
    import appliance.media.ice
    import appliance.media.peer

    monkeypatch.setattr(appliance.media.ice, "PRFLX_WAIT", 1.0)
    monkeypatch.setattr(appliance.media.peer, "REOFFER_DELAYS", (1.0,))
    unanswered_mdns(monkeypatch)
    _media, peers, hub = station
    await connect(hub, peers, HiddenOnce("gone"), audio=False)
    for _ in range(300):  # bounded: 15 s for the failure
        if "gone" not in peers:
            break
        await asyncio.sleep(0.05)
    assert "gone" not in peers
    await peers.close("gone")  # the viewer left the call
    await asyncio.sleep(2)
    assert [s for p, _, s in hub.offers if p == "gone"] == [hub.offers[0][2]]


async def test_live_means_the_callers_connection_carries_the_media(station: Any) -> None:
    """Issue #27: LIVE (the kiosk's indicator, the live LED) is not "an offer was made":
    it turns on when a caller's connection connects, and a connection that never
    connects keeps it off; the kiosk's preview alone is not live either."""
    _media, peers, hub = station
    connected: list[str] = []
    peers.on_connected(connected.append)
    hub.auto = False  # the offers wait: the connections are being made
    await peers.open("screen", audio=False)
    await peers.open("remote", audio=True)
    assert "remote" in peers and not peers.live
    hub.auto = True
    hub.viewers["screen"], hub.viewers["remote"] = Viewer("screen"), Viewer("remote")
    for peer_id, offer, session in list(hub.offers):
        await hub.send(peer_id, offer, session)
    await hub.settle()
    await until_live(peers)
    assert connected == ["remote"], connected


async def test_unreached_names_a_viewer_from_its_failure_until_it_connects(
    station: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call object's ``unreached`` (the kiosk's "no picture from the station"): a
    viewer is in it from the failure of its connection, while the new offer is made,
    and out of it once that connects; a viewer closed by the call is out at once."""
    import appliance.media.ice
    import appliance.media.peer

    monkeypatch.setattr(appliance.media.ice, "PRFLX_WAIT", 1.0)
    unanswered_mdns(monkeypatch)
    _media, peers, hub = station
    await connect(hub, peers, HiddenOnce("hidden"))
    assert peers.unreached == frozenset()
    seen = False
    for _ in range(600):  # bounded: 30 s for the failure and the new connection
        seen = seen or "hidden" in peers.unreached
        if seen and peers.stats()["peers"].get("hidden", {}).get("state") == "connected":
            break
        await asyncio.sleep(0.05)
    assert seen, "the failed viewer was never unreached"
    assert peers.unreached == frozenset(), peers.unreached

    monkeypatch.setattr(appliance.media.peer, "REOFFER_DELAYS", (30.0,))
    await connect(hub, peers, HiddenOnce("gone"), audio=False)
    for _ in range(300):  # bounded: 15 s for the failure
        if "gone" in peers.unreached:
            break
        await asyncio.sleep(0.05)
    assert "gone" in peers.unreached
    await peers.close("gone")  # the viewer left the call
    assert "gone" not in peers.unreached

"""The kiosk's call controls on the wire and in the media: muting the station's
microphone, turning its camera off and the microphone level meter, proved with a
real aiortc viewer decoding what the station sends through real signaling."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from appliance import protocol
from appliance.appkeys import MEDIA, STATION
from appliance.errors import MalformedMessage
from appliance.media.pcm import LEVEL_FLOOR_DBFS, dbfs

from .conftest import ServiceHarness
from .helpers import WS, AiortcCaller, answered_call, connect, ringing_guest

TONE_DBFS = 20 * np.log10(0.25 / np.sqrt(2))
"""The test tone (a sine at a quarter of full scale) reads about -15 dBFS."""


# -- the codec and the level, without sockets -------------------------------------------


def test_station_media_is_parsed_and_mic_level_built() -> None:
    assert protocol.parse('{"type":"station-media","audio":true,"video":false}') == (
        protocol.StationMedia(audio_muted=True, video_muted=False)
    )
    for bad in (
        '{"type":"station-media","audio":1,"video":false}',
        '{"type":"station-media","audio":true}',
        '{"type":"station-media","audio":"yes","video":false}',
    ):
        with pytest.raises(MalformedMessage):
            protocol.parse(bad)
    message = protocol.parse('{"type":"station-media","audio":false,"video":true}')
    assert protocol.message_type(message) == "station-media"
    assert protocol.message_type(protocol.Ping()) == "ping"
    assert protocol.to_wire(protocol.MicLevel(-23.456, muted=False)) == {
        "type": "mic-level",
        "dbfs": -23.5,
        "muted": False,
    }
    assert protocol.to_wire(protocol.MicLevel(None, muted=True))["dbfs"] is None


def test_dbfs_of_silence_full_scale_and_the_test_tone() -> None:
    assert dbfs(0.0, 960) == LEVEL_FLOOR_DBFS
    assert dbfs(5.0, 0) == LEVEL_FLOOR_DBFS
    assert dbfs(960 * 32768.0**2, 960) == pytest.approx(0.0)
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 440 * t) * 0.25 * 32767
    assert dbfs(float(np.dot(tone, tone)), tone.size) == pytest.approx(TONE_DBFS, abs=0.1)


# -- a real call ------------------------------------------------------------------------


async def drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def heard_rms(caller: AiortcCaller, *, settle: float = 0.6, frames: int = 15) -> float:
    """RMS (0..1) of what the viewer decodes once the change has reached it."""
    await drain(caller.audio)
    await asyncio.sleep(settle)  # the jitter buffer holds the sound from before
    await drain(caller.audio)
    got = await caller.frames("audio", frames)
    samples = np.concatenate([f.to_ndarray().astype(np.float64).ravel() for f in got])
    return float(np.sqrt(np.mean(samples**2)) / 32768)


async def seen_luma(caller: AiortcCaller, *, settle: float = 0.6, frames: int = 5) -> float:
    """Mean luma (0..255) of the pictures the viewer decodes after the change."""
    await drain(caller.video)
    await asyncio.sleep(settle)
    await drain(caller.video)
    got = await caller.frames("video", frames)
    return float(np.mean([f.to_ndarray(format="gray").mean() for f in got]))


async def expect_screen_muted(ws: WS, kiosk_id: str, audio: bool, video: bool) -> None:
    update = await ws.expect("peer-updated", timeout=10)
    while update["peer"]["id"] != kiosk_id:
        update = await ws.expect("peer-updated", timeout=10)
    assert update["peer"]["muted"] == {"audio": audio, "video": video}
    assert update["peer"]["participant"] == "station"  # shown on the station's tile


async def levels(kiosk: WS, count: int) -> list[dict[str, Any]]:
    """The next ``count`` levels sent after now (those already queued are skipped)."""
    while True:
        try:
            await kiosk.recv(timeout=0.03)
        except TimeoutError:
            break
    return [await kiosk.expect("mic-level", timeout=5) for _ in range(count)]


async def test_kiosk_mutes_the_microphone_and_a_real_viewer_hears_silence(
    station: ServiceHarness,
) -> None:
    kiosk, guest, caller = await answered_call(station)
    try:
        loud = await heard_rms(caller)
        assert loud > 0.05, f"the test tone is not heard before muting (rms {loud:.4f})"
        # the kiosk's meter: about the test tone's level, several times a second
        start = asyncio.get_running_loop().time()
        meter = await levels(kiosk, 8)
        took = asyncio.get_running_loop().time() - start
        assert 0.5 < took < 2.5, f"8 levels took {took:.2f} s (meant: 8 per second)"
        assert all(not m["muted"] for m in meter)
        assert meter[-1]["dbfs"] == pytest.approx(TONE_DBFS, abs=1.5)

        await kiosk.send(type="station-media", audio=True, video=False)
        await expect_screen_muted(guest, kiosk.peer_id, audio=True, video=False)
        state = await guest.expect("call-state")
        assert state["call"]["audio_muted"] is True and state["call"]["video_muted"] is False
        assert state["call"]["live"] is True  # the camera still goes out
        quiet = await heard_rms(caller)
        assert quiet < 0.002, f"the viewer still hears the station while muted (rms {quiet:.4f})"
        muted = (await levels(kiosk, 3))[-1]
        assert muted == {"type": "mic-level", "dbfs": None, "muted": True}

        await kiosk.send(type="station-media", audio=False, video=False)
        await expect_screen_muted(guest, kiosk.peer_id, audio=False, video=False)
        back = await heard_rms(caller)
        assert back > 0.05, f"the sound did not come back after unmuting (rms {back:.4f})"
        meter = await levels(kiosk, 4)
        assert meter[-1]["dbfs"] == pytest.approx(TONE_DBFS, abs=1.5)
        # the level is the kiosk's alone
        assert not [m for m in guest.seen if m["type"] == "mic-level"]
    finally:
        await caller.close()


async def test_kiosk_turns_the_camera_off_and_a_real_viewer_sees_black(
    station: ServiceHarness,
) -> None:
    kiosk, guest, caller = await answered_call(station)
    try:
        lit = await seen_luma(caller)
        assert lit > 40, f"the test pattern is too dark to tell from black ({lit:.1f})"
        await kiosk.send(type="station-media", audio=False, video=True)
        await expect_screen_muted(guest, kiosk.peer_id, audio=False, video=True)
        dark = await seen_luma(caller, settle=1.0)
        assert dark < 20, f"the viewer still sees a picture with the camera off ({dark:.1f})"
        # and the camera itself is closed (its LED out), not only painted over
        video = station.app[MEDIA].video
        assert not video.device_open and video.counters()["camera_open"] == 0
        assert video.description.startswith("off")
        heard = await heard_rms(caller)
        assert heard > 0.05, "the microphone goes on while the camera is off"
        await kiosk.send(type="station-media", audio=False, video=False)
        again = await seen_luma(caller, settle=1.0)
        assert again > 40, f"the picture did not come back ({again:.1f})"
        assert video.device_open
    finally:
        await caller.close()


async def test_only_the_kiosk_in_a_call_mutes_and_bad_input_is_refused(
    station: ServiceHarness,
) -> None:
    kiosk, guest = await ringing_guest(station)
    # ringing: nothing to mute, and nothing is opened by trying
    await kiosk.send(type="station-media", audio=False, video=False)
    error = await kiosk.expect("error")
    assert (error["code"], error["ref"]) == ("call_state", "station-media")
    assert station.app[MEDIA].capturing is False and station.app[STATION].live is False
    await kiosk.send(type="call", action="answer")
    caller = AiortcCaller(guest)
    try:
        await caller.accept_station()
        await caller.frames("audio", 2)
        # a guest may not mute the station
        await guest.send(type="station-media", audio=True, video=True)
        error = await guest.expect("error")
        assert (error["code"], error["ref"]) == ("forbidden", "station-media")
        assert station.app[STATION].audio_muted is False
        assert station.app[MEDIA].audio.muted is False
        # wrong types
        await kiosk.send(type="station-media", audio="yes", video=False)
        assert (await kiosk.expect("error"))["code"] == "malformed_message"
        # the kiosk's `muted` is the station's: it may not be set by a plain `media`
        await kiosk.send(type="media", audio=True, video=True)
        assert (await kiosk.expect("error"))["code"] == "forbidden"
        # the service keeps going
        await kiosk.send(type="ping")
        await kiosk.expect("pong")
        assert await heard_rms(caller) > 0.05
    finally:
        await caller.close()


async def test_mute_and_camera_off_end_with_the_call(station: ServiceHarness) -> None:
    app = station.app
    kiosk, guest, caller = await answered_call(station)
    await kiosk.send(type="station-media", audio=True, video=True)
    await expect_screen_muted(guest, kiosk.peer_id, audio=True, video=True)
    assert app[MEDIA].audio.muted and app[MEDIA].video.blanked
    await kiosk.send(type="call", action="hangup")
    await expect_screen_muted(guest, kiosk.peer_id, audio=False, video=False)
    state = await kiosk.expect("call-state")
    while state["call"]["state"] != "idle":
        state = await kiosk.expect("call-state")
    assert state["call"]["audio_muted"] is False and state["call"]["video_muted"] is False
    assert not app[MEDIA].audio.muted and not app[MEDIA].video.blanked
    await caller.close()
    # the meter stops with the call
    await asyncio.sleep(0.3)
    kiosk.seen.clear()
    with pytest.raises(asyncio.TimeoutError):
        await kiosk.expect("mic-level", timeout=0.6)
    # the next call starts with microphone and camera on
    await guest.send(type="call", action="ring")
    assert (await kiosk.expect("call-state"))["call"]["state"] == "ringing"
    await kiosk.send(type="call", action="answer")
    caller = AiortcCaller(guest)
    try:
        await caller.accept_station()
        assert await heard_rms(caller) > 0.05
        assert (await levels(kiosk, 2))[-1]["muted"] is False
    finally:
        await caller.close()


async def test_a_reloaded_kiosk_finds_the_station_still_muted(station: ServiceHarness) -> None:
    kiosk, guest, caller = await answered_call(station)
    try:
        await kiosk.send(type="station-media", audio=True, video=False)
        await expect_screen_muted(guest, kiosk.peer_id, audio=True, video=False)
        await kiosk.ws.close()
        again = await connect(await station.kiosk())
        welcome = await again.join("station")
        assert welcome["call"]["audio_muted"] is True
        await expect_screen_muted(guest, again.peer_id, audio=True, video=False)
        assert await heard_rms(caller) < 0.002
    finally:
        await caller.close()

"""The idle station does not hold the media stack (aiortc, PyAV, numpy: ~45 MB of its
RSS, issue #10's B4) until a call is in sight; then it loads it in the background."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from appliance.config import CameraConfig, MicrophoneConfig
from appliance.media.station import StationMedia
from tests.conftest import start_live, stop_live

# Shared objects only the media stack maps: PyAV's FFmpeg, numpy's core.
MEDIA_LIBRARIES = ("libavcodec", "_multiarray_umath")


def mapped(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {lib for lib in MEDIA_LIBRARIES if lib in maps}


def test_idle_service_maps_no_media_stack_until_a_guest_comes(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    try:
        pid = live.proc.pid
        with urllib.request.urlopen(live.base_url + "/api/health/", timeout=10) as resp:
            assert json.load(resp)["status"] == "ok"
        assert mapped(pid) == set(), "the idle service imported the media stack"
        token = live.guest_link().split("guest_token=", 1)[1]
        request = urllib.request.Request(
            live.base_url + "/api/auth/guest",
            data=json.dumps({"guest_token": token}).encode(),
            headers={"Content-Type": "application/json", "Origin": live.base_url},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        deadline = time.monotonic() + 30
        while mapped(pid) != set(MEDIA_LIBRARIES) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mapped(pid) == set(MEDIA_LIBRARIES), "a guest came and nothing was loaded"
    finally:
        stop_live(live)


async def test_idle_media_reports_what_the_loaded_one_reports_before_any_capture() -> None:
    camera = CameraConfig(source="test", width=320, height=240, fps=30)
    media = StationMedia(camera, MicrophoneConfig(source="test"), linger=0.1)
    media.set_muted(audio=True, video=True)  # the kiosk muted before anything was made
    idle = media.counters(), media.status(), media.capturing, media.take_level()
    assert media.video.blanked and media.audio.muted  # made now: the mute carried over
    assert (media.counters(), media.status(), media.capturing, media.take_level()) == idle
    assert idle[1] == {"camera": "off", "microphone": "off"}
    await media.close()

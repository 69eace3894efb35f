"""/api/metrics/ for a fleet's Prometheus (issue 25, items 1 and 2): a metrics token
opens that endpoint and no other, rotates without a gap and is limited like a
password; the exposition is prometheus_client's, every earlier metric is kept under its
name, and the gauges an operator alerts on are there (or absent where they cannot be
known, not zero)."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance import cli, scrape
from appliance.appkeys import CONFIG, MEDIA, STORE

from .conftest import ServiceHarness
from .helpers import answered_call, connect

# Every metric of the hand-written exposition before issue 25, by name (a scrape
# config or a dashboard built on them keeps working).
EARLIER = {
    "videostation_uptime_seconds",
    "videostation_rooms",
    "videostation_rooms_active",
    "videostation_peers",
    "videostation_call_live",
    "videostation_calls_answered",
    "videostation_calls_missed",
    "videostation_calls_declined",
    "videostation_call_log_write_failures",
    "videostation_signaling_messages",
    "videostation_signaling_errors",
    "videostation_websocket_connections",
    "videostation_http_errors",
    "videostation_logins",
    "videostation_guest_links_created",
    "videostation_media_camera_frames",
    "videostation_media_microphone_frames",
    "videostation_media_audio_listeners",
}


def families(text: str) -> dict[str, Any]:
    """The exposition parsed by prometheus_client's own parser (counters by their name
    without ``_total``, as the parser names them)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(found: dict[str, Any], name: str, **labels: str) -> float | None:
    family = found.get(name)
    for sample in family.samples if family else []:
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


async def scrape_with(station: ServiceHarness, token: str | None, path: str = "/api/metrics/"):  # type: ignore[no-untyped-def]
    client = await station.client()
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get(path, headers=headers)


async def test_a_metrics_token_opens_the_metrics_and_nothing_else(station: ServiceHarness) -> None:
    state = station.app[CONFIG].state_path
    token = scrape.metrics_token(state)
    assert stat.S_IMODE(os.stat(state / scrape.TOKEN_FILE).st_mode) == 0o600
    resp = await scrape_with(station, token)
    assert resp.status == 200, await resp.text()
    assert "videostation_uptime_seconds" in families(await resp.text())
    assert "Set-Cookie" not in resp.headers  # no session comes with it
    for path in ("/api/rooms", "/api/calls", "/api/rooms/station/guest-links"):
        assert (await scrape_with(station, token, path)).status == 401, path
    health = await (await scrape_with(station, token, "/api/health")).json()
    assert set(health) == {"status", "version"}  # the anonymous view
    # no token, a wrong one, another scheme: refused
    assert (await scrape_with(station, None)).status == 401
    for header in ("Bearer " + "x" * 43, "Basic dXNlcjpwdw==", "Bearer"):
        client = await station.client()
        resp = await client.get("/api/metrics/", headers={"Authorization": header})
        assert resp.status == 401, header
        assert (await resp.json())["error"]["code"] == "invalid_token"
    # the household's session still reads them; the kiosk's does not
    assert (await (await station.user()).get("/api/metrics/")).status == 200
    assert (await (await station.kiosk()).get("/api/metrics/")).status == 403


async def test_a_rotated_token_keeps_the_previous_one_until_the_next(
    station: ServiceHarness,
) -> None:
    state = station.app[CONFIG].state_path
    first = scrape.metrics_token(state)
    second = scrape.metrics_token(state, rotate=True)
    for token in (first, second):  # Prometheus's copy can change without a gap
        assert (await scrape_with(station, token)).status == 200
    third = scrape.metrics_token(state, rotate=True)
    assert (await scrape_with(station, first)).status == 401
    for token in (second, third):
        assert (await scrape_with(station, token)).status == 200


async def test_wrong_tokens_are_limited_like_passwords(station: ServiceHarness) -> None:
    token = scrape.metrics_token(station.app[CONFIG].state_path)
    statuses = [(await scrape_with(station, "w" * 43)).status for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429], statuses
    assert (await scrape_with(station, token)).status == 429  # the address waits
    assert (await (await station.user()).get("/api/metrics/")).status == 200


async def test_every_earlier_metric_is_kept_with_the_process_collectors(
    station: ServiceHarness,
) -> None:
    user = await station.user()
    await user.post("/api/rooms/station/generate-guest-link")
    found = families(await (await user.get("/api/metrics/")).text())
    missing = EARLIER - set(found)
    assert not missing, missing
    assert found["videostation_logins"].type == "counter"
    assert value(found, "videostation_logins", result="ok") == 1
    assert value(found, "videostation_guest_links_created") == 1
    for name in ("process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert name in found, name
    assert value(found, "process_resident_memory_bytes") > 10 * 2**20  # type: ignore[operator]


async def test_the_gauges_an_operator_alerts_on(station: ServiceHarness) -> None:
    user = await station.user()

    async def now() -> dict[str, Any]:
        return families(await (await user.get("/api/metrics/")).text())

    found = await now()
    # devices are opened only for calls: before the first, nobody knows
    assert value(found, "videostation_camera_state", state="unknown") == 1
    assert value(found, "videostation_microphone_state", state="unknown") == 1
    assert value(found, "videostation_kiosk_screen_joined") == 0
    assert value(found, "videostation_call_state", state="idle") == 1
    assert value(found, "videostation_missed_calls_today") == 0
    assert "videostation_last_call_timestamp_seconds" not in found  # no call yet: absent
    assert value(found, "videostation_state_free_bytes") > 0  # type: ignore[operator]
    assert value(found, "videostation_state_size_bytes") >= value(  # type: ignore[operator]
        found, "videostation_state_free_bytes"
    )
    (info,) = found["videostation_build_info"].samples
    assert info.labels["python"] == f"{sys.version_info.major}.{sys.version_info.minor}." + str(
        sys.version_info.micro
    )
    assert info.labels["aiortc"] and info.labels["kernel"] and info.labels["version"]
    assert "videostation_pi_temperature_celsius" not in found  # not a Pi: absent, not 0
    assert "videostation_video_encoder_running" not in found  # no call: no encoder
    _kiosk, _guest, caller = await answered_call(station)
    try:
        found = await now()
        assert value(found, "videostation_call_state", state="in-call") == 1
        assert value(found, "videostation_kiosk_screen_joined") == 1
        # the test configuration's camera and microphone are the stand-ins
        assert value(found, "videostation_camera_state", state="stand_in") == 1
        assert value(found, "videostation_camera_state", state="device") == 0
        assert value(found, "videostation_microphone_state", state="stand_in") == 1
    finally:
        await caller.close()
    store = station.app[STORE]
    missed = store.call_started("station", "Neighbour")
    store.call_ended(missed, "missed")
    found = await now()
    assert value(found, "videostation_missed_calls_today") == 1
    assert value(found, "videostation_last_call_timestamp_seconds") == pytest.approx(
        store.list_calls()[0].started_at
    )
    assert value(found, "videostation_camera_state", state="stand_in") == 1  # still known


async def test_a_pis_throttling_and_temperature_come_from_vcgencmd(
    station: ServiceHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "vcgencmd"
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\ncase "$1" in\n get_throttled) echo throttled=0x50005;;\n'
        ' measure_temp) echo "temp=61.2\'C";;\nesac\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    from appliance.metrics import Metrics, pi_gauges

    metrics = Metrics()
    for name, help_text, read in pi_gauges():
        metrics.labelled_gauge(name, help_text, read)
    found = families(metrics.render())
    assert value(found, "videostation_pi_throttled") == 0x50005
    assert value(found, "videostation_pi_temperature_celsius") == pytest.approx(61.2)
    fake.write_text("#!/bin/sh\nexit 1\n")  # vcgencmd failing: absent, not zero
    found = families(metrics.render())
    assert "videostation_pi_throttled" not in found


def test_the_metrics_token_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert cli.main(["metrics-token", "--state-dir", str(state)]) == 0
    first = capsys.readouterr().out.strip()
    assert cli.main(["metrics-token", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.strip() == first
    assert cli.main(["metrics-token", "--state-dir", str(state), "--rotate"]) == 0
    second = capsys.readouterr().out.strip()
    assert second != first and scrape.tokens(state) == [second, first]
    assert stat.S_IMODE(os.stat(state / scrape.TOKEN_FILE).st_mode) == 0o600


async def test_the_kiosk_screen_gauge_follows_the_screen(station: ServiceHarness) -> None:
    user = await station.user()
    screen = await connect(await station.kiosk())
    await screen.join("station")
    found = families(await (await user.get("/api/metrics/")).text())
    assert value(found, "videostation_kiosk_screen_joined") == 1
    await screen.ws.close()
    for _ in range(50):  # the server sees the close within a loop turn or two
        found = families(await (await user.get("/api/metrics/")).text())
        if value(found, "videostation_kiosk_screen_joined") == 0:
            break
        await asyncio.sleep(0.05)
    assert value(found, "videostation_kiosk_screen_joined") == 0


async def test_each_running_encoder_is_named_with_its_codec_and_size(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the media layer lists (tests/test_media_peer.py: a VP8 viewer on the low
    rung) is what an operator sees: one sample per running encoder."""
    running = [
        {"codec": "H264", "rung": "high", "implementation": "h264_v4l2m2m",
         "width": 1280, "height": 720},
        {"codec": "VP8", "rung": "low", "implementation": "libvpx", "width": 640, "height": 360},
    ]  # fmt: skip
    monkeypatch.setattr(station.app[MEDIA], "encoders", lambda: running)
    user = await station.user()
    found = families(await (await user.get("/api/metrics/")).text())
    assert value(
        found, "videostation_video_encoder_running",
        codec="VP8", rung="low", implementation="libvpx", size="640x360",
    ) == 1  # fmt: skip
    assert len(found["videostation_video_encoder_running"].samples) == 2

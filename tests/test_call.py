"""Calls end to end: a real aiortc client calls the station through real signaling,
the kiosk (or the GPIO button) answers, station video and audio are decoded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.app import create_app
from appliance.appkeys import AUTH, MEDIA, PEERS, STATION, STORE

from .conftest import PASSWORD, ServiceHarness, free_port, make_config, serve_command, wait_healthy
from .helpers import AiortcCaller, answered_call, connect, ringing_guest


async def test_guest_calls_kiosk_answers_media_flows_hangup(station: ServiceHarness) -> None:
    app = station.app
    kiosk, guest = await ringing_guest(station)
    # privacy: nothing is captured or sent while ringing
    assert app[STATION].live is False
    assert app[MEDIA].capturing is False  # the camera is not even open
    caller = AiortcCaller(guest)
    await kiosk.send(type="call", action="answer")
    connect_msg = await caller.accept_station()
    assert connect_msg["polite"] is True and connect_msg["send"] is False
    # the kiosk is told to connect to the station (its preview) and to the guest
    kiosk_connects = [await kiosk.expect("connect") for _ in range(2)]
    assert {c["peer_id"] for c in kiosk_connects} == {"station", guest.peer_id}
    # the screen has nothing to send: it is polite and waits for the caller's offer
    assert all(c["polite"] and not c["send"] for c in kiosk_connects)
    (to_screen,) = [m for m in guest.seen if m.get("peer_id") == kiosk.peer_id]
    assert to_screen["type"] == "connect" and to_screen["polite"] is False and to_screen["send"]
    frames = await caller.frames("video", 5)
    assert (frames[-1].width, frames[-1].height) == (320, 240)
    audio = await caller.frames("audio", 5)
    assert audio[-1].sample_rate == 48000
    live = await guest.expect("call-state", timeout=10)
    while not live["call"]["live"]:
        live = await guest.expect("call-state", timeout=10)
    assert live["call"]["state"] == "in-call"
    assert app[STATION].live is True
    assert app[STATION].status_line() == "in call with 1"
    # hang up at the station
    await kiosk.send(type="call", action="hangup")
    assert (await guest.expect("disconnect"))["peer_id"] in ("station", kiosk.peer_id)
    ended = await guest.expect("call-state")
    while ended["call"]["state"] != "idle":
        ended = await guest.expect("call-state")
    assert ended["call"] == {**ended["call"], "state": "idle", "ended": "hangup", "live": False}
    assert app[STATION].live is False
    calls = app[STORE].list_calls()
    assert calls[0].outcome == "answered" and calls[0].ended_at is not None
    await caller.close()


async def test_no_rtp_before_the_answer(station: ServiceHarness) -> None:
    """On the wire: the client gets no offer and no packets until the kiosk answers."""
    kiosk, guest = await ringing_guest(station)
    with pytest.raises(asyncio.TimeoutError):
        await guest.expect("signal", timeout=1.0)
    assert station.app[STATION].live is False
    await kiosk.send(type="call", action="answer")
    caller = AiortcCaller(guest)
    await caller.accept_station()
    await caller.frames("video", 2)
    assert caller.pc is not None
    stats = await caller.pc.getStats()
    inbound = [s for s in stats.values() if s.type == "inbound-rtp"]
    assert inbound and all(s.packetsReceived > 0 for s in inbound)
    await caller.close()


async def test_decline_and_guest_cancel_and_missed(config: Any, aiohttp_client: Any) -> None:
    app = create_app(make_config(config.state_path, call={"ring_timeout_seconds": 1}))
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    station = ServiceHarness(app, client.server, aiohttp_client)
    kiosk, guest = await ringing_guest(station)
    await kiosk.send(type="call", action="decline")
    state = await guest.expect("call-state")
    assert state["call"]["state"] == "idle" and state["call"]["ended"] == "declined"
    # ring again, let it time out: a missed call
    await guest.send(type="call", action="ring")
    assert (await guest.expect("call-state"))["call"]["state"] == "ringing"
    state = await guest.expect("call-state", timeout=5)
    assert state["call"]["ended"] == "missed"
    # ring again and hang up before an answer: missed, and "cancelled" on screen
    await guest.send(type="call", action="ring")
    await guest.expect("call-state")
    await guest.send(type="call", action="hangup")
    while True:
        state = await kiosk.expect("call-state")
        if state["call"]["state"] == "idle" and state["call"]["ended"] == "cancelled":
            break
    outcomes = [c.outcome for c in app[STORE].list_calls()]
    assert outcomes == ["missed", "missed", "declined"]
    # wrong actions get errors, not crashes
    await guest.send(type="call", action="answer")
    assert (await guest.expect("error"))["code"] == "forbidden"
    await kiosk.send(type="call", action="answer")
    assert (await kiosk.expect("error"))["code"] == "call_state"


async def test_auto_answer_is_for_users_only(config: Any, aiohttp_client: Any) -> None:
    app = create_app(
        make_config(config.state_path, call={"auto_answer": True, "auto_answer_delay_seconds": 1})
    )
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    station = ServiceHarness(app, client.server, aiohttp_client)
    guest = await connect(await station.guest("station"))
    await guest.join("station", "Guest")
    await asyncio.sleep(0.3)
    assert app[STATION].state == "ringing"
    await guest.send(type="call", action="hangup")
    await guest.expect("call-state")
    user = await connect(await station.user())
    await user.join("station", "Owner")
    ringing = (await user.expect("call-state"))["call"]
    assert ringing["state"] == "ringing" and ringing["auto_answer_at"] is not None
    caller = AiortcCaller(user)
    await caller.accept_station()
    assert app[STATION].state == "in-call"
    await caller.close()


async def test_fan_out_to_three_callers_encodes_once(station: ServiceHarness) -> None:
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    callers = []
    for name in ("A", "B", "C"):
        ws = await connect(await station.guest("station", label=name))
        await ws.join("station", name)
        callers.append(AiortcCaller(ws))
    # answer once all three ring (a guest who comes after the answer must knock)
    ring = await kiosk.expect("call-state")
    while len(ring["call"]["callers"]) < 3:
        ring = await kiosk.expect("call-state")
    await kiosk.send(type="call", action="answer")
    for caller in callers:
        await caller.accept_station()
    # the kiosk's own preview is a station viewer too: answer it with aiortc
    screen = AiortcCaller(kiosk)
    await screen.accept_station()
    for caller in [*callers, screen]:
        frames = await caller.frames("video", 10)
        assert frames[-1].width == 320
    counters = station.app[MEDIA].counters()
    encoded = sum(v for k, v in counters.items() if k.startswith("encoded_"))
    captured = counters["camera_frames"]
    assert counters["video_viewers"] == 4
    assert captured > 0 and encoded <= captured + 1, counters  # once per frame, not 4x
    for caller in [*callers, screen]:
        await caller.close()


# -- GPIO ------------------------------------------------------------------------------


async def test_the_button_answers_and_a_long_press_hangs_up(
    config: Any, aiohttp_client: Any
) -> None:
    factory = MockFactory()
    cfg = make_config(
        config.state_path,
        gpio={
            "button_pin": 17,
            "ring_led_pin": 27,
            "live_led_pin": 22,
            "long_press_seconds": 0.3,
            "bounce_seconds": 0,
        },
    )
    app = create_app(cfg, pin_factory=factory)
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    station = ServiceHarness(app, client.server, aiohttp_client)
    button, ring, live = (factory.pin(n) for n in (17, 27, 22))
    guest = await connect(await station.guest("station"))
    await guest.join("station", "G")
    await asyncio.sleep(0.6)
    assert ring.state in (0, 1)
    blink = set()
    for _ in range(12):
        blink.add(ring.state)
        await asyncio.sleep(0.1)
    assert blink == {0, 1}, "the ring LED blinks while ringing"
    assert live.state == 0
    button.drive_low()
    await asyncio.sleep(0.05)
    button.drive_high()
    caller = AiortcCaller(guest)
    await caller.accept_station()
    await caller.frames("video", 2)
    assert app[STATION].state == "in-call"
    assert live.state == 1 and ring.state == 0
    button.drive_low()
    await asyncio.sleep(0.6)
    button.drive_high()
    for _ in range(50):
        if app[STATION].state == "idle":
            break
        await asyncio.sleep(0.05)
    assert app[STATION].state == "idle"
    await asyncio.sleep(0.1)
    assert live.state == 0
    await caller.close()


# -- systemd ---------------------------------------------------------------------------


def test_systemd_notifications_from_a_real_process(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    state = tmp_path / "state"
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        serve_command(state, port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: list[str] = []
        while not (
            {"READY=1", "WATCHDOG=1"} <= set(seen) and any(s.startswith("STATUS=") for s in seen)
        ):
            seen += sock.recv(4096).decode().split("\n")
        wait_healthy(f"http://127.0.0.1:{port}")
        assert "STATUS=idle" in seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        while "STOPPING=1" not in seen:
            seen += sock.recv(4096).decode().split("\n")
    finally:
        proc.kill()
        sock.close()


async def test_a_second_caller_joins_a_running_call(station: ServiceHarness) -> None:
    kiosk, first, caller1 = await answered_call(station, "Grandma")
    second = await connect(await station.guest("station", label="Grandpa"))
    await second.join("station", "Grandpa")
    # a guest who comes during a call knocks; the kiosk lets it in
    knock = await kiosk.expect("call-state")
    while not knock["call"]["knocking"]:
        knock = await kiosk.expect("call-state")
    assert knock["call"]["knocking"] == [{"id": second.peer_id, "name": "Grandpa"}]
    await kiosk.send(type="call", action="admit", peer=second.peer_id)
    caller2 = AiortcCaller(second)
    await caller2.accept_station()
    assert (await caller2.frames("video", 3))[-1].width == 320
    # the two callers are told to connect to each other (a mesh), one of them politely
    to_first = await first.expect("connect", peer_id=second.peer_id)
    to_second = [m for m in second.seen if m.get("peer_id") == first.peer_id]
    assert to_second and to_second[0]["send"] and to_first["send"]
    assert to_second[0]["polite"] != to_first["polite"]
    state = station.app[STATION].as_object()
    assert [p["name"] for p in state["in_call"]] == ["Grandma", "Grandpa"]
    assert station.app[STATION].status_line() == "in call with 2"
    # one caller hanging up leaves the other in the call
    await first.send(type="call", action="hangup")
    for _ in range(50):
        if len(station.app[STATION].in_call) == 1:
            break
        await asyncio.sleep(0.05)
    assert station.app[STATION].state == "in-call" and station.app[STATION].live
    await caller1.close()
    await caller2.close()


async def test_metrics_show_each_viewers_rung_and_link(station: ServiceHarness) -> None:
    """/api/metrics/ has one sample per station viewer: rung, REMB estimate, loss, RTT."""
    _kiosk, guest, caller = await answered_call(station)
    user = await station.user()
    peer = f'{{peer="{guest.peer_id}"}}'
    text = ""
    for _ in range(100):  # receiver reports and REMB arrive within a few seconds
        text = await (await user.get("/api/metrics/")).text()
        if f"videostation_viewer_rtt_seconds{peer}" in text and (
            f"videostation_viewer_estimated_bitrate{peer}" in text
        ):
            break
        await asyncio.sleep(0.1)
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("videostation_viewer_") and peer in line
    }
    assert samples[f"videostation_viewer_low_rung{peer}"] == 0
    assert samples[f"videostation_viewer_loss_ratio{peer}"] == 0
    assert 0 < samples[f"videostation_viewer_rtt_seconds{peer}"] < 1
    assert samples[f"videostation_viewer_estimated_bitrate{peer}"] > 50_000
    await caller.close()


async def test_station_connections_that_fail_are_announced(station: ServiceHarness) -> None:
    """app.py subscribes the call machine to the station peers' lost connections: when
    they fail (ICE, say), everyone gets a call-state that is no longer live."""
    kiosk, _, caller = await answered_call(station)
    peers = station.app[PEERS]
    assert station.app[STATION].live
    for link in list(peers._peers.values()):
        await link.pc.close()  # as when ICE fails
    state = await kiosk.expect("call-state", timeout=10)
    while state["call"]["live"]:
        state = await kiosk.expect("call-state", timeout=10)
    assert state["call"]["state"] == "in-call" and not station.app[STATION].live
    await caller.close()

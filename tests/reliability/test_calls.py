"""Faults: dead sockets, callers vanishing mid-call, devices released, no leaks."""

from __future__ import annotations

import asyncio

import pytest

from appliance import signaling
from appliance.appkeys import MEDIA, STATION, STORE

from ..conftest import ServiceHarness
from ..helpers import AiortcCaller, answered_call, connect


async def test_a_caller_vanishing_mid_call_returns_the_station_to_idle(
    station: ServiceHarness,
) -> None:
    kiosk, guest, caller = await answered_call(station)
    assert station.app[STATION].live
    # the phone loses its network: the TCP connection just goes away
    transport = guest.ws._response.connection.transport
    transport.abort()
    state = await kiosk.expect("call-state")
    while state["call"]["state"] != "idle":
        state = await kiosk.expect("call-state")
    assert state["call"]["ended"] == "hangup" and state["call"]["live"] is False
    assert station.app[STATION].live is False
    assert station.app[STORE].list_calls()[0].outcome == "answered"
    await caller.close()


async def test_a_silent_socket_is_dropped_by_the_heartbeat(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signaling, "HEARTBEAT_SECONDS", 0.3)
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    client = await station.guest("station")
    # a client that never answers pings, like a phone that went to sleep mid-ring
    silent = await client.ws_connect("/ws/", autoping=False)
    await silent.send_json({"type": "join", "version": 1, "room": "station", "name": "Sleepy"})
    assert (await kiosk.expect("call-state"))["call"]["state"] == "ringing"
    left = await kiosk.expect("peer-left", timeout=5)
    assert left["peer_id"]
    state = await kiosk.expect("call-state")
    assert state["call"]["state"] == "idle" and state["call"]["ended"] == "cancelled"
    assert [c.outcome for c in station.app[STORE].list_calls()] == ["missed"]


async def test_the_camera_is_released_after_the_call(station: ServiceHarness) -> None:
    kiosk, _guest, caller = await answered_call(station)
    media = station.app[MEDIA]
    assert media.capturing
    await kiosk.send(type="call", action="hangup")
    for _ in range(100):  # the devices close a few seconds after the last viewer
        if not media.capturing:
            break
        await asyncio.sleep(0.1)
    assert not media.capturing
    await caller.close()


async def test_many_calls_in_a_row_leak_nothing(station: ServiceHarness) -> None:
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    for i in range(5):
        guest = await connect(await station.guest("station"))
        await guest.join("station", f"Caller {i}")
        await kiosk.expect("call-state")
        await kiosk.send(type="call", action="answer")
        caller = AiortcCaller(guest)
        await caller.accept_station()
        await caller.frames("video", 1)
        await guest.send(type="leave")
        await caller.close()
        state = await kiosk.expect("call-state")
        while state["call"]["state"] != "idle":
            state = await kiosk.expect("call-state")
    assert station.app[STATION].media.stats()["peers"] == {}
    assert len(station.app[STATION].rooms.peers("station")) == 1  # only the kiosk
    assert [c.outcome for c in station.app[STORE].list_calls()] == ["answered"] * 5

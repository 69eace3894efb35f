"""Nobody sees or hears through the station uninvited (issue 7, items 1-4, 12):
signaling flows only along pairs the call connected, newcomers knock, a failed
call-log write or a racing ``restart`` never leaves the camera on."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from appliance import protocol
from appliance.app import create_app
from appliance.appkeys import AUTH, CALL_MACHINE, MEDIA, STORE
from appliance.media.peer import MAX_PENDING_CANDIDATES

from ..conftest import PASSWORD, ServiceHarness, make_config
from ..helpers import WS, AiortcCaller, answered_call, connect, ringing_guest

OFFER = {"type": "offer", "sdp": "v=0\r\n"}
CANDIDATE = {
    "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "abcd",
}


async def no_signal(ws: WS, timeout: float = 0.3) -> None:
    """Nothing relayed from a browser reaches ``ws`` (the station's own offers may)."""
    with pytest.raises(asyncio.TimeoutError):
        while (await ws.expect("signal", timeout=timeout))["from"] == "station":
            pass


async def until(ws: WS, check: Any, type_: str = "call-state") -> dict[str, Any]:
    while True:
        message = await ws.expect(type_)
        if check(message):
            return message


async def test_unsolicited_offers_and_candidates_are_not_relayed(station: ServiceHarness) -> None:
    """Two guests ringing, and the kiosk: no pair is connected, nothing is relayed."""
    kiosk, first = await ringing_guest(station, "Grandma")
    attacker = await connect(await station.guest("station", label="Mallory"))
    await attacker.join("station", "Mallory")
    await until(kiosk, lambda m: len(m["call"]["callers"]) == 2)
    for target in (first, kiosk):
        for payload in ({"description": OFFER}, {"candidate": CANDIDATE}):
            await attacker.send(type="signal", to=target.peer_id, **payload)
            err = await attacker.expect("error")
            assert err["code"] == "not_connected" and err["ref"] == "signal"
    await no_signal(first)
    await no_signal(kiosk)
    # nor to the station peer: there is no call
    await attacker.send(type="signal", to="station", description=OFFER)
    assert (await attacker.expect("error"))["code"] == "not_connected"
    # after a decline, still nothing
    await kiosk.send(type="call", action="decline")
    await until(attacker, lambda m: m["call"]["state"] == "idle")
    await attacker.send(type="signal", to=kiosk.peer_id, description=OFFER)
    assert (await attacker.expect("error"))["code"] == "not_connected"
    await no_signal(kiosk)


async def test_connected_pairs_relay_until_the_call_ends(station: ServiceHarness) -> None:
    kiosk, guest, caller = await answered_call(station)
    await guest.send(type="signal", to=kiosk.peer_id, description=OFFER)
    await kiosk.expect("signal", **{"from": guest.peer_id})
    await kiosk.send(type="call", action="hangup")
    await until(guest, lambda m: m["call"]["state"] == "idle")
    await guest.send(type="signal", to=kiosk.peer_id, candidate=CANDIDATE)
    assert (await guest.expect("error"))["code"] == "not_connected"
    await no_signal(kiosk)
    await caller.close()


async def test_a_guest_during_a_call_knocks_and_nothing_flows(station: ServiceHarness) -> None:
    kiosk, guest, caller = await answered_call(station, "Grandma")
    knocker = await connect(await station.guest("station", label="Uncle"))
    welcome = await knocker.join("station", "Uncle")
    assert welcome["call"]["state"] == "in-call"
    state = await until(kiosk, lambda m: m["call"]["knocking"])
    assert state["call"]["knocking"] == [{"id": knocker.peer_id, "name": "Uncle"}]
    assert [p["name"] for p in state["call"]["in_call"]] == ["Grandma"]
    # no connect for the knocker, and nothing relayed either way
    with pytest.raises(asyncio.TimeoutError):
        await knocker.expect("connect", timeout=0.5)
    for target in (guest.peer_id, kiosk.peer_id, "station"):
        await knocker.send(type="signal", to=target, description=OFFER)
        assert (await knocker.expect("error"))["code"] == "not_connected"
    await guest.send(type="signal", to=knocker.peer_id, description=OFFER)
    assert (await guest.expect("error"))["code"] == "not_connected"
    await no_signal(knocker)
    assert knocker.peer_id not in station.app[CALL_MACHINE].media
    # only the kiosk decides, and only about someone knocking
    await guest.send(type="call", action="admit", peer=knocker.peer_id)
    assert (await guest.expect("error"))["code"] == "forbidden"
    await kiosk.send(type="call", action="admit", peer="nobody")
    assert (await kiosk.expect("error"))["code"] == "unknown_peer"
    # let in: connects exactly like a caller at the answer
    await kiosk.send(type="call", action="admit", peer=knocker.peer_id)
    second = AiortcCaller(knocker)
    await second.accept_station()
    assert (await second.frames("video", 2))[-1].width == 320
    assert any(m.get("peer_id") == kiosk.peer_id for m in knocker.seen if m["type"] == "connect")
    await guest.expect("connect", peer_id=knocker.peer_id)
    call = station.app[CALL_MACHINE].as_object()
    assert call["knocking"] == [] and [p["name"] for p in call["in_call"]] == ["Grandma", "Uncle"]
    await caller.close()
    await second.close()


async def test_refused_knockers_get_bye_and_withdrawn_ones_vanish(station: ServiceHarness) -> None:
    kiosk, _guest, caller = await answered_call(station)
    knocker = await connect(await station.guest("station", label="Stranger"))
    await knocker.join("station", "Stranger")
    await until(kiosk, lambda m: m["call"]["knocking"])
    await kiosk.send(type="call", action="refuse", peer=knocker.peer_id)
    assert (await knocker.expect("bye"))["reason"] == "refused"
    msg = await knocker.ws.receive(timeout=5)
    while msg.type.name == "TEXT":
        msg = await knocker.ws.receive(timeout=5)
    assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
    await until(kiosk, lambda m: not m["call"]["knocking"])
    # a knocker who hangs up withdraws
    shy = await connect(await station.guest("station", label="Shy"))
    await shy.join("station", "Shy")
    await until(kiosk, lambda m: m["call"]["knocking"])
    await shy.send(type="call", action="hangup")
    await until(kiosk, lambda m: not m["call"]["knocking"])
    assert station.app[CALL_MACHINE].state == "in-call"
    # outside a call there is nobody to let in
    await kiosk.send(type="call", action="hangup")
    await until(kiosk, lambda m: m["call"]["state"] == "idle")
    await kiosk.send(type="call", action="admit", peer=shy.peer_id)
    assert (await kiosk.expect("error"))["code"] == "call_state"
    await caller.close()


async def test_knockers_ring_when_the_call_ends(station: ServiceHarness) -> None:
    kiosk, _guest, caller = await answered_call(station)
    knocker = await connect(await station.guest("station", label="Late"))
    await knocker.join("station", "Late")
    await until(kiosk, lambda m: m["call"]["knocking"])
    await kiosk.send(type="call", action="hangup")
    ring = await until(kiosk, lambda m: m["call"]["state"] == "ringing")
    assert ring["call"]["callers"] == [{"id": knocker.peer_id, "name": "Late"}]
    assert station.app[CALL_MACHINE].live is False
    await caller.close()


async def test_a_household_user_joins_a_running_call_at_once(station: ServiceHarness) -> None:
    kiosk, _guest, caller = await answered_call(station)
    user = await connect(await station.user())
    await user.join("station", "Dad")
    joined = await kiosk.expect("peer-joined")
    assert joined["peer"]["role"] == "user"  # the kiosk announces it
    second = AiortcCaller(user)
    await second.accept_station()
    assert station.app[CALL_MACHINE].as_object()["knocking"] == []
    await caller.close()
    await second.close()


async def test_the_gpio_button_never_lets_a_knocker_in(config: Any, aiohttp_client: Any) -> None:
    factory = MockFactory()
    cfg = make_config(
        config.state_path, gpio={"button_pin": 17, "long_press_seconds": 5, "bounce_seconds": 0}
    )
    app = create_app(cfg, pin_factory=factory)
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    station = ServiceHarness(app, client.server, aiohttp_client)
    kiosk, _guest, caller = await answered_call(station)
    knocker = await connect(await station.guest("station", label="Uncle"))
    await knocker.join("station", "Uncle")
    await until(kiosk, lambda m: m["call"]["knocking"])
    await app[CALL_MACHINE].button_pressed()
    button = factory.pin(17)
    button.drive_low()
    await asyncio.sleep(0.3)
    button.drive_high()
    await asyncio.sleep(0.3)
    assert [p.id for p in app[CALL_MACHINE].knocking] == [knocker.peer_id]
    assert knocker.peer_id not in app[CALL_MACHINE].media
    with pytest.raises(asyncio.TimeoutError):
        await knocker.expect("connect", timeout=0.3)
    await caller.close()


# -- failures during transitions -------------------------------------------------------


def _broken(*_: Any, **__: Any) -> Any:
    raise sqlite3.OperationalError("database or disk is full")


async def test_a_failed_call_log_write_never_leaves_the_station_in_a_call(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = station.app
    kiosk, guest, caller = await answered_call(station)
    monkeypatch.setattr(app[STORE], "call_ended", _broken)
    await kiosk.send(type="call", action="hangup")
    ended = await until(guest, lambda m: m["call"]["state"] == "idle")
    assert ended["call"]["live"] is False
    assert app[CALL_MACHINE].state == "idle" and not app[CALL_MACHINE].live
    assert app[CALL_MACHINE].store_errors == 1
    # the next guest rings; it receives nothing from the station
    nxt = await connect(await station.guest("station", label="Next"))
    await nxt.join("station", "Next")
    await until(nxt, lambda m: m["call"]["state"] == "ringing")
    with pytest.raises(asyncio.TimeoutError):
        await nxt.expect("connect", timeout=0.5)
    assert not app[CALL_MACHINE].live
    await caller.close()


async def test_a_failed_write_at_the_ring_still_rings_and_times_out(
    config: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_config(config.state_path, call={"ring_timeout_seconds": 1}))
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    station = ServiceHarness(app, client.server, aiohttp_client)
    monkeypatch.setattr(app[STORE], "call_started", _broken)
    kiosk, _guest = await ringing_guest(station)
    missed = await until(kiosk, lambda m: m["call"]["state"] == "idle")
    assert missed["call"]["ended"] == "missed"
    assert app[CALL_MACHINE].store_errors == 1


async def test_restart_racing_hangups_never_leaves_the_camera_on(station: ServiceHarness) -> None:
    """A guest sends `restart` every few ms while the kiosk hangs up, ten calls over."""
    app = station.app
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    for round_ in range(10):
        guest = await connect(await station.guest("station", label=f"R{round_}"))
        await guest.join("station", f"R{round_}")
        await until(kiosk, lambda m: m["call"]["state"] == "ringing")
        await kiosk.send(type="call", action="answer")
        await guest.expect("connect", peer_id="station")

        async def hammer(ws: WS = guest) -> None:
            for _ in range(40):
                await ws.send(type="signal", to="station", restart=True)
                await asyncio.sleep(0.003)

        task = asyncio.ensure_future(hammer())
        await asyncio.sleep(0.01 * (round_ % 4))
        await kiosk.send(type="call", action="hangup")
        await task
        await until(kiosk, lambda m: m["call"]["state"] == "idle")
        await guest.send(type="ping")
        await guest.expect("pong", timeout=10)  # every restart was handled
        assert app[CALL_MACHINE].state == "idle"
        assert app[CALL_MACHINE].media.stats()["peers"] == {}, f"round {round_}"
        assert not app[CALL_MACHINE].live
        await guest.send(type="leave")
    media = app[MEDIA]
    for _ in range(100):  # the devices close a few seconds after the last viewer
        if not media.capturing:
            break
        await asyncio.sleep(0.1)
    assert not media.capturing


async def test_station_peers_open_cannot_outlive_close_all(station: ServiceHarness) -> None:
    peers = station.app[CALL_MACHINE].media
    await peers.open("pX", audio=False)
    restart = asyncio.ensure_future(peers.handle_signal("pX", protocol.Restart()))
    await asyncio.sleep(0)  # the restart is closing the old connection
    await peers.close_all()
    await restart
    assert not peers.live and "pX" not in peers
    # a fresh open after close_all works (the next call); live once it connects
    await peers.open("pY", audio=False)
    assert "pY" in peers
    await peers.close_all()


async def test_candidates_before_the_answer_are_capped(station: ServiceHarness) -> None:
    kiosk, guest = await ringing_guest(station)
    await kiosk.send(type="call", action="answer")
    await guest.expect("signal", timeout=15)  # the offer: we never answer it
    refused = 0
    for _ in range(MAX_PENDING_CANDIDATES + 20):
        await guest.send(type="signal", to="station", candidate=CANDIDATE)
    await guest.send(type="ping")
    while (msg := await guest.recv())["type"] != "pong":
        refused += msg["type"] == "error"
    assert refused == 20
    big = {**CANDIDATE, "candidate": "candidate:" + "x" * 5000}
    await guest.send(type="signal", to="station", candidate=big)
    assert (await guest.expect("error"))["code"] == "malformed_message"
    peer = station.app[CALL_MACHINE].media._peers[guest.peer_id]
    assert len(peer.pending) == MAX_PENDING_CANDIDATES

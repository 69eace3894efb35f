"""Signaling with real WebSocket clients against a real server (docs/signaling.md)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import weakref
from typing import Any

import pytest
from aiohttp import WSMsgType

from appliance.appkeys import CALL_MACHINE, HUB, STORE

from .conftest import ServiceHarness
from .helpers import connect

# -- joining, presence, relay ----------------------------------------------------------


async def test_join_welcome_presence_and_leave(station: ServiceHarness) -> None:
    station.room("Kitchen")
    alice = await connect(await station.user())
    welcome = await alice.join("kitchen", "Alice")
    assert welcome["version"] == 1 and welcome["role"] == "user"
    assert welcome["room"] == {"id": "kitchen", "name": "Kitchen", "is_station": False}
    assert welcome["peers"] == [] and welcome["call"] is None
    assert welcome["ice_servers"] == []
    bob = await connect(await station.guest("kitchen", label="Bob's phone"))
    welcome_b = await bob.join("kitchen", "")
    assert [p["name"] for p in welcome_b["peers"]] == ["Alice"]
    joined = await alice.expect("peer-joined")
    assert joined["peer"]["name"] == "Bob's phone"  # no name given: the link's label
    assert joined["peer"]["kind"] == "remote" and joined["peer"]["sends"] == ["audio", "video"]
    # a plain room is a mesh: both are told to connect, exactly one of them is polite
    c_a = await alice.expect("connect")
    c_b = await bob.expect("connect")
    assert c_a["peer_id"] == bob.peer_id and c_b["peer_id"] == alice.peer_id
    assert c_a["send"] and c_b["send"] and c_a["polite"] != c_b["polite"]
    await bob.send(type="media", audio=True, video=False)
    updated = await alice.expect("peer-updated")
    assert updated["peer"]["muted"] == {"audio": True, "video": False}
    await bob.send(type="leave")
    assert (await bob.expect("bye"))["reason"] == "left"
    assert (await alice.expect("peer-left"))["peer_id"] == bob.peer_id


async def test_the_lines_about_a_peer_carry_its_ids_as_fields(
    station: ServiceHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub and the call machine log a peer's ids as record fields (journal fields)."""
    caplog.set_level(logging.INFO, logger="appliance")
    guest = await connect(await station.guest())
    await guest.join("station", "Grandma")
    await guest.send(type="leave")
    await guest.expect("bye")
    for _ in range(50):
        if any(r.getMessage() == "left" for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    about = {
        (r.name, r.getMessage()): (r.__dict__.get("peer_id"), r.__dict__.get("room_id"))
        for r in caplog.records
    }
    ids = (guest.peer_id, "station")
    assert about[("appliance.signaling", "joined as remote")] == ids
    assert about[("appliance.call", "ringing")] == ids
    assert about[("appliance.signaling", "left")] == ids
    assert about[("appliance.call", "call ended: cancelled")] == (None, "station")


async def test_signals_are_relayed_only_within_a_room(station: ServiceHarness) -> None:
    station.room("Kitchen")
    a = await connect(await station.user())
    await a.join("kitchen", "A")
    b = await connect(await station.user())
    await b.join("kitchen", "B")
    outsider = await connect(await station.user())
    await outsider.join("station", "Outsider")
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    await a.send(type="signal", to=b.peer_id, description=offer)
    got = await b.expect("signal")
    assert got == {"type": "signal", "from": a.peer_id, "description": offer}
    cand = {
        "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd",
    }
    await b.send(type="signal", to=a.peer_id, candidate=cand)
    assert (await a.expect("signal"))["candidate"] == cand
    # a peer in another room cannot be reached, and no one can be signalled by guessing
    await outsider.send(type="signal", to=a.peer_id, description=offer)
    err = await outsider.expect("error")
    assert err["code"] == "unknown_peer" and err["ref"] == "signal"
    with pytest.raises(asyncio.TimeoutError):
        await a.expect("signal", timeout=0.3)


async def test_guests_only_enter_their_room(station: ServiceHarness) -> None:
    station.room("Kitchen")
    guest = await connect(await station.guest("station"))
    await guest.send(type="join", version=1, room="kitchen", name="G")
    err = await guest.expect("error")
    assert err["code"] == "forbidden"
    await guest.send(type="join", version=1, room="nowhere", name="G")
    assert (await guest.expect("error"))["code"] == "room_not_found"
    assert (await guest.join("station"))["role"] == "guest"


async def test_the_upgrade_checks_session_and_origin(station: ServiceHarness) -> None:
    anon = await station.client()
    resp = await anon.get(
        "/ws/",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == 401
    user = await station.user()
    with pytest.raises(Exception) as info:
        await user.ws_connect("/ws/", headers={"Origin": "https://evil.example"})
    assert "403" in str(info.value)
    ok = await connect(user, Origin=f"http://{user.host}:{user.port}")
    assert (await ok.join("station"))["role"] == "user"


async def test_version_mismatch_is_refused(station: ServiceHarness) -> None:
    ws = await connect(await station.user())
    await ws.send(type="join", version=99, room="station", name="x")
    err = await ws.expect("error")
    assert err["code"] == "unsupported_version"
    msg = await ws.ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)


async def test_bad_messages_get_errors_and_the_hub_keeps_going(station: ServiceHarness) -> None:
    ws = await connect(await station.user())
    await ws.send(type="signal", to="x", candidate=None)
    assert (await ws.expect("error"))["code"] == "not_in_room"
    await ws.join("station", "Tester")
    await ws.ws.send_str("{garbage")
    assert (await ws.expect("error"))["code"] == "malformed_message"
    await ws.ws.send_bytes(b"\x00\x01\x02")
    assert (await ws.expect("error"))["code"] == "malformed_message"
    await ws.send(type="teleport")
    err = await ws.expect("error")
    assert err["code"] == "unknown_type"
    await ws.ws.send_str(json.dumps({"type": "ping", "pad": "x" * 70000}))
    assert (await ws.expect("error"))["code"] == "message_too_large"
    await ws.send(type="signal", to="p-gone", description={"type": "offer", "sdp": "x"})
    assert (await ws.expect("error"))["code"] == "unknown_peer"
    await ws.send(type="join", version=1, room="station", name="again")
    assert (await ws.expect("error"))["code"] == "already_joined"
    await ws.send(type="ping")
    assert (await ws.expect("pong"))["type"] == "pong"
    # the room still has its peer and the service is healthy
    assert [p.name for p in station.app[CALL_MACHINE].rooms.peers("station")] == ["Tester"]
    client = await station.client()
    assert (await (await client.get("/api/health/")).json())["status"] == "ok"


async def test_a_flood_is_rate_limited_then_cut_off(station: ServiceHarness) -> None:
    ws = await connect(await station.user())
    await ws.join("station", "Flood")
    # 40 messages/s with a burst of 200: 1000 pings outrun the bucket unless sending
    # them takes over 20 s, however loaded the machine is
    for _ in range(1000):
        await ws.send(type="ping")
    codes = []
    closed = False
    while True:
        msg = await ws.ws.receive(timeout=15)
        if msg.type != WSMsgType.TEXT:
            closed = True
            break
        data = json.loads(msg.data)
        codes.append(data.get("code") or data["type"])
    assert codes.count("pong") >= 150
    assert "rate_limited" in codes
    assert closed and ws.ws.close_code == 1008
    other = await connect(await station.user())
    assert (await other.join("station", "Next"))["type"] == "welcome"


async def test_a_huge_frame_closes_only_that_socket(station: ServiceHarness) -> None:
    ws = await connect(await station.user())
    await ws.join("station", "Huge")
    await ws.ws.send_str("x" * (2 * 1024 * 1024))
    msg = await ws.ws.receive(timeout=5)
    while msg.type == WSMsgType.TEXT:  # the ring it caused on joining
        msg = await ws.ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert ws.ws.close_code == 1009
    other = await connect(await station.user())
    assert (await other.join("station", "Next"))["peers"] == []  # the dead one was cleaned up


async def test_room_full(config: Any, aiohttp_client: Any) -> None:
    from appliance.app import create_app
    from appliance.appkeys import AUTH
    from tests.conftest import PASSWORD, make_config

    app = create_app(make_config(config.state_path, call={"max_remote_participants": 2}))
    server_client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    app[STORE].create_room("kitchen", "Kitchen")
    sockets = []
    for name in ("A", "B", "C"):
        client = await aiohttp_client(server_client.server)
        await client.post("/api/auth/login", json={"password": PASSWORD})
        ws = await connect(client)
        await ws.send(type="join", version=1, room="kitchen", name=name)
        sockets.append(ws)
    assert (await sockets[0].expect("welcome"))["type"] == "welcome"
    assert (await sockets[1].expect("welcome"))["type"] == "welcome"
    err = await sockets[2].expect("error")
    assert err["code"] == "room_full" and "full" in err["message"]
    assert (await sockets[2].expect("bye"))["reason"] == "room_full"


async def test_deleting_a_room_says_bye(station: ServiceHarness) -> None:
    station.room("Kitchen")
    ws = await connect(await station.user())
    await ws.join("kitchen", "A")
    user = await station.user()
    assert (await user.delete("/api/rooms/kitchen")).status == 200
    assert (await ws.expect("bye"))["reason"] == "room_deleted"


async def test_revoking_a_link_disconnects_its_guest(station: ServiceHarness) -> None:
    issued = station.auth.make_guest_link("station", ttl=600)
    client = await station.client()
    await client.post("/api/auth/guest", json={"guest_token": issued.token})
    ws = await connect(client)
    await ws.join("station", "G")
    user = await station.user()
    await user.delete(f"/api/rooms/station/guest-links/{issued.link.jti}")
    assert (await ws.expect("bye"))["reason"] == "revoked"


async def test_ice_servers_with_turn_credentials(config: Any, aiohttp_client: Any) -> None:
    from appliance.app import create_app
    from appliance.appkeys import AUTH
    from tests.conftest import PASSWORD, make_config

    cfg = make_config(
        config.state_path,
        ice={
            "stun_urls": ["stun:stun.example.net:3478"],
            "turn_urls": ["turn:turn.example.net:3478"],
            "turn_secret": "s3cret",
        },
    )
    app = create_app(cfg)
    client = await aiohttp_client(app)
    app[AUTH].set_password(PASSWORD)
    await client.post("/api/auth/login", json={"password": PASSWORD})
    ws = await connect(client)
    servers = (await ws.join("station"))["ice_servers"]
    assert servers[0] == {"urls": ["stun:stun.example.net:3478"]}
    assert servers[1]["urls"] == ["turn:turn.example.net:3478"]
    expiry, tag = servers[1]["username"].split(":")
    assert len(tag) == 24 and int(expiry) > time.time() and servers[1]["credential"]
    # the station's own peer mints them for every connection too, with the time of
    # that moment: a station up for months still gets a relay
    from appliance.appkeys import PEERS

    minted = [int(app[PEERS].ice_servers()[1]["username"].split(":")[0]) for _ in range(2)]
    assert all(abs(m - time.time() - 300) <= 2 for m in minted), minted


async def test_a_client_that_leaves_and_hangs_up_at_once_is_no_error(
    station: ServiceHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A page that says `leave` and closes its socket straight away (as a page being
    unloaded does) is not a failure: its `bye` finds the socket closing, and the hub
    says nothing about it (B7 found 4,400 tracebacks a minute logged for this)."""
    caplog.set_level(logging.INFO, logger="appliance")
    station.room("Kitchen")
    for i in range(5):
        guest = await connect(await station.guest("kitchen", label=f"Guest {i}"))
        await guest.join("kitchen", f"Guest {i}")
        await guest.send(type="leave")
        guest.ws._response.connection.transport.abort()  # gone, no close handshake
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert sum(r.getMessage() == "left" for r in caplog.records) == 5
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_closed_socket_is_let_go_at_its_close(station: ServiceHarness) -> None:
    """Nothing keeps a socket that said `leave`, or one whose client closed it, once it
    is closed: aiohttp's heartbeat timer held each for HEARTBEAT_SECONDS and more (with
    its request, transport and buffers: 150 MiB under a minute of churn; issue 22)."""
    station.room("Kitchen")
    hub = station.app[HUB]
    for leaves in (True, False):
        client = await connect(await station.guest("kitchen", label="Churn"))
        await client.join("kitchen", "Churn")
        (conn,) = hub.connections
        socket = weakref.ref(conn.ws)
        del conn
        if leaves:
            await client.send(type="leave")
            assert (await client.expect("bye"))["reason"] == "left"
        await client.ws.close()
        for _ in range(50):  # the hub's finally and aiohttp's last callbacks
            await asyncio.sleep(0.01)
            gc.collect()
            if socket() is None:
                break
        assert socket() is None, [type(r).__name__ for r in gc.get_referrers(socket())]

"""TURN credentials per session (issue 22, item 6): what the station hands out.

Before, every joined peer (knockers too) got the same user name, ``<expiry>:videostation``,
valid 24 h whatever its session had left; so did the station's own connections. Now
each session gets its own, lasting what the session has left and at most 2 h, and a
knocker not yet let in gets none (STUN only). coturn's side: test_turn_relay.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from appliance import config as config_mod
from appliance.appkeys import HUB, PEERS
from appliance.auth import Session
from appliance.clock import FakeClock
from appliance.turn import (
    SESSION_CREDENTIAL_CAP,
    STATION_CREDENTIAL_TTL,
    credential_tag,
    session_lifetime,
)
from tests.conftest import ServiceHarness, make_config

from ..helpers import connect

SECRET = "turn-credentials-secret"
STUN = {"urls": ["stun:stun.example.net:3478"]}


@pytest.fixture
def station_clock() -> FakeClock:
    return FakeClock(wall=time.time())


@pytest.fixture
def config(tmp_path: Path) -> config_mod.Config:
    return make_config(
        tmp_path / "state",
        ice={
            "stun_urls": STUN["urls"],
            "turn_urls": ["turn:turn.example.net:3478?transport=udp"],
            "turn_secret": SECRET,
        },
        auth={"guest_session_ttl_seconds": 600},
    )


def turn_user(servers: list[dict[str, Any]]) -> tuple[int, str]:
    """(expiry, tag) of the TURN server's user name."""
    assert servers[0] == STUN and len(servers) == 2, servers
    expiry, tag = servers[1]["username"].split(":")
    return int(expiry), tag


async def joined(station: ServiceHarness, client: Any) -> tuple[dict[str, Any], Session]:
    """The welcome of ``client`` joining the station room, and its session."""
    ws = await connect(client)
    welcome = await ws.join("station", "G")
    conn = next(
        c for c in station.app[HUB].connections if c.peer and c.peer.id == welcome["peer_id"]
    )
    return welcome, conn.session


async def test_each_session_gets_its_own_user_name(station: ServiceHarness) -> None:
    before = time.time()
    first, session = await joined(station, await station.user())
    second, _ = await joined(station, await station.user())
    (expiry1, tag1), (expiry2, tag2) = (
        turn_user(first["ice_servers"]),
        turn_user(second["ice_servers"]),
    )
    assert tag1 != tag2  # was "videostation" for everyone
    # the tag is a keyed hash of the session id: the id itself never reaches coturn
    assert tag1 == credential_tag(SECRET, f"session:{session.sid}")
    assert session.sid not in first["ice_servers"][1]["username"]
    # a household session lasts 30 days; its credential, 2 h (was 24 h)
    assert before + SESSION_CREDENTIAL_CAP - 2 <= expiry1 <= time.time() + SESSION_CREDENTIAL_CAP
    assert abs(expiry2 - expiry1) <= 2


async def test_a_credential_never_outlives_its_session(station: ServiceHarness) -> None:
    """A guest session of 10 minutes gets a credential of 10 minutes, not 24 h."""
    welcome, session = await joined(station, await station.guest("station"))
    assert welcome["ice_servers"] == [STUN]  # ringing buys no relay
    expiry, _ = turn_user(station.app[HUB].ice_servers(session))
    assert session.role == "guest" and session.expires_at - session.issued_at == 600
    assert expiry <= session.expires_at and expiry >= time.time() + 600 - 10


async def relay_then_connect(ws: Any) -> list[dict[str, Any]]:
    """The ``ice-servers`` a page gets, checked to come before its first ``connect``."""
    while True:
        message = await ws.recv()
        assert message["type"] != "connect", "connect before the relay"
        if message["type"] == "ice-servers":
            servers: list[dict[str, Any]] = message["ice_servers"]
            return servers


async def test_a_guest_gets_the_relay_only_when_answered_or_let_in(
    station: ServiceHarness,
) -> None:
    """Issue 22, item 6: on the earlier code every joined guest, knockers included,
    got a TURN credential in its welcome."""
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    caller = await connect(await station.guest("station", label="Grandma"))
    welcome = await caller.join("station", "Grandma")
    assert welcome["ice_servers"] == [STUN]
    await kiosk.send(type="call", action="answer")
    turn_user(await relay_then_connect(caller))
    knocker = await connect(await station.guest("station", label="Neighbour"))
    welcome = await knocker.join("station", "Neighbour")
    assert welcome["ice_servers"] == [STUN]
    while not (await kiosk.expect("call-state"))["call"]["knocking"]:
        pass
    await kiosk.send(type="call", action="admit", peer=welcome["peer_id"])
    turn_user(await relay_then_connect(knocker))


def test_session_lifetime_bounds() -> None:
    assert session_lifetime(None) == SESSION_CREDENTIAL_CAP  # the kiosk's key: no expiry
    assert session_lifetime(30 * 86400) == SESSION_CREDENTIAL_CAP
    assert session_lifetime(95.5) == 95.5
    assert session_lifetime(-3) == 0  # an expired session gets an expired credential


async def test_a_session_not_admitted_gets_no_relay(station: ServiceHarness) -> None:
    """The hook for knockers: a session the hub has not admitted gets STUN only."""
    _, session = await joined(station, await station.guest("station"))
    hub = station.app[HUB]
    assert hub.ice_servers(session, admitted=False) == [STUN]
    assert len(hub.ice_servers(session)) == 2


async def test_the_station_peer_gets_a_short_credential_per_connection(
    station: ServiceHarness,
) -> None:
    peers = station.app[PEERS]
    now = time.time()
    minted = [turn_user(peers.ice_servers()) for _ in range(2)]
    assert minted[0][1] != minted[1][1]  # one user name per connection
    for expiry, _ in minted:
        assert now + STATION_CREDENTIAL_TTL - 2 <= expiry <= time.time() + STATION_CREDENTIAL_TTL


async def test_a_page_gets_a_fresh_credential_before_its_own_runs_out(
    station: ServiceHarness, station_clock: FakeClock
) -> None:
    """A page restarting ICE late in a long call still makes a relay: at half its
    credential's life it gets a fresh one (``ice-servers``); a guest that only rings
    gets none."""
    hub = station.app[HUB]
    ws = await connect(await station.user())
    welcome = await ws.join("station", "Mum")
    first, _ = turn_user(welcome["ice_servers"])
    ringing = await connect(await station.guest("station"))
    await ringing.join("station", "G")
    station_clock.advance(SESSION_CREDENTIAL_CAP / 2 - 60)
    assert await hub.refresh_relays() == 0
    station_clock.advance(120)
    assert await hub.refresh_relays() == 1  # Mum's page, not the ringing guest's
    while (message := await ws.recv())["type"] != "ice-servers":
        pass
    fresh, _ = turn_user(message["ice_servers"])
    assert fresh >= first + SESSION_CREDENTIAL_CAP / 2
    assert await hub.refresh_relays() == 0  # not again until half of the new one

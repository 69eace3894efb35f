"""Sessions end on the server (issue 7, items 6-8): revocation, password change,
expiry and logout close every socket; one joined peer and few sockets per session."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import WSServerHandshakeError

from appliance import errors, signaling
from appliance.appkeys import AUTH, HUB, ROOMS
from appliance.auth import Session

from ..conftest import PASSWORD, ServiceHarness
from ..helpers import WS, connect


async def closed_with(ws: WS, reason: str) -> None:
    assert (await ws.expect("bye"))["reason"] == reason
    msg = await ws.ws.receive(timeout=5)
    assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING"), msg


async def test_revoking_a_link_closes_sockets_that_have_not_joined(station: ServiceHarness) -> None:
    user = await station.user()
    made = await (await user.post("/api/rooms/station/generate-guest-link")).json()
    guest = await station.client()
    resp = await guest.post("/api/auth/guest", json={"guest_token": made["guest_token"]})
    assert resp.status == 200
    idle = await connect(guest)  # open, never joined
    await user.delete(f"/api/rooms/station/guest-links/{made['jti']}")
    await closed_with(idle, "revoked")
    with pytest.raises(WSServerHandshakeError):
        await guest.ws_connect("/ws/")


async def test_a_password_change_ends_every_user_socket(station: ServiceHarness) -> None:
    user = await connect(await station.user())
    await user.join("station", "Dad")
    unjoined = await connect(await station.user())
    station.app[AUTH].set_password("another long password")  # e.g. the CLI, elsewhere
    assert await station.app[HUB].revalidate_all() == 2
    await closed_with(user, "session_ended")
    await closed_with(unjoined, "session_ended")
    assert station.app[ROOMS].remotes("station") == []
    assert signaling.REVALIDATE_SECONDS <= 30  # the periodic check runs often enough


async def test_a_session_past_its_expiry_no_longer_holds(station: ServiceHarness) -> None:
    auth = station.app[AUTH]
    stale = Session("guest", "station", "x", sid="s1", expires_at=time.time() - 60)
    with pytest.raises(errors.TokenExpired):
        auth.revalidate(stale)


async def test_logout_ends_the_session_for_a_copied_cookie(station: ServiceHarness) -> None:
    user = await station.user()
    cookie = user.session.cookie_jar.filter_cookies(user.make_url("/"))["vs_session"].value
    ws = await connect(user)
    await ws.join("station", "Dad")
    copy = await station.client()
    headers = {"Cookie": f"vs_session={cookie}"}
    assert (await copy.get("/api/rooms", headers=headers)).status == 200
    assert (await user.post("/api/auth/logout")).status == 200
    await closed_with(ws, "session_ended")
    resp = await copy.get("/api/rooms", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_authenticated"
    # a new login still works
    assert await (await station.client()).post("/api/auth/login", json={"password": PASSWORD})


async def test_one_joined_peer_per_session(station: ServiceHarness) -> None:
    guest = await station.guest("station", label="Grandma")
    first = await connect(guest)
    await first.join("station", "Grandma")
    second = await connect(guest)
    await second.join("station", "Grandma")
    await closed_with(first, "replaced")
    remotes = station.app[ROOMS].remotes("station")
    assert [p.id for p in remotes] == [second.peer_id]


async def test_sockets_per_session_are_capped(station: ServiceHarness) -> None:
    guest = await station.guest("station")
    sockets = [await connect(guest) for _ in range(signaling.MAX_SOCKETS_PER_SESSION)]
    with pytest.raises(WSServerHandshakeError) as refused:
        await guest.ws_connect("/ws/")
    assert refused.value.status == 429
    await sockets[0].ws.close()
    for _ in range(50):
        try:
            await guest.ws_connect("/ws/")
            break
        except WSServerHandshakeError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("a closed socket frees its slot")

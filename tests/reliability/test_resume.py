"""A call that `kill -9` interrupted resumes after the restart without ringing, for the
sessions that were in it and nobody else, and only shortly after start-up (issue #7).

A real `videostation serve` in a subprocess on loopback, killed with SIGKILL mid-call
and started again on the same port and state dir; clients are aiohttp sockets with
their own cookie jars (a session survives the restart, as a phone's cookie does) and,
for media, an aiortc peer.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from appliance.store import Store

from ..conftest import LiveStation, serve_command, start_live, stop_live, wait_healthy
from ..helpers import AiortcCaller, Client, Inbox, call_state, no_station_connect


def health(live: LiveStation) -> None:
    wait_healthy(live.base_url, proc=live.proc)


def kill_and_restart(live: LiveStation, *extra: str) -> float:
    """SIGKILL (no clean-up at all), then the same command again; returns the
    time.monotonic() at which the new service answered."""
    live.proc.send_signal(signal.SIGKILL)
    live.proc.wait(timeout=10)
    with open(live.log_path, "ab") as log:
        live.proc = subprocess.Popen(
            serve_command(live.state_dir, live.port, *extra), stdout=log, stderr=subprocess.STDOUT
        )
    health(live)
    return time.monotonic()


@asynccontextmanager
async def answered(
    tmp_path: Path, *extra: str
) -> AsyncIterator[tuple[LiveStation, Client, Client]]:
    """A live service, a kiosk and a guest ("Grandma") in an answered call with media."""
    live = start_live(tmp_path, *extra)
    clients: list[Client] = []
    try:
        kiosk = await Client.kiosk(live)
        clients.append(kiosk)
        guest = await Client.guest(live, "Grandma")
        clients.append(guest)
        k = await kiosk.join()
        g = await guest.join()
        await call_state(k, "ringing")
        await k.send(type="call", action="answer")
        caller = AiortcCaller(g)
        await caller.accept_station()
        await caller.frames("video", 2)
        await call_state(k, "in-call")
        await caller.close()
        yield live, kiosk, guest
    finally:
        for client in clients:
            await client.close()
        stop_live(live)


async def rejoin_after_restart(client: Client, *, resume: bool = True) -> Inbox:
    if client.ws is not None:
        await client.ws.ws.close()
    return await client.join(resume=resume)


def calls(live: LiveStation) -> list[tuple[str, float | None]]:
    db = sqlite3.connect(live.state_dir / "station.db")
    try:
        rows = db.execute("SELECT outcome, ended_at FROM calls ORDER BY id").fetchall()
    finally:
        db.close()
    return [(str(r[0]), r[1]) for r in rows]


async def test_a_killed_call_resumes_without_ringing_for_the_same_session(
    tmp_path: Path,
) -> None:
    async with answered(tmp_path) as (live, kiosk, guest):
        up = kill_and_restart(live)
        k = await rejoin_after_restart(kiosk, resume=False)  # the kiosk rejoins as ever
        g = await rejoin_after_restart(guest)
        caller = AiortcCaller(g)
        await caller.accept_station()
        call = await call_state(g, "in-call")
        assert [m["id"] for m in call["in_call"]] == [g.peer_id]
        assert not any(
            m["type"] == "call-state" and m["call"]["state"] == "ringing" for m in k.seen
        )
        frames = await caller.frames("video", 3)
        print(f"resumed, station video decoded {time.monotonic() - up:.1f} s after the restart")
        assert frames and not any(
            m["type"] == "call-state" and m["call"]["state"] == "ringing" for m in g.seen
        )
        # the same call goes on in the call log: one answered call, open again
        assert calls(live) == [("answered", None)]
        # a second crash of the resumed call resumes it again (the record was renewed)
        await caller.close()
        kill_and_restart(live)
        await rejoin_after_restart(kiosk)  # the call goes live again only with the screen
        g = await rejoin_after_restart(guest)
        await call_state(g, "in-call")
        # and the hang-up ends it for good
        await g.send(type="call", action="hangup")
        await call_state(g, "idle")
        outcomes = calls(live)
        assert len(outcomes) == 1 and outcomes[0][0] == "answered" and outcomes[0][1]


def short_window(tmp_path: Path, seconds: int = 3) -> str:
    config = tmp_path / "short-resume.toml"
    limits = "ring_cooldown_seconds = 0\nguest_rings_per_minute = 0\n"
    config.write_text(f"[call]\nresume_seconds = {seconds}\n{limits}")
    return str(config)


def rang(ws: Inbox) -> bool:
    return any(m["type"] == "call-state" and m["call"]["state"] == "ringing" for m in ws.seen)


async def test_another_guest_waits_out_the_window_then_rings(tmp_path: Path) -> None:
    """Within the window nobody but the interrupted call's people rings (their return
    must not join someone else's ring); after it, the other guest rings as usual."""
    config = short_window(tmp_path)
    async with answered(tmp_path, "--config", config) as (live, kiosk, _guest):
        kill_and_restart(live, "--config", config)
        k = await rejoin_after_restart(kiosk)
        intruder = await Client.guest(live, "Mallory")
        try:
            # it even claims to be resuming: its session was not in the call
            m = await intruder.join("Mallory", resume=True)
            await no_station_connect(m, 1.5)
            assert not rang(k)
            call = await call_state(k, "ringing", timeout=10)
            assert [c["name"] for c in call["callers"]] == ["Mallory"]
            assert call["live"] is False
            await no_station_connect(m, 1)
        finally:
            await intruder.close()


async def test_a_knocker_that_rejoins_first_stays_a_knocker(tmp_path: Path) -> None:
    """Issue 22, item 5: a guest knocked during the call (never let in). After the
    crash its page is back first; the answered guest then resumes. On the earlier
    code the knocker's rejoin rang, and the resuming guest joined that ring as a
    second caller: answering it would have connected the knocker."""
    async with answered(tmp_path) as (live, kiosk, guest):
        knocker = await Client.guest(live, "Knocker")
        try:
            kn = await knocker.join("Knocker")
            assert kiosk.ws is not None
            call = await call_state(kiosk.ws, "in-call")
            while not call["knocking"]:
                call = await call_state(kiosk.ws, "in-call")
            kill_and_restart(live)
            k = await rejoin_after_restart(kiosk)
            kn = await rejoin_after_restart(knocker)  # first back; it asks to resume too
            await asyncio.sleep(0.5)
            g = await rejoin_after_restart(guest)
            call = await call_state(g, "in-call")
            assert [m["id"] for m in call["in_call"]] == [g.peer_id]
            while [m["id"] for m in call["knocking"]] != [kn.peer_id]:
                call = await call_state(k, "in-call")
            assert not rang(k) and not rang(g)
            await no_station_connect(kn, 1.5)
        finally:
            await knocker.close()


async def test_a_guest_who_rings_and_gives_up_in_the_window_does_not_cancel_it(
    tmp_path: Path,
) -> None:
    """On the earlier code another guest's ring and hang-up in the window ended the
    "call" and with it the resume: the answered guest then had to ring again."""
    async with answered(tmp_path) as (live, kiosk, guest):
        kill_and_restart(live)
        k = await rejoin_after_restart(kiosk)
        other = await Client.guest(live, "Mallory")
        try:
            m = await other.join("Mallory")
            await m.send(type="call", action="hangup")
            await asyncio.sleep(0.5)
            g = await rejoin_after_restart(guest)
            call = await call_state(g, "in-call")
            assert [x["id"] for x in call["in_call"]] == [g.peer_id]
            assert not rang(k) and not rang(g)
        finally:
            await other.close()


async def test_a_resumed_call_waits_for_the_kiosk_screen(tmp_path: Path) -> None:
    """No camera or microphone goes out while the LIVE badge cannot show it: the
    returning guest waits until the kiosk is back (the earlier code resumed at once,
    media out with no screen). The wait ends the moment the screen joins."""
    async with answered(tmp_path) as (live, kiosk, guest):
        assert kiosk.ws is not None
        await kiosk.ws.ws.close()
        kill_and_restart(live)
        g = await rejoin_after_restart(guest)
        await no_station_connect(g, 2)
        assert not rang(g)
        k = await kiosk.join()
        caller = AiortcCaller(g)
        await caller.accept_station()
        call = await call_state(g, "in-call")
        assert [m["id"] for m in call["in_call"]] == [g.peer_id]
        assert await caller.frames("video", 2)
        assert not rang(k)
        await caller.close()


async def test_after_the_window_the_same_session_rings(tmp_path: Path) -> None:
    config = short_window(tmp_path, 2)
    async with answered(tmp_path, "--config", str(config)) as (live, kiosk, guest):
        kill_and_restart(live, "--config", str(config))
        k = await rejoin_after_restart(kiosk)
        await asyncio.sleep(3)
        g = await rejoin_after_restart(guest)
        call = await call_state(g, "ringing")
        assert [c["id"] for c in call["callers"]] == [g.peer_id] and call["live"] is False
        await no_station_connect(g, 1)
        assert (await call_state(k, "ringing"))["callers"][0]["name"] == "Grandma"


async def test_a_hang_up_before_the_crash_leaves_nothing_to_resume(tmp_path: Path) -> None:
    async with answered(tmp_path) as (live, _kiosk, guest):
        assert guest.ws is not None
        await guest.ws.send(type="call", action="hangup")
        await call_state(guest.ws, "idle")
        kill_and_restart(live)
        g = await rejoin_after_restart(guest)  # a page that asks to resume anyway
        call = await call_state(g, "ringing")
        assert call["live"] is False
        await no_station_connect(g, 2)


async def test_a_page_that_does_not_ask_to_resume_rings(tmp_path: Path) -> None:
    """A page that had left the call (it shows "Call ended") and rejoins rings, once
    the window is over."""
    config = short_window(tmp_path)
    async with answered(tmp_path, "--config", config) as (live, _kiosk, guest):
        kill_and_restart(live, "--config", config)
        g = await rejoin_after_restart(guest, resume=False)
        call = await call_state(g, "ringing")
        assert call["live"] is False


# -- the record itself -----------------------------------------------------------------


def test_the_resume_record_serves_once_and_goes_stale(tmp_path: Path) -> None:
    store = Store(tmp_path / "station.db")
    call_id = store.call_started("station", "Grandma")
    store.call_resumable(call_id, "station", "sid-1")
    store.call_resumable(call_id, "station", "sid-2")
    found = store.take_resumable(max_age=30)
    assert found is not None and found.sids == {"sid-1", "sid-2"} and found.call_id == call_id
    assert store.take_resumable(max_age=30) is None  # consumed
    # a record whose heartbeat stopped (a failed clean-up, a long outage) is not used
    store.call_resumable(call_id, "station", "sid-1")
    time.sleep(0.05)
    assert store.take_resumable(max_age=0.01) is None
    # records of two different calls (a clean-up that failed, then another call): none
    store.call_resumable(call_id, "station", "sid-1")
    store.call_resumable(call_id + 1, "station", "sid-2")
    assert store.take_resumable(max_age=30) is None
    store.close()


def test_a_record_that_cannot_be_consumed_is_not_used(tmp_path: Path) -> None:
    store = Store(tmp_path / "station.db")
    call_id = store.call_started("station", "Grandma")
    store.call_resumable(call_id, "station", "sid-1")
    store.close()
    readonly = Store.__new__(Store)
    readonly.path = tmp_path / "station.db"
    import threading

    readonly._db = sqlite3.connect(
        f"file:{readonly.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    readonly._db.row_factory = sqlite3.Row
    readonly._lock = threading.RLock()
    readonly.clock = store.clock
    with pytest.raises(sqlite3.OperationalError):
        readonly.take_resumable(max_age=30)
    readonly.close()


def test_the_join_codec_takes_resume_as_a_boolean_only() -> None:
    from appliance import protocol
    from appliance.errors import MalformedMessage

    frame = '{"type":"join","version":1,"room":"station","name":"G","resume":%s}'
    assert protocol.parse(frame % "true") == protocol.Join(1, "station", "G", resume=True)
    assert protocol.parse(frame % "false").resume is False
    for bad in ('"yes"', "1", "null"):
        with pytest.raises(MalformedMessage):
            protocol.parse(frame % bad)

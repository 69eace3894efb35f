"""What several test files share: the "skip on a laptop, fail under CI" rule, and the
fakes that stand in for browsers (one place, instead of test files importing each
other's helpers).

- :func:`skip_or_fail`: a missing dependency skips on a developer's machine and
  fails under ``CI=true``.
- :class:`WS` / :func:`connect`: a signaling client on a real WebSocket.
- :class:`AiortcCaller`, :func:`ringing_guest`, :func:`answered_call`: a caller made
  of aiortc that answers the station's offer and decodes its media.
- :class:`Viewer` / :class:`ViewerHub`: a station peer's viewer without signaling
  (offers and answers handed over in memory).
- :func:`station_health`: a station's health document, or None while it is down.
- :class:`Client` / :class:`Inbox` / :func:`call_state` / :func:`no_station_connect`:
  a browser's cookie jar and socket against a live ``videostation serve``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from appliance.media import StationPeers
from appliance.protocol import Description

if TYPE_CHECKING:
    from .conftest import LiveStation, ServiceHarness


def skip_or_fail(reason: str, *, module_level: bool = False) -> None:
    """Skip on a developer's machine; under CI a missing dependency is a failure
    (``module_level``: called while a test module is imported)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason, allow_module_level=module_level)


def cpu_snapshot() -> tuple[int, int]:
    """The whole machine's busy and total CPU time so far (jiffies, ``/proc/stat``)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:9]]  # noqa: SIM115
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def machine_load(
    before: tuple[int, int],
    after: tuple[int, int],
    load_average: tuple[float, float, float],
    *,
    cores: int,
) -> str:
    """How busy the machine was between two :func:`cpu_snapshot`, for a failure's report:
    a test that a busy machine can fail then says so.

    >>> machine_load((100, 1000), (250, 1200), (3.51, 2.0, 0.5), cores=2)
    'the machine was 75 % busy (2 cores) during the test; load average 3.5 / 2.0 / 0.5 at its end'
    """
    busy = (after[0] - before[0]) / max(1, after[1] - before[1])
    averages = " / ".join(f"{x:.1f}" for x in load_average)
    return (
        f"the machine was {busy:.0%} busy ({cores} cores) during the test; "
        f"load average {averages} at its end"
    ).replace("%", " %", 1)


def rss_kib(pid: int) -> int:
    """A process's resident memory (``VmRSS`` of ``/proc/<pid>/status``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def station_health(port: int) -> dict[str, object] | None:
    """``GET /api/health/`` of a station on loopback ``port``; None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=5) as resp:
            if resp.status == 200:
                return json.loads(resp.read())  # type: ignore[no-any-return]
    except (OSError, urllib.error.URLError, ValueError):
        pass
    return None


# --- signaling clients --------------------------------------------------------------


class WS:
    """A signaling client: a WebSocket plus a little inbox."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.peer_id = ""
        self.seen: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        assert msg.type == WSMsgType.TEXT, msg
        message = dict(json.loads(msg.data))
        self.seen.append(message)
        return message

    async def expect(self, type_: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
        """Read until a message of ``type_`` (matching ``match``) arrives."""
        while True:
            message = await self.recv(timeout)
            if message["type"] == type_ and all(message.get(k) == v for k, v in match.items()):
                return message

    async def join(self, room: str = "station", name: str = "Grandma") -> dict[str, Any]:
        await self.send(type="join", version=1, room=room, name=name)
        welcome = await self.expect("welcome")
        self.peer_id = welcome["peer_id"]
        return welcome


async def connect(client: TestClient, **headers: str) -> WS:
    return WS(await client.ws_connect("/ws/", headers=headers or None))


# --- an aiortc caller -------------------------------------------------------------


class AiortcCaller:
    """A remote participant made of aiortc: answers the station's offer, decodes media."""

    def __init__(self, ws: WS) -> None:
        self.ws = ws
        self.pc: RTCPeerConnection | None = None
        self.video: asyncio.Queue[Any] = asyncio.Queue()
        self.audio: asyncio.Queue[Any] = asyncio.Queue()
        self.pumps: set[asyncio.Future[None]] = set()

    async def accept_station(self) -> dict[str, Any]:
        """Wait for connect + offer from the station peer, answer it."""
        connect_msg = await self.ws.expect("connect", peer_id="station")
        offer = await self.ws.expect("signal", timeout=15)
        assert offer["from"] == "station" and offer["description"]["type"] == "offer"
        pc = self.pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track: Any) -> None:
            queue = self.video if track.kind == "video" else self.audio

            async def pump() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:
                        return
                    queue.put_nowait(frame)

            self.pumps.add(asyncio.ensure_future(pump()))

        await pc.setRemoteDescription(RTCSessionDescription(**offer["description"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.ws.send(
            type="signal",
            to="station",
            description={"type": "answer", "sdp": pc.localDescription.sdp},
        )
        return connect_msg

    async def frames(self, kind: str, count: int, timeout: float = 20) -> list[Any]:
        queue = self.video if kind == "video" else self.audio
        return [await asyncio.wait_for(queue.get(), timeout) for _ in range(count)]

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def ringing_guest(station: ServiceHarness, name: str = "Grandma") -> tuple[WS, WS]:
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    guest = await connect(await station.guest("station", label=name))
    welcome = await guest.join("station", name)
    assert welcome["call"]["state"] == "idle"  # joining is what rings:
    assert (await guest.expect("call-state"))["call"]["state"] == "ringing"
    ring = await kiosk.expect("call-state")
    assert ring["call"]["state"] == "ringing"
    assert [c["name"] for c in ring["call"]["callers"]] == [name]
    return kiosk, guest


async def answered_call(
    station: ServiceHarness, name: str = "Grandma"
) -> tuple[WS, WS, AiortcCaller]:
    """A guest rings, the kiosk answers, the guest's aiortc side decodes station video."""
    kiosk, guest = await ringing_guest(station, name)
    await kiosk.send(type="call", action="answer")
    caller = AiortcCaller(guest)
    await caller.accept_station()
    await caller.frames("video", 2)
    return kiosk, guest, caller


# --- a station peer's viewers, signaling in memory ----------------------------------


class Viewer:
    """A browser stand-in: answers the station's offers on a receive-only connection."""

    def __init__(
        self, peer_id: str, *, codecs: list[str] | None = None, own_remb: bool = True
    ) -> None:
        self.peer_id = peer_id
        self.codecs = codecs
        self.own_remb = own_remb
        """False: the answer drops abs-send-time, so aiortc's receiver sends no REMB of
        its own and the test's REMBs are the only estimate (as from one browser)."""
        self.pc: RTCPeerConnection | None = None
        self.tracks: dict[str, MediaStreamTrack] = {}
        self.sessions: list[int] = []
        self.got_track = asyncio.Event()

    def fresh(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        self.tracks = {}
        pc.on("track", self._on_track)
        if self.codecs is not None:  # a viewer that can decode only these
            transceiver = pc.addTransceiver("video", direction="recvonly")
            capabilities = RTCRtpReceiver.getCapabilities("video")
            assert capabilities is not None
            caps = capabilities.codecs
            transceiver.setCodecPreferences([c for c in caps if c.name in self.codecs])
        return pc

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.tracks[track.kind] = track
        self.got_track.set()

    async def answer(self, offer: Description, session: int) -> Description:
        if self.sessions and session != self.sessions[-1] and self.pc is not None:
            await self.pc.close()  # a new session: drop the old connection
            self.pc = None
        self.sessions.append(session)
        self.pc = self.pc or self.fresh()
        await self.pc.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        local = self.pc.localDescription
        sdp = local.sdp
        if not self.own_remb:
            sdp = "".join(
                line for line in sdp.splitlines(keepends=True) if "abs-send-time" not in line
            )
        return Description("answer", sdp)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


class ViewerHub:
    """The in-memory transport: offers go to viewers, answers come back as signals."""

    def __init__(self) -> None:
        self.viewers: dict[str, Viewer] = {}
        self.peers: StationPeers | None = None
        self.offers: list[tuple[str, Description, int]] = []
        self.closed: list[str] = []
        self.auto = True
        """Deliver offers and answers by itself (False: the test does it)."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, peer_id: str, offer: Description, session: int) -> None:
        self.offers.append((peer_id, offer, session))
        if not self.auto:
            return
        task = asyncio.create_task(self._deliver(peer_id, offer, session))
        self._tasks.add(task)

    async def _deliver(self, peer_id: str, offer: Description, session: int) -> None:
        answer = await self.viewers[peer_id].answer(offer, session)
        assert self.peers is not None
        await self.peers.handle_signal(peer_id, answer)

    async def settle(self) -> None:
        await asyncio.gather(*self._tasks)
        self._tasks.clear()

    def on_closed(self, peer_id: str) -> None:
        self.closed.append(peer_id)


# --- a browser against a live service ------------------------------------------------


class Inbox(WS):
    """A signaling client that remembers how far call_state has read."""

    read = 0


class Client:
    """One browser's worth of state: a cookie jar and at most one signaling socket."""

    def __init__(self, live: LiveStation) -> None:
        self.live = live
        self.http = aiohttp.ClientSession(
            base_url=live.base_url,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
            headers={"Origin": live.base_url},
        )
        self.ws: Inbox | None = None

    @classmethod
    async def guest(cls, live: LiveStation, label: str) -> Client:
        link = live.guest_link(label=label)
        token = parse_qs(urlsplit(urlsplit(link).fragment).query)["guest_token"][0]
        client = cls(live)
        resp = await client.http.post("/api/auth/guest", json={"guest_token": token})
        assert resp.status == 200, await resp.text()
        return client

    @classmethod
    async def kiosk(cls, live: LiveStation) -> Client:
        client = cls(live)
        key = (live.state_dir / "kiosk.key").read_text().strip()
        resp = await client.http.post("/api/auth/kiosk", json={"key": key})
        assert resp.status == 200, await resp.text()
        return client

    async def join(self, name: str = "Grandma", *, resume: bool = False) -> Inbox:
        self.ws = Inbox(await self.http.ws_connect("/ws/"))
        message: dict[str, Any] = {"type": "join", "version": 1, "room": "station", "name": name}
        if resume:
            message["resume"] = True
        await self.ws.send(**message)
        welcome = await self.ws.expect("welcome")
        self.ws.peer_id = welcome["peer_id"]
        return self.ws

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.ws.close()
        await self.http.close()


async def call_state(ws: Inbox, state: str, timeout: float = 10) -> dict[str, Any]:
    """The next call-state in ``state``, read or not yet read by other helpers."""
    deadline = time.monotonic() + timeout
    while True:
        while ws.read < len(ws.seen):
            message = ws.seen[ws.read]
            ws.read += 1
            if message["type"] == "call-state" and message["call"]["state"] == state:
                return dict(message["call"])
        await ws.recv(timeout=max(0.01, deadline - time.monotonic()))


async def no_station_connect(ws: WS, seconds: float) -> None:
    """Nothing from the station reaches ``ws`` for ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await ws.recv(timeout=left)
        except TimeoutError:
            return
        assert not (message["type"] == "connect" and message.get("peer_id") == "station"), message
        assert message.get("from") != "station", message


# --- mDNS names nobody answers for ---------------------------------------------------


def unanswered_mdns(monkeypatch: Any) -> list[str]:
    """aioice's mDNS resolver replaced by one that waits its timeout (1 s) and finds
    nothing, sending nothing off the machine (a browser hiding its addresses behind
    ``<uuid>.local`` names on a network without their responder). Returns the names
    looked up, in order."""
    import aioice.ice

    looked_up: list[str] = []

    class Unanswered:
        async def resolve(self, hostname: str, timeout: float | None = 1.0) -> str | None:
            looked_up.append(hostname)
            await asyncio.sleep(timeout or 0)
            return None

    async def resolver(subscriber: object) -> Unanswered:
        return Unanswered()

    async def unref(subscriber: object) -> None:
        return None

    monkeypatch.setattr(aioice.ice, "get_or_create_mdns_protocol", resolver)
    monkeypatch.setattr(aioice.ice, "unref_mdns_protocol", unref)
    return looked_up

"""Hypothesis drives the real call state machine (`appliance.call.CallMachine`) with a fake
media peer: rings, answers, declines, hang-ups, timeouts, knocks, admits, refusals and
station signals (restarts) race each other; the service is killed (kill -9) and
started again, and anyone may ask to resume. Invariant: media flows only to peers the
household answered or let in for the call in progress (and the screen during a call),
or that were in the call a crash interrupted; the camera and microphone are closed
whenever the station is idle."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from appliance import errors, protocol
from appliance.admission import MAX_KNOCKERS
from appliance.call import CallMachine
from appliance.clock import FakeClock
from appliance.rooms import Peer, Rooms
from appliance.store import Store


class FakeMedia:
    """Stands in for StationPeers: ``open`` awaits (like ICE gathering) and honours
    ``close_all`` the way the real one must."""

    def __init__(self) -> None:
        self.open_peers: set[str] = set()
        self.epoch = 0
        self.muted = (False, False)
        self.prepared = 0

    async def open(self, peer_id: str, *, audio: bool, video: bool = True) -> None:
        epoch = self.epoch
        self.open_peers.discard(peer_id)
        await asyncio.sleep(0)
        if epoch != self.epoch:
            return
        self.open_peers.add(peer_id)
        await asyncio.sleep(0)

    async def handle_signal(self, peer_id: str, payload: protocol.SignalPayload) -> None:
        if peer_id not in self.open_peers:
            raise errors.UnknownPeer(peer_id)
        if isinstance(payload, protocol.Restart):
            await self.open(peer_id, audio=True)
        else:
            await asyncio.sleep(0)

    async def close(self, peer_id: str) -> None:
        self.open_peers.discard(peer_id)
        await asyncio.sleep(0)

    async def close_all(self) -> None:
        self.epoch += 1
        self.open_peers.clear()
        await asyncio.sleep(0)

    def set_muted(self, *, audio: bool, video: bool) -> None:
        self.muted = (audio, video)

    def take_level(self) -> float | None:
        return None

    def prepare(self) -> None:
        self.prepared += 1

    @property
    def live(self) -> bool:
        return bool(self.open_peers)

    @property
    def unreached(self) -> frozenset[str]:
        return frozenset()


class RecordingStation(CallMachine):
    """The real CallMachine; records whom the household let in, at the moment it does
    (under the call lock), so the invariant can check media against it."""

    authorized: set[str]

    async def _answer(self) -> None:
        self.authorized |= {p.id for p in self.callers}
        await super()._answer()

    async def _end(self, *args: Any, **kwargs: Any) -> None:
        # An ended call authorizes no one any more: not after a restart either.
        self.authorized.clear()
        await super()._end(*args, **kwargs)

    async def _leave_call(self, peer: Peer, *, notify_self: bool) -> None:
        self.authorized.discard(peer.id)
        await super()._leave_call(peer, notify_self=notify_self)

    async def _ring(self, peer: Peer) -> None:
        if self.state == "in-call" and peer.role == "user":
            self.authorized.add(peer.id)
        await super()._ring(peer)


async def _deliver(message: dict[str, Any]) -> None:
    await asyncio.sleep(0)


GUESTS = [f"g{i}" for i in range(4)]
ACTIONS = st.sampled_from(
    [
        "join",
        "leave",
        "ring",
        "hangup",
        "restart",
        "answer",
        "decline",
        "kiosk_hangup",
        "admit",
        "refuse",
        "button",
        "timeout",
        "user_join",
        "resume_join",
    ]
)


class CallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = TemporaryDirectory()
        self.clock = FakeClock(wall=1_800_000_000.0)
        """The wall clock jumps (a Pi without a clock battery), time passes."""
        self.passed = 0.0
        self.store = Store(Path(self.tmp.name) / "station.db", clock=self.clock)
        self.store.ensure_station_room("station", "Station")
        self.authorized: set[str] = set()
        self._start()

    def _start(self) -> None:
        """The service starts (again): a fresh station, rooms and media peer over
        the same database."""
        self.rooms = Rooms(max_remotes=8)
        self.media = FakeMedia()
        self.station = RecordingStation(
            room="station",
            rooms=self.rooms,
            store=self.store,
            media=self.media,
            ring_timeout=3600,
            clock=self.clock,
            ring_cooldown=10,  # the shipped limits: guests wait between unanswered rings
            guest_rings_per_minute=6,
        )
        self.station.authorized = self.authorized
        self.peers: dict[str, Peer] = {}
        self.screen = Peer("screen", "station", "Station", "kiosk", "screen", _deliver)
        self.rooms.add(self.screen)

        async def evict(peer: Peer, reason: str) -> None:
            await self._leave(peer.id)

        self.station.on_evict(evict)

    # -- the moves ------------------------------------------------------------------

    async def _leave(self, name: str) -> None:
        peer = self.peers.pop(name, None)
        if peer is not None and self.rooms.remove(peer):
            await self.station.remote_left(peer)

    async def _do(self, action: str, name: str) -> None:
        st_ = self.station
        peer = self.peers.get(name)
        if action in ("join", "user_join", "resume_join"):
            if peer is None:
                role = "user" if action == "user_join" else "guest"
                peer = Peer(
                    name,
                    "station",
                    name,
                    role,
                    "remote",
                    _deliver,
                    sid=f"sid-{name}",
                    resume=action == "resume_join",  # an attacker may ask too
                )
                self.peers[name] = peer
                self.rooms.add(peer)
                await st_.remote_joined(peer)
        elif action == "leave":
            await self._leave(name)
        elif action in ("ring", "hangup") and peer is not None:
            await st_.action(peer, action)
        elif action == "restart" and peer is not None:
            await st_.signal(peer, protocol.Restart())
        elif action == "answer":
            await st_.action(self.screen, "answer")
        elif action == "decline":
            await st_.action(self.screen, "decline")
        elif action == "kiosk_hangup":
            await st_.action(self.screen, "hangup")
        elif action == "admit":
            self.authorized.add(name)
            await st_.action(self.screen, "admit", name)
        elif action == "refuse":
            await st_.action(self.screen, "refuse", name)
        elif action == "button":
            # the button answers a ring but never admits a knocker
            await st_.button_pressed()
        elif action == "timeout" and st_.state == "ringing":
            st_.ring_timeout = 0  # the ring timer's own code, expiring now
            await st_._ring_timeout()

    async def _safe(self, action: str, name: str) -> None:
        with contextlib.suppress(errors.VideoStationError):
            await self._do(action, name)

    @rule(action=ACTIONS, name=st.sampled_from(GUESTS))
    def one(self, action: str, name: str) -> None:
        self.loop.run_until_complete(self._safe(action, name))

    @rule(moves=st.lists(st.tuples(ACTIONS, st.sampled_from(GUESTS)), min_size=2, max_size=4))
    def racing(self, moves: list[tuple[str, str]]) -> None:
        async def race() -> None:
            await asyncio.gather(*(self._safe(a, n) for a, n in moves))

        self.loop.run_until_complete(race())

    @rule(audio=st.booleans(), video=st.booleans())
    def kiosk_mutes(self, audio: bool, video: bool) -> None:
        """The kiosk's mute / camera off: refused outside a call, never opens media."""

        async def mute() -> None:
            with contextlib.suppress(errors.CallStateError):
                await self.station.station_media(self.screen, audio_muted=audio, video_muted=video)

        self.loop.run_until_complete(mute())

    @rule(grace=st.sampled_from([0.0, 3600.0]))
    def crash(self, grace: float) -> None:
        """kill -9 and a restart: nothing of the old process runs again; every socket
        is gone; the new station may resume the interrupted call (``grace`` 0: the
        window has passed before anyone is back)."""

        async def crash() -> None:
            was_in = {p.id for p in self.station.in_call}
            for task in asyncio.all_tasks(self.loop):
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0)
            # Only those who were in the answered call may come back to it.
            self.authorized &= was_in
            self._start()
            self.station.restore(grace=grace)

        self.loop.run_until_complete(crash())

    @rule(days=st.sampled_from([-30, -2, 2, 30]))
    def clock_jumps(self, days: int) -> None:
        """Network time arrives (or the clock was set by hand): the wall clock moves by
        days, the monotonic clock does not."""
        self.clock.jump(days * 86400)

    @rule(seconds=st.sampled_from([1.0, 3601.0]))
    def time_passes(self, seconds: float) -> None:
        """Both clocks move (3601 s: past a resume window of 3600)."""
        self.clock.advance(seconds)
        self.passed += seconds

    # -- the promise ------------------------------------------------------------------

    @invariant()
    def the_log_keeps_true_lengths(self) -> None:
        """However the wall clock jumped, a call in the log lasted no longer than the
        time that really passed, and was answered between its start and its end."""
        for row in self.store.list_calls(limit=1000):
            end = row.ended_at if row.ended_at is not None else row.started_at
            assert 0 <= end - row.started_at <= self.passed + 1, row
            if row.answered_at is not None:
                assert row.started_at <= row.answered_at <= end or row.ended_at is None, row

    @invariant()
    def no_guest_rings_while_it_must_wait(self) -> None:
        """A guest whose ring or knock went unanswered is not ringing or knocking again
        before its cooldown is over, and at most MAX_KNOCKERS knock."""
        st_ = self.station
        now = self.clock.monotonic()
        for peer in [*st_.callers, *st_.knocking]:
            cooling = st_.gate._sessions.get(peer.sid)
            assert peer.role != "guest" or cooling is None or cooling.until <= now, peer.id
        assert len(st_.knocking) <= MAX_KNOCKERS

    @invariant()
    def media_only_to_the_invited(self) -> None:
        # let scheduled background work (evictions, media_changed) settle first
        self.loop.run_until_complete(asyncio.sleep(0))
        st_ = self.station
        open_ = set(self.media.open_peers)
        assert open_ <= self.authorized | {self.screen.id}, (open_, self.authorized)
        assert not open_ & {p.id for p in st_.knocking}
        if st_.state != "in-call":
            assert not open_, (st_.state, open_)
            assert not st_.live
            # a mute never outlives its call: the next one starts with everything on
            assert self.media.muted == (False, False), self.media.muted
            assert not (st_.audio_muted or st_.video_muted)
        for peer in st_.in_call:
            assert peer.id in self.authorized or peer.role == "user"

    def teardown(self) -> None:
        self.loop.run_until_complete(self.station.close())
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
        self.store.close()
        self.tmp.cleanup()


CallMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
test_call_state_machine = CallMachine.TestCase

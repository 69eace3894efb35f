"""The station's call state machine: idle → ringing → in call → idle.

It decides when the station's camera and microphone are sent (only in a call),
which browsers connect to which, and what goes into the call log. Hardware (LEDs,
screen power, systemd status) follows it through ``observers``: each is called with
the call object after every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Protocol

from .admission import MAX_KNOCKERS, RING_COOLDOWN, RINGS_PER_ADDRESS, RingGate
from .clock import SYSTEM_CLOCK, Clock
from .errors import CallStateError, Forbidden, NotConnected, RingWait, UnknownPeer
from .logs import with_ids
from .protocol import (
    ByeReason,
    CallObject,
    CallState,
    Disconnect,
    MicLevel,
    PeerUpdated,
    SignalPayload,
)
from .quiet import QuietHours, QuietMode
from .resume import RESUME_GRACE, Resume
from .rooms import STATION_PEER_ID, Peer, Rooms, connect_to_station
from .store import Store

log = logging.getLogger(__name__)

State = Literal["idle", "ringing", "in-call"]
Ended = Literal["hangup", "declined", "missed", "cancelled", "quiet"]
Observer = Callable[[CallObject], None]
Evict = Callable[[Peer, ByeReason], Coroutine[Any, Any, None]]
Connecting = Callable[[Peer], Coroutine[Any, Any, None]]

LEVEL_INTERVAL = 0.125
"""Seconds between two ``mic-level`` messages to the kiosk (8 per second, in a call only)."""


class MediaPeers(Protocol):
    """The station's media peer (appliance.media.peer.StationPeers)."""

    def prepare(self) -> None: ...
    async def open(self, peer_id: str, *, audio: bool, video: bool = True) -> None: ...
    async def handle_signal(self, peer_id: str, payload: SignalPayload) -> None: ...
    async def close(self, peer_id: str) -> None: ...
    async def close_all(self) -> None: ...
    def set_muted(self, *, audio: bool, video: bool) -> None: ...
    def take_level(self) -> float | None: ...

    @property
    def live(self) -> bool: ...

    @property
    def unreached(self) -> frozenset[str]: ...


class CallMachine:
    """The station's call state machine: one call at a time, in the room ``room``.

    Example::

        station = CallMachine(room="station", rooms=rooms, store=store, media=peers)
        await station.remote_joined(peer)      # rings
        await station.local_action("answer")   # the button or the kiosk
    """

    def __init__(
        self,
        *,
        room: str,
        rooms: Rooms,
        store: Store,
        media: MediaPeers,
        ring_timeout: float = 45,
        auto_answer: bool = False,
        auto_answer_delay: float = 5,
        auto_answer_links: tuple[str, ...] = (),
        quiet: QuietMode | None = None,
        clock: Clock = SYSTEM_CLOCK,
        ring_cooldown: float = RING_COOLDOWN,
        guest_rings_per_minute: int = RINGS_PER_ADDRESS,
    ) -> None:
        self.room = room
        self.clock = clock
        self._anchor: tuple[float, float] | None = None
        """(wall, monotonic) when the call began ringing (or resumed): the log's times
        are counted from it on the monotonic clock, so a jump of the wall clock neither
        ends a call nor makes it last days."""
        self.log = with_ids(log, room_id=room)
        """Every line carries ``room_id``; a line about one peer adds its ``peer_id``."""
        self.rooms = rooms
        self.store = store
        self.media = media
        self.ring_timeout = ring_timeout
        self.auto_answer = auto_answer
        self.auto_answer_delay = auto_answer_delay
        self.auto_answer_links = frozenset(auto_answer_links)
        """Guest links (jti) answered like the household, after the countdown: the
        household chose them in Settings (one per family member)."""
        self.quiet = quiet or QuietMode(QuietHours())
        """Do not disturb (quiet hours or the kiosk's toggle): a ring is logged missed
        and the caller told until when."""
        self.state: State = "idle"
        self.callers: list[Peer] = []
        self.in_call: list[Peer] = []
        self.knocking: list[Peer] = []
        """Guests who came while a call ran: nothing flows to or from them until let in."""
        self.since = clock.now()
        self.ring_timeout_at: float | None = None
        self.auto_answer_at: float | None = None
        self.ended: Ended | None = None
        self.observers: list[Observer] = []
        self._call_id: int | None = None
        self._timer: asyncio.Task[None] | None = None
        self._auto: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._evict_subscribers: list[Evict] = []
        self._connecting_subscribers: list[Connecting] = []
        self.store_errors = 0
        """Call-log writes that failed (disk full, read-only): the call went on anyway."""
        self.last_store_error = ""
        """Why the last of them failed, e.g. "database or disk is full"."""
        self.store_failing = False
        """The last call-log write failed (cleared by the next one that works, or when
        health finds the database writable again)."""
        self.resume = Resume(
            room=room,
            store=store,
            clock=clock,
            log=self.log,
            record=self._record,
            failed=self._store_failed,
        )
        """The record of the call in progress, and the window after a crash."""
        self.held: list[Peer] = []
        """Peers waiting while a resume window is open (see Resume.verdict): they
        neither ring nor connect until the call resumes or the window closes."""
        self._window_timer: asyncio.Task[None] | None = None
        self.gate = RingGate(
            clock=clock, cooldown=ring_cooldown, per_address=guest_rings_per_minute
        )
        """How often a guest may ring or knock (admission.py)."""
        self.live_led = False
        """A live LED is fitted (GPIO): it shows the camera is on without the screen."""
        self.audio_muted = False
        """The kiosk muted the station's microphone (this call only: reset at its end)."""
        self.video_muted = False
        """The kiosk turned the station's camera off (this call only)."""
        self._meter: asyncio.Task[None] | None = None
        self._quiet_told = self.quiet.state()
        """Do not disturb as the pages last heard it (on, until)."""

    # -- views ------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self.media.live

    def as_object(self) -> CallObject:
        """The call as the wire's ``CallObject`` (``call-state``, ``welcome``, the API)."""
        quiet, quiet_until = self.quiet.state()
        unreached = self.media.unreached
        return {
            "state": self.state,
            "callers": [{"id": p.id, "name": p.name} for p in self.callers],
            "in_call": [{"id": p.id, "name": p.name} for p in self.in_call],
            "knocking": [{"id": p.id, "name": p.name} for p in self.knocking],
            "live": self.live,
            "unreached": [p.id for p in self.in_call if p.id in unreached],
            "since": self.since,
            "ring_timeout_at": self.ring_timeout_at,
            "auto_answer_at": self.auto_answer_at,
            "ended": self.ended,
            "quiet": quiet,
            "quiet_until": quiet_until,
            "audio_muted": self.audio_muted,
            "video_muted": self.video_muted,
        }

    def status_line(self) -> str:
        """For systemd's STATUS=: "idle", "ringing: Grandma", "in call with 2"."""
        if self.state == "ringing":
            return "ringing: " + ", ".join(p.name for p in self.callers)
        if self.state == "in-call":
            return f"in call with {len(self.in_call)}"
        return "idle"

    async def _changed(self) -> None:
        call = self.as_object()
        self._quiet_told = (call["quiet"], call["quiet_until"])
        await self.rooms.broadcast(self.room, CallState(call))
        for observer in list(self.observers):
            try:
                observer(call)
            except Exception:
                self.log.exception("call observer failed")

    def media_changed(self) -> None:
        """The media peer dropped a connection by itself (ICE failed): tell everyone.
        Scheduled, not awaited, because the media peer may call this while we hold the lock."""
        task = asyncio.get_running_loop().create_task(self._changed_locked())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def settings_changed(self) -> None:
        """Do not disturb was switched: everyone gets the new call state (scheduled)."""
        self.media_changed()

    async def watch_quiet(self, every: float) -> None:
        """Tells every page when do not disturb turns by the clock (the quiet hours
        begin or end, the kiosk's choice runs out): looks every ``every`` seconds. The
        observers are not told: no call changed, the screen is not woken for it."""
        while True:
            await asyncio.sleep(every)
            try:
                if self.quiet.state() == self._quiet_told:
                    continue
                async with self._lock:
                    call = self.as_object()
                    self._quiet_told = (call["quiet"], call["quiet_until"])
                    self.log.info("do not disturb: %s", "on" if call["quiet"] else "off")
                    await self.rooms.broadcast(self.room, CallState(call))
            except Exception:  # the watch goes on: a stopped one would leave pages wrong
                self.log.exception("do not disturb: the pages were not told")

    async def _changed_locked(self) -> None:
        async with self._lock:
            await self._changed()

    # -- events from the room ---------------------------------------------------------

    def caller_expected(self, room: str | None) -> None:
        """Someone got a session for ``room`` (traded a guest link or the kiosk's code):
        if it is the station's, the media stack starts loading now, so their ring finds
        it ready."""
        if room == self.room and not self.quiet.on:
            self.media.prepare()

    async def remote_joined(self, peer: Peer) -> None:
        async with self._lock:
            self._admit_ring(peer)
            await self._ring(peer)

    def _admit_ring(self, peer: Peer) -> None:
        """A new ring or knock from ``peer`` (not a resume): raises RingWait while its
        cooldown or its address's budget says wait; the attempt is counted on the
        call-log row of the ring that started the wait, so it adds no row."""
        if (
            self.resume.is_open()
            and self.resume.verdict(peer, state=self.state, call_id=self._call_id, indicator=True)
            == "resume"
        ):
            return
        try:
            self.gate.check(peer)
        except RingWait as exc:
            self.log.info("ring refused: wait %d s", exc.retry_after, extra={"peer_id": peer.id})
            if exc.call_id is not None:
                self._record(self.store.call_attempted, exc.call_id)
            raise

    async def remote_left(self, peer: Peer) -> None:
        async with self._lock:
            if peer in self.held:
                self.held.remove(peer)
            elif peer in self.knocking:
                self.knocking.remove(peer)
                self.gate.unanswered(peer, None)
                await self._changed()
            elif peer in self.callers:
                self.callers.remove(peer)
                self.gate.unanswered(peer, self._call_id)
                if not self.callers:
                    await self._end("cancelled", outcome="missed")
                    return
                await self._changed()
            elif peer in self.in_call:
                await self._leave_call(peer, notify_self=False)

    async def screen_joined(self, screen: Peer) -> None:
        async with self._lock:
            was = self.state
            if self.held:  # a resume may have waited for the screen (it connects it)
                await self._retry_held()
            if self.state == "in-call" and was == "in-call":
                if self.audio_muted or self.video_muted:  # a reloaded kiosk, still muted
                    await self._apply_muted(self.audio_muted, self.video_muted)
                await self._connect_screen(screen)

    async def station_media(self, sender: Peer, *, audio_muted: bool, video_muted: bool) -> None:
        """The kiosk mutes the station's microphone (callers hear silence) and/or turns
        its camera off (callers see black), or undoes it. Only in a call, only from the
        screen; it opens nothing, so it can never send media before an answer. Callers
        see it on the screen peer's ``muted`` (``peer-updated``) and in ``call-state``."""
        if sender.kind != "screen":
            raise Forbidden("Only the station's own screen mutes the station.")
        async with self._lock:
            if self.state != "in-call":
                raise CallStateError("The station is not in a call.")
            self.log.info(
                "station media: microphone %s, camera %s",
                "muted" if audio_muted else "on",
                "off" if video_muted else "on",
            )
            await self._apply_muted(audio_muted, video_muted)
            await self._changed()

    async def _apply_muted(self, audio_muted: bool, video_muted: bool) -> None:
        """Media first (privacy), then the screen peer's roster entry for everyone."""
        self.audio_muted, self.video_muted = audio_muted, video_muted
        self.media.set_muted(audio=audio_muted, video=video_muted)
        screen = self.rooms.screen(self.room)
        if screen is not None:
            screen.audio_muted, screen.video_muted = audio_muted, video_muted
            await self.rooms.broadcast(self.room, PeerUpdated(screen.as_object()), exclude=[screen])

    async def _report_level(self) -> None:
        """While in a call: the level of what the station sends, to the kiosk only."""
        while True:
            await asyncio.sleep(LEVEL_INTERVAL)
            level = self.media.take_level()
            screen = self.rooms.screen(self.room)
            if screen is not None and self.state == "in-call":
                muted = self.audio_muted
                await screen.send(MicLevel(None if muted else level, muted=muted))

    def _stop_meter(self) -> None:
        meter, self._meter = self._meter, None
        if meter is not None and meter is not asyncio.current_task():
            meter.cancel()

    async def screen_left(self, screen: Peer) -> None:
        async with self._lock:
            await self.media.close(screen.id)
            await self._changed()

    async def signal(self, sender: Peer, payload: SignalPayload) -> None:
        """A browser's signaling message for the station peer.

        Handled under the call lock, so a ``restart`` cannot open a fresh station
        connection while a hang-up is closing them all."""
        async with self._lock:
            if not self._connected_to_station(sender):
                raise NotConnected("The station is not in a call with you.")
            await self.media.handle_signal(sender.id, payload)
            if not self._connected_to_station(sender):  # the call ended meanwhile
                await self.media.close(sender.id)

    def _connected_to_station(self, peer: Peer) -> bool:
        if self.state != "in-call":
            return False
        return peer in self.in_call or peer is self.rooms.screen(self.room)

    # -- actions ----------------------------------------------------------------------

    async def action(self, sender: Peer, action: str, target: str | None = None) -> None:
        """A `call` message from a browser in the station room (``target``: the
        knocking peer of ``admit``/``refuse``)."""
        if action in ("admit", "refuse"):
            if sender.kind != "screen":
                raise Forbidden("Only the station lets people in.")
            await self.answer_knock(target, admit=action == "admit")
            return
        if sender.kind == "screen":
            if action not in ("answer", "decline", "hangup"):
                raise Forbidden("The kiosk answers, declines or hangs up.")
            await self.local_action(action)
            return
        if sender.kind != "remote":
            raise Forbidden()
        async with self._lock:
            if action == "ring":
                if sender in (*self.callers, *self.in_call, *self.knocking, *self.held):
                    raise CallStateError("You are already calling.")
                self._admit_ring(sender)
                await self._ring(sender)
            elif action == "hangup":
                if sender in self.held:
                    self.held.remove(sender)
                elif sender in self.knocking:
                    self.knocking.remove(sender)
                    self.gate.unanswered(sender, None)
                    await self._changed()
                elif sender in self.callers:
                    self.callers.remove(sender)
                    self.gate.unanswered(sender, self._call_id)
                    if not self.callers:
                        await self._end("cancelled", outcome="missed")
                    else:
                        await self._changed()
                elif sender in self.in_call:
                    await self._leave_call(sender, notify_self=True)
                else:
                    raise CallStateError("You are not in a call.")
            else:
                raise Forbidden("Only the station answers or declines.")

    async def local_action(self, action: str) -> None:
        """An action at the station itself: the kiosk's buttons or the GPIO button."""
        async with self._lock:
            if action == "answer":
                if self.state != "ringing":
                    raise CallStateError("Nothing to answer.")
                await self._answer()
            elif action == "decline":
                if self.state != "ringing":
                    raise CallStateError("Nothing to decline.")
                await self._end("declined", outcome="declined")
            elif action == "hangup":
                if self.state == "ringing":
                    await self._end("declined", outcome="declined")
                elif self.state == "in-call":
                    await self._end("hangup")
                else:
                    raise CallStateError("No call to hang up.")
            else:
                raise Forbidden("The station cannot do that.")

    async def answer_knock(self, peer_id: str | None, *, admit: bool) -> None:
        """The kiosk lets a knocking guest in, or sends it away (``bye`` ``refused``)."""
        async with self._lock:
            if self.state != "in-call":
                raise CallStateError("Nobody knocks outside a call.")
            peer = next((p for p in self.knocking if p.id == peer_id), None)
            if peer is None:
                raise UnknownPeer(f"No one knocking with id {str(peer_id)[:64]!r}.")
            self.knocking.remove(peer)
            if admit:
                self.log.info("let in", extra={"peer_id": peer.id})
                self.gate.answered(peer)
                self.in_call.append(peer)
                self._persist_resumable(peer)
                await self._changed()
                await self._connect_remote(peer)
                return
            self.log.info("refused", extra={"peer_id": peer.id})
            self.gate.unanswered(peer, None)
            await self._changed()
            self._spawn_evict(peer, "refused")

    def on_evict(self, subscriber: Evict) -> None:
        """Call ``subscriber(peer, reason)`` when the call sends someone away (a
        knocker refused): the signaling hub says ``bye`` and closes their socket."""
        self._evict_subscribers.append(subscriber)

    def on_connecting(self, subscriber: Connecting) -> None:
        """Await ``subscriber(peer)`` before a remote is told to connect to the call
        (answered, let in, resumed): the hub sends a knocker its relay then."""
        self._connecting_subscribers.append(subscriber)

    async def _connecting(self, peer: Peer) -> None:
        for subscriber in self._connecting_subscribers:
            try:
                await subscriber(peer)
            except Exception:
                self.log.exception("connecting subscriber failed", extra={"peer_id": peer.id})

    def _spawn_evict(self, peer: Peer, reason: ByeReason) -> None:
        """Close ``peer``'s socket after the lock is released (leaving takes the lock)."""
        for evict in self._evict_subscribers:
            task = asyncio.get_running_loop().create_task(evict(peer, reason))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def button_pressed(self) -> None:
        """Short press: answer a ring, otherwise nothing (it never lets a knocker in)."""
        with contextlib.suppress(CallStateError):
            await self.local_action("answer")

    async def button_held(self) -> None:
        """Long press: decline a ring or hang up a call."""
        with contextlib.suppress(CallStateError):
            await self.local_action("hangup")

    # -- transitions (called with the lock held) --------------------------------------

    async def _ring(self, peer: Peer) -> None:
        verdict = self.resume.verdict(
            peer, state=self.state, call_id=self._call_id, indicator=self._indicator()
        )
        if verdict == "resume":
            await self._resume_call(peer)
            return
        if verdict == "wait":
            if peer not in self.held:
                self.log.info("waiting for the interrupted call", extra={"peer_id": peer.id})
                self.held.append(peer)
            self._watch_window()
            return
        if self.state == "in-call":
            if peer.role == "user":  # the household joins at once; the kiosk announces it
                self.in_call.append(peer)
                self._persist_resumable(peer)
                await self._changed()
                await self._connect_remote(peer)
            else:
                if len(self.knocking) >= MAX_KNOCKERS:
                    raise RingWait(60)
                self.log.info("knocking", extra={"peer_id": peer.id})
                self.knocking.append(peer)
                await self._changed()
            return
        if self.state == "idle" and self.quiet.on:
            row = self.gate.quiet_row(peer)
            if row is not None:  # rang in quiet hours a moment ago: no new row
                self.log.info("quiet: not ringing, again", extra={"peer_id": peer.id})
                self._record(self.store.call_attempted, row)
                self.ended = "quiet"
                await self._changed()
                return
        self.callers.append(peer)
        if self.state == "idle":
            self.state = "ringing"
            self._anchor = (self.clock.now(), self.clock.monotonic())
            self.since = self._anchor[0]
            self.ended = None
            self.ring_timeout_at = self.since + self.ring_timeout
            self._timer = asyncio.create_task(self._ring_timeout(), name="ring-timeout")
            self.log.info("ringing", extra={"peer_id": peer.id})
            self._call_id = self._record(
                self.store.call_started, self.room, peer.name, at=self.since
            )
            if self.quiet.on:  # no ring, no screen wake-up: logged missed, the caller told
                self.log.info("quiet: not ringing", extra={"peer_id": peer.id})
                await self._end("quiet", outcome="missed")
                return
            self.media.prepare()
        if self._answers_itself(peer) and self._auto is None:
            self.auto_answer_at = self.clock.now() + self.auto_answer_delay
            self._auto = asyncio.create_task(self._auto_answer(), name="auto-answer")
        await self._changed()

    def _answers_itself(self, peer: Peer) -> bool:
        """A call from the household (``call.auto_answer``) or from a guest link the
        household chose in Settings is answered after the countdown."""
        if peer.role == "user":
            return self.auto_answer
        return peer.role == "guest" and bool(peer.link) and peer.link in self.auto_answer_links

    async def _ring_timeout(self) -> None:
        await asyncio.sleep(self.ring_timeout)
        async with self._lock:
            if self.state == "ringing":
                self._timer = None
                await self._end("missed", outcome="missed")

    async def _auto_answer(self) -> None:
        await asyncio.sleep(self.auto_answer_delay)
        async with self._lock:
            self._auto = None
            if self.state == "ringing":
                await self._answer()

    def _cancel_timers(self) -> None:
        current = asyncio.current_task()
        for task in (self._timer, self._auto):
            if task is not None and task is not current:
                task.cancel()
        self._timer = self._auto = None
        self.ring_timeout_at = self.auto_answer_at = None

    async def _answer(self) -> None:
        self._cancel_timers()
        for peer in self.callers:
            self.gate.answered(peer)
        if self._call_id is not None:
            self._record(self.store.call_answered, self._call_id, at=self._stamp())
        self.log.info("answered")
        await self._start_call(self.callers)

    async def _start_call(self, peers: list[Peer]) -> None:
        """In call with ``peers``: recorded for a resume, then connected and sent media."""
        self.state = "in-call"
        self.since = self._stamp()
        self.ended = None
        self.in_call, self.callers = list(peers), []
        # every call starts with the microphone and camera on (a known state)
        self.audio_muted = self.video_muted = False
        self.media.set_muted(audio=False, video=False)
        for peer in self.in_call:
            self._persist_resumable(peer)
        self.resume.start(self._running_call)
        self._stop_meter()
        self._meter = asyncio.create_task(self._report_level(), name="mic-level")
        screen = self.rooms.screen(self.room)
        viewers: list[tuple[str, bool]] = []  # (peer id, with audio)
        if screen is not None:
            await screen.send(connect_to_station())
            viewers.append((screen.id, False))
        for index, peer in enumerate(self.in_call):
            await self._connecting(peer)
            await self._send_connects(peer, others=self.in_call[:index])
            viewers.append((peer.id, True))
        # Every browser has its `connect` before its offer; the offers (each waits for
        # ICE gathering) are made side by side, not one after another.
        await self._open_media(viewers)
        await self._changed()

    async def _open_media(self, viewers: list[tuple[str, bool]]) -> None:
        results = await asyncio.gather(
            *(self.media.open(peer_id, audio=audio) for peer_id, audio in viewers),
            return_exceptions=True,
        )
        for (peer_id, _), result in zip(viewers, results, strict=True):
            if isinstance(result, BaseException):
                self.log.error("station peer failed: %s", result, extra={"peer_id": peer_id})

    async def _connect_screen(self, screen: Peer) -> None:
        """A kiosk screen that (re)appears during a call: preview and every caller."""
        await screen.send(connect_to_station())
        for peer in self.in_call:
            await self.rooms.pair(screen, peer)
        await self._open_media([(screen.id, False)])
        await self._changed()

    async def _connect_remote(self, peer: Peer) -> None:
        """A remote that joins a call already running."""
        await self._connecting(peer)
        await self._send_connects(peer, others=self.in_call)
        await self._open_media([(peer.id, True)])

    async def _send_connects(self, peer: Peer, *, others: list[Peer]) -> None:
        """Tell ``peer`` to connect to the station, the screen and ``others`` (and them to it)."""
        await peer.send(connect_to_station())
        screen = self.rooms.screen(self.room)
        if screen is not None:
            await self.rooms.pair(peer, screen)
        for other in others:
            if other is not peer:
                await self.rooms.pair(peer, other)

    async def _leave_call(self, peer: Peer, *, notify_self: bool) -> None:
        self.in_call.remove(peer)
        if self.in_call:
            self.resume.left(peer)
        self.rooms.unpair(peer.id)
        await self.media.close(peer.id)
        screen = self.rooms.screen(self.room)
        others = [*self.in_call, *([screen] if screen else [])]
        for other in others:
            await other.send(Disconnect(peer.id))
            if notify_self:
                await peer.send(Disconnect(other.id))
        if notify_self:
            await peer.send(Disconnect(STATION_PEER_ID))
        if not self.in_call:
            await self._end("hangup")
        else:
            await self._changed()

    async def _end(
        self, why: Ended, *, outcome: str | None = None, ring_knockers: bool = True
    ) -> None:
        """Back to idle. The state is reset first and the station's media closed in
        ``finally``: a failing send or call-log write can never leave a call open."""
        self._cancel_timers()
        was_state, was_in_call, call_id = self.state, list(self.in_call), self._call_id
        if was_state == "ringing":
            for peer in self.callers:
                if why == "declined":  # a cooldown (a missed ring took its 45 s anyway)
                    self.gate.unanswered(peer, call_id)
                elif why == "quiet":  # the next quiet ring is counted on this row
                    self.gate.quiet_rang(peer, call_id)
        ended_at, self._anchor = self._stamp(), None
        knocking = list(self.knocking)
        screen = self.rooms.screen(self.room)
        self.state = "idle"
        self.callers, self.in_call, self.knocking = [], [], []
        self._call_id = None
        self.since = self.clock.now()
        self.ended = why
        self.resume.call_ended(call_id)
        self._stop_meter()
        was_muted = self.audio_muted or self.video_muted
        self.audio_muted = self.video_muted = False  # privacy: the next call starts known
        self.media.set_muted(audio=False, video=False)
        self._forget_call()
        for peer in was_in_call:
            self.rooms.unpair(peer.id)
        try:
            await self.media.close_all()
        finally:
            try:
                for peer in was_in_call:
                    await peer.send(Disconnect(STATION_PEER_ID))
                    for other in [*was_in_call, *([screen] if screen else [])]:
                        if other is not peer:
                            await peer.send(Disconnect(other.id))
                    if screen is not None:
                        await screen.send(Disconnect(peer.id))
                if screen is not None and was_state == "in-call":
                    await screen.send(Disconnect(STATION_PEER_ID))
                if screen is not None and was_muted:
                    screen.audio_muted = screen.video_muted = False
                    await self.rooms.broadcast(
                        self.room, PeerUpdated(screen.as_object()), exclude=[screen]
                    )
            finally:
                if call_id is not None:
                    self._record(self.store.call_ended, call_id, outcome, at=ended_at)
                self.log.info("call ended: %s", why)
                await self._changed()
        # People who knocked during the call now ring the station themselves.
        for peer in knocking if ring_knockers else ():
            if any(p is peer for p in self.rooms.peers(self.room)):
                await self._ring(peer)

    # -- resuming after a crash (the rules: resume.py) -------------------------------

    def restore(self, *, grace: float = RESUME_GRACE) -> bool:
        """At start-up: if a crash interrupted an answered call, it resumes, without
        ringing, for the sessions that were in it and join again within ``grace``
        seconds asking to resume (Resume.restore)."""
        return self.resume.restore(grace=grace)

    def _indicator(self) -> bool:
        """The household can see the camera go live: the kiosk screen, or a live LED."""
        return self.live_led or self.rooms.screen(self.room) is not None

    async def _resume_call(self, peer: Peer) -> None:
        call_id = self.resume.claim(peer)
        self.log.info("call resumed after a restart", extra={"peer_id": peer.id})
        if self.state == "in-call":
            self.in_call.append(peer)
            self._persist_resumable(peer)
            await self._changed()
            await self._connect_remote(peer)
            return
        self._call_id = call_id
        self._anchor = (self.clock.now(), self.clock.monotonic())
        self._record(self.store.call_reopened, self._call_id)
        await self._start_call([peer])
        await self._retry_held()  # the others of the call join; anyone else knocks

    async def _retry_held(self) -> None:
        """Peers held during the resume window try again: those of the interrupted call
        first (they may resume now), then everyone else (who now knocks, joins at once
        as household, or rings once the window has closed)."""
        held, self.held = self.held, []
        held.sort(key=lambda p: not (p.resume and p.sid))
        members = self.rooms.peers(self.room)
        for peer in held:
            if any(p is peer for p in members):
                with contextlib.suppress(RingWait):
                    await self._ring(peer)

    def _watch_window(self) -> None:
        """Held peers try again when the resume window closes."""
        if self._window_timer is not None and not self._window_timer.done():
            return
        self._window_timer = asyncio.get_running_loop().create_task(
            self._window_closes(self.resume.seconds_left()), name="resume-window"
        )

    async def _window_closes(self, after: float) -> None:
        await asyncio.sleep(after + 0.01)
        async with self._lock:
            self._window_timer = None
            if self.held:
                await self._retry_held()

    def _persist_resumable(self, peer: Peer) -> None:
        self.resume.persist(self._call_id, peer)

    def _forget_call(self) -> None:
        self.resume.forget(self._call_running)

    def _running_call(self) -> int | None:
        return self._call_id if self.state == "in-call" else None

    def _call_running(self) -> bool:
        return self.state == "in-call"

    def _stamp(self) -> float:
        """Wall time for the call log: the call's start plus the monotonic time since."""
        if self._anchor is None:
            return self.clock.now()
        wall, mono = self._anchor
        return wall + (self.clock.monotonic() - mono)

    def _record(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call-log write that must not stop the call (disk full, read-only card)."""
        try:
            done = write(*args, **kwargs)
        except Exception as exc:
            self._store_failed(exc)
            self.log.error("call log not written: %s", exc)
            return None
        self.store_failing = False
        return done

    def _store_failed(self, exc: Exception) -> None:
        self.store_errors += 1
        self.last_store_error = str(exc)
        self.store_failing = True

    async def close(self) -> None:
        """Shut down: end any call (logged), close every media peer."""
        async with self._lock:
            if self.state != "idle":
                await self._end(
                    "hangup",
                    outcome="missed" if self.state == "ringing" else None,
                    ring_knockers=False,
                )
            self._cancel_timers()
            self._stop_meter()
            self._forget_call()
            self.resume.close()
            if self._window_timer is not None:
                self._window_timer.cancel()
            self.held = []
            await self.media.close_all()

"""A call that a crash interrupted, and who may come back to it.

While a call runs, the sessions in it (answered or let in) are written down with a
heartbeat; after a crash the next start takes the record once and, for a short
window, lets exactly those sessions back into the same call without ringing. The
call machine owns the call; this class owns the record and the window's rules:

- only the sessions that were in the answered call resume (a knocker never did);
- nothing else ends the window early but the resumed call's own end (another guest
  ringing and giving up does not);
- media goes out only when the household can see it: the caller waits (``held``)
  until the kiosk screen is back, unless a live LED is fitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .clock import Clock
from .logs import IdsAdapter
from .rooms import Peer
from .store import Store

RESUME_GRACE = 20.0
"""Seconds after start-up during which a call a crash interrupted may resume."""
RESUME_HEARTBEAT = 5.0
"""How often a running call refreshes its resume record."""
RESUME_MAX_AGE = 30.0
"""A resume record whose last heartbeat is older than this is never used: a record a
failed clean-up left behind goes stale on its own."""
FORGET_RETRY = 2.0
"""Seconds between tries to clear resume records that a failed write left behind."""

Verdict = Literal["resume", "wait", "no"]
"""What a joining peer does while a resume window is open: ``resume`` the call,
``wait`` (held, neither ringing nor connected) or ``no`` (as without a crash)."""

Record = Callable[..., Any]
"""The call machine's guarded store write: ``record(write, *args)``."""


@dataclass(slots=True)
class _Window:
    call_id: int
    sids: set[str]
    """Sessions still to come back (each resumes once)."""
    until: float
    """Clock.monotonic() after which nobody resumes any more."""


class Resume:
    """The resume record of the call in progress, and the window after a crash.

    Example (inside CallMachine)::

        resume = Resume(room="station", store=store, clock=clock, log=log, record=record)
        resume.restore(grace=20)                 # at start-up
        resume.verdict(peer, state, call_id, indicator=True)   # "resume" | "wait" | "no"
    """

    def __init__(
        self,
        *,
        room: str,
        store: Store,
        clock: Clock,
        log: IdsAdapter | logging.Logger,
        record: Record,
        failed: Callable[[Exception], None],
    ) -> None:
        self.room = room
        self.store = store
        self.clock = clock
        self.log = log
        self._record = record
        self._failed = failed
        self._window: _Window | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._written = False
        """Records of this run may be in the store (cleared at every call end)."""
        self._forgetting: asyncio.Task[None] | None = None

    # -- the window after a crash -----------------------------------------------------

    def restore(self, *, grace: float = RESUME_GRACE) -> bool:
        """At start-up: take the interrupted call's record (consumed here, so it serves
        once; one that cannot be consumed, read-only store, or is stale is never used)
        and open the window of ``grace`` seconds."""
        try:
            found = self.store.take_resumable(max_age=RESUME_MAX_AGE)
        except Exception as exc:
            self.log.error("the interrupted call cannot resume: %s", exc)
            return False
        if found is None or found.room_id != self.room:
            return False
        self._window = _Window(found.call_id, set(found.sids), self.clock.monotonic() + grace)
        self.log.info(
            "a call interrupted by a restart may resume for %d session(s) within %.0f s",
            len(found.sids),
            grace,
        )
        return True

    @property
    def call_id(self) -> int | None:
        return self._window.call_id if self._window is not None else None

    def seconds_left(self) -> float:
        """Until the window closes (0 when there is none)."""
        if self._window is None:
            return 0.0
        return max(0.0, self._window.until - self.clock.monotonic())

    def is_open(self) -> bool:
        """The window is open (closes it once its time has passed)."""
        if self._window is not None and self.clock.monotonic() >= self._window.until:
            self._window = None
        return self._window is not None

    def verdict(self, peer: Peer, *, state: str, call_id: int | None, indicator: bool) -> Verdict:
        """What ``peer`` (joining or ringing) does while the window is open.

        A session of the interrupted call that asks to resume: ``resume`` when the
        household can see the call go live (``indicator``: the kiosk screen or a live
        LED), else ``wait``. Anyone else, while the call has not resumed yet: ``wait``
        (a ring now would make the interrupted call's people join someone else's
        ring, and its end would close the window)."""
        window = self._window
        if window is None or not self.is_open():
            return "no"
        if state == "in-call":
            if call_id != window.call_id:
                return "no"
            return "resume" if self._returns(peer, window) else "no"
        if state != "idle":
            return "no"
        if self._returns(peer, window):
            return "resume" if indicator else "wait"
        return "wait"

    @staticmethod
    def _returns(peer: Peer, window: _Window) -> bool:
        return peer.kind == "remote" and peer.resume and bool(peer.sid) and peer.sid in window.sids

    def claim(self, peer: Peer) -> int:
        """``peer`` resumes (once): the interrupted call's id."""
        assert self._window is not None
        self._window.sids.discard(peer.sid)
        return self._window.call_id

    def call_ended(self, call_id: int | None) -> None:
        """A call ended: if it was the resumed one, nobody else comes back to it."""
        if self._window is not None and call_id == self._window.call_id:
            self._window = None

    # -- the record of the call in progress -------------------------------------------

    def persist(self, call_id: int | None, peer: Peer) -> None:
        """``peer`` is in the answered call: written down, so that the call resumes for
        it after a crash (best effort: without the record a crash just ends the call)."""
        if call_id is None or not peer.sid:
            return
        self._written = True
        self._record(self.store.call_resumable, call_id, self.room, peer.sid)

    def left(self, peer: Peer) -> None:
        """``peer`` left a call that goes on: it no longer resumes."""
        if peer.sid and self._written:
            self._record(self.store.call_not_resumable, peer.sid)

    def start(self, running: Callable[[], int | None]) -> None:
        """The call runs: refresh its record every RESUME_HEARTBEAT seconds while
        ``running()`` gives its id."""
        self._stop_heartbeat()
        self._heartbeat = asyncio.create_task(self._beat(running), name="call-heartbeat")

    async def _beat(self, running: Callable[[], int | None]) -> None:
        while True:
            await asyncio.sleep(RESUME_HEARTBEAT)
            call_id = running()
            if call_id is not None and self._written:
                self._record(self.store.call_still_running, call_id)

    def _stop_heartbeat(self) -> None:
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None and heartbeat is not asyncio.current_task():
            heartbeat.cancel()

    def forget(self, running: Callable[[], bool]) -> None:
        """The call ended: nothing may resume it. Runs before anything else that can
        fail; if the write fails it is retried until it succeeds (unless a new call
        runs by then), and meanwhile the record goes stale within RESUME_MAX_AGE."""
        self._stop_heartbeat()
        if not self._written:
            return
        try:
            self.store.call_not_resumable()
        except Exception as exc:
            self._failed(exc)
            self.log.error("resume record not cleared: %s", exc)
            if self._forgetting is None or self._forgetting.done():
                self._forgetting = asyncio.get_running_loop().create_task(
                    self._forget_later(running)
                )
        else:
            self._written = False

    async def _forget_later(self, running: Callable[[], bool]) -> None:
        while self._written:
            await asyncio.sleep(FORGET_RETRY)
            if running():
                return  # the next call's end clears (and retries) again
            try:
                self.store.call_not_resumable()
            except Exception as exc:
                self.log.debug("resume record still not cleared: %s", exc)
                continue
            self._written = False
            self.log.info("resume record cleared")

    def close(self) -> None:
        self._stop_heartbeat()
        if self._forgetting is not None:
            self._forgetting.cancel()

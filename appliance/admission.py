"""Who may ring or knock, how often: the rules a guest's ring passes before the station
makes a sound.

A guest (a guest link or a scanned kiosk code) may ring again only after a cooldown once
a ring or knock of theirs was declined, given up or refused ("Not now"); the cooldown
doubles with each in a row and resets when one is answered. (A missed ring took its ring
timeout already.) In quiet hours nothing rings: a guest's repeated rings there are
counted on the row of the first. Each address has a budget of rings per minute on top,
so the few sessions a code opens cannot take turns. A refused ring makes no sound,
lights nothing and adds no call-log row: it is counted on the row of the ring that
started the cooldown. The household (``user``) is never limited here.

Example::

    gate = RingGate(clock=clock)
    gate.check(peer)              # raises RingWait while cooling down
    gate.unanswered(peer, call_id)  # a ring of theirs ended without an answer
    gate.answered(peer)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .clock import Clock
from .errors import RingWait
from .rooms import Peer

RING_COOLDOWN = 10.0
"""Seconds before a guest may ring again after an unanswered ring (config
``call.ring_cooldown_seconds``); doubles with each unanswered ring in a row, up to
RING_COOLDOWN_MAX."""
RING_COOLDOWN_MAX = 300.0
RINGS_PER_ADDRESS = 6
"""Guest rings (and knocks) one address may start per RING_WINDOW seconds (config
``call.guest_rings_per_minute``)."""
RING_WINDOW = 60.0
MAX_KNOCKERS = 2
"""Guests waiting at once to be let into a running call (one per session anyway)."""
TRACKED = 500
"""Sessions and addresses remembered (the oldest are forgotten first)."""


@dataclass(slots=True)
class _Cooldown:
    until: float = 0.0
    strikes: int = 0
    call_id: int | None = None
    """The call-log row of the ring that started it (refused rings count there)."""


@dataclass(slots=True)
class _Quiet:
    until: float
    call_id: int


@dataclass(slots=True)
class _Address:
    rings: deque[float] = field(default_factory=deque)
    call_id: int | None = None


class RingGate:
    """Cooldowns per session and ring budgets per address, on the monotonic clock."""

    def __init__(
        self,
        *,
        clock: Clock,
        cooldown: float = RING_COOLDOWN,
        per_address: int = RINGS_PER_ADDRESS,
    ) -> None:
        self.clock = clock
        self.cooldown = cooldown
        """0: no cooldown."""
        self.per_address = per_address
        """0: no budget per address."""
        self._sessions: dict[str, _Cooldown] = {}
        self._addresses: dict[str, _Address] = {}
        self._quiet: dict[str, _Quiet] = {}

    @staticmethod
    def limited(peer: Peer) -> bool:
        return peer.role == "guest"

    def check(self, peer: Peer) -> None:
        """Raise RingWait (with the call-log row to count the attempt on, if any) when
        ``peer`` may not ring or knock now; otherwise count the ring."""
        if not self.limited(peer):
            return
        now = self.clock.monotonic()
        cooling = self._sessions.get(peer.sid) if peer.sid else None
        if cooling is not None and now < cooling.until:
            wait = math.ceil(cooling.until - now)
            raise RingWait(wait, cooling.call_id)
        if not self.per_address:
            return
        address = self._address(peer.address)
        while address.rings and address.rings[0] <= now - RING_WINDOW:
            address.rings.popleft()
        if len(address.rings) >= self.per_address:
            wait = math.ceil(address.rings[0] + RING_WINDOW - now)
            raise RingWait(wait, address.call_id)
        address.rings.append(now)

    def unanswered(self, peer: Peer, call_id: int | None) -> None:
        """A ring or knock of ``peer`` ended without an answer: its cooldown starts."""
        if not self.limited(peer) or not peer.sid:
            return
        cooling = self._sessions.pop(peer.sid, None) or _Cooldown()
        self._sessions[peer.sid] = cooling  # newest last
        cooling.strikes += 1
        span = min(self.cooldown * 2 ** min(cooling.strikes - 1, 16), RING_COOLDOWN_MAX)
        cooling.until = self.clock.monotonic() + span
        if call_id is not None:
            cooling.call_id = call_id
            self._address(peer.address).call_id = call_id
        self._trim(self._sessions)

    def quiet_rang(self, peer: Peer, call_id: int | None) -> None:
        """``peer`` rang in quiet hours (a missed row, nothing rang): its next quiet
        rings within RING_COOLDOWN_MAX are counted on that row."""
        if self.limited(peer) and peer.sid and call_id is not None:
            self._quiet.pop(peer.sid, None)
            self._quiet[peer.sid] = _Quiet(self.clock.monotonic() + RING_COOLDOWN_MAX, call_id)
            self._trim(self._quiet)
            self._address(peer.address).call_id = call_id

    def quiet_row(self, peer: Peer) -> int | None:
        """The row a quiet-hours ring of ``peer`` is counted on (None: a new row)."""
        found = self._quiet.get(peer.sid) if self.limited(peer) and peer.sid else None
        if found is None or self.clock.monotonic() >= found.until:
            return None
        return found.call_id

    def answered(self, peer: Peer) -> None:
        """The household answered or let in ``peer``: no cooldown any more."""
        if peer.sid:
            self._sessions.pop(peer.sid, None)

    def _address(self, address: str) -> _Address:
        found = self._addresses.pop(address, None) or _Address()
        self._addresses[address] = found
        self._trim(self._addresses)
        return found

    @staticmethod
    def _trim(table: dict[str, _Cooldown] | dict[str, _Address] | dict[str, _Quiet]) -> None:
        while len(table) > TRACKED:
            del table[next(iter(table))]

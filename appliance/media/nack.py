"""Which of a viewer's lost video packets are worth sending again.

aiortc answers every NACK by sending the packet again, however often it was asked for
and however old it is. On a link that has just become too narrow that is a flood:
the receiver asks again for everything still missing about once a round trip, the
answers queue behind the picture at the bottleneck and are lost there too, and they
delay the one packet that ends the freeze — the first keyframe of the lower rung.
Senders that hold up on such links (libwebrtc's) resend a packet at most once a round
trip and only while it can still be shown. :class:`Retransmissions` does that for one
viewer:

- a packet resent less than a round trip ago is not resent (the answer is on its way);
- a packet older than ``max_age`` or three round trips, whichever is longer, is not
  resent (its frame is past showing; libwebrtc keeps its packets as long);
- a packet sent before the viewer's current rung began, or while the viewer waits for
  the new rung's keyframe, is not resent (the keyframe replaces it).

>>> guard = Retransmissions(max_age=1.0)
>>> sent = {1: 0.2, 2: 0.2, 3: 1.5}           # sequence number -> seconds since sent
>>> guard.choose([1, 2, 3, 4], sent_ago=sent.get, rtt=0.05, now=10.0, rung_since=0.0)
[1, 2]
>>> guard.choose([1, 2], sent_ago=sent.get, rtt=0.05, now=10.02, rung_since=0.0)
[]
>>> guard.choose([1], sent_ago=sent.get, rtt=0.05, now=10.1, rung_since=0.0)
[1]
>>> guard.choose([2], sent_ago=sent.get, rtt=0.05, now=10.1, rung_since=9.95)  # a new rung
[]
>>> guard.choose([3], sent_ago=sent.get, rtt=0.6, now=10.2, rung_since=0.0)  # a long queue
[3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

DEFAULT_RTT = 0.1
"""Seconds assumed for a round trip until the receiver reports have measured one."""
MIN_RESEND_GAP = 0.02
"""Shortest wait before the same packet is sent again, whatever the round trip."""
ABS_SEND_TIME_UNITS = 1 << 18
"""abs-send-time counts 1/262144 s (6.18 fixed point) and wraps every 64 s."""


class Retransmissions:
    """One viewer's resend decisions (see the module's text)."""

    def __init__(self, *, max_age: float = 1.0) -> None:
        self.max_age = max_age
        """Seconds after sending past which a packet is not resent (three round trips
        if longer)."""
        self._resent: dict[int, float] = {}
        self._asked: dict[int, float] = {}
        self.resent = 0
        """Packets resent."""
        self.refused = 0
        """NACKed packets not resent (too old, resent a round trip ago, or replaced)."""

    def first_asked(self, lost: Iterable[int], *, now: float) -> list[int]:
        """Those of ``lost`` the viewer asks for the first time (it asks again for what
        is still missing every round trip: counted once, this is what it lost).

        >>> guard = Retransmissions()
        >>> guard.first_asked([1, 2], now=0.0), guard.first_asked([2, 3], now=0.1)
        ([1, 2], [3])
        """
        new = [seq for seq in lost if seq not in self._asked]
        for seq in new:
            self._asked[seq] = now
        if len(self._asked) > 4096:  # sequence numbers wrap: forget the old ones
            self._asked = {s: t for s, t in self._asked.items() if now - t < 10}
        return new

    def choose(
        self,
        lost: Iterable[int],
        *,
        sent_ago: Callable[[int], float | None],
        rtt: float | None,
        now: float,
        rung_since: float | None,
    ) -> list[int]:
        """The sequence numbers of ``lost`` to resend now.

        ``sent_ago(seq)`` is how many seconds ago the packet was sent (None: no longer
        kept); ``rung_since`` is when the viewer's current rung began (None: it waits
        for a new rung's keyframe, so nothing of the old one is resent).
        """
        gap = max(rtt if rtt is not None else DEFAULT_RTT, MIN_RESEND_GAP)
        max_age = max(self.max_age, 3 * gap)
        chosen: list[int] = []
        for seq in lost:
            ago = sent_ago(seq)
            useful = (
                ago is not None
                and ago <= max_age
                and rung_since is not None
                and ago <= now - rung_since
                and now - self._resent.get(seq, -gap) >= gap
            )
            if not useful:
                self.refused += 1
                continue
            self._resent[seq] = now
            chosen.append(seq)
        self.resent += len(chosen)
        if len(self._resent) > 1024:  # sequence numbers wrap: forget the old ones
            self._resent = {s: t for s, t in self._resent.items() if now - t < max_age}
        return chosen


def seconds_since(abs_send_time: int | None, ntp_now: int) -> float | None:
    """Seconds since a packet stamped with ``abs_send_time`` was sent (None if unstamped).

    ``ntp_now`` is a 64-bit NTP time (aiortc's ``clock.current_ntp_time()``).

    >>> now = (1000 << 32) + (1 << 31)               # 1000.5 s
    >>> seconds_since((1000 << 18) & 0xFFFFFF, now)  # stamped at 1000.0 s
    0.5
    """
    if abs_send_time is None:
        return None
    stamp_now = (ntp_now >> 14) & 0xFFFFFF
    return ((stamp_now - abs_send_time) & 0xFFFFFF) / ABS_SEND_TIME_UNITS

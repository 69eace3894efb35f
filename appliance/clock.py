"""Time the station can trust on a Raspberry Pi without a clock battery.

A Pi boots with the time it saved at shutdown (``systemd-timesyncd``) and learns the
real time from the network later: its wall clock jumps, forward by the hours or days it
was off, or back when it had been set ahead. Everything that measures a duration (a
call's length, a credential's remaining life) therefore counts on the monotonic clock,
and the wall clock only says *when* something happened (call-log rows) or carries a
credential's expiry across a restart.

One rule judges every credential (:meth:`Clock.remaining`): the first time this run
sees it, its remaining life is its expiry minus now, but never more than its own
lifetime (``exp - iat``), so one issued while the clock was ahead neither locks anyone
out nor lives longer than it was made for; from then on it runs down on the monotonic
clock, so a jump in either direction changes nothing. Example::

    >>> clock = FakeClock(wall=1_000_000.0)
    >>> clock.remaining("cookie", iat=1_000_000, exp=1_000_600)
    600.0
    >>> clock.jump(2 * 86400)            # NTP: the clock was two days behind
    >>> clock.advance(60)
    >>> clock.remaining("cookie", iat=1_000_000, exp=1_000_600)
    540.0
    >>> clock.remaining("minted-ahead", iat=2_000_000, exp=2_000_600)  # clock went back
    600.0
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

JUMP_SECONDS = 2.0
"""A change of the wall clock against the monotonic one larger than this is a jump
(NTP slews smaller errors gradually)."""
MAX_ANCHORS = 20_000
"""Credentials whose remaining life is tracked on the monotonic clock (oldest dropped
first: they then fall back to their wall-clock expiry)."""
_TIME_ERROR = 5
"""adjtimex(2): the kernel's clock is not synchronised (STA_UNSYNC)."""


def kernel_synchronized() -> bool | None:
    """Whether a time service (systemd-timesyncd, chrony, ntpd) has synchronised the
    kernel clock: adjtimex(2) with nothing to change. None if it cannot be asked."""
    try:
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = int(_libc().adjtimex(timex))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != _TIME_ERROR


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, found and loaded once (health asks for the clock's state often)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@functools.cache
def boot_id() -> str:
    """This boot's id (the monotonic clock is comparable between processes of one
    boot only); "" where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Jump:
    seconds: float
    """How far the wall clock moved against the monotonic one (+: forward)."""
    at: float
    """The wall time after the jump."""


class Clock:
    """The system's clocks, with jump detection and per-credential monotonic anchors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = self._wall() - self._mono()
        self._anchors: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.jumps: list[Jump] = []
        """Jumps seen by this run, oldest first (at most the last 20)."""

    # the two clocks (a fake clock overrides these)
    def _wall(self) -> float:
        return time.time()

    def _mono(self) -> float:
        return time.monotonic()

    def synchronized(self) -> bool | None:
        return kernel_synchronized()

    def now(self) -> float:
        """Wall time (Unix seconds); notes a jump since the last call."""
        wall, mono = self._wall(), self._mono()
        offset = wall - mono
        with self._lock:
            moved = offset - self._offset
            if abs(moved) > JUMP_SECONDS:
                self.jumps = [*self.jumps[-19:], Jump(moved, wall)]
                log.warning(
                    "the wall clock jumped %+.0f s; durations and credentials run on",
                    moved,
                    extra={"jump_seconds": round(moved, 1)},
                )
            self._offset = offset
        return wall

    def monotonic(self) -> float:
        return self._mono()

    def issued(self, key: str, *, iat: float, exp: float) -> None:
        """This run made the credential ``key``: its whole lifetime runs on the monotonic
        clock from now, whatever the wall clock does before it is first used."""
        with self._lock:
            self._anchor(key, exp, self._mono(), exp - iat)

    def remaining(self, key: str, *, iat: float, exp: float) -> float:
        """Seconds the credential ``key`` (issued at ``iat``, expiring at ``exp``, both
        wall times) has left: see the module's rule. ≤ 0: expired. A credential whose
        expiry changed (a kiosk code cut short by a new one) is judged anew."""
        now, mono = self.now(), self._mono()
        with self._lock:
            anchor = self._anchors.get(f"{key}@{float(exp)}")
            if anchor is None:
                anchor = self._anchor(key, exp, mono, min(exp - now, exp - iat))
            seen_at, left = anchor
        return left - (mono - seen_at)

    def _anchor(self, key: str, exp: float, mono: float, left: float) -> tuple[float, float]:
        self._anchors[f"{key}@{float(exp)}"] = anchor = (mono, left)
        while len(self._anchors) > MAX_ANCHORS:
            self._anchors.popitem(last=False)
        return anchor

    def status(self) -> dict[str, object]:
        """For health: synchronised or not, and the last jump this run saw."""
        self.now()
        last = self.jumps[-1] if self.jumps else None
        return {
            "synchronized": self.synchronized(),
            "jumps": len(self.jumps),
            "last_jump_seconds": None if last is None else round(last.seconds, 1),
        }


class FakeClock(Clock):
    """A clock the tests move: ``jump`` moves the wall clock only, ``advance`` both."""

    def __init__(self, *, wall: float | None = None, synchronized: bool | None = True) -> None:
        self._fake_wall = time.time() if wall is None else wall
        self._fake_mono = 1000.0
        self._synced = synchronized
        super().__init__()

    def _wall(self) -> float:
        return self._fake_wall

    def _mono(self) -> float:
        return self._fake_mono

    def synchronized(self) -> bool | None:
        return self._synced

    def jump(self, seconds: float) -> None:
        self._fake_wall += seconds

    def advance(self, seconds: float) -> None:
        self._fake_wall += seconds
        self._fake_mono += seconds

    def set_synchronized(self, value: bool | None) -> None:
        self._synced = value


class ShiftedClock(Clock):
    """The real clocks, with the wall clock moved by ``jump`` (servers in tests: their
    timers and sockets keep real time)."""

    def __init__(self, *, synchronized: bool | None = True) -> None:
        self.shift = 0.0
        self._synced = synchronized
        super().__init__()

    def _wall(self) -> float:
        return time.time() + self.shift

    def synchronized(self) -> bool | None:
        return self._synced

    def jump(self, seconds: float) -> None:
        self.shift += seconds

    def set_synchronized(self, value: bool | None) -> None:
        self._synced = value


SYSTEM_CLOCK = Clock()
"""The process's clock (tests pass their own)."""

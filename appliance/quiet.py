"""Do not disturb: the configured quiet hours (``call.quiet_hours = "22:00-07:00"``)
and the kiosk's toggle.

While it is on, a call does not ring the station nor wake its screen: the caller is
told until when (``ended: "quiet"``, ``quiet_until``) and the call is logged as
missed. Every missed call lengthens the kiosk's list, so a do-not-disturb switched on
by hand must never be a trap: it always has an end, the end of the quiet hours when
they begin before the next 07:00, else the next 07:00 (the station's local time), and
it is kept in the database, so a restart neither drops it nor makes it last longer.
Switched off during the quiet hours, calls ring until those hours end.

Example::

    >>> from datetime import time
    >>> hours = QuietHours.parse("22:00-07:00")
    >>> hours.contains(time(23, 30)), hours.contains(time(6, 59)), hours.contains(time(7, 0))
    (True, True, False)
    >>> QuietHours.parse("").contains(time(3, 0))
    False
    >>> from appliance.clock import FakeClock
    >>> mode = QuietMode(QuietHours(), clock=FakeClock(wall=local(2026, 12, 7, 14, 0)))
    >>> mode.set(True)
    >>> mode.on, at(mode.until)
    (True, '2026-12-08 07:00')
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Protocol

from .clock import SYSTEM_CLOCK, Clock
from .errors import ConfigError

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

DEFAULT_END = time(7, 0)
"""A do-not-disturb switched on by hand ends at this local time at the latest (unless
the quiet hours, begun before it, run on)."""
LONGEST = 26 * 3600
"""No do-not-disturb lasts longer (a day, and a daylight-saving hour to spare): a kept
one further ahead was written by a clock that was wrong, and is dropped."""
SETTING = "quiet_manual"
"""The settings row that keeps the kiosk's choice across a restart."""
CHECK_SECONDS = 5.0
"""How often the service looks whether the quiet turned by the clock (the hours began
or ended, a do-not-disturb ran out), to tell every screen."""


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    """Unix seconds of a local wall time (for examples and tests)."""
    return datetime(year, month, day, hour, minute).timestamp()


def at(seconds: float | None) -> str:
    """A Unix time as local "YYYY-MM-DD HH:MM" (for examples, tests and logs)."""
    return "-" if seconds is None else datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def _next(when: time, after: float) -> float:
    """The first moment after ``after`` (Unix seconds) whose local time is ``when``."""
    day = datetime.fromtimestamp(after).date()
    for days in range(3):  # today, or tomorrow (a daylight-saving gap: the day after)
        moment = datetime.combine(day + timedelta(days=days), when).timestamp()
        if moment > after:
            return moment
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time | None = None
    """When the quiet begins (local time); None: no quiet hours."""
    end: time | None = None
    """When it ends; before ``start`` means it runs past midnight."""

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"HH:MM-HH:MM"`` or ``""`` (none); anything else raises ConfigError."""
        if not text.strip():
            return cls()
        m = _RANGE.match(text)
        if not m:
            raise ConfigError(f'call.quiet_hours: expected "HH:MM-HH:MM", got {text!r}')
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
            raise ConfigError(f"call.quiet_hours: not a range of two times: {text!r}")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, now: time) -> bool:
        if self.start is None or self.end is None:
            return False
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def next_period(self, now: float) -> tuple[float, float] | None:
        """(start, end) in Unix seconds of the quiet hours under way at ``now``, or of
        the next ones (start > now); None without quiet hours."""
        if self.start is None or self.end is None:
            return None
        end = _next(self.end, now)
        if self.contains(datetime.fromtimestamp(now).time()):
            return now, end
        start = _next(self.start, now)
        return start, _next(self.end, start)


class Settings(Protocol):
    """Where the toggle is kept (the Store's settings table)."""

    def get_setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str) -> None: ...
    def delete_setting(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Manual:
    on: bool
    """What the kiosk's toggle chose."""
    until: float
    """Unix seconds when the choice runs out and the quiet hours rule again."""


class QuietMode:
    """The station's do-not-disturb now: the configured hours, unless the kiosk's
    toggle chose otherwise until a time of its own."""

    def __init__(
        self,
        hours: QuietHours,
        *,
        clock: Clock = SYSTEM_CLOCK,
        settings: Settings | None = None,
        default_end: time = DEFAULT_END,
    ) -> None:
        self.hours = hours
        self.clock = clock
        self.settings = settings
        self.default_end = default_end
        self._manual = self._load()

    @property
    def on(self) -> bool:
        return self.state()[0]

    @property
    def until(self) -> float | None:
        """When the quiet ends by itself (Unix seconds); None while it is off."""
        return self.state()[1]

    def state(self) -> tuple[bool, float | None]:
        """(on, until) now; a toggle that ran out is forgotten here."""
        now = self.clock.now()
        manual = self._manual
        if manual is not None and not now < manual.until:
            log.info("do not disturb: the kiosk's choice ran out", extra={"until": manual.until})
            self._keep(None)
            manual = None
        if manual is not None:
            return manual.on, manual.until if manual.on else None
        period = self.hours.next_period(now)
        if period is not None and period[0] <= now:
            return True, period[1]
        return False, None

    def set(self, on: bool) -> None:
        """The kiosk's toggle. On: until the quiet hours end if they begin before the
        default end, else until the default end. Off: until the quiet hours under
        way end (nothing to remember outside them)."""
        now = self.clock.now()
        period = self.hours.next_period(now)
        in_hours = period is not None and period[0] <= now
        if on:
            default = _next(self.default_end, now)
            until = period[1] if period is not None and period[0] < default else default
            self._keep(_Manual(True, until))
        elif in_hours and period is not None:
            self._keep(_Manual(False, period[1]))
        else:
            self._keep(None)

    def _keep(self, manual: _Manual | None) -> None:
        """Remembers the choice, in the database too (a failed write is logged: the
        choice holds until the next restart)."""
        self._manual = manual
        if self.settings is None:
            return
        try:
            if manual is None:
                self.settings.delete_setting(SETTING)
            else:
                self.settings.set_setting(
                    SETTING, json.dumps({"on": manual.on, "until": manual.until})
                )
        except Exception as exc:
            log.error("do not disturb: not kept across a restart: %s", exc)

    def _load(self) -> _Manual | None:
        if self.settings is None:
            return None
        try:
            text = self.settings.get_setting(SETTING)
            if text is None:
                return None
            kept = json.loads(text)
            manual = _Manual(bool(kept["on"]), float(kept["until"]))
        except Exception as exc:
            log.error("do not disturb: the kept choice is unreadable, dropped: %s", exc)
            return None
        ahead = manual.until - self.clock.now()
        if ahead > LONGEST:
            log.warning("do not disturb: the kept end is %.0f h ahead, dropped", ahead / 3600)
            return None
        return manual

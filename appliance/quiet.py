"""Quiet hours: when the station does not ring (``call.quiet_hours = "22:00-07:00"``),
plus the kiosk's do-not-disturb toggle.

During quiet hours a call does not ring the station nor wake its screen: the caller is
told the station is in quiet mode (``ended: "quiet"``) and the call is logged as
missed. The kiosk's toggle turns quiet mode on or off by hand; that choice lasts until
the configured hours next begin or end.

Example::

    >>> from datetime import time
    >>> hours = QuietHours.parse("22:00-07:00")
    >>> hours.contains(time(23, 30)), hours.contains(time(6, 59)), hours.contains(time(7, 0))
    (True, True, False)
    >>> QuietHours.parse("").contains(time(3, 0))
    False
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

from .errors import ConfigError

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


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


class QuietMode:
    """The station's quiet mode now: the configured hours, unless the kiosk's toggle
    said otherwise since they last began or ended."""

    def __init__(self, hours: QuietHours, *, clock: Callable[[], datetime] = datetime.now) -> None:
        self.hours = hours
        self.clock = clock
        self._manual: bool | None = None
        self._hours_then = False

    def _in_hours(self) -> bool:
        return self.hours.contains(self.clock().time())

    @property
    def on(self) -> bool:
        in_hours = self._in_hours()
        if self._manual is not None and in_hours != self._hours_then:
            self._manual = None  # the hours began or ended since the toggle: they rule again
        return in_hours if self._manual is None else self._manual

    def set(self, on: bool) -> None:
        """The kiosk's toggle."""
        self._hours_then = self._in_hours()
        self._manual = on

"""Quiet hours: parsing, ranges over midnight, and the kiosk's toggle that lasts until
the configured hours next turn."""

from __future__ import annotations

import doctest
from datetime import datetime, time

import pytest

from appliance import quiet
from appliance.config import from_mapping
from appliance.errors import ConfigError
from appliance.quiet import QuietHours, QuietMode


def test_doctest() -> None:
    assert doctest.testmod(quiet).failed == 0


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("22:00-07:00", time(22, 0), True),
        ("22:00-07:00", time(21, 59), False),
        ("22:00-07:00", time(0, 0), True),
        ("22:00-07:00", time(7, 0), False),
        ("13:00-15:30", time(14, 0), True),
        ("13:00-15:30", time(15, 30), False),
        ("", time(3, 0), False),
    ],
)
def test_ranges(text: str, now: time, expected: bool) -> None:
    assert QuietHours.parse(text).contains(now) is expected


@pytest.mark.parametrize("text", ["22-07", "25:00-07:00", "22:00-22:00", "10:60-11:00", "x"])
def test_bad_ranges_name_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"call\.quiet_hours"):
        from_mapping({"call": {"quiet_hours": text}})


def test_the_toggle_lasts_until_the_hours_turn() -> None:
    now = [datetime(2026, 11, 28, 21, 0)]
    mode = QuietMode(QuietHours.parse("22:00-07:00"), clock=lambda: now[0])
    assert mode.on is False
    mode.set(True)  # do not disturb at 21:00
    assert mode.on is True
    now[0] = datetime(2026, 11, 28, 23, 0)  # the quiet hours began: they rule
    assert mode.on is True
    mode.set(False)  # the household wants calls tonight after all
    assert mode.on is False
    now[0] = datetime(2026, 11, 29, 6, 0)
    assert mode.on is False
    now[0] = datetime(2026, 11, 29, 7, 30)  # the hours ended: back to the schedule
    assert mode.on is False
    now[0] = datetime(2026, 11, 29, 22, 30)
    assert mode.on is True

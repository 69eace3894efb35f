"""Fixtures of the benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .kit import AnsweringKiosk


@pytest.fixture
def kiosk(live_station: Any) -> Iterator[AnsweringKiosk]:
    key = (live_station.state_dir / "kiosk.key").read_text().strip()
    with AnsweringKiosk(live_station.base_url, key) as answering:
        yield answering

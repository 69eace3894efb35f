"""The network test bed as a fixture: namespaces up for one test, always torn down.

The namespaces have fixed names, so two test runs on one machine (two checkouts) take
turns: the fixture holds an exclusive lock while its test bed is up.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..helpers import skip_or_fail
from .testbed import Carrier, Testbed, missing_tools


@contextmanager
def testbed(carrier: Carrier) -> Iterator[Testbed]:
    if os.geteuid() != 0:
        skip_or_fail("the network test bed needs root (network namespaces)")
    if missing := missing_tools():
        skip_or_fail(f"the network test bed needs {', '.join(missing)}")
    with open("/run/videostation-testbed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        bed = Testbed(carrier=carrier)
        try:
            bed.up()
            yield bed
        finally:
            bed.down()


@pytest.fixture
def bed() -> Iterator[Testbed]:
    """The phones behind the carrier's symmetric NAT (media needs TURN)."""
    with testbed("symmetric") as up:
        yield up


@pytest.fixture
def open_bed() -> Iterator[Testbed]:
    """The phones behind a port-preserving carrier NAT (a direct path exists)."""
    with testbed("port-preserving") as up:
        yield up

"""The network test bed as a fixture: namespaces up for one test, always torn down.

The namespaces have fixed names, so two test runs on one machine (two checkouts) take
turns: the fixture holds an exclusive lock while its test bed is up.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import skip_or_fail
from .testbed import Testbed, missing_tools


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Testbed]:
    if os.geteuid() != 0:
        skip_or_fail("the network test bed needs root (network namespaces)")
    if missing := missing_tools():
        skip_or_fail(f"the network test bed needs {', '.join(missing)}")
    with open("/run/videostation-testbed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        testbed = Testbed()
        try:
            testbed.up()
            yield testbed
        finally:
            testbed.down()

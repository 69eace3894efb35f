"""One way to name loggers and to attach ids to log lines (appliance/logs.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from appliance.logs import with_ids
from appliance.systemd import JournalFields

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"


def test_every_module_logs_under_its_own_name() -> None:
    """``log = logging.getLogger(__name__)``: the logger's name says which module wrote a line
    (``journalctl`` and the stderr format show it); only the handler set-up touches
    the root logger."""
    loggers = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        module_level = re.findall(r"^(\w+) = logging\.getLogger\(([^)]*)\)$", text, re.M)
        for name, argument in module_level:
            assert (name, argument) == ("log", "__name__"), (
                f"{path.name}: {name} = getLogger({argument})"
            )
        if module_level:
            loggers[path.name] = module_level
    assert len(loggers) >= 15, loggers  # the scan sees them


def test_the_ids_of_an_adapter_reach_the_record_and_the_journal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.test")
    log = with_ids(logging.getLogger("appliance.test"), peer_id="pX", room_id="kitchen")
    log.info("answered", extra={"codec": "H264"})
    with_ids(log, peer_id="").warning("no peer id given: the adapter's stays")
    first, second = caplog.records
    assert (first.peer_id, first.room_id, first.codec) == ("pX", "kitchen", "H264")  # type: ignore[attr-defined]
    assert (second.peer_id, second.room_id) == ("pX", "kitchen")  # type: ignore[attr-defined]
    JournalFields().filter(first)
    assert (first.PEER_ID, first.ROOM_ID, first.CODEC) == ("pX", "kitchen", "H264")  # type: ignore[attr-defined]

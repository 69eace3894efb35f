"""sd_notify, the watchdog and journal logging, against a real notify socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import appliance.systemd as sd
from appliance.systemd import HANDLER_NAME, Notifier, run_watchdog, setup_logging

from .helpers import skip_or_fail

SYSTEMD_VARS = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
)


@pytest.fixture(autouse=True)
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start outside systemd, whatever the environment of the test run."""
    for name in SYSTEMD_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["libsystemd", "fallback"])
def sender(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every notify test runs through systemd-python and through our own datagram code."""
    if request.param == "fallback":
        monkeypatch.setattr(sd, "_sd_notify", None)
    elif sd._sd_notify is None:
        skip_or_fail("systemd-python is not installed")
    return str(request.param)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A unix datagram socket standing in for systemd, named by $NOTIFY_SOCKET."""
    with tempfile.TemporaryDirectory(prefix="vs-") as tmp:  # short: sun_path is 108 bytes
        path = str(Path(tmp) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        yield sock
        sock.close()


@pytest.fixture
def abstract_notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"videostation-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_stopping_arrive(sender: str, notify_socket: socket.socket) -> None:
    notifier = Notifier()

    notifier.ready()
    notifier.status("ringing: Grandma")
    notifier.stopping()

    assert received(notify_socket) == "READY=1"
    assert received(notify_socket) == "STATUS=ringing: Grandma"
    assert received(notify_socket) == "STOPPING=1"


def test_status_is_kept_on_one_line(sender: str, notify_socket: socket.socket) -> None:
    Notifier().status("ringing:\nGrandma\n")
    assert received(notify_socket) == "STATUS=ringing: Grandma"


def test_abstract_socket(sender: str, abstract_notify_socket: socket.socket) -> None:
    Notifier().ready()
    assert received(abstract_notify_socket) == "READY=1"


async def test_watchdog_pings_from_the_event_loop(
    sender: str, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    notifier = Notifier()
    assert notifier.watchdog_interval == pytest.approx(0.1)

    task = asyncio.create_task(run_watchdog(notifier))
    await asyncio.sleep(0.35)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    notify_socket.setblocking(False)
    pings = []
    while True:
        try:
            pings.append(received(notify_socket))
        except BlockingIOError:
            break
    assert pings.count("WATCHDOG=1") >= 3
    assert set(pings) == {"WATCHDOG=1"}


async def test_a_blocked_loop_stops_the_pings(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    task = asyncio.create_task(run_watchdog(Notifier()))
    await asyncio.sleep(0.01)
    notify_socket.setblocking(False)
    received(notify_socket)  # the first ping

    time.sleep(0.3)  # the loop is stuck: nothing may claim it is alive
    with pytest.raises(BlockingIOError):
        received(notify_socket)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_watchdog_configured_returns_at_once(notify_socket: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.watchdog_interval is None
    await asyncio.wait_for(run_watchdog(notifier), timeout=1)


def test_watchdog_for_another_process_is_ignored(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier().watchdog_interval is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval == pytest.approx(0.1)


async def test_without_systemd_nothing_happens(sender: str) -> None:
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready()
    notifier.status("idle")
    notifier.watchdog()
    notifier.stopping()
    assert notifier.watchdog_interval is None
    await asyncio.wait_for(run_watchdog(notifier), timeout=1)


def test_a_vanished_socket_warns_once_and_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sd, "_sd_notify", None)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    notifier = Notifier()

    notifier.ready()
    notifier.status("idle")

    warnings = [r for r in caplog.records if r.name == "appliance.systemd"]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


# --- logging -----------------------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if h.get_name() == HANDLER_NAME]


def test_logs_readably_to_stderr_outside_systemd(
    restore_root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(level=logging.DEBUG)
    (handler,) = ours(restore_root_logger)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(sys.stderr)  # capsys swapped stderr after setup

    logging.getLogger("appliance.call").info(
        "ringing", extra={"room_id": "station", "peer_id": "ab12"}
    )

    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO    appliance.call: ringing [room_id=station peer_id=ab12]")
    assert restore_root_logger.level == logging.DEBUG


def test_setup_twice_keeps_one_handler(restore_root_logger: logging.Logger) -> None:
    setup_logging()
    setup_logging()
    assert len(ours(restore_root_logger)) == 1


def test_under_systemd_logs_to_the_journal_with_fields(
    restore_root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sd._journal_handler_class is None:
        skip_or_fail("systemd-python is not installed")
    monkeypatch.setenv("INVOCATION_ID", uuid.uuid4().hex)
    setup_logging()
    (handler,) = ours(restore_root_logger)
    assert isinstance(handler, sd._journal_handler_class)
    sent: list[tuple[str, dict[str, Any]]] = []

    def journal_send(message: str, /, **fields: Any) -> None:  # systemd.journal.send
        sent.append((message, fields))

    handler.send = journal_send  # type: ignore[attr-defined]

    logging.getLogger("appliance.call").warning(
        "missed call", extra={"room_id": "station", "peer_id": "ab12"}
    )

    ((message, fields),) = sent
    assert message == "missed call"
    assert fields["ROOM_ID"] == "station"
    assert fields["PEER_ID"] == "ab12"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "videostation"


def test_under_systemd_without_systemd_python_prefixes_priority(
    restore_root_logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("INVOCATION_ID", uuid.uuid4().hex)
    monkeypatch.setattr(sd, "_journal_handler_class", None)
    setup_logging()
    (handler,) = ours(restore_root_logger)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(sys.stderr)

    logging.getLogger("appliance.gpio").error("button stuck", extra={"room_id": "station"})

    assert capsys.readouterr().err == "<3>appliance.gpio: button stuck [room_id=station]\n"


def test_journal_stream_counts_only_when_it_is_our_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    assert not sd.under_systemd()
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert sd.under_systemd()

"""Living under systemd: readiness, status line, watchdog, and logging to the journal.

``videostation.service`` is ``Type=notify`` with ``WatchdogSec=``: systemd waits for
``READY=1`` before it counts the station as started, shows the ``STATUS=`` text in
``systemctl status videostation`` (e.g. ``ringing: Grandma``), and restarts the
service when ``WATCHDOG=1`` stops arriving. The pings come from the event loop, so
a loop that is stuck (a blocking call, a busy loop) gets the service restarted.

Everything here is a no-op outside systemd (a laptop, a test run): no socket in
the environment, nothing is sent and nothing fails.

Wiring, in the app's ``cleanup_ctx``::

    notifier = Notifier()
    task = asyncio.create_task(run_watchdog(notifier))
    notifier.ready()        # once the site is listening
    yield
    notifier.stopping()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)


def _import_sd_notify() -> Callable[[str], bool] | None:
    try:
        from systemd.daemon import notify
    except ImportError:  # systemd-python is optional: fall back to writing the datagram
        return None
    return notify  # type: ignore[no-any-return]


def _import_journal_handler() -> Any:
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler


_sd_notify = _import_sd_notify()
_journal_handler_class = _import_journal_handler()

HANDLER_NAME = "videostation"
"""Name of the root-logger handler :func:`setup_logging` installs (and replaces)."""


def _send_datagram(address: str, message: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to ``$NOTIFY_SOCKET``."""
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(target)
        sock.sendall(message.encode())


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, if the watchdog is meant for this process."""
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # set for a parent that exec'd us, not for this process
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


class Notifier:
    """Tells systemd how the service is doing (sd_notify); silent outside systemd.

    Reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` once, here.
    A failing send is logged once as a warning and never raised: losing the status
    line must not take the station down.
    """

    def __init__(self) -> None:
        self._socket = os.environ.get("NOTIFY_SOCKET") or None
        self._watchdog_interval = _watchdog_interval(os.environ)
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (``$NOTIFY_SOCKET`` was set)."""
        return self._socket is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of ``WatchdogSec=``); None without one."""
        return self._watchdog_interval if self._socket else None

    def ready(self) -> None:
        """The service is up and listening."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """One line for ``systemctl status``, e.g. ``idle`` or ``ringing: Grandma``."""
        self._send("STATUS=" + " ".join(text.split()))

    def stopping(self) -> None:
        """The service is shutting down."""
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        """Still alive."""
        self._send("WATCHDOG=1")

    def _send(self, message: str) -> None:
        if self._socket is None:
            return
        try:
            if _sd_notify is not None:
                _sd_notify(message)
            else:
                _send_datagram(self._socket, message)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %s: %s", self._socket, exc)


async def run_watchdog(notifier: Notifier) -> None:
    """Send ``WATCHDOG=1`` every :attr:`Notifier.watchdog_interval` until cancelled.

    Returns at once when no watchdog is configured. Run it as a task on the
    service's event loop: if the loop blocks, the pings stop and systemd restarts
    the service.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


# --- logging -----------------------------------------------------------------------

_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra={...}`` fields of a log call, e.g. ``room_id`` and ``peer_id``."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


def _journal_field(name: str) -> str | None:
    """``room_id`` → ``ROOM_ID``; None when no valid journal field name is left."""
    field = re.sub(r"[^A-Z0-9_]", "_", name.upper()).lstrip("_")[:64]
    return field if field and not field[0].isdigit() else None


class JournalFields(logging.Filter):
    """Copies ``extra`` fields to upper-case attributes, which the journal keeps.

    JournalHandler sends every record attribute as a field, but journald drops
    names that are not upper case, so ``extra={"room_id": ...}`` would be lost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in list(_extras(record).items()):
            field = _journal_field(key)
            if field is not None and field != key:
                setattr(record, field, value)
        return True


def _priority(levelno: int) -> int:
    """syslog priority of a logging level (what journald reads from ``<N>``)."""
    for threshold, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4)):
        if levelno >= threshold:
            return priority
    return 6 if levelno >= logging.INFO else 7


class _ReadableFormatter(logging.Formatter):
    """``12:00:01 INFO    appliance.call: ringing [room_id=station peer_id=ab12]``.

    Under systemd without systemd-python the line starts with ``<priority>`` instead
    of a time: journald adds its own timestamp and reads the prefix as the level.
    """

    def __init__(self, *, journal_prefix: bool) -> None:
        if journal_prefix:
            super().__init__("%(name)s: %(message)s")
        else:
            super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self._journal_prefix = journal_prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            pairs = " ".join(f"{k}={v}" for k, v in extras.items())
            first, sep, rest = text.partition("\n")
            text = f"{first} [{pairs}]{sep}{rest}"
        if self._journal_prefix:
            text = f"<{_priority(record.levelno)}>{text}"
        return text


def under_systemd() -> bool:
    """Whether this process runs as a systemd service with its output in the journal.

    ``INVOCATION_ID`` is set for every service; ``JOURNAL_STREAM`` counts only when it
    names our own stderr (it leaks into shells started from a service, see
    systemd.exec(5)).
    """
    if os.environ.get("INVOCATION_ID"):
        return True
    stream = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = stream.partition(":")
    try:
        st = os.fstat(2)
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError):
        return False


def setup_logging(*, level: int = logging.INFO) -> None:
    """Send log records to the journal under systemd, else readably to stderr.

    In the journal, fields passed as ``extra`` become journal fields, so
    ``log.info("ringing", extra={"room_id": room})`` can be found with
    ``journalctl -u videostation ROOM_ID=station``. On stderr they are appended as
    ``[room_id=station]``. Calling this again replaces the handler it installed.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    journal = under_systemd()
    handler: logging.Handler
    if journal and _journal_handler_class is not None:
        handler = _journal_handler_class(SYSLOG_IDENTIFIER="videostation")
        handler.addFilter(JournalFields())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_ReadableFormatter(journal_prefix=journal))
    handler.set_name(HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(level)

"""Log lines about a peer or a connection carry its ids as fields.

Every module logs through ``log = logging.getLogger(__name__)`` (so the logger's name
is the module's: ``appliance.media.peer``). A line about one peer, connection or
call goes through an adapter from :func:`with_ids`, which adds ``peer_id`` and
``room_id`` to the record as fields, never only into the text. The journal handler
(:mod:`appliance.systemd`) turns them into journal fields, so
``journalctl -u videostation PEER_ID=p7Kx`` finds every line of one failed call; on
stderr they are appended as ``[peer_id=p7Kx room_id=station]``::

    >>> import logging
    >>> log = with_ids(logging.getLogger("appliance.media.peer"), peer_id="p7Kx")
    >>> log.extra
    {'peer_id': 'p7Kx'}
    >>> log.process("answered", {"extra": {"room_id": "station"}})
    ('answered', {'extra': {'peer_id': 'p7Kx', 'room_id': 'station'}})
    >>> with_ids(log, room_id="station").extra  # adds to what an adapter already carries
    {'peer_id': 'p7Kx', 'room_id': 'station'}

Lines a stranger can cause (a refused connection, a slow body, a client that went
away) go through a :class:`Coalesced` log: one line per kind a minute, which counts
the ones it held back, so an attack cannot fill an SD card with the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any


class IdsAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds its ids to every record, merged with a call's own ``extra``
    (the call's own win; :class:`logging.LoggerAdapter` alone would drop them)."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def with_ids(logger: logging.Logger | IdsAdapter, **ids: str) -> IdsAdapter:
    """``logger`` with ``ids`` (e.g. ``peer_id``, ``room_id``; empty ones left out)
    as fields of every line."""
    if isinstance(logger, IdsAdapter):
        return IdsAdapter(logger.logger, {**(logger.extra or {}), **_given(ids)})
    return IdsAdapter(logger, _given(ids))


def _given(ids: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in ids.items() if value}


class Coalesced:
    """At most one line per kind every ``every`` seconds; the lines held back in
    between are counted, and the next line of that kind says how many there were.
    Kinds are a few fixed words (never an address): the table stays small.

    >>> now = [0.0]
    >>> noise = Coalesced(logging.getLogger("appliance.demo"), clock=lambda: now[0])
    >>> noise.info("slow body", "from %s: closed", "192.0.2.7")
    True
    >>> [noise.info("slow body", "from %s: closed", "192.0.2.8") for _ in range(3)]
    [False, False, False]
    >>> now[0] = 61.0
    >>> noise.held("slow body")
    3
    >>> noise.info("slow body", "from %s: closed", "192.0.2.9")  # "... (3 more like it)"
    True
    >>> noise.held("slow body")
    0
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def info(self, kind: str, message: str, *args: object) -> bool:
        return self.log(logging.INFO, kind, message, *args)

    def warning(self, kind: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, message, *args)

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log ``kind`` + ``message`` unless a line of this kind went out less than
        ``every`` seconds ago; whether it was logged."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held and last is not None:
            message += f" ({held} more like it in the last {now - last:.0f} s)"
        self._logger.log(level, f"{kind} {message}", *args)
        return True

    def held(self, kind: str) -> int:
        """Lines of ``kind`` held back since the last one logged."""
        return self._held.get(kind, 0)

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
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
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

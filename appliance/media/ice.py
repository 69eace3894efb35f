"""The station's ICE keeps the best working path, not the last one found.

aioice (aiortc's ICE agent) nominates aggressively as the controlling agent, which
the station is (it makes the offers): every check carries USE-CANDIDATE, and each pair
whose check succeeds becomes *the* pair media goes over, replacing the one before. A
relayed pair's check often succeeds after the direct one (a TURN round trip is longer),
so a call that had found its direct path moves to the relay seconds later — more
latency, and the relay carries what it need not. RFC 8445 (8.1.1, aggressive
nomination in RFC 5245) has the agent use the highest-priority nominated pair;
:func:`keep_the_best_nominated_pair` makes aioice do that: a pair that succeeds after a
higher-priority one was nominated stays valid but does not take over.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

_PATCHED = "_videostation_keeps_the_best"


def keep_the_best_nominated_pair() -> None:
    """Patch aioice's ``Connection.check_complete`` once (idempotent)."""
    from aioice import ice

    original = ice.Connection.check_complete
    if getattr(original, _PATCHED, False):
        return

    def check_complete(self: Any, pair: Any) -> None:
        current = self._nominated.get(pair.component)
        if (
            pair.nominated
            and pair.state == ice.CandidatePair.State.SUCCEEDED
            and current is not None
            and current is not pair
            and priority(self, current) > priority(self, pair)
        ):
            pair.nominated = False  # valid, kept for nothing: the better path stays
        original(self, pair)

    setattr(check_complete, _PATCHED, True)
    setattr(ice.Connection, "check_complete", check_complete)  # noqa: B010 (a method)


def priority(connection: Any, pair: Any) -> int:
    """RFC 8445's pair priority, from the controlling agent's side."""
    from aioice import ice

    return ice.candidate_pair_priority(
        pair.local_candidate, pair.remote_candidate, connection.ice_controlling
    )


def path_of(pc: Any) -> str | None:
    """``"relay"`` when the path media takes goes through a TURN relay (either end's
    candidate), ``"direct"`` otherwise; None before ICE has chosen one."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        connection = getattr(dtls.transport, "_connection", None) if dtls else None
        for pair in getattr(connection, "_nominated", {}).values():
            types = (pair.local_candidate.type, pair.remote_candidate.type)
            return "relay" if "relay" in types else "direct"
    return None

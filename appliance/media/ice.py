"""The station's ICE keeps the best working path, not the first or the last one found.

aioice (aiortc's ICE agent) nominates aggressively as the controlling agent, which
the station is (it makes the offers): every check carries USE-CANDIDATE, and each pair
whose check succeeds becomes *the* pair media goes over, replacing the one before. Two
ways that went wrong on the network test bed, both mended by
:func:`keep_the_best_nominated_pair`:

- *The last one*: a relayed pair's check often succeeds after the direct one (a TURN
  round trip is longer), so a call that had found its direct path moved to the relay
  seconds later. RFC 8445 (8.1.1; aggressive nomination in RFC 5245) has the agent use
  the highest-priority nominated pair: a pair that succeeds after a higher-priority one
  was nominated stays valid but does not take over.
- *The first one*: when the relayed pair answered first (the direct check's first
  request dropped by a NAT that had no hole for it yet: hole punching takes a try, more
  on a busy machine), aioice completed on it and stopped checking every other pair, so
  the whole call went through the relay. The checks of the better pairs now go on
  after the first nomination, and the first of them to succeed takes over, as
  libwebrtc does.

And one way it gave up on a path that worked, mended by :func:`wait_for_peer_reflexive`:

- *Names that do not resolve*: a browser that hides its addresses sends only mDNS
  (``<uuid>.local``) host candidates (Firefox, and Chromium with real permissions). When
  none resolved within aioice's 1 s and its end-of-candidates came, aioice dropped the
  component ("Components {1} have no candidate pairs") and declared ICE failed, although
  the browser's checks, from its real address, were arriving (they wait, unprocessed,
  until ``connect()``) and their peer-reflexive pairs succeeded (issue 27: one Firefox
  call in ten). RFC 8445 (7.3.1.3) learns a peer from its checks; the station now waits
  :data:`PRFLX_WAIT` seconds for them before ending the candidates with none usable.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

_PATCHED = "_videostation_keeps_the_best"
_CHECKS = "_videostation_better_checks"


def keep_the_best_nominated_pair() -> None:
    """Patch aioice's ``Connection.check_complete`` and ``close`` once (idempotent)."""
    # aioice's private check_complete, close, _nominated, _check_list and CandidatePair:
    # checked by tests/test_seams.py
    from aioice import ice

    original = ice.Connection.check_complete
    if getattr(original, _PATCHED, False):
        return
    original_close = ice.Connection.close
    pending = (
        ice.CandidatePair.State.WAITING,
        ice.CandidatePair.State.FROZEN,
        ice.CandidatePair.State.IN_PROGRESS,
    )

    def check_complete(self: Any, pair: Any) -> None:
        current = self._nominated.get(pair.component)
        nominated = pair.nominated and pair.state == ice.CandidatePair.State.SUCCEEDED
        better: list[Any] = []
        if nominated and current is not None and current is not pair:
            if priority(self, current) > priority(self, pair):
                pair.nominated = False  # valid, kept for nothing: the better path stays
        elif nominated and current is None and self.ice_controlling:
            better = [
                p
                for p in self._check_list
                if p.component == pair.component
                and p is not pair
                and p.state in pending
                and priority(self, p) > priority(self, pair)
            ]
        original(self, pair)  # nominates; drops the unchecked pairs, connect() the rest
        for other in better:
            keep_checking(self, other)

    async def close(self: Any) -> None:
        for task in list(getattr(self, _CHECKS, ())):
            task.cancel()
        await original_close(self)

    setattr(check_complete, _PATCHED, True)
    setattr(ice.Connection, "check_complete", check_complete)  # noqa: B010 (a method)
    setattr(ice.Connection, "close", close)  # noqa: B010 (a method)


PRFLX_WAIT = 5.0
"""Seconds to wait for a peer's checks (its peer-reflexive address) when its candidates
ended with none usable (mDNS names that did not resolve): a browser checks at once."""
_WAITED = "_videostation_waited_for_prflx"


def wait_for_peer_reflexive() -> None:
    """Patch aioice's ``Connection._end_remote_candidates`` once (idempotent): with no
    usable remote candidate, end-of-candidates is held back :data:`PRFLX_WAIT` seconds
    (counted as one more name being resolved, aioice's own way of holding it), so the
    peer's incoming checks pair and nominate instead of the component being dropped."""
    # aioice's private _end_remote_candidates, _remote_candidates,
    # _remote_candidates_resolving, _remote_candidates_end, _closing:
    # checked by tests/test_seams.py
    from aioice import ice

    original = ice.Connection._end_remote_candidates
    if getattr(original, _PATCHED, False):
        return

    def end_remote_candidates(self: Any) -> None:
        if self._remote_candidates or self._closing or getattr(self, _WAITED, False):
            original(self)
            return
        setattr(self, _WAITED, True)
        self._remote_candidates_resolving += 1
        log.info("no usable remote candidate: waiting %.0f s for the peer's checks", PRFLX_WAIT)

        def waited() -> None:
            self._remote_candidates_resolving -= 1
            if self._remote_candidates_end and not self._remote_candidates_resolving:
                original(self)

        asyncio.get_running_loop().call_later(PRFLX_WAIT, waited)

    setattr(end_remote_candidates, _PATCHED, True)
    setattr(ice.Connection, "_end_remote_candidates", end_remote_candidates)  # noqa: B010


def keep_checking(connection: Any, pair: Any) -> None:
    """Go on with ``pair``'s check after the connection completed on a worse pair: its
    running check is taken out of connect()'s hands (which cancels what is left when it
    completes), a check not started yet is started. Their tasks end with their STUN
    transactions, or when the connection closes."""
    from aioice import ice

    # aioice's Connection.check_start and CandidatePair.task: checked by tests/test_seams.py
    checks: set[asyncio.Task[None]] = connection.__dict__.setdefault(_CHECKS, set())
    if pair.state == ice.CandidatePair.State.IN_PROGRESS and pair.task is not None:
        task, pair.task = pair.task, None
    else:
        task = asyncio.ensure_future(connection.check_start(pair))
    checks.add(task)
    task.add_done_callback(checks.discard)


def priority(connection: Any, pair: Any) -> int:
    """RFC 8445's pair priority, from the controlling agent's side."""
    from aioice import ice

    return ice.candidate_pair_priority(  # not exported: checked by tests/test_seams.py
        pair.local_candidate, pair.remote_candidate, connection.ice_controlling
    )


def path_of(pc: Any) -> str | None:
    """``"relay"`` when the path media takes goes through a TURN relay (either end's
    candidate), ``"direct"`` otherwise; None before ICE has chosen one."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        # private RTCIceTransport._connection, aioice's _nominated: tests/test_seams.py
        connection = getattr(dtls.transport, "_connection", None) if dtls else None
        for pair in getattr(connection, "_nominated", {}).values():
            types = (pair.local_candidate.type, pair.remote_candidate.type)
            return "relay" if "relay" in types else "direct"
    return None

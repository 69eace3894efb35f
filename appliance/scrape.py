"""The metrics token: how Prometheus, which cannot log in, reads ``/api/metrics/``.

A line of ``<state dir>/metrics.token`` (mode 0600) sent as ``Authorization: Bearer
<token>`` opens that one endpoint and nothing else: it makes no session, and every
other endpoint ignores the header. The file holds at most two tokens, the current one
first: ``videostation metrics-token --rotate`` makes a new one and keeps the previous
one working, so an operator can change Prometheus's copy without a gap, and the next
rotation drops it. Wrong tokens count against a limiter per address, like passwords.

    >>> import tempfile
    >>> state = Path(tempfile.mkdtemp())
    >>> first = metrics_token(state)
    >>> metrics_token(state) == first
    True
    >>> second = metrics_token(state, rotate=True)
    >>> tokens(state) == [second, first]
    True
    >>> third = metrics_token(state, rotate=True)   # the first stops working
    >>> tokens(state) == [third, second]
    True
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from .errors import InvalidToken

TOKEN_FILE = "metrics.token"  # noqa: S105 - a file name
KEPT = 2
"""Tokens that work at once: the current one and the one before it."""


def tokens(state_dir: Path) -> list[str]:
    """The tokens that work now, the current one first (none: no file yet)."""
    try:
        lines = (state_dir / TOKEN_FILE).read_text().split()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [line for line in lines if len(line) >= 16][:KEPT]


def metrics_token(state_dir: Path, *, rotate: bool = False) -> str:
    """The current token, made on first use; ``rotate``: a new one, the previous one
    kept working until the next rotation."""
    kept = tokens(state_dir)
    if kept and not rotate:
        return kept[0]
    current = secrets.token_urlsafe(32)
    path = state_dir / TOKEN_FILE
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join([current, *kept][:KEPT]) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)
    return current


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (None: no such header)."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidToken("The Authorization header must be 'Bearer <metrics token>'.")
    return value.strip()


def check(state_dir: Path, token: str) -> None:
    """Raise unless ``token`` is one of the tokens that work now (compared in constant
    time, each one)."""
    matched = False
    for known in tokens(state_dir):
        matched |= hmac.compare_digest(known.encode(), token.encode())
    if not matched:
        raise InvalidToken("Wrong metrics token.")

"""The ICE server list handed to browsers and to the station peer.

With ``ice.turn_secret`` set, TURN credentials are minted the way coturn's
``use-auth-secret`` expects (user name ``<expiry>:<tag>``, password
``base64(HMAC-SHA1(secret, user name))``), one per session or per station connection:

- the tag is a keyed hash of what the credential is for (a session's id, a station
  connection), so coturn's logs and quotas tell sessions apart but never see a session
  id (a bearer secret);
- a browser's credential lives as long as its session has left, at most
  :data:`SESSION_CREDENTIAL_CAP`; the station's own, :data:`STATION_CREDENTIAL_TTL`.

coturn checks the expiry only when a TURN session first authenticates (the Allocate):
its key is then cached, and Refresh, CreatePermission and ChannelBind are checked
against that key alone (``check_stun_auth`` in coturn's ``ns_turn_server.c``; measured
with coturn 4.6.1 in ``tests/security/test_turn_relay.py``). So a relay in use outlives
its credential; an expired one cannot make a new relay (an ICE restart). Example::

    >>> cfg = IceConfig(turn_urls=["turn:t.example:3478"], turn_secret="s")
    >>> [s["username"] for s in ice_servers(cfg, key="session:x", lifetime=60, now=1000)]
    ['1060:ec4db45c7d5be0f6deee4942']
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from .config import IceConfig

SESSION_CREDENTIAL_CAP = 2 * 3600
"""Longest life of a browser's credential: a household call (an ICE restart late in
it makes a new relay) while a leaked or revoked one makes relays for 2 h at most."""
STATION_CREDENTIAL_TTL = 5 * 60
"""The station's own: minted for each connection, used at once (its restart requests
mint a new one with the new connection)."""
TAG_CHARS = 24
"""Hex characters of the tag (96 bits: no two sessions share one by chance)."""


def credential_tag(secret: str, key: str) -> str:
    """The user name's opaque part for ``key`` (``"session:<sid>"``, ``"station:…"``):
    keyed with the TURN secret, so it cannot be traced back to the session id."""
    digest = hmac.new(secret.encode(), f"videostation-turn:{key}".encode(), hashlib.sha256)
    return digest.hexdigest()[:TAG_CHARS]


def turn_credentials(secret: str, *, key: str, expires_at: float) -> tuple[str, str]:
    """coturn REST API credentials for ``key``, valid until ``expires_at`` (Unix time)."""
    username = f"{int(expires_at)}:{credential_tag(secret, key)}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(
    config: IceConfig, *, key: str, lifetime: float, now: float, relay: bool = True
) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries, as the browser's RTCPeerConnection takes them.

    ``key`` says whom the TURN credential is for, ``lifetime`` how long it lasts
    (seconds from ``now``, the wall clock coturn also reads); ``relay`` False: STUN
    only (a knocker not let in). Static ``turn_username``/``turn_credential`` (another
    TURN service) are handed out as they are."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls and relay:
        if config.turn_secret:
            username, credential = turn_credentials(
                config.turn_secret, key=key, expires_at=now + max(0.0, lifetime)
            )
        else:
            username, credential = config.turn_username, config.turn_credential
        servers.append(
            {"urls": list(config.turn_urls), "username": username, "credential": credential}
        )
    return servers


def session_lifetime(left: float | None) -> float:
    """A browser credential's life for a session with ``left`` seconds (None: no
    expiry, the kiosk's key): never past the session, at most the cap."""
    if left is None:
        return float(SESSION_CREDENTIAL_CAP)
    return max(0.0, min(left, SESSION_CREDENTIAL_CAP))

"""The ICE server list handed to browsers and to the station peer.

With ``ice.turn_secret`` set, TURN credentials are minted per session the way
coturn's ``use-auth-secret`` expects: user name ``<expiry>:videostation``, password
``base64(HMAC-SHA1(secret, user name))``, valid for a day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from .config import IceConfig

TURN_CREDENTIAL_TTL = 24 * 3600


def turn_credentials(secret: str, *, now: float | None = None) -> tuple[str, str]:
    expiry = int((now or time.time()) + TURN_CREDENTIAL_TTL)
    username = f"{expiry}:videostation"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(config: IceConfig) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries, as the browser's RTCPeerConnection takes them."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls:
        if config.turn_secret:
            username, credential = turn_credentials(config.turn_secret)
        else:
            username, credential = config.turn_username, config.turn_credential
        servers.append(
            {"urls": list(config.turn_urls), "username": username, "credential": credential}
        )
    return servers

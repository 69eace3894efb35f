"""Is a request from the station itself? The kiosk key, and the kiosk session it buys,
count only then (issue 22, item 7).

"The station itself" is a TCP peer on a loopback address (127.0.0.0/8, ``::1``, or
IPv4 loopback mapped into IPv6 when the service listens on ``::``) whose request
carries no proxy header. The station is never put behind a reverse proxy (it serves
TLS itself; docs/operators.md): a proxy on the station would make every caller look
like loopback, so a request that says it was forwarded (``Forwarded``,
``X-Forwarded-For``, ``X-Real-IP``, ``Via``, ...) is not local, whatever its address.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from .. import errors

PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "Via")
"""Headers a reverse proxy adds: a request with any of them came from elsewhere."""


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a peer address as the socket gives it) is a loopback address.

    >>> [is_loopback(a) for a in ("127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1")]
    [True, True, True, True]
    >>> [is_loopback(a) for a in ("10.0.0.2", "::ffff:10.0.0.2", "fe80::1%eth0", "", None)]
    [False, False, False, False, False]
    """
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a scoped IPv6 address (never loopback) or a Unix socket path
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def from_this_machine(request: web.Request) -> bool:
    """The request came over loopback from a process on the station, not via a proxy.

    The address is the socket's own peer, not ``request.remote`` (which a middleware
    may rewrite from a forwarded header)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if not is_loopback(host if isinstance(host, str) else None):
        return False
    return not any(name in request.headers for name in PROXY_HEADERS)


def require_this_machine(request: web.Request) -> None:
    """Raise :class:`~appliance.errors.KioskNotLocal` unless the request is local."""
    if not from_this_machine(request):
        raise errors.KioskNotLocal()

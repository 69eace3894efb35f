"""coturn's denied-peer-ip lines for the station (filter ``videostation_coturn_denied``).

coturn 4.6 takes ranges (``first-last``), not prefixes, so the prefixes are written out
here. Denied: every range of IANA's IPv4 and IPv6 Special-Purpose Address Registries
(as of 2025), multicast, and every IPv6 address outside global unicast (2000::/3); then
the station host's own addresses, the /64 of each of its global IPv6 addresses (the
home LAN: hosts there are addressed from the same prefix) and the networks given with a
prefix or netmask. A relay into any of them would let a caller reach the station itself
or the home LAN through it. Example::

    >>> ranges = videostation_coturn_denied(["192.168.1.5/24", "2a01:4f8:1:2::5"])
    >>> ranges[-1]
    '2a01:4f8:1:2::-2a01:4f8:1:2:ffff:ffff:ffff:ffff'
"""

from __future__ import annotations

import ipaddress

SPECIAL_PURPOSE = (
    # IPv4 Special-Purpose Address Registry, and the multicast and reserved blocks
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "direct delegation AS112 service"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved, and the limited broadcast 255.255.255.255"),
    # IPv6 Special-Purpose Address Registry, then everything not global unicast
    ("::1/128", "loopback"),
    ("::/128", "unspecified (coturn refuses it of itself: no line)"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b::/96", "IPv4/IPv6 translation (reaches IPv4 through NAT64)"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy prefix"),
    ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("2620:4f:8000::/48", "direct delegation AS112 service"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link local"),
    ("fec0::/10", "deprecated site local"),
    ("ff00::/8", "multicast"),
    ("::/3", "not global unicast (IPv4-compatible, reserved)"),
    ("4000::/2", "not global unicast"),
    ("8000::/1", "not global unicast (unique and link local, multicast)"),
)
"""(prefix, why) for every range no caller may relay to."""

HOST_IPV6_PREFIX = 64


def _range(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """``first-last``, or the one address. coturn 4.6 reads a range starting at the
    all-zero address (``::``, ``0.0.0.0``) as open below and across address families
    (``::-1fff:…`` denied every IPv4 peer), so such a range starts one address later:
    coturn refuses the zero address itself anyway."""
    first, last = network.network_address, network.broadcast_address
    if int(first) == 0:
        if first == last:
            return None
        first += 1
    return str(first) if first == last else f"{first}-{last}"


def _special(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in ipaddress.ip_network(prefix) for prefix, _ in SPECIAL_PURPOSE)


def host_networks(
    addresses: list[str],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The station's own addresses (``"a.b.c.d"``, ``"a.b.c.d/24"``, ``"…/255.255.255.0"``,
    IPv6 with or without a prefix), each as itself and its network; a global IPv6
    address also as its /64."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for text in addresses:
        interface = ipaddress.ip_interface(str(text).split("%")[0])
        found = [ipaddress.ip_network(interface.ip), interface.network]
        if interface.version == 6 and not _special(interface.ip):
            found.append(ipaddress.ip_network(f"{interface.ip}/{HOST_IPV6_PREFIX}", strict=False))
        for network in found:
            if network not in networks:
                networks.append(network)
    return networks


def videostation_coturn_denied(host_addresses: list[str]) -> list[str]:
    """Every denied-peer-ip range: the special-purpose ones, then the host's."""
    if isinstance(host_addresses, str):
        raise TypeError("videostation_coturn_host_addresses must be a list of addresses")
    special = [ipaddress.ip_network(prefix) for prefix, _ in SPECIAL_PURPOSE]
    ranges = [_range(n) for n in special + host_networks(list(host_addresses or []))]
    return [r for r in ranges if r is not None]


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"videostation_coturn_denied": videostation_coturn_denied}

"""Filters of the relay role: coturn's peer ranges and the tunnel's network.

coturn 4.6 reads ``denied-peer-ip`` as one address or a ``first-last`` range, not a
prefix, so prefixes are written out. A range starting at the all-zero address is read
as open below and across address families (``tests/security/test_turn_relay.py``
found it for the station's coturn), so such a range starts one address later; coturn
refuses the zero address itself anyway.

    >>> videostation_relay_peer_range("10.99.0.1/16")
    '10.99.0.0-10.99.255.255'
    >>> videostation_relay_peer_range("0.0.0.0/8")
    '0.0.0.1-0.255.255.255'
    >>> videostation_relay_peer_range("::1/128")
    '::1'
"""

from __future__ import annotations

import ipaddress


def videostation_relay_peer_range(prefix: str) -> str:
    """A network (an interface address is taken as its network) as coturn's range."""
    network = ipaddress.ip_interface(str(prefix)).network
    first, last = network.network_address, network.broadcast_address
    if int(first) == 0 and first != last:
        first += 1
    return str(first) if first == last else f"{first}-{last}"


def videostation_relay_network(address: str) -> str:
    """The network of an interface address: ``10.99.0.1/16`` -> ``10.99.0.0/16``."""
    return str(ipaddress.ip_interface(str(address)).network)


def videostation_relay_in_network(address: str, interface: str) -> bool:
    """Whether a station's tunnel address lies in the tunnel and is not the relay's."""
    tunnel = ipaddress.ip_interface(str(interface))
    ip = ipaddress.ip_address(str(address))
    return ip in tunnel.network and ip not in (
        tunnel.ip,
        tunnel.network.network_address,
        tunnel.network.broadcast_address,
    )


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {
            "videostation_relay_peer_range": videostation_relay_peer_range,
            "videostation_relay_network": videostation_relay_network,
            "videostation_relay_in_network": videostation_relay_in_network,
        }

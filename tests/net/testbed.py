"""A small Internet made of network namespaces: a home, a carrier, and the public part.

::

    nethome 10.61.1.2 ── nethomer (NAT: masquerade) ── 198.18.0.2
                                                         │
                               netpub 198.18.0.1 / 198.18.1.1, coturn on 198.18.255.1
                                                         │
    netph1 10.62.1.2 ──┐                                 │
                       ├── netcarr (symmetric NAT: masquerade random) ── 198.18.1.2
    netph2 10.62.2.2 ──┘

The station runs in ``nethome`` (its web port forwarded on the home router, as an
operator would); phones run in ``netph1``/``netph2`` behind the carrier's symmetric NAT,
so media between them needs TURN (``Testbed(carrier="port-preserving")`` keeps the phones'
ports instead: ICE finds a direct path). 198.18.0.0/15 is the benchmarking range: these
addresses exist only inside the namespaces. :meth:`Testbed.impair` caps a phone's
downlink with ``tbf`` and drops a share of its packets with nftables (this kernel has
no netem). Everything is removed by :meth:`Testbed.down`, also after a failure.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

PREFIX = "net"
HOME, HOME_ROUTER, PUBLIC, CARRIER = "nethome", "nethomer", "netpub", "netcarr"
PHONES = ("netph1", "netph2")
STATION_ADDR = "10.61.1.2"
STATION_PUBLIC = "198.18.0.2"
TURN_ADDR = "198.18.255.1"
TOOLS = ("ip", "nft", "tc", "turnserver")

Carrier = Literal["symmetric", "port-preserving"]
"""The carrier's NAT: a new random port for every destination (no direct path to the
station: media through TURN), or the phone's port kept for every destination (what
home routers and many carriers do: ICE finds a direct path through both NATs)."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and result.returncode:
        # The tool's own message, not only its exit status.
        raise RuntimeError(f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def ns(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", name, *args, check=check)


def nft(name: str, script: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", name, "nft", "-f", "-"],
        input=script, check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@dataclass
class Testbed:
    __test__ = False  # not a test class, though its name starts with "Test"
    carrier: Carrier = "symmetric"
    namespaces: list[str] = field(default_factory=list)

    def up(self) -> None:
        self.down()  # leftovers of a killed run
        for name in (HOME, HOME_ROUTER, PUBLIC, CARRIER, *PHONES):
            sh("ip", "netns", "add", name)
            self.namespaces.append(name)
            ns(name, "ip", "link", "set", "lo", "up")
        self._link(HOME, "10.61.1.2/24", HOME_ROUTER, "10.61.1.1/24", "neth0")
        self._link(HOME_ROUTER, "198.18.0.2/24", PUBLIC, "198.18.0.1/24", "netw0")
        self._link(CARRIER, "198.18.1.2/24", PUBLIC, "198.18.1.1/24", "netw1")
        for index, phone in enumerate(PHONES, start=1):
            self._link(phone, f"10.62.{index}.2/24", CARRIER, f"10.62.{index}.1/24", f"netp{index}")
            ns(phone, "ip", "route", "add", "default", "via", f"10.62.{index}.1")
        ns(HOME, "ip", "route", "add", "default", "via", "10.61.1.1")
        ns(HOME_ROUTER, "ip", "route", "add", "default", "via", "198.18.0.1")
        ns(CARRIER, "ip", "route", "add", "default", "via", "198.18.1.1")
        ns(PUBLIC, "ip", "addr", "add", f"{TURN_ADDR}/32", "dev", "lo")
        # private addresses vanish on the Internet instead of failing to send: coturn
        # drops an allocation whose relay socket gets "network unreachable"
        # (a veth whose other end answers nothing: this kernel has no dummy links)
        sh("ip", "link", "add", "netdropa", "netns", PUBLIC, "type", "veth", "peer",
           "netdropb", "netns", PUBLIC)  # fmt: skip
        for end in ("netdropa", "netdropb"):
            ns(PUBLIC, "ip", "link", "set", end, "up")
        ns(PUBLIC, "ip", "route", "add", "default", "dev", "netdropa")
        for router in (HOME_ROUTER, PUBLIC, CARRIER):
            ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # the home router: port-preserving NAT, the station's web port forwarded
        nft(
            HOME_ROUTER,
            "table ip netnat {\n"
            " chain pre { type nat hook prerouting priority dstnat;\n"
            f"  iifname netw0a tcp dport 8080 dnat to {STATION_ADDR}:8080\n }}\n"
            " chain post { type nat hook postrouting priority srcnat;\n"
            "  oifname netw0a masquerade\n }\n"
            "}\n",
        )
        # the carrier: symmetric NAT (a new random port for every destination), or
        # port-preserving
        random = " random" if self.carrier == "symmetric" else ""
        nft(
            CARRIER,
            "table ip netnat {\n"
            " chain post { type nat hook postrouting priority srcnat;\n"
            f"  oifname netw1a masquerade{random}\n }}\n"
            "}\n",
        )
        # Neither router answers UDP from outside that is not for a flow it knows, as
        # real ones don't. It matters for a direct path: a peer's first check reaching a
        # router before that router's own host has sent anything would otherwise be
        # kept as a flow of the router's, taking the port the host's NAT mapping needs.
        for router, wan in ((HOME_ROUTER, "netw0a"), (CARRIER, "netw1a")):
            nft(
                router,
                "table ip netfw {\n"
                " chain in { type filter hook input priority 0;\n"
                f"  iifname {wan} meta l4proto udp drop\n }}\n"
                "}\n",
            )

    def _link(self, a: str, a_addr: str, b: str, b_addr: str, name: str) -> None:
        """A veth pair: ``<name>a`` in ``a``, ``<name>b`` in ``b``."""
        sh("ip", "link", "add", f"{name}a", "netns", a, "type", "veth", "peer",
           f"{name}b", "netns", b)  # fmt: skip
        ns(a, "ip", "addr", "add", a_addr, "dev", f"{name}a")
        ns(b, "ip", "addr", "add", b_addr, "dev", f"{name}b")
        ns(a, "ip", "link", "set", f"{name}a", "up")
        ns(b, "ip", "link", "set", f"{name}b", "up")

    def impair(self, phone: str, *, kbit: int | None, loss_percent: int = 0) -> None:
        """Cap the downlink of ``phone`` (egress of the carrier towards it) and drop
        ``loss_percent`` of what reaches it; ``kbit=None`` and 0 % lift both."""
        index = PHONES.index(phone) + 1
        dev = f"netp{index}b"
        ns(CARRIER, "tc", "qdisc", "del", "dev", dev, "root", check=False)
        if kbit is not None:
            ns(CARRIER, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{kbit}kbit",
               "burst", "8kb", "latency", "200ms")  # fmt: skip
        table = f"netloss{index}"
        ns(phone, "nft", "delete", "table", "ip", table, check=False)
        if loss_percent:
            nft(
                phone,
                f"table ip {table} {{\n chain in {{ type filter hook input priority 0;\n"
                f"  meta l4proto udp numgen random mod 100 < {loss_percent} drop\n }}\n}}\n",
            )

    def down(self) -> None:
        existing = sh("ip", "netns", "list", check=False).stdout.split()
        for name in (HOME, HOME_ROUTER, PUBLIC, CARRIER, *PHONES):
            if name in existing:
                # killing what still runs inside, then the namespace (its veths go with it)
                pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
                for pid in pids:
                    sh("kill", "-9", pid, check=False)
                sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


def popen(name: str, args: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
    """Start ``args`` inside namespace ``name``."""
    return subprocess.Popen(["ip", "netns", "exec", name, *args], text=True, **kwargs)  # type: ignore[call-overload]

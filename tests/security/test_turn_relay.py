"""The shipped coturn configuration against a real coturn on loopback (issue 22, item 6).

coturn runs from the role's template, rendered as Ansible renders it (with the role's
filter plugin and test values for the host's addresses), plus only what a test on
loopback needs: its listeners and relays on 127.0.0.1 and ::1, free ports, a log in
the test's directory, and one peer it may relay to (127.0.0.2, with loopback peers
on) for the positive check. A TURN client (aioice's) allocates with credentials from
``appliance.turn`` and asks for permissions: coturn answers 403 for a denied peer.
All traffic stays on loopback: a permission to a public address sends nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
from aioice import stun
from aioice.turn import TCP_TRANSPORT, UDP_TRANSPORT, TurnClientUdpProtocol

from appliance.config import IceConfig
from appliance.turn import ice_servers, turn_credentials

from ..helpers import skip_or_fail

ROLE = Path(__file__).parents[2] / "ansible" / "roles" / "videostation"
SECRET = "relay-test-secret-0123456789"
REALM = "videostation.test"
HOST_ADDRESSES = ["93.184.216.34", "192.168.1.5/24", "2a01:4f8:1:2::5", "fe80::5"]
"""The station host's addresses as Ansible's facts would give them (test values)."""
ALLOWED_PEER = "127.0.0.2"

if shutil.which("turnserver") is None:
    skip_or_fail("coturn (turnserver) is not installed", module_level=True)


def render_role_config(**overrides: object) -> str:
    """turnserver.conf as the role renders it (trim_blocks, as Ansible's template)."""
    sys.path.insert(0, str(ROLE / "filter_plugins"))
    try:
        import videostation_coturn
    finally:
        sys.path.remove(str(ROLE / "filter_plugins"))
    env = jinja2.Environment(  # noqa: S701 - a config file, not HTML
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(videostation_coturn.FilterModule().filters())
    import yaml

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {k: v for k, v in defaults.items() if k.startswith("videostation_coturn_")}
    values.update(
        videostation_coturn_realm=REALM,
        videostation_turn_secret=SECRET,
        videostation_coturn_host_addresses=HOST_ADDRESSES,
        videostation_certbot_enabled=False,
    )
    values.update(overrides)
    return env.get_template("turnserver.conf.j2").render(**values)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 and ::1 (the kernel picks it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
        try:
            for family, host, kind in (
                (socket.AF_INET, "127.0.0.1", socket.SOCK_STREAM),
                (socket.AF_INET6, "::1", socket.SOCK_DGRAM),
                (socket.AF_INET6, "::1", socket.SOCK_STREAM),
            ):
                with socket.socket(family, kind) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no free port on loopback")


@dataclass
class Coturn:
    port: int
    log: Path

    def server(self, host: str = "127.0.0.1") -> tuple[str, int]:
        return (host, self.port)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    port, alt = free_port(), free_port()
    relay_low = 40000 + (port % 200) * 100  # a range of its own, most likely
    conf = tmp_path / "turnserver.conf"
    conf.write_text(
        render_role_config(
            videostation_coturn_port=port,
            videostation_coturn_min_port=relay_low,
            videostation_coturn_max_port=relay_low + 99,
            videostation_coturn_allowed_peer_ips=[ALLOWED_PEER],
        )
        # loopback only, and nothing outside the test's directory
        + f"listening-ip=127.0.0.1\nlistening-ip=::1\nrelay-ip=127.0.0.1\nrelay-ip=::1\n"
        f"alt-listening-port={alt}\nno-tls\nno-dtls\nrelay-threads=1\n"
        f"pidfile={tmp_path / 'turn.pid'}\nuserdb={tmp_path / 'turndb'}\n"
        f"log-file={tmp_path / 'turn.log'}\nno-stdout-log\n"
        # the one permitted peer of the positive check lives on loopback
        "allow-loopback-peers\n"
    )
    proc = subprocess.Popen(
        ["turnserver", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log = tmp_path / "turn.log"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # bounded: 15 s
            if proc.poll() is not None:
                raise AssertionError(f"coturn exited {proc.returncode}: {read(log)}")
            if "Total General servers" in read(log) or "IPv4. UDP listener opened" in read(log):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("coturn did not start: " + read(log)[-3000:])
        yield Coturn(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def credential(key: str, *, lifetime: float = 600) -> tuple[str, str]:
    """The TURN user name and password the station hands out for ``key``."""
    config = IceConfig(turn_urls=["turn:127.0.0.1"], turn_secret=SECRET)
    server = ice_servers(config, key=key, lifetime=lifetime, now=time.time())[-1]
    return server["username"], server["credential"]


REQUESTED_ADDRESS_FAMILY = (0x0017, "REQUESTED-ADDRESS-FAMILY", stun.pack_bytes, stun.unpack_bytes)
"""RFC 6156's attribute (coturn relays on IPv4 unless asked), unknown to aioice."""


@pytest.fixture(autouse=True)
def address_family_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        stun.ATTRIBUTES_BY_NAME, REQUESTED_ADDRESS_FAMILY[1], REQUESTED_ADDRESS_FAMILY
    )
    monkeypatch.setitem(
        stun.ATTRIBUTES_BY_TYPE, REQUESTED_ADDRESS_FAMILY[0], REQUESTED_ADDRESS_FAMILY
    )


@dataclass
class Client:
    turn: TurnClientUdpProtocol
    allocated: bool = False

    async def allocate(self, *, ipv6: bool = False) -> tuple[str, int]:
        """A UDP relay (IPv6 if asked); raises stun.TransactionFailed if refused."""
        request = stun.Message(
            message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST
        )
        request.attributes["LIFETIME"] = 600
        request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        if ipv6:
            request.attributes["REQUESTED-ADDRESS-FAMILY"] = b"\x02\x00\x00\x00"
        response, _ = await asyncio.wait_for(self.turn.request_with_retry(request), 10)
        self.allocated = True
        relayed: tuple[str, int] = response.attributes["XOR-RELAYED-ADDRESS"]
        return relayed

    async def permit(self, peer: str) -> int:
        """CreatePermission for ``peer``: 200, or coturn's error code."""
        request = stun.Message(
            message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
        )
        request.attributes["XOR-PEER-ADDRESS"] = (peer, 9)
        return await self.status(request)

    async def refresh(self) -> int:
        request = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        request.attributes["LIFETIME"] = 600
        return await self.status(request)

    async def status(self, request: stun.Message) -> int:
        try:
            await asyncio.wait_for(self.turn.request_with_retry(request), 10)
        except stun.TransactionFailed as exc:
            return int(exc.response.error_code or 0)
        return 200


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        if client.allocated:  # give it back
            await asyncio.wait_for(client.turn.delete(), 10)
        client.turn.transport.close()


async def connect(
    coturn: Coturn, clients: list[Client], user: tuple[str, str], host: str = "127.0.0.1"
) -> Client:
    loop = asyncio.get_running_loop()
    server = coturn.server(host)
    _, turn = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server, username=user[0], password=user[1], lifetime=600, channel_refresh_time=500
        ),
        remote_addr=server,
    )
    clients.append(Client(turn))
    return clients[-1]


def allocate_status(error: BaseException) -> int:
    assert isinstance(error, stun.TransactionFailed), error
    return int(error.response.error_code or 0)


async def test_the_relay_works_for_an_allowed_peer(coturn: Coturn, clients: list[Client]) -> None:
    """The positive control: a credential from turn.py allocates, and data reaches the
    one peer this test's configuration allows."""
    client = await connect(coturn, clients, credential("session:a"))
    relayed = await client.allocate()
    assert relayed[0] == "127.0.0.1"
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((ALLOWED_PEER, 0))
    peer.settimeout(10)
    try:
        await asyncio.wait_for(client.turn.send_data(b"hello", peer.getsockname()), 10)
        data, source = await asyncio.to_thread(peer.recvfrom, 100)
        assert data == b"hello" and source == relayed
    finally:
        peer.close()


@pytest.mark.parametrize(
    "peer",
    [
        "198.18.0.1",  # benchmarking
        "192.0.0.1",  # IETF protocol assignments
        "192.168.1.20",  # the home LAN
        "100.64.0.1",  # carrier-grade NAT
        "203.0.113.7",  # documentation
        "192.31.196.1",  # AS112
        "240.0.0.1",  # reserved
        "127.0.0.3",  # loopback, although loopback peers are on in this test
        "93.184.216.34",  # the station host's own public address
    ],
)
async def test_special_purpose_ipv4_peers_are_refused(
    coturn: Coturn, clients: list[Client], peer: str
) -> None:
    client = await connect(coturn, clients, credential("session:a"))
    await client.allocate()
    assert await client.permit(peer) == 403
    assert await client.permit("8.8.8.8") == 200  # a public address is fine


@pytest.mark.parametrize(
    "peer",
    [
        "fd12:3456::1",  # unique local
        "fe80::1",  # link local
        "2001:db8::1",  # documentation
        "64:ff9b::c612:1",  # NAT64 of 198.18.0.1
        "::ffff:c612:1",  # IPv4-mapped
        "2002:c612:1::1",  # 6to4
        "2001:0:1::1",  # Teredo
        "3fff::1",  # documentation (2024)
        "2a01:4f8:1:2::5",  # the station host itself
        "2a01:4f8:1:2:aaaa::1",  # another host of its LAN (the same /64)
    ],
)
async def test_special_purpose_and_home_ipv6_peers_are_refused(
    coturn: Coturn, clients: list[Client], peer: str
) -> None:
    client = await connect(coturn, clients, credential("session:a"), host="::1")
    relayed = await client.allocate(ipv6=True)
    assert relayed[0] == "::1"
    assert await client.permit(peer) == 403
    assert await client.permit("2a01:4f8:1:3::1") == 200  # the next /64: someone else


async def test_no_tcp_relay(coturn: Coturn, clients: list[Client]) -> None:
    """RFC 6062 TCP relays are off: a TCP allocation is refused (442)."""
    client = await connect(coturn, clients, credential("session:a"))
    request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    request.attributes["LIFETIME"] = 600
    request.attributes["REQUESTED-TRANSPORT"] = TCP_TRANSPORT
    assert await client.status(request) == 442


async def test_an_expired_credential_allocates_nothing(
    coturn: Coturn, clients: list[Client]
) -> None:
    user, password = turn_credentials(SECRET, key="session:a", expires_at=time.time() - 5)
    client = await connect(coturn, clients, (user, password))
    with pytest.raises(stun.TransactionFailed) as failed:
        await client.allocate()
    assert allocate_status(failed.value) == 401


async def test_a_relay_outlives_its_credential(coturn: Coturn, clients: list[Client]) -> None:
    """coturn checks the expiry only at the allocation (its key is then cached): a
    call's relay goes on (refreshes, new permissions) after the credential expired;
    what the short lifetime bounds is when a new relay can be made."""
    client = await connect(coturn, clients, credential("session:a", lifetime=2))
    await client.allocate()
    await asyncio.sleep(3.5)  # past the expiry, by more than a second of rounding
    assert await client.refresh() == 200
    assert await client.permit(ALLOWED_PEER) == 200
    again = await connect(coturn, clients, (client.turn.username or "", client.turn.password or ""))
    with pytest.raises(stun.TransactionFailed) as failed:
        await again.allocate()
    assert allocate_status(failed.value) == 401


async def test_allocations_are_counted_per_session(coturn: Coturn, clients: list[Client]) -> None:
    """user-quota counts the user name after its expiry, i.e. per session: credentials
    minted again for one session (another expiry) share its quota; another session
    still gets a relay."""
    for i in range(8):
        client = await connect(coturn, clients, credential("session:a", lifetime=600 + i))
        await client.allocate()
    one_more = await connect(coturn, clients, credential("session:a", lifetime=700))
    with pytest.raises(stun.TransactionFailed) as failed:
        await one_more.allocate()
    assert allocate_status(failed.value) == 486
    other = await connect(coturn, clients, credential("session:b"))
    await other.allocate()


def test_the_role_denies_the_registries_and_the_host() -> None:
    """The rendered lines (no coturn needed): every range is a first-last pair or one
    address, as coturn 4.6 reads them, and the limits are set."""
    text = render_role_config(
        videostation_coturn_port=3478,
        videostation_coturn_min_port=49152,
        videostation_coturn_max_port=65535,
    )
    denied = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("denied-")]
    assert "198.18.0.0-198.19.255.255" in denied and "192.0.0.0-192.0.0.255" in denied
    assert "2a01:4f8:1:2::-2a01:4f8:1:2:ffff:ffff:ffff:ffff" in denied
    assert "93.184.216.34" in denied and "192.168.1.0-192.168.1.255" in denied
    assert all("/" not in entry for entry in denied)
    for line in ("no-tcp-relay", "user-quota=8", "total-quota=24", "max-bps=500000"):
        assert line in text.splitlines()
    assert "allowed-peer-ip" not in text

"""The relay's role (issue 23, first slice): lint and syntax, the role applied twice to
a debootstrapped Debian 12 root, then the configuration it rendered run for real in
network namespaces.

The namespaces (prefix ``rly``, apart from tests/net's ``net*``)::

    rlysta  station A: 198.18.50.2, tunnel 198.19.77.2 (wireguard-go)
       │                                                         ↘ tunnel
    rlyrel  the relay: 198.18.50.1 / 198.18.60.1 (public), tunnel 198.19.77.1 (wireguard-go),
       │    nginx and coturn of this machine with the root's nginx.conf and turnserver.conf
    rlyph   the phone, outside: 198.18.60.2, and 198.18.70.1 (a public peer for TURN)

The configuration is read out of the root the role was applied to (rather than rendered
again with ansible on this machine): what runs is exactly what the role wrote, its key
included; only paths of this machine are changed (pid, logs, the key file, the socket for
unknown names). The tunnel is in 198.19.77.0/24 -- a range the relay's coturn does not
deny for itself (198.18.0.0/15 stands for "public" in the namespaces) -- so the one line
that refuses the tunnel is the tunnel's own ``denied-peer-ip``.

Needs root and debootstrap (the root), and wireguard-go, wg-quick, nginx with its stream
module and coturn (the namespaces); without them the tests skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import base64
import contextlib
import doctest
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.turn import turn_credentials

from ..helpers import skip_or_fail
from .rootfs import REPO, Chroot, ansible_core_spec, copy_checkout, debian_root
from .test_ansible import _env, _tool

ANSIBLE_DIR = REPO / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "videostation_relay"
BIN = Path(sys.executable).parent
ANSIBLE_VENV = "/opt/videostation-ansible"
FLEET = "fleet.test"
SECRET = "relay-fleet-secret-0123456789"
TUNNEL = "198.19.77.1/24"
STATION_A = "198.19.77.2"
STATION_B = "198.19.77.3"  # in the map, never up: a name of the fleet, not a fallback
PUBLIC = "198.18.60.1"
SINK = "198.18.70.1"
NAMESPACES = ("rlyrel", "rlysta", "rlyph")
RECAP = re.compile(
    r"^localhost\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)\s.*failed=(?P<failed>\d+)", re.M
)


# --- fast checks ------------------------------------------------------------------
# (ansible-lint runs over all of ansible/, this role included, in test_ansible.py)


def test_relay_playbook_syntax_check() -> None:
    result = subprocess.run(
        [_tool("ansible-playbook"), "--syntax-check", "relay.yml"],
        cwd=ANSIBLE_DIR, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_default_is_in_argument_specs() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    assert all(spec.get("description") for spec in options.values())


def test_the_filter_examples_run() -> None:
    """The filters that write coturn's ranges and check the stations' addresses."""
    spec = importlib.util.spec_from_file_location(
        "videostation_relay_filters", ROLE / "filter_plugins" / "videostation_relay.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted >= 3 and result.failed == 0
    assert module.videostation_relay_in_network("10.99.0.2", "10.99.0.1/16")
    for outside in ("10.99.0.1", "10.98.0.2", "10.99.255.255"):
        assert not module.videostation_relay_in_network(outside, "10.99.0.1/16"), outside


# --- the role applied twice to a Debian 12 root ------------------------------------


def _keypair() -> tuple[str, str]:
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes_raw()).decode()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, base64.b64encode(public).decode()


def _apply(chroot: Chroot, *options: str) -> tuple[str, int, int]:
    result = chroot.run(
        f"{ANSIBLE_VENV}/bin/ansible-playbook", *options, "-i", "/usr/src/relay-inventory.yml",
        "-e", "@/usr/src/relay-vars.yml", "/usr/src/videostation/ansible/relay.yml",
        env={"ANSIBLE_CONFIG": "/usr/src/videostation/ansible/ansible.cfg", "ANSIBLE_NOCOLOR": "1"},
        timeout=1800, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    recap = RECAP.search(output)
    assert recap, output[-5000:]
    return output, int(recap["changed"]), int(recap["failed"])


@dataclass
class RelayRoot:
    root: Path
    station_key: str
    """Station A's private key (made here: a station makes its own)."""
    runs: list[tuple[str, int, int, float]]


@pytest.fixture(scope="module")
def relay_root() -> Iterator[RelayRoot]:
    """The role applied twice (relay.yml, connection local) to a copy of the cached
    debootstrapped root; the root is removed afterwards."""
    station_a, station_b = _keypair(), _keypair()
    variables = {
        "videostation_relay_fleet_domain": FLEET,
        "videostation_relay_public_ipv4": PUBLIC,
        "videostation_relay_tunnel_address": TUNNEL,
        "videostation_turn_secret": SECRET,
        "videostation_relay_stations": [
            {"name": "a", "public_key": station_a[1], "address": STATION_A},
            {"name": "b", "public_key": station_b[1], "address": STATION_B},
        ],
    }
    inventory = {
        "relay": {
            "hosts": {
                "localhost": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
            }
        }
    }
    with debian_root() as chroot:
        root = chroot.root
        copy_checkout(root / "usr/src/videostation")
        (root / "usr/src/relay-vars.yml").write_text(yaml.safe_dump(variables))
        (root / "usr/src/relay-inventory.yml").write_text(yaml.safe_dump(inventory))
        chroot.run("python3", "-m", "venv", ANSIBLE_VENV, timeout=600)
        chroot.run(
            f"{ANSIBLE_VENV}/bin/pip", "install", "--quiet", "--disable-pip-version-check",
            ansible_core_spec(), timeout=1800,
        )  # fmt: skip
        runs = []
        # twice for real, then in check mode (--check on a fresh machine cannot work:
        # the units it enables come with the packages it would install)
        for options in ((), (), ("--check",)):
            started = time.monotonic()
            output, changed, failed = _apply(chroot, *options)
            runs.append((output, changed, failed, time.monotonic() - started))
        yield RelayRoot(root, station_a[0], runs)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_role_converges_then_changes_nothing(relay_root: RelayRoot) -> None:
    (first, changed, failed, first_s), (second, changed2, failed2, second_s), check = (
        relay_root.runs
    )
    print(
        f"relay role: first apply {first_s:.0f} s, second {second_s:.0f} s, check {check[3]:.0f} s"
    )
    assert failed == 0 and changed > 0
    assert failed2 == 0 and changed2 == 0, second[-8000:]
    assert check[1:3] == (0, 0), check[0][-8000:]
    root = relay_root.root
    key = root / "etc/wireguard/wg0.key"
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_uid == 0
    private = key.read_text().strip()
    # The private key is in no config and in no output of the role.
    for path in (root / "etc").rglob("*"):
        if path.is_file() and path != key and not path.is_symlink():
            assert private not in path.read_text(errors="replace"), path
    assert private not in first + second
    assert SECRET not in first + second
    conf = (root / "etc/wireguard/wg0.conf").read_text()
    assert "MTU = 1380" in conf and "ListenPort = 51820" in conf
    assert conf.count("[Peer]") == 2 and f"AllowedIPs = {STATION_A}/32" in conf
    # This kernel has no WireGuard module: wg-quick runs under wireguard-go.
    dropin = root / "etc/systemd/system/wg-quick@wg0.service.d/userspace.conf"
    assert "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go" in dropin.read_text()
    assert (root / "usr/bin/wireguard-go").exists()
    for unit in ("wg-quick@wg0.service", "nginx.service", "coturn.service"):
        result = subprocess.run(
            ["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True, text=True
        )
        assert result.stdout.strip() == "enabled", (unit, result.stdout, result.stderr)
    turn = (root / "etc/turnserver.conf").read_text().splitlines()
    assert f"static-auth-secret={SECRET}" in turn and "use-auth-secret" in turn
    assert "denied-peer-ip=198.19.77.0-198.19.77.255" in turn
    assert {"no-cli", "no-multicast-peers", "no-tls", "no-tcp-relay"} <= set(turn)
    assert not any(line.startswith(("web-admin", "allow-loopback-peers")) for line in turn)


# --- the rendered configuration, run in namespaces -----------------------------------


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise RuntimeError(f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def ns(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", name, *args, check=check)


def peer(name: str, *args: str, timeout: float = 60) -> dict[str, object]:
    """One end's answer (relay_peers.py, run in namespace ``name``)."""
    result = subprocess.run(
        ["ip", "netns", "exec", name, sys.executable, "-m", "tests.provisioning.relay_peers",
         *args],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def _wireguard_processes(interfaces: tuple[str, ...]) -> list[int]:
    """wireguard-go daemons of our interfaces (they detach: wg-quick starts them)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"wireguard-go") and argv[-2].decode() in interfaces:
                    found.append(int(proc.name))
    return found


def _down(work: Path | None) -> None:
    for name in NAMESPACES:
        for link in ("rlyhub", "rlysta0"):
            sh("ip", "netns", "exec", name, "ip", "link", "del", link, check=False)
        sh("ip", "netns", "del", name, check=False)
    deadline = time.monotonic() + 5
    while _wireguard_processes(("rlyhub", "rlysta0")) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _wireguard_processes(("rlyhub", "rlysta0")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    for sock in ("rlyhub", "rlysta0"):
        Path(f"/var/run/wireguard/{sock}.sock").unlink(missing_ok=True)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


def _handshake(name: str, interface: str) -> int:
    """The latest handshake (Unix time, 0: none) of the interface's one or first peer
    that had one."""
    shown = ns(name, "wg", "show", interface, "latest-handshakes", check=False).stdout
    return max([int(line.split()[1]) for line in shown.splitlines() if line.strip()] or [0])


def _missing_tools() -> list[str]:
    tools = ["ip", "wg", "wg-quick", "wireguard-go", "nginx", "turnserver", "openssl"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not list(Path("/usr/lib/nginx/modules").glob("ngx_stream_module.so")):
        missing.append("libnginx-mod-stream")
    return missing


@dataclass
class Bed:
    work: Path
    cafile: Path
    station_log: Path

    def station_connections(self) -> list[str]:
        return self.station_log.read_text().splitlines() if self.station_log.exists() else []


def _start(procs: list[subprocess.Popen[bytes]], log: Path, *cmd: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    procs.append(proc)
    return proc


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_for(what: str, check: object, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up: {log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def tools() -> None:
    """Checked before the root is built: a machine without them skips at once."""
    if os.geteuid() != 0:
        skip_or_fail("the namespaces need root")
    missing = _missing_tools()
    if missing:
        skip_or_fail(
            f"not installed: {', '.join(missing)} (apt-get install wireguard-go "
            "wireguard-tools nginx-light libnginx-mod-stream coturn)"
        )


@pytest.fixture(scope="module")
def bed(tools: None, relay_root: RelayRoot) -> Iterator[Bed]:
    _down(None)  # leftovers of a killed run
    # nginx's workers (www-data) reach the socket for unknown names through this directory
    work = Path(tempfile.mkdtemp(prefix="rly-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield _up(relay_root, work, procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _down(work)


def _up(relay_root: RelayRoot, work: Path, procs: list[subprocess.Popen[bytes]]) -> Bed:
    root = relay_root.root
    for name in NAMESPACES:
        sh("ip", "netns", "add", name)
        ns(name, "ip", "link", "set", "lo", "up")
    for a, a_addr, b, b_addr, link in (
        ("rlysta", "198.18.50.2/24", "rlyrel", "198.18.50.1/24", "rlys"),
        ("rlyph", "198.18.60.2/24", "rlyrel", f"{PUBLIC}/24", "rlyp"),
    ):
        sh("ip", "link", "add", f"{link}a", "netns", a, "type", "veth", "peer", f"{link}b",
           "netns", b)  # fmt: skip
        ns(a, "ip", "addr", "add", a_addr, "dev", f"{link}a")
        ns(b, "ip", "addr", "add", b_addr, "dev", f"{link}b")
        ns(a, "ip", "link", "set", f"{link}a", "up")
        ns(b, "ip", "link", "set", f"{link}b", "up")
    ns("rlysta", "ip", "route", "add", "default", "via", "198.18.50.1")
    ns("rlyph", "ip", "addr", "add", f"{SINK}/32", "dev", "lo")
    ns("rlyph", "ip", "route", "add", "default", "via", PUBLIC)
    ns("rlyrel", "ip", "route", "add", f"{SINK}/32", "via", "198.18.60.2")

    # The hub: the root's wg0.conf and key, under wireguard-go as the drop-in has it.
    relay_key = work / "relay.key"
    shutil.copy(root / "etc/wireguard/wg0.key", relay_key)
    hub = work / "rlyhub.conf"
    hub.write_text(
        (root / "etc/wireguard/wg0.conf")
        .read_text()
        .replace("/etc/wireguard/wg0.key", str(relay_key))
    )
    hub.chmod(0o600)
    userspace = {**os.environ, "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}
    for name, conf in (("rlyrel", hub), ("rlysta", work / "rlysta0.conf")):
        if name == "rlysta":
            relay_public = (root / "etc/wireguard/wg0.pub").read_text().strip()
            conf.write_text(
                f"[Interface]\nAddress = {STATION_A}/32\nPrivateKey = {relay_root.station_key}\n"
                f"MTU = 1380\n\n[Peer]\nPublicKey = {relay_public}\n"
                f"Endpoint = {PUBLIC}:51820\nAllowedIPs = {TUNNEL.split('/')[0]}/32\n"
                "PersistentKeepalive = 5\n"
            )
            conf.chmod(0o600)
        result = subprocess.run(
            ["ip", "netns", "exec", name, "wg-quick", "up", str(conf)],
            env=userspace, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    # Station A: its own certificate, for its own name (TLS ends there).
    cert, key = work / "a.crt", work / "a.key"
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-days", "1", "-subj", f"/CN=a.{FLEET}", "-addext",
       f"subjectAltName=DNS:a.{FLEET}", "-keyout", str(key), "-out", str(cert))  # fmt: skip
    station_log = work / "station-connections.log"
    log = work / "station.log"
    _start(procs, log, "ip", "netns", "exec", "rlysta", sys.executable, "-m",
           "tests.provisioning.relay_peers", "station", str(cert), str(key), STATION_A,
           str(station_log))  # fmt: skip
    _wait_for("station A", lambda: "listening" in log.read_text(), log)
    # The tunnel: station A dials out (keepalive), the hub sees its handshake.
    _wait_for("the tunnel's handshake", lambda: _handshake("rlyrel", "rlyhub") > 0, log, 20)

    # nginx: the root's nginx.conf, with this machine's paths for its pid and logs.
    nginx_conf = work / "nginx.conf"
    nginx_conf.write_text(
        (root / "etc/nginx/nginx.conf").read_text()
        .replace("/run/nginx.pid", str(work / "nginx.pid"))
        .replace("/var/log/nginx/", f"{work}/")
        .replace("/run/nginx-videostation-nowhere.sock", str(work / "nowhere.sock"))
    )  # fmt: skip
    log = work / "nginx.out"
    _start(procs, log, "ip", "netns", "exec", "rlyrel", "nginx", "-c", str(nginx_conf),
           "-e", str(work / "error.log"), "-g", "daemon off;")  # fmt: skip
    _wait_for("nginx", lambda: (work / "nginx.pid").exists(), log)

    # coturn: the root's turnserver.conf, logging here instead of to syslog.
    turn_conf = work / "turnserver.conf"
    turn_log = work / "turn.log"
    turn_conf.write_text(
        (root / "etc/turnserver.conf")
        .read_text()
        .replace("log-file=syslog", f"log-file={turn_log}")
        + f"pidfile={work / 'turn.pid'}\nuserdb={work / 'turndb'}\nno-stdout-log\n"
    )
    _start(procs, work / "turn.out", "ip", "netns", "exec", "rlyrel", "turnserver", "-c",
           str(turn_conf))  # fmt: skip
    _wait_for(
        "coturn",
        lambda: "Total General servers" in _read(turn_log),
        turn_log,
    )
    return Bed(work, cert, station_log)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tls_reaches_the_station_its_name_names(bed: Bed) -> None:
    """The phone asks the relay's public address for a.<fleet>: the TLS session ends at
    station A (its certificate verifies for that name), through the tunnel."""
    before = len(bed.station_connections())
    answer = peer("rlyph", "tls", PUBLIC, f"a.{FLEET}", str(bed.cafile))
    assert answer == {"ok": True, "answer": "station-a\n"}, answer
    after = bed.station_connections()[before:]
    # The station sees the relay's tunnel address: the bytes came through the tunnel.
    assert after == [f"tls {TUNNEL.split('/')[0]}"], after


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("sni", [f"c.{FLEET}", "a.other.test", f"a.{FLEET}.evil.test", ""])
def test_an_unknown_name_is_closed_and_reaches_no_station(bed: Bed, sni: str) -> None:
    before = len(bed.station_connections())
    answer = peer("rlyph", "tls", PUBLIC, sni or PUBLIC, str(bed.cafile))
    assert answer["ok"] is False, answer
    assert "EOF" in str(answer["error"]) or "reset" in str(answer["error"]).lower(), answer
    time.sleep(0.5)
    assert bed.station_connections()[before:] == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_port_80_forwards_acme_challenges_by_host_and_redirects_the_rest(bed: Bed) -> None:
    path = "/.well-known/acme-challenge/abc123"
    answer = peer("rlyph", "http", PUBLIC, f"a.{FLEET}", path)
    assert str(answer["status"]).split()[1] == "200", answer
    assert answer["body"] == f"token-for-{path}", answer
    assert bed.station_connections()[-1] == f"http a.{FLEET} {path}"
    answer = peer("rlyph", "http", PUBLIC, f"a.{FLEET}", "/join?x=1")
    assert (
        str(answer["status"]).split()[1] == "301"
        and answer["location"] == f"https://a.{FLEET}/join?x=1"
    )
    before = len(bed.station_connections())
    for host in (f"c.{FLEET}", PUBLIC):
        assert peer("rlyph", "http", PUBLIC, host, path) == {"status": "closed"}
    assert bed.station_connections()[before:] == []


REFUSED = [
    STATION_A,  # the tunnel: a station's own services
    "198.19.77.200",  # the tunnel's range, no station there yet
    "10.1.2.3",
    "172.16.5.5",
    "192.168.1.20",
    "127.0.0.1",
    "169.254.1.1",
    "100.64.0.1",
    "224.0.0.1",
]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_coturn_relays_to_the_public_only(bed: Bed) -> None:
    """A TURN client with REST credentials minted from the fleet's secret (as the station
    mints them) allocates; a permission to the tunnel or a private range is refused
    (403 Forbidden IP); to a public address it is granted and data arrives there."""
    user, password = turn_credentials(SECRET, key="session:relay", expires_at=time.time() + 600)
    answer = peer("rlyph", "turn", PUBLIC, "3478", user, password, ",".join([*REFUSED, SINK]), SINK)
    assert answer["relayed"][0] == PUBLIC, answer  # type: ignore[index]
    permissions = answer["permissions"]
    assert isinstance(permissions, dict)
    assert {p: permissions[p] for p in REFUSED} == dict.fromkeys(REFUSED, 403), permissions
    assert permissions[SINK] == 200
    assert answer["sink"] == {"data": "through", "source": answer["relayed"]}, answer

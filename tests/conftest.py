"""Shared fixtures: configs in temp state dirs, real aiohttp servers, clients per role,
and a real `videostation serve` process for browser tests."""

from __future__ import annotations

import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from appliance import config as config_mod
from appliance.app import create_app
from appliance.appkeys import AUTH, STORE
from appliance.auth import Auth
from appliance.clock import Clock

from .helpers import cpu_snapshot, machine_load

PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRUBBED_PREFIXES = ("VIDEOSTATION_",)
SCRUBBED = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "STATE_DIRECTORY",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "XDG_DATA_HOME",
)


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not see the developer's systemd or station settings."""
    for name in list(os.environ):
        if name in SCRUBBED or name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name, raising=False)


def make_config(state_dir: Path, **sections: dict[str, Any]) -> config_mod.Config:
    """A validated config with test media and a temp state dir; ``sections`` override."""
    data: dict[str, dict[str, Any]] = {
        "server": {"state_dir": str(state_dir)},
        "camera": {"source": "test", "width": 320, "height": 240, "fps": 15},
        "microphone": {"source": "test"},
        "screen": {"power_command": ""},
        # rings as often as a test needs; tests of the limits turn them on
        "call": {"ring_cooldown_seconds": 0, "guest_rings_per_minute": 0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_mod.from_mapping(data)


@pytest.fixture
def config(tmp_path: Path) -> config_mod.Config:
    return make_config(tmp_path / "state")


@dataclass
class ServiceHarness:
    """The service running in-process (a real aiohttp server on loopback) and a way
    to make clients of every role; the `station` fixture yields one."""

    app: web.Application
    server: TestServer
    make_client: Callable[..., Any]
    clients: list[TestClient] = field(default_factory=list)

    @property
    def auth(self) -> Auth:
        return self.app[AUTH]

    async def client(self) -> TestClient:
        client: TestClient = await self.make_client(self.server)
        return client

    async def user(self) -> TestClient:
        client = await self.client()
        resp = await client.post("/api/auth/login", json={"password": PASSWORD})
        assert resp.status == 200, await resp.text()
        return client

    async def guest(self, room: str = "station", **link: Any) -> TestClient:
        issued = self.auth.make_guest_link(room, ttl=link.pop("ttl", 3600), **link)
        client = await self.client()
        resp = await client.post("/api/auth/guest", json={"guest_token": issued.token})
        assert resp.status == 200, await resp.text()
        return client

    async def kiosk(self) -> TestClient:
        client = await self.client()
        resp = await client.post("/api/auth/kiosk", json={"key": self.auth.kiosk_key})
        assert resp.status == 200, await resp.text()
        return client

    def room(self, name: str = "Kitchen") -> str:
        return self.app[STORE].create_room(name.lower(), name).id


@pytest.fixture
def station_clock() -> Clock | None:
    """The clock the `station` fixture's service runs on (None: the system's); a test
    module overrides this fixture to move the wall clock."""
    return None


@pytest.fixture
async def station(
    config: config_mod.Config, aiohttp_client: Callable[..., Any], station_clock: Clock | None
) -> AsyncIterator[ServiceHarness]:
    app = create_app(config, clock=station_clock)
    server = TestServer(app)
    await server.start_server()
    app[AUTH].set_password(PASSWORD)
    yield ServiceHarness(app, server, aiohttp_client)
    await server.close()


# -- a real process ------------------------------------------------------------------


def http_json(
    url: str,
    body: Any = None,
    *,
    cookie: str = "",
    context: ssl.SSLContext | None = None,
) -> tuple[int, Any, Any]:
    """POST ``body`` as JSON (GET without one); returns status, parsed JSON (or text) and
    headers. HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if cookie:
        headers["Cookie"] = cookie
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context) as resp:
            status, raw, got = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    try:
        return status, json.loads(raw), got
    except ValueError:
        return status, raw.decode(), got


def login_cookie(base_url: str, password: str = PASSWORD, **kwargs: Any) -> str:
    """The user's session cookie, as a Cookie header value."""
    status, _, headers = http_json(f"{base_url}/api/auth/login", {"password": password}, **kwargs)
    assert status == 200
    return str(headers["Set-Cookie"]).split(";")[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str,
    *,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    cafile: Path | None = None,
) -> float:
    """Poll /api/health/ until it answers; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"videostation exited with {proc.returncode}")
        try:
            context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
            with urllib.request.urlopen(url + "/api/health/", timeout=2, context=context) as resp:
                if json.load(resp)["status"] == "ok":
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")


@dataclass
class LiveStation:
    """`videostation serve` in a subprocess on a free loopback port."""

    base_url: str
    port: int
    state_dir: Path
    password: str
    kiosk_url: str
    proc: subprocess.Popen[bytes]
    startup_seconds: float
    log_path: Path

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *args, "--state-dir", str(self.state_dir), "--port", str(self.port), input=input
        )

    def guest_link(self, room: str = "station", label: str = "Guest") -> str:
        out = self.cli("guest-link", room, "--label", label, "--no-qr")
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "videostation"), *args]
    if "--config" not in args and args and args[0] != "--help":
        cmd += ["--config", "/dev/null"]
    return subprocess.run(
        cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env
    )


LIVE_CONFIG = """# tests ring as often as they need; tests of the ring limits pass their own config
[call]
ring_cooldown_seconds = 0
guest_rings_per_minute = 0
"""


def serve_command(state: Path, port: int, *extra: str) -> list[str]:
    """`videostation serve` on loopback with the test pattern and tone (a later
    ``--config`` in ``extra`` replaces the test config)."""
    config = state.parent / "live-config.toml"
    if not config.exists():
        state.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(LIVE_CONFIG)
    return [
        str(BIN / "videostation"),
        "serve",
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "--port",
        str(port),
        "--camera",
        "test",
        "--microphone",
        "test",
        *extra,
    ]


def start_live(
    tmp: Path,
    *extra: str,
    password: str = PASSWORD,
    tls: bool = False,
    env: dict[str, str] | None = None,
    nofile: int | None = None,
) -> LiveStation:
    """``nofile``: the process's descriptor limit (RLIMIT_NOFILE, as the unit's
    ``LimitNOFILE=`` sets it); the test runner's own otherwise."""
    state = tmp / "live-state"
    port = free_port()
    out = run_cli("set-password", "--stdin", "--state-dir", str(state), input=password + "\n")
    assert out.returncode == 0, out.stderr
    log_path = tmp / "videostation.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the process
    limit = (
        None
        if nofile is None
        else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    )
    proc = subprocess.Popen(
        serve_command(state, port, *extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=limit,  # setrlimit only, before exec
    )
    base = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    cafile = state / "tls-cert.pem" if tls else None
    try:
        took = wait_healthy(base, proc=proc, cafile=cafile)
    except Exception:
        proc.kill()
        raise RuntimeError(log_path.read_text()) from None
    kiosk = run_cli("kiosk-url", "--state-dir", str(state), "--port", str(port))
    return LiveStation(base, port, state, password, kiosk.stdout.strip(), proc, took, log_path)


def stop_live(live: LiveStation) -> int:
    live.proc.terminate()
    try:
        return live.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        live.proc.kill()
        return live.proc.wait()


# -- real Chromium (helpers in tests/browser_kit.py) ---------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module (Playwright, /usr/bin/chromium, fake media)."""
    from tests.browser_kit import launch

    with launch() as b:
        yield b


@pytest.fixture
def pages(browser: Any) -> Iterator[Any]:
    """Opens pages in fresh contexts; fails the test on any uncaught page error."""
    from tests.browser_kit import Pages

    p = Pages(browser)
    yield p
    p.close()
    assert p.errors == [], "uncaught errors in the pages"


@pytest.fixture
def live_station(tmp_path: Path) -> Iterator[LiveStation]:
    live = start_live(tmp_path)
    yield live
    stop_live(live)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Marks the tests that run under arm64 emulation ``emulated``: they share one root
    (one xdist group, its emulated work at low priority) beside the other tests."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "arm64" in callspec.params.values():
        item.add_marker(pytest.mark.emulated)
    if not item.get_closest_marker("timeout"):
        for marker, seconds in MARKER_TIMEOUTS.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.timeout(seconds))
                break


# -- tiers: timeouts, xdist groups, the longest first ---------------------------------

# A hang names its test: 60 s unless a test says otherwise, or its marker needs longer.
MARKER_TIMEOUTS = {"vm": 3600, "emulated": 5400, "slow": 1800, "bench": 1800, "browser": 300}
# Recorded per-test wall times (setup + call + teardown, seconds), kept in the repository:
# groups are handed to the workers longest first, so the two lanes end together.
DURATIONS = REPO / "tests" / "durations.json"


def xdist_group_of(nodeid: str) -> str:
    """The unit a worker takes whole: tests that share an expensive session fixture (a
    provisioned root per architecture, the network test bed's fixed namespaces) or a
    module's fixtures (a Chromium per module) never run on two workers. From the test's
    id alone: the xdist controller, which schedules, sees ids, not items.

    >>> xdist_group_of("tests/provisioning/test_ansible.py::test_units_are_enabled[arm64]")
    'arm64-root'
    >>> xdist_group_of("tests/provisioning/test_role_station.py::test_serves[amd64]")
    'host-root'
    >>> xdist_group_of("tests/test_api.py::test_login[wrong-password]")
    'tests/test_api.py'
    """
    path, _, name = nodeid.partition("::")
    params = name[name.find("[") + 1 : -1].split("-") if name.endswith("]") else []
    if "arm64" in params:  # marked ``emulated`` (pytest_itemcollected)
        return "arm64-root"
    if path.startswith("tests/provisioning/") and "amd64" in params:
        return "host-root"
    if path.startswith("tests/net/"):
        return "testbed"
    return path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole groups to each worker (``xdist_group_of``), in the order collected.

    xdist's own ``--dist loadgroup`` groups by rewriting each item's node id, which
    pytest 9.2 no longer lets a plugin do (the ids stayed unsuffixed and every test was
    scheduled alone); a scheduler of its own asks only for xdist's public hook."""
    if config.getvalue("dist") not in ("loadgroup", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return GroupScheduling(config, log)


def _recorded() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError):
        return {}


def _guess(item: pytest.Item) -> float:
    """A test not recorded yet: its marker's typical time (seconds)."""
    for marker, seconds in (("emulated", 120.0), ("vm", 60.0), ("slow", 60.0), ("browser", 8.0)):
        if item.get_closest_marker(marker):
            return seconds
    return 0.3


# Handed out first whatever their length: the arm64 root (the longest), then the network
# test bed, whose media-quality tests then run beside only the arm64 root's emulated work
# at nice 19, as they did when it had a lane of its own, not beside a second Chromium.
FIRST_GROUPS = ("arm64-root", "testbed")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The groups in the order the workers take them (``--no-loadscope-reorder``):
    ``FIRST_GROUPS``, then the longest first by the recorded durations, the order inside
    a group kept (pytest ordered it by fixture). Only for xdist's workers: a serial run
    keeps the order it was given (the VM stage boots x86_64 first, beside the benchmarks,
    and arm64 after them: sorted by duration, arm64 went first and its kiosk, starved by
    the benchmarks beside it, missed its start-up grace, make test 2026-12-07)."""
    if not (config.getoption("numprocesses", None) or hasattr(config, "workerinput")):
        return
    recorded = _recorded()
    totals: dict[str, float] = {}
    for item in items:
        group = xdist_group_of(item.nodeid)
        seconds = recorded.get(item.nodeid)
        totals[group] = totals.get(group, 0.0) + (seconds or _guess(item))

    def rank(item: pytest.Item) -> tuple[int, float]:
        group = xdist_group_of(item.nodeid)
        first = FIRST_GROUPS.index(group) if group in FIRST_GROUPS else len(FIRST_GROUPS)
        return first, -totals[group]

    items.sort(key=rank)


_CPU_AT_START = pytest.StashKey[tuple[int, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_CPU_AT_START] = cpu_snapshot()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failure's report says how busy the machine was meanwhile (section "machine
    load"), so a starved browser or encoder can be told from a product fault."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and _CPU_AT_START in item.stash:
        text = machine_load(
            item.stash[_CPU_AT_START], cpu_snapshot(), os.getloadavg(), cores=os.cpu_count() or 1
        )
        report.sections.append(("machine load", text))


class _DurationRecorder:
    """Writes every test's wall time into ``tests/durations.json`` at the end of a run
    (``VIDEOSTATION_RECORD_DURATIONS=1``; on the xdist controller, which sees every
    report), merged with what was recorded before."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        self.seen[nodeid] = self.seen.get(nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        merged = {**_recorded(), **{k: round(v, 2) for k, v in self.seen.items()}}
        DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    worker = hasattr(config, "workerinput")
    if os.environ.get("VIDEOSTATION_RECORD_DURATIONS") == "1" and not worker:
        config.pluginmanager.register(_DurationRecorder(), "videostation-durations")

"""monitoring/ and the monitoring role (issue 25, items 3 and 4): the alerting rules pass
``promtool``'s own unit tests, and each alert's tests notice a rule that fires on
everything; the example ``prometheus.yml`` and the one the role renders pass
``promtool check config``; a real Prometheus scrapes two real stations by their metrics
tokens, sees one go down and the other's camera on the test pattern, and every query of
the Grafana dashboard returns data from it.

Needs Debian's ``prometheus`` package (``promtool`` and ``prometheus``); without it the
tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from .conftest import REPO, LiveStation, free_port, run_cli, start_live, stop_live
from .helpers import WS, AiortcCaller, Client, skip_or_fail

MONITORING = REPO / "monitoring"
RULES = MONITORING / "rules.yml"
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """A binary of Debian's prometheus package, or of the venv (ansible-playbook)."""
    found = BIN / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        skip_or_fail(
            f"{name} is not installed (apt-get install prometheus; pip install ansible-core)"
        )
    assert path is not None
    return path


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _alerts() -> list[str]:
    return [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


# --- the rules ----------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "rules.test.yml", cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a test that expects it to fire, and an instance of its input that
    it must leave quiet (absent from every expected alert)."""
    tests = yaml.safe_load((MONITORING / "rules.test.yml").read_text())["tests"]
    for alert in _alerts():
        groups = [
            t for t in tests if any(c["alertname"] == alert for c in t.get("alert_rule_test", []))
        ]
        assert groups, f"{alert} has no test"
        fired: set[str] = set()
        inputs: set[str] = set()
        for group in groups:
            for case in group["alert_rule_test"]:
                if case["alertname"] == alert:
                    fired |= {a["exp_labels"]["instance"] for a in case["exp_alerts"] or []}
            for series in group["input_series"]:
                if 'job="videostation"' in series["series"]:
                    inputs |= set(re.findall(r'instance="([^"]+)"', series["series"]))
        assert fired, f"{alert} is never expected to fire"
        assert inputs - fired, f"{alert} has no input series that must stay quiet"


def test_an_alert_that_fires_on_everything_fails_its_tests(tmp_path: Path) -> None:
    """The quiet cases have teeth: with every rule replaced by one that fires at once on
    every station, promtool's tests fail for every alert. (Evaluated every 10 minutes
    instead of every minute: such rules take promtool 15 s at every minute, 1.5 s so.)"""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = 'group by (job, instance) ({__name__!~"ALERTS.*", job="videostation"})'
            rule.pop("for", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    tests = (MONITORING / "rules.test.yml").read_text()
    fewer = tests.replace("\nevaluation_interval: 1m\n", "\nevaluation_interval: 10m\n")
    assert fewer != tests
    (tmp_path / "rules.test.yml").write_text(fewer)
    result = _promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (\w+),", result.stdout + result.stderr))
    assert failed == set(_alerts())


# --- prometheus.yml ------------------------------------------------------------------


def test_example_prometheus_config_is_valid(tmp_path: Path) -> None:
    """The example as an operator installs it: beside the rules, the targets and a token."""
    for name in ("prometheus.yml", "rules.yml"):
        shutil.copy(MONITORING / name, tmp_path)
    shutil.copytree(MONITORING / "videostation-targets", tmp_path / "videostation-targets")
    (tmp_path / "videostation.token").write_text("a-token\n")
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    job = _example_job()
    assert job["authorization"]["type"] == "Bearer"
    assert job["metrics_path"] == "/api/metrics/"


def _example_job() -> dict[str, Any]:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "videostation"]
    return dict(job)


# --- the monitoring role -------------------------------------------------------------


def _run_play(tmp: Path, inventory: dict[str, Any], out: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return subprocess.run(
        [
            _tool("ansible-playbook"),
            "monitoring.yml",
            "-i",
            str(tmp / "inventory.yml"),
            "-e",
            json.dumps(
                {
                    "videostation_monitoring_install": False,
                    "videostation_monitoring_config_dir": str(out),
                    "videostation_monitoring_owner": _owner(),
                    "ansible_become": False,
                    "ansible_python_interpreter": sys.executable,
                }
            ),
        ],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _owner() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _station(url: str | None, tokens: list[str], name: str) -> dict[str, Any]:
    host: dict[str, Any] = {"videostation_metrics_tokens": tokens}
    host["videostation_station_name"] = name
    if url:
        host["videostation_public_url"] = url
    return host


def test_role_variables_are_documented_and_in_argument_specs() -> None:
    role = ANSIBLE_DIR / "roles" / "videostation_monitoring"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    assert all(spec.get("description") for spec in options.values())


ONE, TWO = "metrics-token-one-0123456789", "metrics-token-two-0123456789"


@pytest.mark.slow
def test_role_renders_a_config_promtool_accepts(tmp_path: Path) -> None:
    """Three stations, two whose current token is the same: two scrape jobs, each relabelled
    job="videostation", the targets and schemes from the public URLs, token files 0600;
    a second run changes nothing; a station dropped from the inventory loses its files."""
    _tool("promtool")  # the role validates with it
    out = tmp_path / "etc-prometheus"
    out.mkdir()
    stations = {
        "frontdoor.example.net": _station("https://frontdoor.example.net", [ONE], "Front"),
        # Rotating: the new token first, the old one still accepted by the station.
        "workshop.example.net": _station("https://workshop.example.net:8443", [ONE, TWO], "Shop"),
        "garden.lan": _station(None, [TWO], "Garden"),
    }
    local = {"hosts": {"localhost": {"ansible_connection": "local"}}}
    result = _run_play(tmp_path, {"videostation": {"hosts": stations}, "monitoring": local}, out)
    assert result.returncode == 0, result.stdout + result.stderr

    check = _promtool("check", "config", str(out / "prometheus.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    jobs = [j for j in config["scrape_configs"] if j["job_name"].startswith("videostation")]
    assert len(jobs) == 2
    targets: dict[str, dict[str, str]] = {}
    for job in jobs:
        assert job["metrics_path"] == "/api/metrics/"
        assert {"target_label": "job", "replacement": "videostation"} in job["relabel_configs"]
        token_file = Path(job["authorization"]["credentials_file"])
        assert token_file.stat().st_mode & 0o777 == 0o600
        [sd_file] = job["file_sd_configs"][0]["files"]
        for entry in yaml.safe_load(Path(sd_file).read_text()):
            [address] = entry["targets"]
            targets[address] = {**entry["labels"], "token": token_file.read_text().strip()}
    assert targets == {
        "frontdoor.example.net:443": {
            "__scheme__": "https",
            "station": "Front",
            "token": ONE,
        },
        "workshop.example.net:8443": {
            "__scheme__": "https",
            "station": "Shop",
            "token": ONE,
        },
        "garden.lan:8080": {"__scheme__": "http", "station": "Garden", "token": TWO},
    }
    assert ONE not in result.stdout + result.stderr  # no_log

    again = _run_play(tmp_path, {"videostation": {"hosts": stations}, "monitoring": local}, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"localhost\s*: ok=\d+\s+changed=0 ", again.stdout), again.stdout

    del stations["garden.lan"]
    fewer = _run_play(tmp_path, {"videostation": {"hosts": stations}, "monitoring": local}, out)
    assert fewer.returncode == 0, fewer.stdout + fewer.stderr
    left = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len([n for n in left if n.endswith(".token")]) == 1, left
    assert len(list((out / "videostation-targets").iterdir())) == 1, left
    check = _promtool("check", "config", str(out / "prometheus.yml"))
    assert check.returncode == 0, check.stdout + check.stderr


# --- a real Prometheus, two real stations ---------------------------------------------

# The dashboard's variables as a test substitutes them: every station; a rate window of
# ten 1-second scrapes.
DASHBOARD_VARIABLES = {"instance": ".*", "__rate_interval": "10s", "datasource": "prometheus"}


def dashboard_queries() -> list[tuple[str, str]]:
    """Every query of monitoring/dashboard.json as (panel title, PromQL), variables
    substituted."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
            assert not re.search(r"\$\{?[A-Za-z_]", expr), f"{panel['title']}: unknown variable"
            queries.append((f"{panel['title']} ({target['refId']})", expr))
    return queries


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    assert 36 <= dashboard["schemaVersion"] <= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    [fleet] = [p for p in dashboard["panels"] if p["title"] == "Fleet"]
    columns = set(fleet["transformations"][1]["options"]["renameByName"].values())
    for column in ("Up", "Call", "Camera", "Microphone", "Screen", "Disk free", "Last call"):
        assert column in columns
    assert len(dashboard_queries()) >= 15


def _test_rules(path: Path) -> None:
    """rules.yml with every ``for:`` cut to 2 s (the rules are what is tested, not the
    patience of their durations)."""
    text = re.sub(r"^(\s+)for: \S+$", r"\1for: 2s", RULES.read_text(), flags=re.M)
    assert text != RULES.read_text()
    path.write_text(text)


class Prometheus:
    """/usr/bin/prometheus on a free loopback port, its storage in a temp dir."""

    def __init__(self, tmp: Path, stations: dict[str, LiveStation]) -> None:
        self.tmp = tmp
        _test_rules(tmp / "rules.yml")
        (tmp / "targets").mkdir()
        jobs = []
        for name, live in stations.items():
            token = run_cli("metrics-token", "--state-dir", str(live.state_dir))
            assert token.returncode == 0, token.stderr
            (tmp / f"{name}.token").write_text(token.stdout.strip() + "\n")
            (tmp / "targets" / f"{name}.yml").write_text(
                yaml.safe_dump(
                    [{"targets": [f"127.0.0.1:{live.port}"], "labels": {"station": name}}]
                )
            )
            # The example's job, for one station with its own token; plain HTTP on loopback.
            job = _example_job()
            job.update(
                job_name=f"videostation-{name}",
                scheme="http",
                authorization={"type": "Bearer", "credentials_file": f"{name}.token"},
                file_sd_configs=[{"files": [f"targets/{name}.yml"]}],
                relabel_configs=[{"target_label": "job", "replacement": "videostation"}],
            )
            jobs.append(job)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": jobs,
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    _tool("prometheus"),
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _api(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with http.get(url, params=params) as resp:
        body = await resp.json()
        assert body["status"] == "success", body
        return body["data"]


async def _until(what: str, check: Any, prometheus: Prometheus, timeout: float = 30) -> Any:
    """Poll ``check()`` until it returns something true (generous: a loaded machine
    slows the scrapes, not the outcome)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            log = prometheus.log.read_text()[-3000:]
            raise AssertionError(f"{what}: not within {timeout} s; Prometheus said:\n{log}")
        await asyncio.sleep(0.5)


async def _drain(ws: WS) -> None:
    with contextlib.suppress(Exception):
        while True:
            await ws.recv(timeout=3600)


@pytest.fixture
def two_stations(tmp_path: Path) -> Iterator[dict[str, LiveStation]]:
    stations: dict[str, LiveStation] = {}
    try:
        for name in ("alpha", "bravo"):
            stations[name] = start_live(tmp_path / name)
        yield stations
    finally:
        for live in stations.values():
            if live.proc.poll() is None:
                stop_live(live)


@pytest.fixture
def prometheus(tmp_path: Path, two_stations: dict[str, LiveStation]) -> Iterator[Prometheus]:
    (tmp_path / "prometheus").mkdir()
    server = Prometheus(tmp_path / "prometheus", two_stations)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_real_prometheus_scrapes_alerts_and_feeds_the_dashboard(
    prometheus: Prometheus, two_stations: dict[str, LiveStation]
) -> None:
    alpha, bravo = two_stations["alpha"], two_stations["bravo"]
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        query, alerts = f"{prometheus.url}/api/v1/query", f"{prometheus.url}/api/v1/alerts"

        async def ready() -> bool:
            assert prometheus.proc.poll() is None, prometheus.log.read_text()
            try:
                async with http.get(f"{prometheus.url}/-/ready") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await _until("Prometheus ready", ready, prometheus)

        async def up() -> dict[str, str]:
            data = await _api(http, query, query='up{job="videostation"}')
            return {r["metric"]["station"]: r["value"][1] for r in data["result"]}

        async def both_up() -> bool:
            return await up() == {"alpha": "1", "bravo": "1"}

        await _until("both stations scraped by token (up == 1)", both_up, prometheus)

        async def firing(alert: str) -> set[str]:
            data = await _api(http, alerts)
            return {
                a["labels"]["station"]
                for a in data["alerts"]
                if a["labels"]["alertname"] == alert and a["state"] == "firing"
            }

        # No call since the start: the camera is "unknown", nothing to alert on.
        assert await firing("CameraOnStandIn") == set()

        # A call on alpha: its camera and microphone are the test pattern and tone.
        kiosk, guest = await Client.kiosk(alpha), await Client.guest(alpha, "Grandma")
        drains: list[asyncio.Task[None]] = []
        try:
            kiosk_ws = await kiosk.join("Kiosk")
            guest_ws = await guest.join("Grandma")
            await kiosk_ws.send(type="call", action="answer")
            caller = AiortcCaller(guest_ws)
            await caller.accept_station()
            await caller.frames("video", 2)
            # Read both sockets from now on: a socket nobody reads answers no heartbeat,
            # and the station ends the call after a while.
            drains = [asyncio.create_task(_drain(ws)) for ws in (kiosk_ws, guest_ws)]

            async def camera_alert() -> set[str]:
                return await firing("CameraOnStandIn")

            assert await _until("CameraOnStandIn", camera_alert, prometheus) == {"alpha"}
            assert await firing("MicrophoneOnStandIn") == {"alpha"}

            # Every dashboard query answers, while a call gives the viewer panels data.
            async def missing() -> list[str]:
                empty = []
                for title, expr in dashboard_queries():
                    data = await _api(http, query, query=expr)
                    if not data["result"]:
                        empty.append(f"{title}: {expr}")
                return empty

            deadline = time.monotonic() + 30  # the viewers' stats come with RTCP reports
            while (empty := await missing()) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            context = await _api(
                http, query, query='{__name__=~"videostation_(viewer_.*|call_state|peers)"} > 0'
            )
            assert not empty, (
                "dashboard queries without data ('No data'):\n"
                + "\n".join(empty)
                + f"\nthe stations' viewers, call state and peers: {context['result']}"
            )
            await caller.close()
        finally:
            for task in drains:
                task.cancel()
            await kiosk.close()
            await guest.close()

        # bravo's service stops: StationDown, for bravo only.
        stop_live(bravo)
        stopped = time.monotonic()

        async def station_down() -> set[str]:
            return await firing("StationDown")

        assert await _until("StationDown", station_down, prometheus) == {"bravo"}
        took = time.monotonic() - stopped
        assert (await up())["alpha"] == "1"
    print(f"StationDown fired {took:.1f} s after the stop; test {time.monotonic() - started:.1f} s")

"""The kiosk key (issue 22, item 7).

The key paired from any address: whoever held it could evict the real screen, mint a
code, ring with it and answer that ring, and the station sent its camera and microphone
to a remote holder. Now the key, and the kiosk session it buys, count only over
loopback from the station itself, and a kiosk session never becomes a caller.

The remote case runs a real ``videostation serve`` in a network namespace of its own,
listening on every address; "remote" is a second namespace joined to it by a veth pair
(10.77.0.0/30: these addresses exist only inside the two namespaces), "the station
itself" is the first namespace's own 127.0.0.1. Needs root (skipped elsewhere; a
failure under CI, which runs as root).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, ServiceHarness, serve_command
from tests.helpers import connect, skip_or_fail

STATION, REMOTE = "10.77.0.1", "10.77.0.2"
CLONE_NEWNET = 0x40000000
PORT = 8080

Fetch = Callable[..., tuple[int, Any, str]]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr.strip()}"


def _enter(namespace: str) -> None:
    """Move the calling thread (only it: network namespaces are per thread) into
    ``namespace``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
    finally:
        os.close(fd)


def _fetch(
    url: str, body: Any = None, *, cookie: str = "", headers: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """status, JSON body, the session cookie set (``name=value`` or "")."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})} if data else {}
    if cookie:
        sent["Cookie"] = cookie
    request = urllib.request.Request(url, data=data, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, raw, got = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    return status, json.loads(raw or b"null"), str(got.get("Set-Cookie") or "").split(";")[0]


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """(station, remote): two namespaces joined by a veth pair, removed afterwards."""
    if os.geteuid() != 0:
        skip_or_fail("network namespaces need root")
    if shutil.which("ip") is None:
        skip_or_fail("ip is not installed (apt-get install iproute2)")
    tag = f"vsk{os.getpid() % 100000}"
    station, remote = f"{tag}s", f"{tag}r"
    _ip("netns", "add", station)
    try:
        _ip("netns", "add", remote)
        _ip("link", "add", f"{tag}a", "netns", station, "type", "veth",
            "peer", "name", f"{tag}b", "netns", remote)  # fmt: skip
        _ip("-n", station, "addr", "add", f"{STATION}/30", "dev", f"{tag}a")
        _ip("-n", remote, "addr", "add", f"{REMOTE}/30", "dev", f"{tag}b")
        for name, dev in ((station, f"{tag}a"), (remote, f"{tag}b")):
            _ip("-n", name, "link", "set", dev, "up")
            _ip("-n", name, "link", "set", "lo", "up")
        yield station, remote
    finally:
        for name in (station, remote):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def station_in_namespace(
    namespaces: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[Fetch, Fetch, str]]:
    """``videostation serve --host 0.0.0.0`` in the station's namespace; yields a
    fetch from its own loopback, one from the remote namespace, and the kiosk key."""
    inside, outside = namespaces
    state = tmp_path / "state"
    log = (tmp_path / "serve.log").open("wb")
    every = "0.0.0.0"  # noqa: S104 - inside a namespace of its own
    proc = subprocess.Popen(
        ["ip", "netns", "exec", inside, *serve_command(state, PORT, "--host", every)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    local = ThreadPoolExecutor(1, initializer=_enter, initargs=(inside,))
    remote = ThreadPoolExecutor(1, initializer=_enter, initargs=(outside,))

    def in_station(path: str, *args: Any, **kwargs: Any) -> tuple[int, Any, str]:
        return local.submit(_fetch, f"http://127.0.0.1:{PORT}{path}", *args, **kwargs).result()

    def from_remote(path: str, *args: Any, **kwargs: Any) -> tuple[int, Any, str]:
        return remote.submit(_fetch, f"http://{STATION}:{PORT}{path}", *args, **kwargs).result()

    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if in_station("/api/health/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        assert from_remote("/api/health/")[0] == 200  # the remote reaches the station
        yield in_station, from_remote, (state / "kiosk.key").read_text().strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        local.shutdown()
        remote.shutdown()
        log.close()


def test_the_kiosk_key_pairs_only_on_the_station_itself(
    station_in_namespace: tuple[Fetch, Fetch, str],
) -> None:
    in_station, from_remote, key = station_in_namespace
    # From another machine: refused with the right key, the same with a wrong one.
    for tried in (key, "wrong"):
        status, body, cookie = from_remote("/api/auth/kiosk", {"key": tried})
        assert status == 403, (status, body)
        assert body["error"]["code"] == "kiosk_not_local" and cookie == ""
    # Counted like wrong keys (the kiosk limiter allows 20 in 5 minutes): 429 follows.
    codes = [from_remote("/api/auth/kiosk", {"key": key})[0] for _ in range(20)]
    assert codes[-1] == 429 and set(codes) <= {403, 429}, codes

    # On the station, through a proxy header: refused too.
    status, body, _ = in_station(
        "/api/auth/kiosk", {"key": key}, headers={"X-Forwarded-For": REMOTE}
    )
    assert (status, body["error"]["code"]) == (403, "kiosk_not_local")
    # The station's own screen, over loopback, pairs (the remote's failures do not
    # count against it).
    status, body, cookie = in_station("/api/auth/kiosk", {"key": key})
    assert (status, body["role"]) == (200, "kiosk") and cookie.startswith("vs_session=")
    assert in_station("/api/auth/me", cookie=cookie)[1]["role"] == "kiosk"

    # Its cookie copied to another machine buys nothing there: no kiosk page, no codes.
    status, body, _ = from_remote("/api/auth/me", cookie=cookie)
    assert (status, body["error"]["code"]) == (403, "kiosk_not_local")
    status, body, _ = from_remote("/api/kiosk/guest-link", {}, cookie=cookie)
    assert (status, body["error"]["code"]) == (403, "kiosk_not_local")


# -- in-process: what every request to the test server (over loopback) meets -----------


async def test_a_proxied_or_cross_origin_key_exchange_is_refused(
    station: ServiceHarness,
) -> None:
    client = await station.client()
    key = station.auth.kiosk_key
    for headers in (
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"Via": "1.1 proxy"},
        # the public URL's origin passes the general Origin check, not this one
        {"Origin": "http://127.0.0.1:8080"},
    ):
        resp = await client.post("/api/auth/kiosk", json={"key": key}, headers=headers)
        assert resp.status == 403, headers
        assert (await resp.json())["error"]["code"] == "kiosk_not_local", headers
    own = f"http://{client.host}:{client.port}"
    resp = await client.post("/api/auth/kiosk", json={"key": key}, headers={"Origin": own})
    assert resp.status == 200


async def test_a_kiosk_session_never_becomes_a_caller(station: ServiceHarness) -> None:
    kiosk = await station.kiosk()
    issued = station.auth.make_guest_link("station", ttl=3600, label="Mallory")
    # A guest link or the password posted with the kiosk's cookie: refused, not traded.
    resp = await kiosk.post("/api/auth/guest", json={"guest_token": issued.token})
    assert resp.status == 403, await resp.text()
    assert "cannot become a caller" in (await resp.json())["error"]["message"]
    resp = await kiosk.post("/api/auth/login", json={"password": PASSWORD})
    assert resp.status == 403, await resp.text()
    assert station.auth.store.get_guest_link(issued.link.jti).uses == 0
    # A code it minted, used with its own cookie: it stays the kiosk, the code unused.
    minted = await (await kiosk.post("/api/kiosk/guest-link")).json()
    resp = await kiosk.post("/api/auth/code", json={"code": minted["guest_token"]})
    assert (await resp.json())["role"] == "kiosk"
    assert station.auth.store.get_guest_link(minted["jti"]).uses == 0
    me = await (await kiosk.get("/api/auth/me")).json()
    assert me["role"] == "kiosk"
    # On the socket it is the screen: it cannot ring, and nothing rings.
    ws = await connect(kiosk)
    welcome = await ws.join("station")
    assert welcome["role"] == "kiosk" and welcome["call"]["state"] == "idle"
    await ws.send(type="call", action="ring")
    error = await ws.expect("error")
    assert error["code"] == "forbidden"
    health = await (await kiosk.get("/api/health/")).json()
    assert health["call"] == "idle"

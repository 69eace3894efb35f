"""The REST and protocol edges (issue 7, items 11, 13-17): lone surrogates, split
bodies, the login limiter under parallel requests, headers on every error, what
health tells whom, crashed call rows and an unusable state dir."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from pathlib import Path

from appliance.appkeys import CONFIG, STATION, STORE

from ..conftest import (
    PASSWORD,
    ServiceHarness,
    free_port,
    run_cli,
    serve_command,
    start_live,
    stop_live,
)
from ..helpers import connect, ringing_guest

LONE = '"\\ud800"'  # JSON text for a lone surrogate


async def test_lone_surrogates_are_refused_in_signaling(station: ServiceHarness) -> None:
    kiosk = await connect(await station.kiosk())
    await kiosk.join("station")
    guest = await connect(await station.guest("station"))
    await guest.ws.send_str('{"type":"join","version":1,"room":"station","name":' + LONE + "}")
    err = await guest.expect("error")
    assert err["code"] == "malformed_message"
    assert station.app[STATION].state == "idle"  # no silent ring
    assert station.app[STORE].list_calls() == []


async def test_lone_surrogates_are_refused_over_rest(station: ServiceHarness) -> None:
    user = await station.user()
    for path, field in (
        ("/api/rooms", "name"),
        ("/api/rooms/station/generate-guest-link", "label"),
    ):
        raw = '{"' + field + '":' + LONE + "}"
        resp = await user.post(path, data=raw, headers={"Content-Type": "application/json"})
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["code"] == "validation_error"
    assert [r.id for r in station.app[STORE].list_rooms()] == ["station"]


def _raw_http(port: int, head: bytes, *parts: bytes, pause: float = 0.2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        for part in parts:
            time.sleep(pause)
            sock.sendall(part)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_a_body_in_two_segments_is_read_to_the_end(station: ServiceHarness) -> None:
    body = json.dumps({"password": PASSWORD}).encode()
    head = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    port = station.server.port
    assert port is not None
    answer = await asyncio.to_thread(_raw_http, port, head + body[:5], body[5:])
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


async def test_parallel_wrong_passwords_get_exactly_the_allowed_tries(
    station: ServiceHarness,
) -> None:
    attempts = station.app[CONFIG].auth.login_attempts
    client = await station.client()

    async def wrong() -> int:
        resp = await client.post("/api/auth/login", json={"password": "wrong password!"})
        return resp.status

    statuses = await asyncio.gather(*(wrong() for _ in range(20)))
    assert statuses.count(401) == attempts, statuses
    assert statuses.count(429) == 20 - attempts
    # the kiosk key exchange has its own limiter: the screen still gets in
    kiosk = await station.client()
    resp = await kiosk.post("/api/auth/kiosk", json={"key": station.auth.kiosk_key})
    assert resp.status == 200


async def test_security_headers_on_every_error(station: ServiceHarness) -> None:
    client = await station.client()
    answers = [
        await client.get("/api/rooms"),  # 401
        await client.get("/api/nope"),  # 404
        await client.put("/api/auth/login"),  # 405
        await client.post("/api/auth/login", data=b"x" * 100_000),  # 413
        await client.post("/api/auth/login", json={}, headers={"Origin": "http://evil.example"}),
        await client.post("/api/auth/login", data=b"{", headers={"Content-Type": "x"}),  # 400
    ]
    for resp in answers:
        assert resp.status >= 400
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], resp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
    assert {r.status for r in answers} >= {400, 401, 403, 404, 405, 413}


async def test_anonymous_health_says_only_status_and_version(station: ServiceHarness) -> None:
    _kiosk, _guest = await ringing_guest(station)
    anonymous = await (await (await station.client()).get("/api/health/")).json()
    assert set(anonymous) == {"status", "version"}
    details = await (await (await station.kiosk()).get("/api/health/")).json()
    assert details["call"] == "ringing"


async def test_health_is_degraded_when_the_store_cannot_write(station: ServiceHarness) -> None:
    store = station.app[STORE]
    blocker = sqlite3.connect(store.path)
    blocker.execute("PRAGMA busy_timeout=0")
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: writes fail
    store._db.execute("PRAGMA busy_timeout=0")
    try:
        user = await station.user()
        resp = await user.get("/api/health/")
        body = await resp.json()
        assert resp.status == 503 and body["status"] == "degraded"
        assert any("cannot write" in r for r in body["reasons"]), body
        anonymous = await (await station.client()).get("/api/health/")
        assert (await anonymous.json())["status"] == "degraded"
    finally:
        blocker.rollback()
        blocker.close()


def test_crashed_call_rows_are_closed_at_start(tmp_path: Path) -> None:
    from appliance.store import Store

    state = tmp_path / "state"
    store = Store(state / "station.db")
    ringing = store.call_started("station", "Grandma")
    answered = store.call_started("station", "Grandpa")
    store.call_answered(answered)
    store.close()
    port = free_port()
    proc = __import__("subprocess").Popen(serve_command(state, port))
    try:
        from ..conftest import wait_healthy

        wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    store = Store(state / "station.db")
    calls = {c.id: c for c in store.list_calls()}
    assert calls[ringing].outcome == "missed" and calls[ringing].ended_at is not None
    assert calls[answered].outcome == "answered" and calls[answered].ended_at is not None
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_read_only_state_dir_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    """A state dir that cannot be written (a file where the dir should be, which even
    root cannot write into): one line on stderr, exit status 1, no traceback."""
    state = tmp_path / "not-a-dir"
    state.write_text("")
    out = run_cli(*serve_command(state, free_port())[1:], timeout=30)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert any("state dir" in line and "not usable" in line for line in lines), out.stderr
    assert "Traceback" not in out.stderr


def test_malformed_http_is_one_info_line_without_header_values(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    try:
        secret = b"eyJhbGciOiJIUzI1NiJ9.SECRETPART"
        bad = (
            b"GET / HTTP/1.1\r\nHost: x\r\nCookie: vs_session="
            + secret
            + b"\r\nBad Header: 1\r\n\r\n"
        )
        answer = _raw_http(live.port, bad)
        assert answer.split(b" ")[1] == b"400", answer[:100]
        head = answer.split(b"\r\n\r\n")[0].decode()
        assert "Content-Security-Policy" in head and "no-store" in head
    finally:
        stop_live(live)
    log = live.log_path.read_text()
    assert "Traceback" not in log and secret.decode() not in log and "SECRETPART" not in log
    lines = [line for line in log.splitlines() if "malformed HTTP request" in line]
    assert len(lines) == 1 and "INFO" in lines[0], log

"""Slowloris (issue 7, item 10): half-open connections from one address cannot starve
the station; the unit raises the descriptor limit."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from appliance.http import connections

from ..conftest import REPO, start_live, stop_live


def test_half_open_connections_from_one_address_do_not_starve_health(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    sockets: list[socket.socket] = []
    try:
        # 1,100 connections from 127.0.0.2, each sending half a request head
        for _ in range(1100):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", live.port))
                sock.sendall(b"GET /api/health/ HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        started = time.monotonic()
        with urllib.request.urlopen(live.base_url + "/api/health/", timeout=5) as resp:
            assert resp.status == 200
        assert time.monotonic() - started < 2
        # the station kept at most the cap of them open
        time.sleep(0.5)
        alive = 0
        for sock in sockets:
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        assert alive <= connections.MAX_CONNECTIONS_PER_ADDRESS, alive
    finally:
        for sock in sockets:
            sock.close()
        stop_live(live)
    log = live.log_path.read_text()
    assert "too many connections from 127.0.0.2" in log


def test_a_request_head_must_arrive_in_time(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=30)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the station
        took = time.monotonic() - started
        deadline = connections.HEADER_TIMEOUT_SECONDS
        assert deadline - 1 < took < deadline + 5, took
        sock.close()
    finally:
        stop_live(live)


def test_both_units_raise_the_descriptor_limit() -> None:
    for unit in (
        REPO / "systemd/videostation.service",
        REPO / "ansible/roles/videostation/templates/videostation.service.j2",
    ):
        lines = unit.read_text().splitlines()
        (limit,) = [line for line in lines if line.startswith("LimitNOFILE=")]
        assert int(limit.split("=")[1]) > 2 * connections.MAX_CONNECTIONS_PER_ADDRESS

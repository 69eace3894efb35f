"""The state dir on real, failing file systems (issue #7, faults): a small tmpfs that
fills up mid-call, and a read-only mount at start. Real `videostation serve`
subprocesses on loopback, real mounts (root only; names prefixed ``trust2``)."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..conftest import free_port, run_cli, serve_command, start_live, stop_live
from ..helpers import AiortcCaller, Client, call_state, no_station_connect, skip_or_fail


@contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` for the test, always unmounted."""
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", "mode=0700", *options])
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "trust2-state", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (65536, 512):  # then the last crumbs
            while True:
                try:
                    written += f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return written


async def health_details(client: Client) -> tuple[int, dict[str, Any]]:
    resp = await client.http.get("/api/health/")
    return resp.status, dict(await resp.json())


async def test_a_state_dir_that_fills_up_mid_call_leaks_no_media(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "live-state", "8m"):
        live = start_live(tmp_path)
        clients: list[Client] = []
        filler = live.state_dir / "filler"
        try:
            kiosk = await Client.kiosk(live)
            guest = await Client.guest(live, "Grandma")
            # (made now: a full disk takes no new guest links)
            next_guest = await Client.guest(live, "Grandpa")
            clients += [kiosk, guest, next_guest]
            k = await kiosk.join()
            g = await guest.join()
            await call_state(k, "ringing")
            await k.send(type="call", action="answer")
            caller = AiortcCaller(g)
            await caller.accept_station()
            await caller.frames("video", 2)

            # The card fills up mid-call: every write from now on fails.
            fill(filler)
            await asyncio.sleep(6)  # a heartbeat of the resume record runs into it
            await g.send(type="call", action="hangup")
            ended = await call_state(k, "idle")
            assert ended["live"] is False
            await caller.close()

            # The camera and microphone close, and health says why the station is degraded.
            deadline = time.monotonic() + 15
            while True:
                status, body = await health_details(kiosk)
                if body["camera"].startswith("off") and body["microphone"].startswith("off"):
                    break
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.5)
            assert body["status"] == "degraded" and body["call"] == "idle", body
            print(f"\nhealth with a full state dir: {status} {body['reasons']}")
            assert any(
                r.startswith("database: cannot write") or r.startswith("call log:")
                for r in body["reasons"]
            ), body
            assert "full" in " ".join(body["reasons"]), body
            anonymous = await Client(live).http.get("/api/health/")
            assert (await anonymous.json())["status"] == "degraded"

            # The next guest rings like any other: nothing flows before an answer.
            n = await next_guest.join("Grandpa")
            ringing = await call_state(k, "ringing")
            assert [c["name"] for c in ringing["callers"]] == ["Grandpa"]
            assert ringing["live"] is False
            await no_station_connect(n, 2)
            await n.send(type="call", action="hangup")
            await call_state(k, "idle")

            # Room again: the resume record the full disk kept is cleared by the retry.
            filler.unlink()
            deadline = time.monotonic() + 10
            while rows(live.state_dir, "SELECT COUNT(*) FROM resumable_calls") != [(0,)]:
                assert time.monotonic() < deadline, "resume record never cleared"
                await asyncio.sleep(0.5)
            # ...and health is ok again (it stayed degraded for good before issue 22)
            status, body = await health_details(kiosk)
            assert (status, body["status"], body["reasons"]) == (200, "ok", []), body
        finally:
            for client in clients:
                await client.close()
            if filler.exists():
                filler.unlink()
            stop_live(live)
        assert rows(live.state_dir, "PRAGMA integrity_check") == [("ok",)]
        print("\n" + "\n".join(rows_text(live.state_dir)))


def rows(state_dir: Path, sql: str, *, read_only: bool = False) -> list[tuple[Any, ...]]:
    path = state_dir / "station.db"
    db = (
        sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        if read_only
        else sqlite3.connect(path)
    )
    try:
        return [tuple(r) for r in db.execute(sql).fetchall()]
    finally:
        db.close()


def rows_text(state_dir: Path) -> list[str]:
    return [
        f"call log after the full disk: {r}"
        for r in rows(state_dir, "SELECT id, caller, outcome, ended_at IS NOT NULL FROM calls")
    ]


def one_clear_line(state: Path) -> None:
    out = run_cli(*serve_command(state, free_port())[1:], timeout=30)
    assert out.returncode == 1, out
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr, out.stderr
    assert any("state dir" in line and "not usable" in line for line in lines), out.stderr
    assert len(lines) <= 3, out.stderr


def test_a_read_only_mount_at_start_is_one_clear_line(tmp_path: Path) -> None:
    """An empty state dir on a read-only mount (a card the kernel remounted ro)."""
    with tmpfs(tmp_path / "ro-state", "1m", "ro") as state:
        one_clear_line(state)


def test_a_provisioned_state_dir_remounted_read_only_is_one_clear_line(tmp_path: Path) -> None:
    """A station that ran before (database, secrets), then its card went read-only."""
    with tmpfs(tmp_path / "state", "4m") as state:
        out = run_cli("set-password", "--stdin", "--state-dir", str(state), input="pw-123456\n")
        assert out.returncode == 0, out.stderr
        port = free_port()
        proc = subprocess.Popen(serve_command(state, port), stderr=subprocess.DEVNULL)
        try:
            from ..conftest import wait_healthy

            wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        one_clear_line(state)
        assert rows(state, "PRAGMA integrity_check", read_only=True) == [("ok",)]


def test_the_cli_on_a_full_state_dir_says_so_in_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        out = run_cli("set-password", "--stdin", "--state-dir", str(state), input="pw-123456\n")
        assert out.returncode == 0, out.stderr
        fill(state / "ballast")
        out = run_cli(
            "guest-link", "station", "--label", "Full", "--no-qr", "--state-dir", str(state)
        )
        assert out.returncode == 1, out
        assert "Traceback" not in out.stderr, out.stderr
        assert "cannot be written" in out.stderr and "full" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert rows(state, "PRAGMA integrity_check", read_only=True) == [("ok",)]

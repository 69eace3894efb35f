"""What the browser benchmarks share: a kiosk that answers every ring, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp


class AnsweringKiosk:
    """The station's screen as a WebSocket in a thread: answers every ring at once."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.idle = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._task: asyncio.Task[None] | None = None

    async def _run(self, ready: threading.Event) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(
            base_url=self.base, cookie_jar=jar, headers={"Origin": self.base}
        ) as client:
            async with client.post("/api/auth/kiosk", json={"key": self.key}) as resp:
                assert resp.status == 200, await resp.text()
            async with client.ws_connect("/ws/") as ws:
                await ws.send_str(
                    json.dumps(dict(type="join", version=1, room="station", name="Station"))
                )
                ready.set()
                async for msg in ws:
                    data = json.loads(msg.data)
                    if data["type"] not in ("welcome", "call-state"):
                        continue
                    state = data["call"]["state"]
                    if state == "ringing":
                        await ws.send_str(json.dumps({"type": "call", "action": "answer"}))
                    (self.idle.set if state == "idle" else self.idle.clear)()

    async def _start(self, ready: threading.Event) -> None:
        self._task = asyncio.ensure_future(self._run(ready))

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def __enter__(self) -> AnsweringKiosk:
        self._thread.start()
        ready = threading.Event()
        asyncio.run_coroutine_threadsafe(self._start(ready), self._loop).result(10)
        assert ready.wait(15), "the kiosk socket did not join"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


FRAME = re.compile(r" \((.*/)?([^/]+):\d+\)$")
"""py-spy's ``function (path/file.py:line)``: kept as ``function (file.py)``."""


class Profile:
    """py-spy sampling a process for the length of a ``with`` block (a missed target is
    reported with where the time goes, issue #10). Collapsed stacks go to ``path``::

        with Profile(pid, tmp / "b7.txt") as profile:
            ...
        print(profile.report())
    """

    def __init__(self, pid: int, path: Path, *, rate: int = 100) -> None:
        self.pid, self.path, self.rate = pid, path, rate
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        self._proc = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--nonblocking",
             "--format", "raw", "--output", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(0.5)  # attached
        assert self._proc.poll() is None, self._proc.stderr.read() if self._proc.stderr else ""
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)
        self._proc.wait(30)

    def stacks(self) -> dict[tuple[str, ...], int]:
        """Collapsed stacks (outermost frame first) -> samples."""
        found: dict[tuple[str, ...], int] = {}
        for line in self.path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                frames = tuple(FRAME.sub(r" (\2)", f) for f in stack.split(";"))
                found[frames] = found.get(frames, 0) + int(count)
        return found

    def report(self, top: int = 8) -> str:
        """Where the samples were: the busiest leaf functions (own time) and the busiest
        frames anywhere on the stack (inclusive), as shares of all samples."""
        stacks = self.stacks()
        total = sum(stacks.values()) or 1
        own: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        for frames, count in stacks.items():
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count
        lines = [f"  py-spy, {total} samples at {self.rate} Hz; own time:"]
        for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {100 * count / total:5.1f} %  {frame}")
        lines.append("  inclusive (on the stack):")
        busiest = sorted(inclusive.items(), key=lambda kv: -kv[1])
        for frame, count in [kv for kv in busiest if kv[1] < 0.9 * total][:top]:
            lines.append(f"    {100 * count / total:5.1f} %  {frame}")
        return "\n".join(lines)

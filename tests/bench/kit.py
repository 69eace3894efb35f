"""What the browser benchmarks share: a kiosk that answers every ring, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import threading

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

"""B5: the bytes a guest's browser downloads from opening a guest link to the call
screen, on a first visit and on a repeat visit (same browser profile).

Counted on the wire, by a byte-counting TCP relay between Chromium and the station on
loopback: headers, HTTP bodies, API answers, the WebSocket and whatever the service
worker fetches, all of it (the browser's own accounting misses the worker's fetches).
Targets (issue #10): first visit <= 60 KB, repeat visit <= 5 KB.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser_kit import Pages

pytestmark = [pytest.mark.bench, pytest.mark.browser]

FIRST_VISIT_TARGET = 60_000
REPEAT_VISIT_TARGET = 5_000


class CountingRelay:
    """127.0.0.1:<port> → the station; counts the bytes sent towards the browser."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.downloaded = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if count:
                    self.downloaded += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer, count=False),
                self._pipe(up_reader, writer, count=True),
            )

    def __enter__(self) -> CountingRelay:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def relay(live_station: Any) -> Iterator[CountingRelay]:
    with CountingRelay(live_station.port) as counting:
        yield counting


def _to_call_screen(context: Any, url: str, relay: CountingRelay) -> tuple[int, int]:
    """Bytes downloaded when the call screen shows, and once the service worker settled
    (a ringing call's heartbeats are not page weight, so the repeat visit counts the
    first)."""
    relay.downloaded = 0
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_test_id("lobby")).to_be_visible()
    page.locator("#name").fill("Grandma")
    page.get_by_test_id("start-call").click()
    expect(page.get_by_test_id("call-status-title")).to_contain_text("Calling")
    shown = relay.downloaded
    page.wait_for_timeout(1500)  # let the service worker finish installing and precaching
    settled = relay.downloaded
    page.close()
    return shown, settled


def test_bytes_until_the_call_screen(live_station: Any, pages: Pages, relay: CountingRelay) -> None:
    base = f"http://127.0.0.1:{relay.port}"
    link = live_station.guest_link(label="Grandma").replace(live_station.base_url, base)
    context = pages.browser.new_context(viewport={"width": 412, "height": 860}, is_mobile=True)
    pages.contexts.append(context)

    first = _to_call_screen(context, link, relay)[1]  # the worker's precache included
    second_link = live_station.guest_link(label="Grandma").replace(live_station.base_url, base)
    repeat = _to_call_screen(context, second_link, relay)[0]

    print("\nB5 bytes downloaded until the call screen (everything on the wire):")
    print(f"  first visit   {first / 1000:6.1f} KB   (target <= {FIRST_VISIT_TARGET // 1000} KB)")
    print(f"  repeat visit  {repeat / 1000:6.1f} KB   (target <= {REPEAT_VISIT_TARGET // 1000} KB)")
    assert first > 20_000 and repeat > 0  # the page and its API calls went through the relay
    if os.environ.get("BENCH_QUICK") != "1":  # CI keeps it working; `make bench` judges
        assert first <= FIRST_VISIT_TARGET, first
        assert repeat <= REPEAT_VISIT_TARGET, repeat

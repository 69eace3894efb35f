"""Shared helpers for the real-Chromium tests (Playwright driving /usr/bin/chromium):
the browser and page fixtures, page openers per device, waits and WebRTC statistics.

The fixtures `browser` (one Chromium per module) and `pages` (a :class:`Pages` whose
pages must end without uncaught errors) are in tests/conftest.py; a browser test
module imports what it uses from here (which skips it, or fails it under CI, when
Playwright or Chromium is missing).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Screenshots go to tests/.artifacts (ignored by git); `make screenshots` refreshes the
# README's pictures in docs/screenshots.
SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "tests" / ".artifacts" / "screenshots")
ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    _missing("playwright is not installed (pip install -e '.[test]')")
if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    _missing(f"{CHROMIUM} not found (apt install chromium)")


@contextmanager
def launch() -> Iterator[Browser]:
    """Debian's Chromium with a fake camera and microphone (the `browser` fixture)."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Pages:
    """Opens pages in fresh contexts and collects their uncaught errors."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def open(
        self, url: str, *, setup: Callable[[Page], None] | None = None, **context: Any
    ) -> Page:
        """A page in a fresh context; ``setup`` runs before it loads ``url`` (init
        scripts, WebSocket routes)."""
        ctx = self.browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context})
        ctx.set_default_timeout(20_000)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{url}: {exc}"))
        if setup is not None:
            setup(page)
        page.goto(url)
        return page

    def kiosk(self, url: str, *, setup: Callable[[Page], None] | None = None) -> Page:
        return self.open(url, setup=setup, viewport={"width": 1280, "height": 720}, has_touch=True)

    def phone(self, url: str, *, setup: Callable[[Page], None] | None = None) -> Page:
        return self.open(
            url,
            setup=setup,
            viewport={"width": 412, "height": 860},
            has_touch=True,
            is_mobile=True,
        )

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def stats(page: Page) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = page.evaluate("() => window.videostation.client.stats()")
    return result


def wait_for(check: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def frames_from(page: Page, pick: Callable[[str, dict[str, Any]], bool]) -> int:
    return sum(int(s["framesDecoded"]) for pid, s in stats(page).items() if pick(pid, s))


def assert_video_flows(page: Page, pick: Callable[[str, dict[str, Any]], bool], what: str) -> None:
    """framesDecoded of the picked connections is positive and still increasing."""
    try:
        first = wait_for(
            lambda: frames_from(page, pick), f"first decoded frames {what}", timeout=30
        )
    except AssertionError as exc:  # say what each connection was doing
        states = page.evaluate(
            "() => [...window.videostation.client.peers.values()].map(l => [l.id,"
            " l.pc.signalingState, l.pc.iceConnectionState, l.pc.connectionState])"
        )
        raise AssertionError(f"{exc}; connections: {states}") from None
    wait_for(
        lambda: frames_from(page, pick) > first + 5, f"frames decoded {what} to keep increasing"
    )


def kiosk_state(kiosk: Page) -> str | None:
    return kiosk.get_by_test_id("kiosk").get_attribute("data-state")


def call_from_phone(pages: Pages, url: str, name: str) -> Page:
    guest = pages.phone(url)
    expect(guest.get_by_test_id("lobby")).to_be_visible()
    assert "guest_token" not in guest.url, "the token must leave the address bar"
    guest.locator("#name").fill(name)
    guest.get_by_test_id("start-call").click()
    return guest


def sign_in(pages: Pages, live: Any) -> Page:
    page = pages.open(live.base_url + "/")
    page.locator("#password").fill(live.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("room-list")).to_be_visible()
    return page


def recent_call(page: Page, caller: str) -> Any:
    return page.get_by_test_id("recent-calls").locator("li.call-item", has_text=caller)


def station_metrics(live: Any) -> dict[str, float]:
    from tests.conftest import http_json, login_cookie

    cookie = login_cookie(live.base_url, live.password)
    _, text, _ = http_json(f"{live.base_url}/api/metrics/", cookie=cookie)
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values

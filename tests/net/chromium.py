"""Debian's Chromium inside a test bed namespace, driven by Playwright as usual (what
the test bed's browser tests share)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from ..browser_kit import ARGS  # first: skips, or fails under CI, without Playwright
from .services import PASSWORD
from .testbed import STATION_PUBLIC

STATION_URL = f"http://{STATION_PUBLIC}:8080"
"""The station as phones reach it: through the home router's forwarded port."""


def chromium_in(namespace: str, tmp_path: Path) -> Path:
    """An executable that starts Debian's Chromium inside ``namespace``."""
    wrapper = tmp_path / f"chromium-{namespace}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def launch_phone(chromium: Any, namespace: str, tmp_path: Path) -> Any:
    """A phone's Chromium in ``namespace`` (``chromium``: Playwright's ``pw.chromium``).
    The station is reached by address over plain HTTP here: the flag lets the fake
    camera work as it would over the HTTPS a real station serves."""
    return chromium.launch(
        executable_path=str(chromium_in(namespace, tmp_path)),
        args=[*ARGS, f"--unsafely-treat-insecure-origin-as-secure={STATION_URL}"],
    )


def join(
    browser: Any, name: str, *, viewport: tuple[int, int] = (412, 915), script: str = ""
) -> Page:
    """Sign in as the household and call the station (it auto-answers users); ``script``
    runs in the page before its own code."""
    width, height = viewport
    page: Page = browser.new_page(viewport={"width": width, "height": height})
    if script:
        page.add_init_script(script)
    page.goto(f"{STATION_URL}/")
    page.get_by_test_id("household-login").click()
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("room-list")).to_be_visible(timeout=30_000)
    page.goto(f"{STATION_URL}/#/room/station")
    expect(page.get_by_test_id("lobby")).to_be_visible(timeout=30_000)
    page.locator("#name").fill(name)
    page.get_by_test_id("start-call").click()
    expect(page.get_by_test_id("call-page")).to_have_attribute(
        "data-state", "in-call", timeout=40_000
    )
    return page

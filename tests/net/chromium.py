"""Debian's Chromium inside a test bed namespace, driven by Playwright as usual (what
the test bed's browser tests share)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..browser_kit import ARGS  # first: skips, or fails under CI, without Playwright
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

"""A misconfigured TURN server is said out loud, on the caller's phone and on the kiosk.

Real Chromium runs inside the test bed's namespaces (``ip netns exec`` in front of
Debian's Chromium, so Playwright drives it over its pipe as usual): the phone behind
the carrier's symmetric NAT, the kiosk at home. With the station minting TURN
credentials from a secret that coturn does not share, no relay exists and no direct
path crosses the symmetric NAT: both pages must say that the relay refused the call
(instead of a silent black picture) and the service must log why. With the right
secret, the same phone gets the station's picture and no such notice.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ..browser_kit import ARGS  # first: skips, or fails under CI, without Playwright
from ..conftest import BIN
from .chromium import STATION_URL, chromium_in, launch_phone
from .services import SECRET, start_station, start_turn
from .testbed import HOME, PHONES, Testbed

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def cli(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "videostation"), *args, "--config", str(tmp_path / "station.toml")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def browsers(bed: Testbed, tmp_path: Path) -> Iterator[dict[str, Browser]]:
    """A phone's Chromium in the carrier's network, the kiosk's at home."""
    with sync_playwright() as pw:
        phone = launch_phone(pw.chromium, PHONES[0], tmp_path)
        kiosk = pw.chromium.launch(executable_path=str(chromium_in(HOME, tmp_path)), args=ARGS)
        try:
            yield {"phone": phone, "kiosk": kiosk}
        finally:
            phone.close()
            kiosk.close()


def call(tmp_path: Path, browsers: dict[str, Browser], *, station_secret: str) -> tuple[Page, Page]:
    """coturn with the role's secret, the station with ``station_secret``; the kiosk
    answers a guest calling from the phone. Returns (phone page, kiosk page)."""
    start_turn(tmp_path, SECRET)
    start_station(tmp_path, turn_secret=station_secret, auto_answer=False)
    kiosk_url = urlsplit(cli(tmp_path, "kiosk-url"))
    guest_url = urlsplit(cli(tmp_path, "guest-link", "--no-qr"))
    kiosk = browsers["kiosk"].new_page()
    kiosk.goto(f"http://127.0.0.1:8080/#{kiosk_url.fragment}")
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    phone = browsers["phone"].new_page(viewport={"width": 412, "height": 915})
    phone.goto(f"{STATION_URL}/#{guest_url.fragment}")
    expect(phone.get_by_test_id("lobby")).to_be_visible()
    phone.locator("#name").fill("Anna")
    phone.get_by_test_id("start-call").click()
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(kiosk.get_by_test_id("kiosk-call")).to_be_visible()
    return phone, kiosk


def test_a_refused_relay_is_said_on_the_phone_and_on_the_kiosk(
    browsers: dict[str, Browser], tmp_path: Path
) -> None:
    phone, kiosk = call(tmp_path, browsers, station_secret="not-the-turn-servers-secret")
    notice = phone.get_by_test_id("net-notice")
    expect(notice).to_be_visible(timeout=40_000)
    expect(notice).to_have_attribute("data-why", "relay-refused")
    expect(notice).to_contain_text("TURN")
    kiosk_notice = kiosk.get_by_test_id("net-notice")
    expect(kiosk_notice).to_be_visible(timeout=40_000)
    expect(kiosk_notice).to_have_attribute("data-why", "relay-refused")
    expect(kiosk_notice).to_contain_text("log")
    expect(kiosk_notice).not_to_contain_text("ice.")
    # the service says the same in its log once its own connection gives up, with the
    # config keys to check (a screen names none)
    log = tmp_path / "station.log"
    deadline = time.monotonic() + 90
    while "the TURN server gave no relay address" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1)
    assert "ice.turn_secret" in log.read_text()


def test_with_the_right_secret_the_phone_gets_the_picture_and_no_notice(
    browsers: dict[str, Browser], tmp_path: Path
) -> None:
    phone, kiosk = call(tmp_path, browsers, station_secret=SECRET)
    decoded = (
        "() => [...document.querySelectorAll('video')].some((v) => v.videoWidth >= 640 "
        "&& v.getVideoPlaybackQuality().totalVideoFrames > 30)"
    )
    phone.wait_for_function(decoded, timeout=40_000)
    # past the time a diagnosis would have been shown
    time.sleep(11)
    expect(phone.get_by_test_id("net-notice")).to_be_hidden()
    expect(kiosk.get_by_test_id("net-notice")).to_be_hidden()

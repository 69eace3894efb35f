"""`kill -9` of the service mid-call, then a restart on the same port and state dir
(issue #7, faults), with a real kiosk page and a real caller page in Chromium.

While the service is down the kiosk must not claim that the camera is on (LIVE off
as soon as the socket is lost). After the restart both pages reconnect by themselves
(backoff) and the call resumes within RESUME_LIMIT seconds without ringing again:
no one at the station has to answer a second time.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser_kit import (
    Browser,
    Page,
    Pages,
    assert_video_flows,
    expect,
    frames_from,
    holds,
    wait_for,
)

pytestmark = pytest.mark.browser

RESUME_LIMIT = 10.0
DOWN_SECONDS = 3.0

# Every value the page's state attribute takes, with a timestamp (a MutationObserver,
# so that a state shown for a moment only is recorded too).
RECORD_STATES = """(testid) => {
  window.__states = [];
  const el = document.querySelector(`[data-testid="${testid}"]`);
  const note = () => window.__states.push([Date.now(), el.dataset.state]);
  note();
  new MutationObserver(note).observe(el, { attributes: true, attributeFilter: ['data-state'] });
}"""


def states_since(page: Page, since_ms: float) -> list[str]:
    states: list[list[object]] = page.evaluate("() => window.__states")
    return [str(s) for t, s in states if float(str(t)) >= since_ms]


@dataclass
class Outage:
    """A call between a kiosk page and a guest page whose service was killed with
    SIGKILL mid-call and restarted on the same port and state dir."""

    kiosk: Page
    guest: Page
    killed_at_ms: float
    up: float
    """time.monotonic() when the restarted service answered its health check."""


@contextmanager
def killed_mid_call(tmp_path: Path, browser: Browser) -> Iterator[Outage]:
    from tests.conftest import serve_command, start_live, stop_live, wait_healthy

    live = start_live(tmp_path)
    pages = Pages(browser)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        kiosk = pages.kiosk(live.kiosk_url)
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        guest = pages.phone(live.guest_link(label="Grandma"))
        expect(guest.get_by_test_id("lobby")).to_be_visible()
        guest.locator("#name").fill("Grandma")
        guest.get_by_test_id("start-call").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        kiosk.get_by_test_id("kiosk-answer").click()
        live_badge = kiosk.get_by_test_id("live-indicator")
        expect(live_badge).to_be_visible()
        assert_video_flows(guest, lambda pid, s: pid == "station", "on the guest")
        assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk")
        kiosk.evaluate(RECORD_STATES, "kiosk")
        guest.evaluate(RECORD_STATES, "call-page")

        # kill -9: no goodbye, no clean-up. The kiosk must stop claiming LIVE at once
        # and keep quiet for as long as the service is down.
        killed_at_ms = float(kiosk.evaluate("() => Date.now()"))
        live.proc.send_signal(signal.SIGKILL)
        live.proc.wait(timeout=10)
        expect(live_badge).to_be_hidden(timeout=3000)
        expect(kiosk.get_by_text("Reconnecting to the station")).to_be_visible()
        holds(
            lambda: not live_badge.is_visible(),
            "LIVE shown while the service is down",
            DOWN_SECONDS,
        )

        with open(live.log_path, "ab") as log:
            restarted = subprocess.Popen(
                serve_command(live.state_dir, live.port), stdout=log, stderr=subprocess.STDOUT
            )
        wait_healthy(live.base_url, proc=restarted)
        yield Outage(kiosk, guest, killed_at_ms, time.monotonic())
        assert pages.errors == []
    finally:
        pages.close()
        if restarted is not None:
            live.proc = restarted
        stop_live(live)


def status(page: Page) -> str:
    value: str = page.evaluate("() => window.videostation.client.status")
    return value


def test_while_the_service_is_down_the_kiosk_claims_nothing_and_pages_come_back(
    tmp_path: Path, browser: Browser
) -> None:
    with killed_mid_call(tmp_path, browser) as outage:
        kiosk, guest = outage.kiosk, outage.guest
        # Both pages reconnect by themselves (backoff: at most 4 s between tries).
        wait_for(
            lambda: status(kiosk) == "connected" and status(guest) == "connected",
            "both pages to reconnect by themselves",
            RESUME_LIMIT,
        )
        print(f"both pages reconnected {time.monotonic() - outage.up:.1f} s after the restart")
        expect(kiosk.get_by_text("Reconnecting to the station")).to_be_hidden()
        # Once back, LIVE says what the service says.
        badge = kiosk.get_by_test_id("live-indicator")
        wait_for(
            lambda: (
                badge.is_visible()
                == kiosk.evaluate("() => !!window.videostation.client.callState?.live")
            ),
            "LIVE to follow the restarted service's call state",
            5,
        )


def test_a_killed_service_resumes_the_call_without_ringing(
    tmp_path: Path, browser: Browser
) -> None:
    with killed_mid_call(tmp_path, browser) as outage:
        kiosk, guest = outage.kiosk, outage.guest
        live_badge = kiosk.get_by_test_id("live-indicator")

        def resumed() -> bool:
            return (
                guest.get_by_test_id("call-page").get_attribute("data-state") == "in-call"
                and frames_from(guest, lambda pid, s: pid == "station") > 0
                and frames_from(kiosk, lambda pid, s: pid != "station") > 0
                and live_badge.is_visible()
            )

        wait_for(resumed, "the call to resume after the restart", RESUME_LIMIT)
        print(f"call resumed {time.monotonic() - outage.up:.1f} s after the restart")
        assert_video_flows(guest, lambda pid, s: pid == "station", "on the guest after restart")
        assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk after restart")
        # Nobody had to answer again: the kiosk never rang, the guest never "called".
        since = outage.killed_at_ms
        assert "ringing" not in states_since(kiosk, since), states_since(kiosk, 0)
        assert "calling" not in states_since(guest, since), states_since(guest, 0)

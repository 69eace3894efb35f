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


def test_a_killed_service_resumes_the_call_without_ringing(
    tmp_path: Path, browser: Browser
) -> None:
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

        # kill -9: no goodbye, no clean-up.
        killed_at_ms = kiosk.evaluate("() => Date.now()")
        live.proc.send_signal(signal.SIGKILL)
        live.proc.wait(timeout=10)
        expect(live_badge).to_be_hidden(timeout=3000)
        expect(kiosk.get_by_text("Reconnecting to the station")).to_be_visible()
        holds(
            lambda: not live_badge.is_visible(),
            "LIVE shown while the service is down",
            DOWN_SECONDS,
        )

        # Restart on the same port and state dir.
        with open(live.log_path, "ab") as log:
            restarted = subprocess.Popen(
                serve_command(live.state_dir, live.port), stdout=log, stderr=subprocess.STDOUT
            )
        wait_healthy(live.base_url, proc=restarted)
        up = time.monotonic()

        def resumed() -> bool:
            return (
                guest.get_by_test_id("call-page").get_attribute("data-state") == "in-call"
                and frames_from(guest, lambda pid, s: pid == "station") > 0
                and frames_from(kiosk, lambda pid, s: pid != "station") > 0
                and live_badge.is_visible()
            )

        wait_for(resumed, "the call to resume after the restart", RESUME_LIMIT)
        took = time.monotonic() - up
        print(f"call resumed {took:.1f} s after the restarted service was healthy")
        assert_video_flows(guest, lambda pid, s: pid == "station", "on the guest after restart")
        assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk after restart")

        # Nobody had to answer again: the kiosk never rang, the guest never "called".
        assert "ringing" not in states_since(kiosk, killed_at_ms), states_since(kiosk, 0)
        assert "calling" not in states_since(guest, killed_at_ms), states_since(guest, 0)
        assert pages.errors == []
    finally:
        pages.close()
        if restarted is not None:
            live.proc = restarted
        stop_live(live)

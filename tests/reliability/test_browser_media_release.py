"""The caller's own camera and microphone are released the moment a call ends
(issue #7, item 5), in real Chromium against a real service.

getUserMedia is instrumented before the page loads, so the test sees every track the
page ever got: after hang-up (either side), decline, no answer, cancel, room full and
Leave, every one of them is "ended" and no media element still shows one. "Call again"
asks for the camera afresh, and the new tracks reach the kiosk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser_kit import (
    Browser,
    Page,
    Pages,
    assert_video_flows,
    elements_showing_local_tracks,
    expect,
    instrument,
    local_tracks,
)

pytestmark = pytest.mark.browser


def assert_released(page: Page, when: str) -> None:
    tracks = local_tracks(page)
    assert tracks, f"{when}: the page never asked for the camera"
    live = [t for t in tracks if t["state"] != "ended"]
    assert live == [], f"{when}: camera/microphone still on: {tracks}"
    assert elements_showing_local_tracks(page) == 0, f"{when}: a preview still shows the camera"
    own = page.locator('[data-testid="local-video"] video')
    if own.count():
        assert own.evaluate("v => v.srcObject === null"), f"{when}: the preview keeps a stream"


def assert_capturing(page: Page, when: str) -> None:
    live = [t for t in local_tracks(page) if t["state"] == "live"]
    kinds = sorted(t["kind"] for t in live)
    assert kinds == ["audio", "video"], f"{when}: expected the camera and mic on, got {kinds}"


def test_every_way_out_of_a_call_releases_camera_and_microphone(
    tmp_path: Path, browser: Browser
) -> None:
    from tests.conftest import start_live, stop_live

    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "[call]\nring_timeout_seconds = 3\nmax_remote_participants = 1\n"
        # every way out, one after another: no wait between rings (test_ring_limits)
        "ring_cooldown_seconds = 0\nguest_rings_per_minute = 0\n\n"
        '[screen]\npower_command = ""\n'
    )
    live = start_live(tmp_path, "--config", str(cfg))
    pages = Pages(browser)
    try:
        kiosk = pages.kiosk(live.kiosk_url)
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        guest = pages.phone(live.guest_link(label="Grandma"), setup=instrument)
        expect(guest.get_by_test_id("lobby")).to_be_visible()
        guest.locator("#name").fill("Grandma")
        guest.get_by_test_id("start-call").click()
        title = guest.get_by_test_id("call-status-title")
        expect(title).to_contain_text("Calling")
        assert_capturing(guest, "calling")

        # The guest hangs up.
        kiosk.get_by_test_id("kiosk-answer").click()
        expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
        assert_capturing(guest, "in a call")
        guest.get_by_test_id("hangup").click()
        expect(title).to_have_text("Call ended")
        assert_released(guest, "after the guest hung up")

        # Call again: a fresh camera, and it reaches the kiosk. Then the kiosk hangs up.
        guest.get_by_test_id("call-again").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        assert_capturing(guest, "calling again")
        kiosk.get_by_test_id("kiosk-answer").click()
        assert_video_flows(kiosk, lambda pid, s: pid != "station", "from the new camera")
        kiosk.get_by_test_id("kiosk-hangup").click()
        expect(title).to_have_text("Call ended")
        assert_released(guest, "after the kiosk hung up")

        guest.get_by_test_id("call-again").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        kiosk.get_by_test_id("kiosk-decline").click()
        expect(title).to_have_text("Declined")
        assert_released(guest, "after a decline")

        guest.get_by_test_id("call-again").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        expect(title).to_have_text("No answer", timeout=15_000)
        assert_released(guest, "after no answer")

        guest.get_by_test_id("call-again").click()
        expect(title).to_contain_text("Calling")
        guest.get_by_test_id("hangup").click()  # the one hang-up button, also while calling
        expect(title).to_have_text("Call ended")
        assert_released(guest, "after cancelling")

        # Room full: one remote at most, and the guest is still in the room.
        other = pages.phone(live.guest_link(label="Cousin"), setup=instrument)
        expect(other.get_by_test_id("lobby")).to_be_visible()
        other.locator("#name").fill("Cousin")
        other.get_by_test_id("start-call").click()
        expect(other.get_by_test_id("call-status-title")).to_have_text("This room is full")
        assert_released(other, "after room full")

        # Leave: a finished page, nothing held.
        guest.get_by_test_id("leave").click()
        expect(guest.get_by_test_id("finished-page")).to_be_visible()
        expect(guest.get_by_test_id("finished-title")).to_have_text("You left the call")
        assert_released(guest, "after Leave")
        assert pages.errors == []
    finally:
        pages.close()
        stop_live(live)

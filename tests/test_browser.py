"""The PWA in real Chromium (Playwright) against a real `videostation serve`:
rooms and guest links, the kiosk ↔ guest call end to end with decoded video on both
sides, decline and no-answer, the call log (missed calls on the kiosk, recent calls on
the rooms page), and broken guest links.

Screenshots for the README land in docs/screenshots/ (`make screenshots`).
The shared fixtures and helpers are in tests/browser_kit.py.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser_kit import (
    Browser,
    Pages,
    assert_video_flows,
    call_from_phone,
    expect,
    recent_call,
    shot,
    sign_in,
    station_metrics,
    stats,
    wait_for,
)

pytestmark = pytest.mark.browser

# -- rooms and guest links -----------------------------------------------------------


def test_user_creates_room_makes_and_revokes_guest_link(live_station: Any, pages: Pages) -> None:
    page = pages.open(live_station.base_url + "/")
    # A visitor without a session is told to ask for an invitation; the household taps on.
    expect(page.get_by_test_id("ask-invitation")).to_be_visible()
    expect(page.locator("#password")).to_have_count(0)
    page.get_by_test_id("household-login").click()
    page.locator("#password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("Wrong password")
    page.locator("#password").fill(live_station.password)
    page.get_by_role("button", name="Sign in").click()

    rooms = page.get_by_test_id("room-list")
    expect(rooms.locator("[data-room-id=station]")).to_be_visible()
    page.get_by_label("New room name").fill("Kitchen")
    page.get_by_role("button", name="Create room").click()
    room = rooms.locator("li.room", has_text="Kitchen")
    expect(room).to_be_visible()

    room.get_by_role("button", name="Invite").click()
    room.get_by_label("Label").fill("Uncle Bob")
    room.get_by_role("button", name="Create link").click()
    qr = room.get_by_test_id("guest-qr")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), (
        "the QR image must load (CSP img-src data:)"
    )
    url = room.get_by_test_id("guest-url").input_value()
    assert "#/room/" in url and "guest_token=" in url
    item = room.get_by_test_id("guest-links").locator("li", has_text="Uncle Bob")
    expect(item.get_by_test_id("link-status")).to_have_text("active")
    expect(page.get_by_test_id("recent-calls")).to_have_text("No calls yet.")
    shot(page, "rooms")

    item.get_by_role("button", name="Revoke").click()
    # Revoked links are out of the way, behind a toggle.
    expect(item).to_have_count(0)
    room.get_by_test_id("show-old-links").check()
    expect(item.get_by_test_id("link-status")).to_have_text("revoked")

    # "Revoke all" withdraws every active link at once.
    room.get_by_label("Label").fill("Aunt May")
    room.get_by_role("button", name="Create link").click()
    room.get_by_label("Label").fill("Cousin Jim")
    room.get_by_role("button", name="Create link").click()
    active = room.get_by_test_id("guest-links").locator("[data-status=active]")
    expect(active).to_have_count(2)
    room.get_by_test_id("revoke-all").click()
    expect(active).to_have_count(0)
    expect(room.get_by_test_id("guest-links").locator("[data-status=revoked]")).to_have_count(3)
    expect(room.get_by_test_id("revoke-all")).to_be_hidden()

    # The revoked link now gives a clear error page instead of the room.
    guest = pages.phone(url)
    expect(guest.get_by_test_id("error-page")).to_be_visible()
    expect(guest.get_by_test_id("error-message")).to_contain_text("withdrawn")

    delete = room.get_by_role("button", name="Delete")
    delete.click()
    room.get_by_role("button", name="Really delete?").click()
    expect(rooms.locator("li.room", has_text="Kitchen")).to_have_count(0)


# -- the call -------------------------------------------------------------------------


def test_guest_calls_station_kiosk_answers_both_see_video_then_hang_up(
    live_station: Any, pages: Pages
) -> None:
    kiosk = pages.kiosk(live_station.kiosk_url)
    qr = kiosk.get_by_test_id("kiosk-qr")
    expect(qr).to_be_visible()
    assert "key=" not in kiosk.url, "the kiosk key must leave the address bar"
    box = qr.bounding_box()
    assert box and box["width"] >= 300 and box["height"] >= 300, box
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(kiosk.get_by_test_id("live-indicator")).to_be_hidden()
    expect(kiosk.get_by_test_id("missed-calls")).to_be_hidden()
    kiosk.wait_for_timeout(300)
    shot(kiosk, "kiosk-idle")

    guest = call_from_phone(pages, live_station.guest_link(label="Grandma"), "Grandma")
    expect(guest.get_by_test_id("call-status-title")).to_contain_text("Calling")
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    expect(kiosk.get_by_test_id("caller-name")).to_have_text("Grandma")
    answer = kiosk.get_by_test_id("kiosk-answer")
    abox = answer.bounding_box()
    assert abox and abox["height"] >= 48 and abox["width"] >= 48
    expect(kiosk.get_by_test_id("live-indicator")).to_be_hidden()
    shot(kiosk, "kiosk-ringing")

    answer.click()
    expect(kiosk.get_by_test_id("kiosk-call")).to_be_visible()
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()
    live = kiosk.get_by_test_id("live-indicator")
    expect(live).to_have_attribute("aria-label", re.compile("^Live"))
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")

    # The guest decodes the station camera; the kiosk decodes the guest's camera.
    assert_video_flows(guest, lambda pid, s: pid == "station", "on the guest from the station")
    assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk from the guest")
    # The kiosk shows the station camera as its own preview.
    assert_video_flows(kiosk, lambda pid, s: pid == "station", "on the kiosk preview")
    expect(kiosk.get_by_test_id("station-preview")).to_be_visible()
    expect(guest.get_by_test_id("local-video")).to_be_visible()
    kiosk.wait_for_timeout(500)
    shot(kiosk, "kiosk-in-call")
    shot(guest, "guest-in-call")

    guest.get_by_test_id("hangup").click()
    expect(guest.get_by_test_id("call-status-title")).to_have_text("Call ended")
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(kiosk.get_by_test_id("live-indicator")).to_be_hidden()
    wait_for(lambda: stats(guest) == {}, "the guest to close its connections")
    wait_for(lambda: stats(kiosk) == {}, "the kiosk to close its connections")

    # Call again; this time the kiosk hangs up.
    guest.get_by_test_id("call-again").click()
    expect(kiosk.get_by_test_id("caller-name")).to_have_text("Grandma")
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()
    assert_video_flows(guest, lambda pid, s: pid == "station", "on the guest after calling again")
    kiosk.get_by_test_id("kiosk-hangup").click()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(kiosk.get_by_test_id("live-indicator")).to_be_hidden()
    expect(guest.get_by_test_id("call-status-title")).to_have_text("Call ended")
    wait_for(lambda: stats(guest) == {}, "the guest to close its connections")

    # Answered calls are not missed; the rooms page lists both with their length.
    expect(kiosk.get_by_test_id("missed-calls")).to_be_hidden()
    user = sign_in(pages, live_station)
    expect(recent_call(user, "Grandma")).to_have_count(2)
    for outcome in recent_call(user, "Grandma").get_by_test_id("call-outcome").all():
        expect(outcome).to_have_text(re.compile(r"^Answered · \d+ (second|minute)s?"))

    # Chromium took the shared H.264 stream: the VP8 fallback encoder never ran.
    metrics = station_metrics(live_station)
    assert metrics["videostation_media_encoded_h264"] > 0, metrics
    assert metrics["videostation_media_encoded_vp8"] == 0, metrics


@pytest.mark.parametrize("synchronized", [False, True])
def test_the_kiosk_says_when_the_clock_is_not_set(
    live_station: Any, pages: Pages, synchronized: bool
) -> None:
    """A Pi without a clock battery shows the time it saved at shutdown until network
    time arrives: the kiosk's date line says so. What this machine's kernel says is
    whatever it is; the page gets the station's real health with the clock's state set
    (a routed reply), so both cases are seen."""

    def setup(page: Any) -> None:
        def reply(route: Any) -> None:
            response = route.fetch()
            body = response.json()
            assert "synchronized" in body["clock"], body  # the station reports it
            body["clock"]["synchronized"] = synchronized
            route.fulfill(response=response, json=body)

        page.route("**/api/health", reply)

    kiosk = pages.kiosk(live_station.kiosk_url, setup=setup)
    date = kiosk.locator(".kiosk-idle .date")
    expect(date).to_have_attribute("data-clock-set", str(synchronized).lower())
    if synchronized:
        expect(date).not_to_contain_text("clock not set")
        expect(date).to_have_text(re.compile(r"\w+"))
    else:
        expect(date).to_contain_text("· clock not set yet")


def test_kiosk_declines(live_station: Any, pages: Pages) -> None:
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    guest = call_from_phone(pages, live_station.guest_link(label="Salesman"), "Salesman")
    expect(kiosk.get_by_test_id("caller-name")).to_have_text("Salesman")
    kiosk.get_by_test_id("kiosk-decline").click()
    expect(guest.get_by_test_id("call-status-title")).to_have_text("Declined")
    expect(guest.get_by_test_id("call-again")).to_be_visible()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    assert stats(guest) == {} and stats(kiosk) == {}, "no media before an answer"

    # Somebody at the station chose not to answer: a decline is not a missed call.
    expect(kiosk.get_by_test_id("missed-calls")).to_be_hidden()
    qbox = kiosk.get_by_test_id("kiosk-qr").bounding_box()
    assert qbox and qbox["width"] >= 300 and qbox["height"] >= 300, qbox

    user = sign_in(pages, live_station)
    expect(recent_call(user, "Salesman").get_by_test_id("call-outcome")).to_have_text("Declined")


def test_unanswered_call_says_no_answer(tmp_path: Path, browser: Browser) -> None:
    # The ring timeout is 45 s by default: run a second station with a 3 s one, through
    # the helpers behind the live_station fixture.
    from tests.conftest import start_live, stop_live

    cfg = tmp_path / "short-ring.toml"
    cfg.write_text('[call]\nring_timeout_seconds = 3\n\n[screen]\npower_command = ""\n')
    live = start_live(tmp_path, "--config", str(cfg))
    p = Pages(browser)
    try:
        kiosk = p.kiosk(live.kiosk_url)
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        guest = call_from_phone(p, live.guest_link(label="Nobody home"), "Nobody home")
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        expect(guest.get_by_test_id("call-status-title")).to_have_text("No answer", timeout=15_000)
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        missed = kiosk.get_by_test_id("missed-calls")
        expect(missed.get_by_test_id("missed-caller")).to_have_text("Nobody home")
        expect(missed.get_by_test_id("missed-count")).to_have_count(0)
        user = sign_in(p, live)
        outcome = recent_call(user, "Nobody home").get_by_test_id("call-outcome")
        expect(outcome.first).to_have_text("Missed")

        # A second missed call from the same caller: one row with a count.
        guest.get_by_test_id("call-again").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        expect(guest.get_by_test_id("call-status-title")).to_have_text("No answer", timeout=15_000)
        expect(missed.get_by_test_id("missed-item")).to_have_count(1)
        expect(missed.get_by_test_id("missed-count")).to_have_text("2 calls")
        clear = kiosk.get_by_test_id("missed-clear")
        cbox = clear.bounding_box()
        assert cbox and cbox["height"] >= 48 and cbox["width"] >= 48, cbox

        # A touch clears the list; after a reload only calls missed since then come back.
        clear.click()
        expect(missed).to_be_hidden()
        kiosk.reload()
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        expect(missed).to_be_hidden()
        guest.get_by_test_id("call-again").click()
        expect(guest.get_by_test_id("call-status-title")).to_have_text("No answer", timeout=15_000)
        expect(missed.get_by_test_id("missed-item")).to_have_count(1)
        expect(missed.get_by_test_id("missed-count")).to_have_count(0)
        assert p.errors == []
    finally:
        p.close()
        stop_live(live)


# -- broken links ---------------------------------------------------------------------


@pytest.mark.parametrize("token", ["garbage", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"])
def test_bad_guest_token_shows_an_error_page(live_station: Any, pages: Pages, token: str) -> None:
    page = pages.phone(f"{live_station.base_url}/#/room/station?guest_token={token}")
    expect(page.get_by_test_id("error-page")).to_be_visible()
    expect(page.get_by_role("heading")).to_have_text("This invitation link cannot be used")
    expect(page.get_by_test_id("error-message")).to_contain_text("new one")
    assert "guest_token" not in page.url


def test_expired_guest_link_shows_an_error_page(live_station: Any, pages: Pages) -> None:
    import jwt

    from appliance.auth import ALGORITHM, GUEST_AUDIENCE

    # Links live at least a minute: sign one that expired an hour ago with the station's key.
    secret = (Path(live_station.state_dir) / "secret.key").read_text().strip()
    now = int(time.time())
    claims = {
        "sub": "guest",
        "role": "guest",
        "room": "station",
        "aud": GUEST_AUDIENCE,
        "iat": now - 7200,
        "exp": now - 3600,
        "jti": "expired-link",
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    page = pages.phone(f"{live_station.base_url}/#/room/station?guest_token={token}")
    expect(page.get_by_test_id("error-page")).to_be_visible()
    expect(page.get_by_test_id("error-message")).to_contain_text("expired")


def test_kiosk_with_a_wrong_key_says_so(live_station: Any, pages: Pages) -> None:
    page = pages.kiosk(f"{live_station.base_url}/#/kiosk?key=wrong")
    expect(page.get_by_test_id("error-page")).to_be_visible()
    expect(page.get_by_role("heading")).to_have_text("This screen is not paired")


def test_two_browsers_in_a_plain_room_see_each_other(live_station: Any, pages: Pages) -> None:
    """A non-station room is a mesh of browsers: perfect negotiation both ways."""
    user = pages.open(live_station.base_url + "/")
    user.get_by_test_id("household-login").click()
    user.locator("#password").fill(live_station.password)
    user.get_by_role("button", name="Sign in").click()
    user.get_by_label("New room name").fill("Family")
    user.get_by_role("button", name="Create room").click()
    room = user.get_by_test_id("room-list").locator("li.room", has_text="Family")
    room_id = room.get_attribute("data-room-id")
    assert room_id
    link = live_station.guest_link(room=room_id, label="Cousin")
    # A second "Family" is refused, in words (the error's code, translated).
    user.get_by_label("New room name").fill("family")
    user.get_by_role("button", name="Create room").click()
    expect(user.locator(".form-error")).to_have_text("That name is already taken.")

    room.get_by_role("link", name="Join").click()
    user.locator("#name").fill("Host")
    user.get_by_test_id("start-call").click()
    expect(user.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    # Alone: "Waiting for others", with an invitation at hand.
    expect(user.get_by_test_id("waiting-for-others")).to_be_visible()
    user.get_by_test_id("alone-invite").click()
    expect(user.get_by_test_id("alone-invite")).to_have_attribute("data-url", re.compile("#/room/"))

    guest = call_from_phone(pages, link, "Cousin")
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    expect(user.get_by_test_id("waiting-for-others")).to_be_hidden()
    assert_video_flows(user, lambda pid, s: True, "on the user from the guest")
    assert_video_flows(guest, lambda pid, s: True, "on the guest from the user")
    expect(user.locator(".tile")).to_have_count(1)

    # Camera off on the guest side reaches the user as peer-updated.
    # aria-pressed says the camera is off (the kiosk's meaning): not pressed, then pressed.
    expect(guest.get_by_test_id("toggle-cam")).to_have_attribute("aria-pressed", "false")
    guest.get_by_test_id("toggle-cam").click()
    expect(guest.get_by_test_id("toggle-cam")).to_have_attribute("aria-pressed", "true")
    expect(user.locator(".tile.video-muted")).to_have_count(1)

    guest.get_by_test_id("hangup").click()
    expect(user.locator(".tile")).to_have_count(0)

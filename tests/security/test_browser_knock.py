"""A second caller knocks (issue #7, item 4), in real Chromium against a real service.

While a call runs, a guest who presses Call waits ("Waiting to be let in…") and the
kiosk asks "<name> wants to join" with Let in / Not now. Nothing flows to or from the
knocker until it is let in; a knocker sent away ends on a finished page with its camera
and microphone released; a household user joins at once and the kiosk announces it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_kit import (
    Page,
    Pages,
    assert_video_flows,
    elements_showing_local_tracks,
    expect,
    holds,
    instrument,
    local_tracks,
    peer_connections,
    sign_in,
    wait_for,
)

pytestmark = pytest.mark.browser


def peer_id(page: Page) -> str:
    value: str = wait_for(
        lambda: page.evaluate("() => window.videostation.client?.peerId"), "the page to join", 20
    )
    return value


def press_call(pages: Pages, url: str, name: str) -> Page:
    page = pages.phone(url, setup=instrument)
    expect(page.get_by_test_id("lobby")).to_be_visible()
    page.locator("#name").fill(name)
    page.get_by_test_id("start-call").click()
    return page


def knock_card(kiosk: Page, name: str) -> Any:
    return kiosk.get_by_test_id("knock").filter(has_text=f"{name} wants to join")


def assert_touch_target(locator: Any) -> None:
    box = locator.bounding_box()
    assert box and box["width"] >= 48 and box["height"] >= 48, box


def test_a_guest_knocks_and_is_let_in_or_sent_away(live_station: Any, pages: Pages) -> None:
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    first = press_call(pages, live_station.guest_link(label="Grandma"), "Grandma")
    expect(kiosk.get_by_test_id("caller-name")).to_have_text("Grandma")
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(first.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()

    # A second guest presses Call while the call runs: it knocks.
    second = press_call(pages, live_station.guest_link(label="Grandpa"), "Grandpa")
    expect(second.get_by_test_id("call-page")).to_have_attribute("data-state", "knocking")
    expect(second.get_by_test_id("call-status-title")).to_have_text("Waiting to be let in…")
    card = knock_card(kiosk, "Grandpa")
    expect(card).to_be_visible()
    assert_touch_target(card.get_by_test_id("knock-admit"))
    assert_touch_target(card.get_by_test_id("knock-refuse"))
    expect(card.get_by_test_id("knock-admit")).to_have_text("Let in")
    expect(card.get_by_test_id("knock-refuse")).to_have_text("Not now")
    # Nothing flows to or from the knocker: it has no connection at all.
    second_id = peer_id(second)
    holds(lambda: peer_connections(second) == [], "a knocker got a connection", 2)
    assert kiosk.locator(f'.tile[data-participant="{second_id}"]').count() == 0

    card.get_by_test_id("knock-admit").click()
    expect(knock_card(kiosk, "Grandpa")).to_have_count(0)
    expect(second.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    expect(kiosk.get_by_test_id("kiosk-toast")).to_have_text("Grandpa joined")
    assert_video_flows(second, lambda pid, s: pid == "station", "on the admitted guest")
    assert_video_flows(first, lambda pid, s: pid == "station", "on the first guest still")
    assert_video_flows(kiosk, lambda pid, s: pid == second_id, "on the kiosk from the admitted")
    expect(kiosk.locator(".tile")).to_have_count(2)

    # A third knocks and is sent away: a finished page, nothing flowed, camera off.
    third = press_call(pages, live_station.guest_link(label="Salesman"), "Salesman")
    expect(third.get_by_test_id("call-status-title")).to_have_text("Waiting to be let in…")
    third_id = peer_id(third)
    card = knock_card(kiosk, "Salesman")
    expect(card).to_be_visible()
    card.get_by_test_id("knock-refuse").click()
    expect(third.get_by_test_id("finished-page")).to_be_visible()
    expect(third.get_by_test_id("finished-title")).to_have_text("The station did not let you in")
    expect(knock_card(kiosk, "Salesman")).to_have_count(0)
    assert peer_connections(third) == [], "the refused guest never had a connection"
    tracks = local_tracks(third)
    assert tracks and all(t["state"] == "ended" for t in tracks), tracks
    assert elements_showing_local_tracks(third) == 0
    assert kiosk.locator(f'.tile[data-participant="{third_id}"]').count() == 0
    expect(kiosk.locator(".tile")).to_have_count(2)
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()

    # The household joins at once, announced on the kiosk.
    user = sign_in(pages, live_station)
    user.goto(live_station.base_url + "/#/room/station")
    expect(user.get_by_test_id("lobby")).to_be_visible()
    user.locator("#name").fill("Dad")
    user.get_by_test_id("start-call").click()
    expect(user.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    expect(kiosk.get_by_test_id("kiosk-toast")).to_have_text("Dad joined")
    expect(kiosk.get_by_test_id("knock")).to_have_count(0)
    assert_video_flows(user, lambda pid, s: pid == "station", "on the household user")

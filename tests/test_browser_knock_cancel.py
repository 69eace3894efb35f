"""A knocking guest can give up (issue 24, item 5), in real Chromium against a real
station with the shipped ring limits (a shorter cooldown), en-US and ru-RU.

While a call runs, a guest on a 412x915 phone knocks: it sees no picture of itself
(the camera's track is held but disabled, shown nowhere) and a Cancel button. Cancel
takes the "wants to join" card off the 800x480 kiosk at once and leaves the guest on a
"You cancelled" card with its camera off and a way to knock again. A cancelled knock
counts like one given up: knocking again at once is refused (the cooldown), the guest
is told and stays on its card; after the cooldown it knocks, is let in, and its camera
reaches the kiosk as for any knocker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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
    wait_for,
)
from tests.conftest import LiveStation, start_live, stop_live

pytestmark = pytest.mark.browser

COOLDOWN = 3
"""Seconds a guest waits after an unanswered ring or knock (shipped: 10, doubling)."""

TEXT = {
    "en-US": {
        "knocking": "Waiting to be let in…",
        "cancel": "Cancel",
        "card": "{name} wants to join",
        "cancelled": "You cancelled",
        "again": "Knock again",
        "wait": "You rang a moment ago. Wait a little before ringing again.",
        "first": "Grandma",
        "knocker": "Uncle Bob",
    },
    "ru-RU": {
        "knocking": "Ждём, когда впустят…",
        "cancel": "Отменить",
        "card": "{name} хочет присоединиться",
        "cancelled": "Вы отменили запрос",
        "again": "Постучаться ещё раз",
        "wait": "Вы только что звонили. Подождите немного, прежде чем звонить снова.",
        "first": "Бабушка",
        "knocker": "Дядя Боря",
    },
}


@pytest.fixture
def station(tmp_path: Path) -> Iterator[LiveStation]:
    """The shipped ring limits (not the tests' none), with a 3 s cooldown."""
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'[station]\nlanguage = "auto"\n\n[call]\nring_cooldown_seconds = {COOLDOWN}\n\n'
        '[screen]\npower_command = ""\n'
    )
    live = start_live(tmp_path, "--config", str(cfg))
    yield live
    stop_live(live)


def phone(pages: Pages, url: str, locale: str) -> Page:
    return pages.open(
        url,
        setup=instrument,
        locale=locale,
        viewport={"width": 412, "height": 915},
        has_touch=True,
        is_mobile=True,
    )


def press_call(page: Page, name: str) -> None:
    expect(page.get_by_test_id("lobby")).to_be_visible()
    page.locator("#name").fill(name)
    page.get_by_test_id("start-call").click()


def camera_enabled(page: Page) -> list[bool]:
    """Whether each live camera track of the page would send pictures."""
    result: list[bool] = page.evaluate(
        """() => (window.__gumTracks || []).filter((t) => t.kind === 'video'
            && t.readyState === 'live').map((t) => t.enabled)"""
    )
    return result


@pytest.mark.parametrize("locale", list(TEXT))
def test_a_knocker_cancels_and_the_kiosk_card_goes(
    station: LiveStation, pages: Pages, locale: str
) -> None:
    text = TEXT[locale]
    kiosk = pages.open(
        station.kiosk_url, locale=locale, viewport={"width": 800, "height": 480}, has_touch=True
    )
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    first = phone(pages, station.guest_link(label=text["first"]), locale)
    press_call(first, text["first"])
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(first.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")

    # A second guest knocks: a Cancel button, no picture of itself, the camera disabled.
    guest = phone(pages, station.guest_link(label=text["knocker"]), locale)
    press_call(guest, text["knocker"])
    page = guest.get_by_test_id("call-page")
    expect(page).to_have_attribute("data-state", "knocking")
    expect(guest.get_by_test_id("call-status-title")).to_have_text(text["knocking"])
    cancel = guest.get_by_test_id("cancel-knock")
    expect(cancel).to_be_visible()
    expect(cancel).to_have_text(text["cancel"])
    box = cancel.bounding_box()
    assert box and box["width"] >= 48 and box["height"] >= 48, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= 412 and box["y"] + box["height"] <= 915
    expect(guest.get_by_test_id("local-video")).to_be_hidden()
    assert elements_showing_local_tracks(guest) == 0, "the knocker sees itself"
    assert camera_enabled(guest) == [False], "the knocker's camera track is enabled"
    card = kiosk.get_by_test_id("knock").filter(has_text=text["card"].format(name=text["knocker"]))
    expect(card).to_be_visible()
    holds(lambda: elements_showing_local_tracks(guest) == 0, "the knocker sees itself", 1)

    # Cancel: the kiosk's card goes at once, the guest is told, its camera is off.
    cancel.click()
    started = time.monotonic()
    expect(kiosk.get_by_test_id("knock")).to_have_count(0, timeout=5000)
    gone_after = time.monotonic() - started
    expect(page).to_have_attribute("data-state", "cancelled")
    expect(guest.get_by_test_id("call-status-title")).to_have_text(text["cancelled"])
    again = guest.get_by_test_id("call-again")
    expect(again).to_have_text(text["again"])
    expect(guest.get_by_test_id("leave")).to_be_visible()
    tracks = local_tracks(guest)
    assert tracks and all(t["state"] == "ended" for t in tracks), tracks
    assert peer_connections(guest) == [], "the knocker never had a connection"
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()
    print(f"{locale}: the kiosk's card went {gone_after:.2f} s after Cancel")

    # Knocking again at once is refused like after a knock given up: told, same card.
    again.click()
    expect(guest.get_by_role("alert")).to_have_text(text["wait"])
    expect(page).to_have_attribute("data-state", "cancelled")
    holds(lambda: kiosk.get_by_test_id("knock").count() == 0, "a refused knock showed a card", 1)
    assert camera_enabled(guest) == [], "the camera is still held after a refused knock"

    # After the cooldown the guest knocks, is let in, and its camera reaches the kiosk.
    time.sleep(COOLDOWN + 1)  # one strike: COOLDOWN s from the Cancel (1 s of margin)
    guest.get_by_test_id("call-again").click()
    expect(page).to_have_attribute("data-state", "knocking")
    assert elements_showing_local_tracks(guest) == 0, "the knocker sees itself"
    kiosk.get_by_test_id("knock-admit").click()
    expect(page).to_have_attribute("data-state", "in-call")
    expect(guest.get_by_test_id("local-video")).to_be_visible()
    assert camera_enabled(guest) == [True], "the admitted guest's camera stays disabled"
    guest_id = wait_for(lambda: guest.evaluate("() => window.videostation.client?.peerId"), "id")
    assert_video_flows(kiosk, lambda pid, s: pid == guest_id, "on the kiosk from the admitted")
    assert elements_showing_local_tracks(guest) >= 1, "the admitted guest sees no preview"

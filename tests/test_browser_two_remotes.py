"""Two people on a portrait phone (issue 24, item 10), in real Chromium.

On the earlier layout a guest on a 412 by 860 phone in a call with the station and a
household member got two side-by-side strips 204 px wide, each a 16:9 picture shrunk
to a sliver, and the bottom names sat under the call's control bar. Now the two are
stacked, each a whole-width picture, and every name is visible above the controls."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_kit import Pages, call_from_phone, expect, sign_in, wait_for

pytestmark = pytest.mark.browser


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_two_remotes_on_a_portrait_phone_are_stacked_with_their_names_visible(
    live_station: Any, pages: Pages
) -> None:
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    phone = call_from_phone(pages, live_station.guest_link(label="Grandson"), "Grandson")
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(phone.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    user = sign_in(pages, live_station)
    user.goto(live_station.base_url + "/#/room/station")
    user.locator("#name").fill("Aunt Margaret from Vladivostok")
    user.get_by_test_id("start-call").click()
    expect(user.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")

    tiles = phone.locator(".call-stage .tile")
    expect(tiles).to_have_count(2)
    size = phone.viewport_size
    assert size is not None and size["height"] > size["width"], size  # a portrait phone
    wait_for(
        lambda: (
            len({round(b["y"]) for b in (tiles.nth(i).bounding_box() or {} for i in range(2))}) == 2
        ),
        "the two tiles stacked one above the other",
        10,
    )
    controls = phone.locator(".controls").bounding_box()
    assert controls is not None
    for i in range(2):
        tile = tiles.nth(i).bounding_box()
        assert tile is not None
        # each the phone's whole width, not a strip
        assert tile["width"] >= size["width"] - 2, (i, tile, size)
        label = tiles.nth(i).locator(".tile-label").bounding_box()
        assert label is not None
        assert not overlaps(label, controls), (i, label, controls)
        assert (
            tile["y"] <= label["y"] and label["y"] + label["height"] <= tile["y"] + tile["height"]
        )
    names = tiles.locator(".tile-name")
    expect(names.filter(has_text="Aunt Margaret from Vladivostok")).to_be_visible()
    # the name is whole (not cut to "Au…")
    assert phone.evaluate(
        "() => [...document.querySelectorAll('.call-stage .tile-name')]"
        ".every((e) => e.scrollWidth <= e.clientWidth + 1)"
    )

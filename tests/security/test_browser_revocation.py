"""A withdrawn invitation ends the guest's call on a clear page (issue #7, item 6,
browser side): `bye` `revoked` is final, not "Connection lost — reconnecting…" forever,
and the guest's camera and microphone are released."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_kit import (
    Pages,
    elements_showing_local_tracks,
    expect,
    holds,
    instrument,
    local_tracks,
    sign_in,
)

pytestmark = pytest.mark.browser

REVOKE = """async (label) => {
  const links = (await (await fetch('/api/rooms/station/guest-links')).json()).guest_links;
  const link = links.find((l) => l.label === label);
  const r = await fetch(`/api/rooms/station/guest-links/${link.jti}`, { method: 'DELETE' });
  return r.status;
}"""


def test_a_revoked_guest_lands_on_a_finished_page(live_station: Any, pages: Pages) -> None:
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    guest = pages.phone(live_station.guest_link(label="Ex"), setup=instrument)
    expect(guest.get_by_test_id("lobby")).to_be_visible()
    guest.locator("#name").fill("Ex")
    guest.get_by_test_id("start-call").click()
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")

    user = sign_in(pages, live_station)
    assert user.evaluate(REVOKE, "Ex") == 200

    expect(guest.get_by_test_id("finished-page")).to_be_visible()
    expect(guest.get_by_test_id("finished-title")).to_have_text("This invitation was withdrawn")
    tracks = local_tracks(guest)
    assert tracks and all(t["state"] == "ended" for t in tracks), tracks
    assert elements_showing_local_tracks(guest) == 0
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(kiosk.get_by_test_id("live-indicator")).to_be_hidden()

    # It stays there: no reconnect attempts, no "reconnecting" banner.
    sockets: list[str] = []
    guest.on("websocket", lambda ws: sockets.append(ws.url))
    holds(lambda: sockets == [], "the page kept reconnecting after a final bye", 3)
    expect(guest.get_by_test_id("finished-page")).to_be_visible()
    expect(guest.get_by_text("reconnecting")).to_have_count(0)

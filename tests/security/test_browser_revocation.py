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
    kiosk_code,
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


@pytest.mark.parametrize(
    ("locale", "title", "message"),
    [
        ("en-US", "This invitation was withdrawn", "Ask the person who sent it for a new one."),
        ("ru-RU", "Приглашение отозвано", "Попросите у того, кто его прислал, новое."),  # noqa: RUF001
    ],
    ids=["en-US", "ru-RU"],
)
def test_a_guest_revoked_while_ringing_is_told_in_its_language(
    live_station: Any, pages: Pages, locale: str, title: str, message: str
) -> None:
    """`Hub.close_guest` says `bye` `revoked` to a guest still in the room, before any
    answer: its page ends on "withdrawn, ask for a new one", in its own language."""
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    label = f"Rev {locale}"
    guest = pages.open(
        live_station.guest_link(label=label),
        locale=locale,
        viewport={"width": 412, "height": 860},
        has_touch=True,
        is_mobile=True,
    )
    expect(guest.get_by_test_id("lobby")).to_be_visible()
    guest.locator("#name").fill("Ex")
    guest.get_by_test_id("start-call").click()
    expect(kiosk.get_by_test_id("kiosk-answer")).to_be_visible()  # it rings
    sockets: list[str] = []
    guest.on("websocket", lambda ws: sockets.append(ws.url))

    user = sign_in(pages, live_station)
    assert user.evaluate(REVOKE, label) == 200

    expect(guest.get_by_test_id("finished-title")).to_have_text(title)
    expect(guest.get_by_test_id("finished-message")).to_have_text(message)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()  # nobody rings any more
    holds(lambda: sockets == [], "the page reconnected after `bye` `revoked`", 3)
    expect(guest.get_by_test_id("finished-title")).to_have_text(title)


def test_the_household_disconnects_one_phone_that_scanned_the_code(
    live_station: Any, pages: Pages
) -> None:
    """Issue 22, item 2: each phone a scanned code let in is listed under the code (with
    the name it rings with) and can be disconnected alone; the other phone stays."""
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    code = kiosk_code(live_station)
    ringing = pages.phone(f"{live_station.base_url}/j/{code}")
    other = pages.phone(f"{live_station.base_url}/j/{code}")
    for phone in (ringing, other):
        expect(phone.get_by_test_id("lobby")).to_be_visible()
    ringing.locator("#name").fill("Neighbour")
    ringing.get_by_test_id("start-call").click()
    expect(kiosk.get_by_test_id("kiosk-answer")).to_be_visible()

    user = sign_in(pages, live_station)
    station = user.get_by_test_id("room-list").locator("[data-room-id=station]")
    station.get_by_role("button", name="Invite").click()
    sessions = station.get_by_test_id("code-sessions").locator("li")
    expect(sessions).to_have_count(2)
    phone_row = sessions.filter(has_text="Neighbour")
    expect(phone_row).to_contain_text("connected, not in the call")
    phone_row.get_by_test_id("end-session").click()

    expect(ringing.get_by_test_id("finished-page")).to_be_visible()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()  # it no longer rings
    expect(sessions).to_have_count(1)
    expect(sessions.filter(has_text="Neighbour")).to_have_count(0)
    expect(other.get_by_test_id("lobby")).to_be_visible()
    assert other.evaluate("fetch('/api/auth/me').then((r) => r.status)") == 200
    assert ringing.evaluate("fetch('/api/auth/me').then((r) => r.status)") == 401

"""Unsolicited offers against real pages in real Chromium (issue #7, item 1).

A guest of the station room (the attacker: a real Chromium page speaking the protocol
by hand) sends an offer with its camera and microphone to another caller that is still
"Calling…", and to the kiosk's screen peer while it rings and after a decline. Each
offer goes two ways: through the real service (which refuses to relay between peers it
has not connected) and straight into the victim page's WebSocket, forged, as a service
that relays anything would deliver it. So the pages are tested on their own: a page
answers only peers it was told to `connect` to, and the kiosk plays remote media only
from the people in the call.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_kit import (
    AUDIBLE_ELEMENTS,
    Attacker,
    ForgedSocket,
    Page,
    Pages,
    call_from_phone,
    expect,
    holds,
    instrument,
    peer_connections,
    wait_for,
)

pytestmark = pytest.mark.browser


def peer_id(page: Page) -> str:
    """The page's own peer id, once it has joined."""
    value: str = wait_for(
        lambda: page.evaluate("() => window.videostation.client.peerId"), "the page to join", 20
    )
    return value


def open_links(page: Page) -> list[str]:
    ids: list[str] = page.evaluate("() => [...window.videostation.client.peers.keys()]")
    return ids


def audible(page: Page) -> int:
    count: int = page.evaluate(AUDIBLE_ELEMENTS)
    return count


def forge_offer(socket: ForgedSocket, sender: str, offer: dict[str, Any]) -> None:
    """The attacker's offer as a relaying service would hand it to the page."""
    socket.inject({"type": "signal", "from": sender, "description": offer})


def assert_refused_by_station(attacker: Attacker, victim: str) -> None:
    """The service relays nothing between peers it has not connected: `error`."""
    errors = [e for e in attacker.errors() if e.get("ref") == "signal"]
    assert errors and errors[-1]["code"] == "not_connected", attacker.messages()
    assert attacker.signals_from(victim) == []


def test_a_calling_page_never_answers_an_unsolicited_offer(live_station: Any, pages: Pages) -> None:
    kiosk = pages.kiosk(live_station.kiosk_url)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()

    socket = ForgedSocket()

    def setup(page: Page) -> None:
        instrument(page)
        socket.install(page)

    victim = pages.phone(live_station.guest_link(label="Grandma"), setup=setup)
    expect(victim.get_by_test_id("lobby")).to_be_visible()
    victim.locator("#name").fill("Grandma")
    victim.get_by_test_id("start-call").click()
    expect(victim.get_by_test_id("call-status-title")).to_contain_text("Calling")
    victim_id = peer_id(victim)

    attacker = Attacker(pages, live_station.guest_link(label="Mallory"))
    offer = attacker.offer(victim_id)
    forge_offer(socket, attacker.peer_id, offer)

    def untouched() -> bool:
        return peer_connections(victim) == [] and open_links(victim) == []

    holds(untouched, "the calling page opened a connection for an unsolicited offer")
    # Nothing came back: no answer, no candidate, so no camera or microphone either.
    assert attacker.signals_from(victim_id) == []
    assert_refused_by_station(attacker, victim_id)
    expect(victim.get_by_test_id("call-status-title")).to_contain_text("Calling")

    # The call itself still works: the attacker gives up (it rang too: an answer would
    # let it in with the household's consent), the kiosk answers, the page connects as told.
    attacker.leave()
    expect(kiosk.get_by_test_id("caller-name")).to_have_text("Grandma")
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(victim.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()
    assert sorted(open_links(victim)) == sorted(["station", peer_id(kiosk)])
    assert attacker.peer_id not in open_links(victim)
    assert attacker.signals_from(victim_id) == []


def test_the_kiosk_plays_no_one_who_is_not_in_the_call(live_station: Any, pages: Pages) -> None:
    socket = ForgedSocket()

    def setup(page: Page) -> None:
        instrument(page)
        socket.install(page)

    kiosk = pages.kiosk(live_station.kiosk_url, setup=setup)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    screen_id = peer_id(kiosk)
    guest = call_from_phone(pages, live_station.guest_link(label="Grandma"), "Grandma")
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    expect(guest.get_by_test_id("call-status-title")).to_contain_text("Calling")
    attacker = Attacker(pages, live_station.guest_link(label="Mallory"))

    def silent_and_unconnected() -> bool:
        return audible(kiosk) == 0 and peer_connections(kiosk) == []

    # While ringing: an offer to the screen peer opens nothing and plays nothing.
    forge_offer(socket, attacker.peer_id, attacker.offer(screen_id))
    holds(silent_and_unconnected, "the ringing kiosk took an unsolicited offer")
    assert attacker.signals_from(screen_id) == []
    assert_refused_by_station(attacker, screen_id)

    # After a decline: the same.
    kiosk.get_by_test_id("kiosk-decline").click()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(guest.get_by_test_id("call-status-title")).to_have_text("Declined")
    forge_offer(socket, attacker.peer_id, attacker.offer(screen_id))
    holds(silent_and_unconnected, "the kiosk took an unsolicited offer after a decline")
    assert attacker.signals_from(screen_id) == []
    assert_refused_by_station(attacker, screen_id)

    # Even a forged `connect` (a service bug) plays nothing outside a call: the screen
    # plays only the peers the call object names as in the call.
    guest.get_by_test_id("call-again").click()
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    socket.inject({"type": "connect", "peer_id": attacker.peer_id, "polite": True, "send": False})
    forge_offer(socket, attacker.peer_id, attacker.offer(screen_id))
    holds(lambda: audible(kiosk) == 0, "the ringing kiosk played a peer outside the call")
    assert all(pc["sending"] == [] for pc in peer_connections(kiosk)), "the screen sends nothing"

    # Answered, the kiosk plays the caller, and only the caller.
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()
    expect(kiosk.locator(".tile")).to_have_count(1)
    expect(kiosk.locator(".tile").first).to_have_attribute("data-participant", peer_id(guest))
    assert kiosk.locator(f'.tile[data-participant="{attacker.peer_id}"]').count() == 0

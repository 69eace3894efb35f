"""Honest "weak connection" notices (issue 24, item 2), in real Chromium.

Before: any received video under 150 kbit/s counted as weak, so a station whose camera
was turned off at the kiosk (black pictures, a few kbit/s), or the first seconds of a
call, put "Your connection is weak" on both screens, and the kiosk blamed Grandma.
Now the notice judges what the page receives (loss, frozen video, audio jitter, the round
trip), shows only when it lasts, and says whose link it is only on evidence."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser_kit import Pages, call_from_phone, expect, holds

pytestmark = pytest.mark.browser

MODULE = (
    "const app = document.querySelector('script[type=module]').src;"
    " const q = await import(new URL('ui/quality.js', app).href);"
)

PURE = f"""async () => {{
  {MODULE}
  const s = (o) => ({{ rtt: 0.05, loss: 0, frozen: 0, jitter: 0.01, kbps: 1200, sendLoss: 0,
                      ...o }});
  const lasting = new q.Lasting();
  return {{
    grades: [s({{}}), s({{ kbps: 40 }}), s({{ rtt: 0.4 }}), s({{ loss: 0.1 }}),
             s({{ frozen: 0.4 }}), s({{ jitter: 0.15 }}), s({{ loss: 0.03 }})].map(q.grade),
    blame: [q.blame(s({{ sendLoss: 0.2 }})), q.blame(s({{ sendLoss: null }})), q.blame(s({{}}))],
    runs: [true, true, true, false, true, false, false].map((w) => lasting.push(w)),
  }};
}}"""

# Three weak polls (the notice's WEAK_AFTER) on a meter of the kiosk (screen) or a phone.
WORDING = f"""async ([screen, sendLoss, names]) => {{
  {MODULE}
  const meter = new q.QualityMeter(() => [], {{ screen }});
  const weak = {{ rtt: 0.05, loss: 0.2, frozen: 0.5, jitter: 0, kbps: 300, sendLoss }};
  const shown = [];
  for (let i = 0; i < 3; i++) {{ meter.show(weak, names); shown.push(!meter.weak.hidden); }}
  return {{ shown, text: meter.weak.textContent }};
}}"""


def test_the_judgement_ignores_the_bitrate_and_waits_for_a_lasting_fault(
    live_station: Any, pages: Pages
) -> None:
    phone = pages.phone(live_station.guest_link(label="Pure"))
    expect(phone.get_by_test_id("lobby")).to_be_visible()
    got = phone.evaluate(PURE)
    # a low bitrate (a sender's choice) is good; loss, freezes, jitter and delay are not
    assert got["grades"] == [3, 3, 2, 1, 1, 1, 2], got
    assert got["blame"] == ["mine", "theirs", "theirs"], got
    # on after 3 weak polls in a row, off after 2 good ones
    assert got["runs"] == [False, False, True, True, True, True, False], got


@pytest.mark.parametrize(
    ("locale", "mine", "link", "named"),
    [
        ("en-US", "Your connection is weak", "The connection is weak: the picture may stutter",
         "The connection to Maria is weak"),
        ("ru-RU", "У вас слабая связь", "Связь слабая: изображение может прерываться",  # noqa: RUF001
         "Maria: слабая связь"),
    ],
    ids=["en-US", "ru-RU"],
)  # fmt: skip
def test_the_notice_says_whose_link_it_is_only_on_evidence(
    live_station: Any, pages: Pages, locale: str, mine: str, link: str, named: str
) -> None:
    page = pages.open(live_station.guest_link(label="Words"), locale=locale)
    expect(page.get_by_test_id("lobby")).to_be_visible()

    def says(screen: bool, send_loss: float, names: list[str]) -> str:
        got = page.evaluate(WORDING, [screen, send_loss, names])
        assert got["shown"] == [False, False, True], got  # only once it lasts
        return str(got["text"])

    # a phone: its own link only when what it sends is lost too
    assert says(False, 0.2, [""]) == mine
    assert says(False, 0.0, [""]) == link
    # the kiosk never blames the person in front of it: it names the caller's link
    assert says(True, 0.2, ["Maria"]) == named
    assert says(True, 0.2, ["Maria", "Bob"]) == link


def test_a_station_camera_turned_off_is_not_a_weak_connection(
    live_station: Any, pages: Pages
) -> None:
    """The kiosk turns the station's camera off: black pictures at a few kbit/s. On the
    earlier code the caller's page said "Your connection is weak" within seconds."""
    kiosk = pages.open(live_station.kiosk_url, viewport={"width": 800, "height": 480})
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    guest = call_from_phone(pages, live_station.guest_link(label="Grandson"), "Grandson")
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    kiosk.get_by_test_id("station-cam").click()
    expect(guest.get_by_test_id("station-muted")).to_have_text(re.compile("camera off"))
    expect(guest.get_by_test_id("quality")).to_be_visible()  # the meter runs
    for page, who in ((guest, "the caller"), (kiosk, "the kiosk")):
        holds(
            lambda p=page: p.get_by_test_id("weak-connection").is_hidden(),  # type: ignore[misc]
            f"{who} said the connection is weak while the station's camera was off",
            10,
        )
    # not weak (1): what the page decides about a black picture at a few kbit/s. "Fair"
    # (2) instead of "good" (3) is a busy machine's: a starved Chromium presents the
    # pictures late, and its freeze or jitter figure says so (make test, 2026-12-07,
    # at 98 % of both cores)
    assert guest.get_by_test_id("quality").get_attribute("data-level") in ("2", "3")

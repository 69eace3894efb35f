"""Language rules in real Chromium (docs/i18n.md): a station nobody named is called by
the default of each screen's language ("Видеостанция" on a ru-RU kiosk, never "Video
Station"), a name the household set is shown as set, and numbers with a fraction or a
size are formatted with Intl in the page's language (a decimal comma and spaced
thousands in Russian). The dictionary rules that need no browser are in test_i18n.py."""

# ruff: noqa: RUF001 - Russian text, not lookalike letters
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_kit import Page, Pages, expect

pytestmark = pytest.mark.browser

DEFAULT = {"ru-RU": "Видеостанция", "en-US": "Video Station"}
KIOSK = {"viewport": {"width": 800, "height": 480}, "has_touch": True}
PHONE = {"viewport": {"width": 412, "height": 860}, "has_touch": True, "is_mobile": True}


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A station nobody named (no `station.name`) and one the household named in Latin
    letters (a ru-RU screen must show it as set, not translate it)."""
    from tests.conftest import LIVE_CONFIG, start_live, stop_live

    live = {}
    try:
        for which, extra in (("unnamed", ""), ("named", '[station]\nname = "Sunny Side"\n')):
            tmp = tmp_path_factory.mktemp(f"i18n-rules-{which}")
            cfg = tmp / "station.toml"
            cfg.write_text(LIVE_CONFIG + "\n" + extra)
            live[which] = start_live(tmp, "--config", str(cfg))
        yield live
    finally:
        for station in live.values():
            stop_live(station)


def clean(text: str) -> str:
    """Intl's no-break and narrow no-break spaces as plain spaces, for comparing."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def kiosk(pages: Pages, live: Any, locale: str) -> Page:
    page = pages.open(live.kiosk_url, locale=locale, timezone_id="Europe/Moscow", **KIOSK)
    expect(page.get_by_test_id("kiosk-idle")).to_be_visible()
    return page


@pytest.mark.parametrize("locale", list(DEFAULT))
def test_an_unnamed_station_is_called_by_the_screens_language(
    stations: dict[str, Any], pages: Pages, locale: str
) -> None:
    live = stations["unnamed"]
    name, other = DEFAULT[locale], DEFAULT["en-US" if locale == "ru-RU" else "ru-RU"]
    # The service says nobody named it; the page picks the words.
    screen = kiosk(pages, live, locale)
    expect(screen.locator(".station-name")).to_have_text(name)
    assert screen.title() == name
    assert screen.evaluate("fetch('/api/station').then((r) => r.json())")["name"] == ""
    assert other not in screen.locator("body").inner_text()

    # A caller's phone with the guest link: its page title and the call button.
    phone = pages.open(live.guest_link(label="Маша"), locale=locale, **PHONE)
    expect(phone.get_by_test_id("lobby")).to_be_visible()
    assert phone.title() == name
    text = phone.locator("body").inner_text()
    assert name in text and other not in text

    # Someone without a link: the invitation notice names the station.
    home = pages.open(live.base_url + "/", locale=locale, **PHONE)
    expect(home.get_by_test_id("ask-invitation-text")).to_contain_text(name)
    assert other not in home.locator("body").inner_text()


def test_a_name_the_household_set_is_shown_as_set(stations: dict[str, Any], pages: Pages) -> None:
    screen = kiosk(pages, stations["named"], "ru-RU")
    expect(screen.locator(".station-name")).to_have_text("Sunny Side")
    assert screen.title() == "Sunny Side"
    assert "Видеостанция" not in screen.locator("body").inner_text()


NUMBERS = """async () => {
  const app = document.querySelector('script[type=module]').src;
  const i18n = await import(new URL('i18n.js', app).href);
  const { QualityMeter } = await import(new URL('ui/quality.js', app).href);
  const meter = new QualityMeter(() => []);
  meter.show({ rtt: 0.1234, loss: 0.0153, frozen: 0, jitter: 0, kbps: 1234.4, sendLoss: null });
  return {
    lang: i18n.language(),
    details: meter.details.textContent,
    volume: document.querySelector('[data-testid=volume-value]').textContent,
    names: i18n.formatList ? i18n.formatList(['Маша', 'Петя', 'Anna']) : null,
  };
}"""

EXPECTED = {
    "ru-RU": {
        "lang": "ru",
        "details": "задержка 123 мс · потери 1,5 % · 1 234 кбит/с",
        "volume": "80 %",
        "names": "Маша, Петя и Anna",
    },
    "en-US": {
        "lang": "en",
        "details": "round trip 123 ms · loss 1.5% · 1,234 kbit/s",
        "volume": "80%",
        "names": "Маша, Петя, and Anna",
    },
}


@pytest.mark.parametrize("locale", list(EXPECTED))
def test_numbers_and_lists_are_formatted_in_the_pages_language(
    stations: dict[str, Any], pages: Pages, locale: str
) -> None:
    """The kiosk's connection details and volume, and a list of callers' names."""
    screen = kiosk(pages, stations["unnamed"], locale)
    got = screen.evaluate(NUMBERS)
    assert {key: clean(value or "") for key, value in got.items()} == EXPECTED[locale]


def test_the_kiosk_shows_no_config_key_when_a_call_cannot_connect(
    stations: dict[str, Any], pages: Pages
) -> None:
    """The relay's password is wrong: the kiosk says so in words and points at the log,
    which names the keys (appliance/media/peer.py); the screen names none."""
    screen = kiosk(pages, stations["unnamed"], "ru-RU")
    text = screen.evaluate(
        """async () => {
          const app = document.querySelector('script[type=module]').src;
          const { UnreachableNotice } = await import(new URL('ui/unreachable.js', app).href);
          const notice = new UnreachableNotice('kiosk');
          const out = [];
          for (const why of ['no-relay', 'relay-refused', 'relay-unreachable', 'network']) {
            notice.unreachable('p1', why);
            out.push(notice.el.textContent);
          }
          return out;
        }"""
    )
    assert len(text) == 4 and all(text)
    assert [t for t in text if "ice." in t or "turn_" in t] == []
    assert all("журнале станции" in t for t in text[:3])

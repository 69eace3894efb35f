"""English and Russian in real Chromium: every screen a guest, the household and the
kiosk see, in a ru-RU and an en-US browser, shows only texts of the browser's language
(`<html lang>` set, dates in that language); the switch is remembered; the kiosk
follows `station.language`; API errors are translated by their code.

The check reads every visible text node and every aria-label/title/placeholder/alt on
the page: a word in the other script that is not a name someone typed fails it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_kit import Browser, Page, Pages, assert_video_flows, expect, shot

pytestmark = pytest.mark.browser

# Per browser locale: the station's name and the names people type, in that language.
LOCALES = {
    "ru-RU": {"lang": "ru", "station": "Дача", "room": "Кухня", "caller": "Бабушка"},
    "en-US": {"lang": "en", "station": "Cottage", "room": "Kitchen", "caller": "Grandma"},
}
# Words that are the same in every language: the QR abbreviation and the app's version.
NEUTRAL = re.compile(r"\bQR\b|\bv?\d+(\.\d+)*\b")

VISIBLE_TEXTS = """
() => {
  const out = [];
  const shown = (el) => el && el.checkVisibility
    && el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const el = n.parentElement;
    if (text && shown(el) && !el.closest('option:not(:checked)')) out.push(text);
  }
  for (const el of document.querySelectorAll('[aria-label], [title], [placeholder], img[alt]')) {
    if (!shown(el)) continue;
    for (const a of ['aria-label', 'title', 'placeholder', 'alt']) {
      const v = el.getAttribute(a);
      if (v && v.trim()) out.push(v.trim());
    }
  }
  return { lang: document.documentElement.lang, texts: out };
}
"""


def assert_in_language(page: Page, locale: str, where: str, *names: str) -> None:
    """Every text on the page is in the locale's language (names people typed aside)."""
    info = LOCALES[locale]
    found: dict[str, Any] = page.evaluate(VISIBLE_TEXTS)
    assert found["lang"] == info["lang"], f"{where}: <html lang={found['lang']!r}>"
    assert found["texts"], f"{where}: no text found"
    foreign = re.compile("[A-Za-z]" if info["lang"] == "ru" else "[\u0400-\u04ff]")
    wrong = []
    for text in found["texts"]:
        rest = text
        for name in (*names, info["station"], "English", "Русский"):
            rest = rest.replace(name, "")
        rest = NEUTRAL.sub("", rest)
        if foreign.search(rest):
            wrong.append(text)
    assert wrong == [], f"{where}: texts not in {info['lang']}"


def kiosk_shots(kiosk: Page, state: str, lang: str) -> None:
    """README pictures: the 7-inch panel and a 1080p TV (the same page, resized)."""
    kiosk.wait_for_timeout(400)
    shot(kiosk, f"kiosk-{state}-7in-{lang}")
    kiosk.set_viewport_size({"width": 1920, "height": 1080})
    kiosk.wait_for_timeout(400)
    shot(kiosk, f"kiosk-{state}-tv-{lang}")
    kiosk.set_viewport_size({"width": 800, "height": 480})


def open_in(pages: Pages, url: str, locale: str, device: str = "desktop") -> Page:
    viewports = {
        "desktop": {"viewport": {"width": 1280, "height": 800}},
        "phone": {"viewport": {"width": 412, "height": 860}, "has_touch": True, "is_mobile": True},
        "kiosk": {"viewport": {"width": 800, "height": 480}, "has_touch": True},
    }
    return pages.open(url, locale=locale, timezone_id="Europe/Moscow", **viewports[device])


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One station per locale, named in that language (language `auto`)."""
    from tests.conftest import start_live, stop_live

    live = {}
    try:
        for locale, info in LOCALES.items():
            tmp = tmp_path_factory.mktemp(f"i18n-{info['lang']}")
            cfg = tmp / "station.toml"
            cfg.write_text(
                f'[station]\nname = "{info["station"]}"\nlanguage = "auto"\n\n'
                '[screen]\npower_command = ""\n'
            )
            live[locale] = start_live(tmp, "--config", str(cfg))
        yield live
    finally:
        for station in live.values():
            stop_live(station)


@pytest.mark.parametrize("locale", list(LOCALES))
def test_every_screen_speaks_the_browsers_language(
    stations: dict[str, Any], browser: Browser, locale: str
) -> None:
    live = stations[locale]
    info = LOCALES[locale]
    pages = Pages(browser)
    try:
        # The household: invitation notice, password form, rooms, a guest link.
        home = open_in(pages, live.base_url + "/", locale)
        expect(home.get_by_test_id("ask-invitation")).to_be_visible()
        expect(home.get_by_test_id("ask-invitation-text")).to_contain_text(info["station"])
        assert_in_language(home, locale, "ask for an invitation")
        home.get_by_test_id("household-login").click()
        home.locator("#password").fill("wrong password")
        home.locator("#password").press("Enter")
        expect(home.locator("#login-error")).not_to_be_empty()
        assert_in_language(home, locale, "wrong password (error by code)")
        home.locator("#password").fill(live.password)
        home.locator("#password").press("Enter")
        expect(home.get_by_test_id("room-list")).to_be_visible()
        home.locator("input[name=room-name]").fill(info["room"])
        home.locator("input[name=room-name]").press("Enter")
        room = home.get_by_test_id("room-list").locator("li.room", has_text=info["room"])
        room.locator("button[aria-expanded]").click()
        room.locator("input[name=label]").fill(info["caller"])
        room.get_by_test_id("invite-form").locator("button[type=submit]").click()
        expect(room.get_by_test_id("guest-qr")).to_be_visible()
        assert_in_language(home, locale, "rooms page", info["room"], info["caller"])

        # The kiosk (language `auto`: the browser's), its clock's date included.
        kiosk = open_in(pages, live.kiosk_url, locale, "kiosk")
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        expect(kiosk.get_by_test_id("kiosk-clock")).not_to_be_empty()
        assert_in_language(kiosk, locale, "kiosk idle")
        kiosk_shots(kiosk, "idle", info["lang"])

        # A guest on a phone: lobby, calling; the kiosk rings; both in the call.
        guest = open_in(pages, live.guest_link(label=info["caller"]), locale, "phone")
        expect(guest.get_by_test_id("lobby")).to_be_visible()
        assert_in_language(guest, locale, "lobby")
        guest.locator("#name").fill(info["caller"])
        guest.get_by_test_id("start-call").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "calling")
        assert_in_language(guest, locale, "calling", info["caller"])
        assert_in_language(kiosk, locale, "kiosk ringing", info["caller"])
        kiosk_shots(kiosk, "ringing", info["lang"])
        kiosk.get_by_test_id("kiosk-answer").click()
        expect(kiosk.get_by_test_id("live-indicator")).to_be_visible()
        expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
        assert_in_language(kiosk, locale, "kiosk in call", info["caller"])
        assert_in_language(guest, locale, "guest in call", info["caller"])
        assert_video_flows(guest, lambda pid, s: pid == "station", "on the phone")
        assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk")
        guest.wait_for_timeout(300)
        shot(guest, f"phone-in-call-{info['lang']}")
        kiosk_shots(kiosk, "in-call", info["lang"])
        kiosk.get_by_test_id("kiosk-hangup").click()
        expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "ended")
        expect(kiosk.get_by_test_id("kiosk-last-call")).to_contain_text(info["caller"])
        assert_in_language(guest, locale, "call ended", info["caller"])
        assert_in_language(kiosk, locale, "kiosk after the call", info["caller"])
        assert pages.errors == []
    finally:
        pages.close()


def test_russian_plurals_dates_and_durations(stations: dict[str, Any], browser: Browser) -> None:
    """Intl.PluralRules picks the Russian form; dates and times are Russian."""
    pages = Pages(browser)
    try:
        page = open_in(pages, stations["ru-RU"].base_url + "/", "ru-RU")
        expect(page.get_by_test_id("ask-invitation")).to_be_visible()
        got = page.evaluate(
            """async () => {
              const app = document.querySelector('script[type=module]').src;
              const i18n = await import(new URL('i18n.js', app).href);
              return {
                minutes: [1, 2, 5, 21, 22, 25, 11].map((n) => i18n.formatDuration(n * 60)),
                calls: [1, 3, 5].map((n) => i18n.tn('kiosk.missedCount', n)),
                hours: i18n.formatDuration(3600 + 120),
                date: i18n.formatLongDate(new Date(2026, 10, 28)),
              };
            }"""
        )
        assert got["minutes"] == [
            "1 минута",
            "2 минуты",
            "5 минут",
            "21 минута",
            "22 минуты",
            "25 минут",
            "11 минут",
        ]
        assert got["calls"] == ["1 звонок", "3 звонка", "5 звонков"]
        assert got["hours"] == "1 час 2 минуты"
        assert got["date"] == "суббота, 28 ноября"
    finally:
        pages.close()


def test_the_language_switch_is_remembered(stations: dict[str, Any], browser: Browser) -> None:
    live = stations["en-US"]
    pages = Pages(browser)
    try:
        page = open_in(pages, live.base_url + "/", "en-US")
        expect(page.get_by_test_id("ask-invitation")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "en"
        page.get_by_test_id("language-switch").select_option("ru")
        expect(page.get_by_role("heading")).to_have_text("Попросите новое приглашение")
        assert_in_language(page, "ru-RU", "after the switch", "Cottage")
        page.reload()
        expect(page.get_by_role("heading")).to_have_text("Попросите новое приглашение")
        page.get_by_test_id("household-login").click()
        expect(page.locator("label[for=password]")).to_have_text("Пароль")
        assert pages.errors == []
    finally:
        pages.close()


def test_kiosk_follows_station_language_and_errors_are_translated(
    tmp_path: Path, browser: Browser
) -> None:
    from tests.conftest import start_live, stop_live

    cfg = tmp_path / "ru.toml"
    cfg.write_text('[station]\nname = "Дача"\nlanguage = "ru"\n\n[screen]\npower_command = ""\n')
    live = start_live(tmp_path, "--config", str(cfg))
    pages = Pages(browser)
    try:
        # An English browser on the kiosk: the station says Russian.
        kiosk = open_in(pages, live.kiosk_url, "en-US", "kiosk")
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        assert_in_language(kiosk, "ru-RU", "kiosk with station.language = ru")
        # A wrong kiosk key: the error page in the browser's language, by the error code.
        wrong = open_in(pages, live.kiosk_url.replace("key=", "key=x"), "ru-RU", "kiosk")
        expect(wrong.get_by_test_id("error-page")).to_be_visible()
        expect(wrong.get_by_role("heading")).to_have_text("Этот экран не подключён")
        # A broken invitation: translated from its code, not the server's English.
        link = live.guest_link(label="Гость")
        bad = open_in(pages, link.replace("guest_token=", "guest_token=x"), "ru-RU", "phone")
        expect(bad.get_by_test_id("error-page")).to_be_visible()
        expect(bad.get_by_test_id("error-message")).to_contain_text("Ссылка недействительна")
        assert_in_language(bad, "ru-RU", "bad invitation")
        assert pages.errors == []
    finally:
        pages.close()
        stop_live(live)

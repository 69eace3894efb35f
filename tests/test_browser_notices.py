"""Honest notices in real Chromium against a real station (issue 24 item 2, issue 27
item 3): one notice area per in-call screen, the most important notice alone and clear
of the names and the control row (web/js/ui/notices.js), on the 800x480 kiosk and a
412x915 phone, in en-US and ru-RU; a station connection that fails is named on the
kiosk ("Maria: no picture from the station") and explained to the guest without
blaming a TURN server nobody needed (both ends are on this machine); the phone's
toggles mean what the kiosk's mean; the login page of an unnamed station says its
name once."""
# ruff: noqa: RUF001 - Russian text, not lookalike letters

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser_kit import Page, Pages, expect, shot

pytestmark = pytest.mark.browser

KIOSK = {"viewport": {"width": 800, "height": 480}, "has_touch": True}
PHONE = {"viewport": {"width": 412, "height": 915}, "has_touch": True, "is_mobile": True}

WORDS = {
    "en-US": {
        "unreached": "Maria: no picture from the station",
        "could_not": "Could not connect to the station",
        "mic": "Microphone",
        "brand": "Video Station",
    },
    "ru-RU": {
        "unreached": "Maria: нет изображения со станции",
        "could_not": "Не удалось соединиться со станцией",
        "mic": "Микрофон",
        "brand": "Видеостанция",
    },
}


def no_path_to_the_station(message: str | bytes, *, to_station: bool) -> str | bytes:
    """Makes the station's connection to this page fail, both ways: the station's
    offers name its candidates on port 9 (nobody listens: the page's checks go
    unanswered, so the station learns no peer-reflexive address from them), and the
    page's answers carry no candidates (the station has nothing to check)."""
    if isinstance(message, bytes):
        return message
    msg = json.loads(message)
    desc = msg.get("description") if msg.get("type") == "signal" else None
    peer = msg.get("to") if to_station else msg.get("from")
    if not desc or peer != "station":
        return message
    lines: list[str] = []
    for line in desc["sdp"].split("\r\n"):
        if line.startswith("a=candidate:"):
            if to_station:  # none, and no more to come (else the station waits for them)
                if lines[-1] != "a=end-of-candidates":
                    lines.append("a=end-of-candidates")
                continue
            fields = line.split(" ")
            fields[5] = "9"
            line = " ".join(fields)
        lines.append(line)
    desc["sdp"] = "\r\n".join(lines)
    return json.dumps(msg)


def block_the_station_path(page: Page) -> None:
    def handler(route: Any) -> None:
        server = route.connect_to_server()
        route.on_message(lambda m: server.send(no_path_to_the_station(m, to_station=True)))
        server.on_message(lambda m: route.send(no_path_to_the_station(m, to_station=False)))

    page.route_web_socket("**/ws/", handler)


def want(page: Page, testid: str, text: str) -> None:
    """A notice's own module decides to show it (as the quality meter does after
    6 s of loss): `hidden` off, its words in."""
    page.evaluate(
        "([id, text]) => { const el = document.querySelector(`[data-testid=${id}]`);"
        " el.textContent = text; el.hidden = false; }",
        [testid, text],
    )


def box(page: Page, selector: str) -> list[dict[str, float]]:
    boxes: list[dict[str, float]] = page.evaluate(
        "(sel) => [...document.querySelectorAll(sel)].filter((el) => el.checkVisibility())"
        ".map((el) => { const r = el.getBoundingClientRect();"
        " return { x: r.x, y: r.y, width: r.width, height: r.height }; })",
        selector,
    )
    return boxes


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def visible_notices(page: Page) -> list[str]:
    """The notices on screen, by test id (whatever area, if any, holds them)."""
    ids: list[str] = page.evaluate(
        "() => ['station-offline', 'net-notice', 'weak-connection', 'station-muted',"
        " 'kiosk-toast'].flatMap((id) => [...document.querySelectorAll(`[data-testid=${id}]`)]"
        ".filter((el) => el.checkVisibility()).map(() => id))"
        " .concat([...document.querySelectorAll('.banner:not(.offline-banner), .toast')]"
        ".filter((el) => el.checkVisibility()).map((el) => el.className))"
    )
    return ids


def clear_of(page: Page, notice: str, others: list[str]) -> None:
    """The visible notice's box meets none of `others` (name tags, the control row)."""
    (note,) = box(page, f"[data-testid={notice}]")
    for selector in others:
        for other in box(page, selector):
            top, bottom = note["y"], note["y"] + note["height"]
            gap = max(other["y"] - bottom, top - other["y"] - other["height"])
            print(f"{notice} y {top:.0f}-{bottom:.0f}, {selector} y {other['y']:.0f}-"
                  f"{other['y'] + other['height']:.0f}: {gap:.0f} px apart")  # fmt: skip
            assert not overlap(note, other), f"{notice} {note} is drawn over {selector} {other}"


def font_px(page: Page, selector: str) -> float:
    return float(
        page.evaluate(
            "(sel) => parseFloat(getComputedStyle(document.querySelector(sel)).fontSize)",
            selector,
        )
    )


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_a_failed_station_connection_is_named_on_both_screens_one_notice_at_a_time(
    live_station: Any, pages: Pages, locale: str
) -> None:
    words = WORDS[locale]
    kiosk = pages.open(live_station.kiosk_url, locale=locale, **KIOSK)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    guest = pages.open(
        live_station.guest_link(label="Maria"),
        setup=block_the_station_path,
        locale=locale,
        **PHONE,
    )
    expect(guest.get_by_test_id("lobby")).to_be_visible()
    guest.locator("#name").fill("Maria")
    guest.get_by_test_id("start-call").click()
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")

    # The station's connection fails (after its 5 s wait for peer-reflexive checks) and
    # is offered anew: the kiosk names the guest, never claiming LIVE meanwhile.
    notice = kiosk.get_by_test_id("net-notice")
    expect(notice).to_have_text(words["unreached"], timeout=45_000)
    expect(kiosk.get_by_test_id("live-indicator")).to_be_hidden()
    # The guest is told what was tried, and no missing TURN server is blamed: both ends
    # are on this machine, so none was needed.
    guest_notice = guest.get_by_test_id("net-notice")
    expect(guest_notice).to_contain_text(words["could_not"], timeout=30_000)
    expect(guest_notice).to_have_attribute("data-why", "direct")
    assert "TURN" not in guest_notice.inner_text()
    # Nor does the station's log: the page's answers named no address at all.
    log = live_station.log_path.read_text()
    assert "could not connect: the browser named no address" in log, log[-3000:]
    assert "no TURN server is configured" not in log

    # Kiosk: a passing word (and a weak connection, until the meter's next poll finds
    # none) at the same time: the failure alone shows, above the control row, clear of
    # the guest's name and the controls.
    label = kiosk.locator(".tile-label", has_text="Maria")
    expect(label).to_be_visible()
    want(kiosk, "kiosk-toast", "Maria joined")
    want(kiosk, "weak-connection", "The connection to Maria is weak")
    kiosk.wait_for_timeout(300)
    assert visible_notices(kiosk) == ["net-notice"], visible_notices(kiosk)
    clear_of(kiosk, "net-notice", [".tile-label", ".kiosk-call-controls", ".kiosk-status"])
    shot(kiosk, f"notice-kiosk-800x480-{locale}")
    # 24 px on the 7" panel: the notices, the toast, the connection's details.
    for selector in ("net-notice", "kiosk-toast", "quality"):
        selector = f"[data-testid={selector}]"
        assert font_px(kiosk, selector) >= 24, (selector, font_px(kiosk, selector))
    # The failure goes: the next one that wants to show (the passing word) shows, alone.
    kiosk.evaluate("() => { document.querySelector('[data-testid=net-notice]').hidden = true; }")
    expect(kiosk.get_by_test_id("kiosk-toast")).to_be_visible()
    assert visible_notices(kiosk) == ["kiosk-toast"], visible_notices(kiosk)
    clear_of(kiosk, "kiosk-toast", [".tile-label", ".kiosk-call-controls", ".kiosk-status"])

    # Phone: the station mutes its microphone (a real notice of lower rank): the
    # failure stays the one notice, clear of the controls and the top bar.
    kiosk.get_by_test_id("station-mic").click()
    expect(guest.get_by_test_id("station-muted")).not_to_have_attribute("hidden", "")
    guest.wait_for_timeout(300)
    assert visible_notices(guest) == ["net-notice"], visible_notices(guest)
    clear_of(guest, "net-notice", [".tile-label", ".controls", ".call-title", ".pip"])
    shot(guest, f"notice-phone-412x915-{locale}")

    # The phone's toggles mean what the kiosk's mean: pressed = muted, the name fixed.
    mic = guest.get_by_test_id("toggle-mic")
    expect(mic).to_have_attribute("aria-label", words["mic"])
    expect(mic).to_have_attribute("aria-pressed", "false")
    mic.click()
    expect(mic).to_have_attribute("aria-pressed", "true")
    expect(guest.get_by_test_id("toggle-cam")).to_have_attribute("aria-pressed", "false")

    kiosk.get_by_test_id("kiosk-hangup").click()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_an_unnamed_station_says_its_name_once_on_the_login_page(
    live_station: Any, pages: Pages, locale: str
) -> None:
    page = pages.open(live_station.base_url + "/", locale=locale, **PHONE)
    page.get_by_test_id("household-login").click()
    form = page.get_by_test_id("login-form")
    expect(form.locator("h1")).to_have_text(WORDS[locale]["brand"])
    assert form.inner_text().count(WORDS[locale]["brand"]) == 1, form.inner_text()


def test_two_notices_at_once_show_one_the_more_important(live_station: Any, pages: Pages) -> None:
    """A working call (no forced failure): on each screen two notices want to show at
    once; the more important one alone is on screen, clear of names and controls, and
    the kiosk's passing word is 24 px."""
    kiosk = pages.open(live_station.kiosk_url, locale="en-US", **KIOSK)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    guest = pages.open(live_station.guest_link(label="Maria"), locale="en-US", **PHONE)
    guest.locator("#name").fill("Maria")
    guest.get_by_test_id("start-call").click()
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    expect(kiosk.locator(".tile-label", has_text="Maria")).to_be_visible()

    # Kiosk: a passing word, then why a caller's connection does not come up.
    want(kiosk, "kiosk-toast", "Maria joined")
    assert font_px(kiosk, "[data-testid=kiosk-toast]") >= 24
    want(kiosk, "net-notice", "Can't connect to the caller: a direct connection did not work.")
    kiosk.wait_for_timeout(300)
    assert visible_notices(kiosk) == ["net-notice"], visible_notices(kiosk)
    clear_of(kiosk, "net-notice", [".tile-label", ".kiosk-call-controls", ".kiosk-status"])

    # Phone: the station mutes its microphone (a real notice), a passing word comes.
    kiosk.get_by_test_id("station-mic").click()
    expect(guest.get_by_test_id("station-muted")).to_have_text("Station muted")
    guest.evaluate(
        "() => { const t = document.querySelector('.toast'); t.textContent = 'Ann joined';"
        " t.hidden = false; }"
    )
    guest.wait_for_timeout(300)
    assert visible_notices(guest) == ["station-muted"], visible_notices(guest)
    clear_of(guest, "station-muted", [".tile-label", ".controls", ".call-title", ".pip"])
    kiosk.get_by_test_id("kiosk-hangup").click()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()

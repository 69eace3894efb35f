"""The 7" kiosk readable from 1.5 m, in real Chromium against a real station (issue 24,
items 3 and 4): on the idle screen (missed calls with 30-character names), while
ringing (a caller with a 30-character name) and in a call (microphone and camera
toggled), every text is at least 24 px on the 800x480 panel (names 28 px), and at
800x480, 1024x600, 1280x720 and 1920x1080, in en-US and ru-RU, nothing overflows, leaves
the screen or breaks inside a word. The in-call controls are icon-and-state toggles
("Microphone", "Camera", pressed = muted / off) of equal width, at least 64 px square;
the phone's call screen keeps its controls whole at phone sizes.

One Chromium and one station for the module; each language's kiosk is one page
resized through the sizes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import Store
from tests.browser_kit import Page, Pages, call_from_phone, expect, launch, shot
from tests.conftest import LiveStation, start_live, stop_live

pytestmark = pytest.mark.browser

SIZES = [(800, 480), (1024, 600), (1280, 720), (1920, 1080)]
PHONES = [(390, 844), (412, 915)]
# 30 characters each (the longest a guest link's label is likely to be), in words a
# column can hold: they may wrap between words, never inside one.
MISSED = [
    "Margaret Elizabeth Thompson-Wu",
    "Екатерина Великолепная-Иванова",
    "Valentina Alexandrovna Petrova",
    "Grandma",
    "Александра Сергеевна Кузнецова",
]
CALLER = {"en-US": "Valentina Alexandrovna Petrova", "ru-RU": "Александра Сергеевна Кузнецова"}
LABELS = {
    "en-US": {"mic": "Microphone", "cam": "Camera", "hangup": "Hang up"},
    "ru-RU": {"mic": "Микрофон", "cam": "Камера", "hangup": "Завершить"},
}
# Where the names are: the station's, the missed callers', the ringing caller's, the
# callers' tags in a call.
NAMES = ".station-name, .missed-caller, .caller-name, .tile-name"

# Everything wrong with the visible text and boxes under `root`, as sentences.
# - a text node's font-size under `minText` (under `minName` inside NAMES); 0: unchecked
# - a text line box outside the viewport or outside an ancestor that clips
# - a word (split at spaces and after hyphens) whose characters lie on two lines
# - an element whose content is wider than its box (scrollWidth > clientWidth: an
#   ellipsis, a word sticking out), or whose box leaves the viewport
LAYOUT_PROBLEMS = """
([root, names, minText, minName]) => {
  const W = innerWidth, H = innerHeight, out = [];
  const seen = (el) => el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
  const what = (el) => el.dataset.testid || el.className?.baseVal || el.className || el.tagName;
  const scope = document.querySelector(root);
  const outside = (r, b) => r.left < b.left - 1 || r.top < b.top - 1
    || r.right > b.right + 1 || r.bottom > b.bottom + 1;
  const view = { left: 0, top: 0, right: W, bottom: H };
  const where = `the ${W}x${H} screen`;
  const walker = document.createTreeWalker(scope, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const text = node.textContent.trim();
    if (!text) continue;
    const el = node.parentElement;
    if (!seen(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0);
    if (!rects.length) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    const need = el.closest(names) ? minName : minText;
    if (size < need - 0.05) out.push(`${what(el)} "${text}" is ${size.toFixed(1)} px (< ${need})`);
    for (const r of rects) {
      if (outside(r, view)) out.push(`"${text}" leaves ${where}: ${JSON.stringify(r)}`);
    }
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
      const box = a.getBoundingClientRect();
      for (const r of rects) if (outside(r, box)) out.push(`"${text}" is clipped by ${what(a)}`);
    }
    const re = /[^\\s-]+-?/g;
    for (let m; (m = re.exec(node.textContent));) {
      const word = document.createRange();
      word.setStart(node, m.index);
      word.setEnd(node, m.index + m[0].length);
      const lines = [...word.getClientRects()].filter((r) => r.width > 0);
      const tops = new Set(lines.map((r) => Math.round(r.top / 4)));
      if (tops.size > 1) out.push(`"${m[0]}" of "${text}" is broken across lines`);
    }
  }
  for (const el of [scope, ...scope.querySelectorAll('*')]) {
    if (!seen(el) || el.closest('svg') || el.tagName === 'VIDEO' || el.tagName === 'IMG') continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    if (el.clientWidth && el.scrollWidth > el.clientWidth + 1) {
      out.push(`${what(el)} overflows: ${el.scrollWidth} > ${el.clientWidth} px`);
    }
    if (outside(r, view)) out.push(`${what(el)} leaves ${where}: ${JSON.stringify(r)}`);
  }
  return [...new Set(out)];
}
"""


def _seed_missed_calls(state_dir: Path) -> None:
    """Calls nobody answered in the last hour, newest last (start_live's state dir)."""
    store = Store(state_dir / "station.db")
    now = time.time()
    for i, caller in enumerate(MISSED):
        call = store.call_started("station", caller, at=now - 3600 + i * 120)
        store.call_ended(call, "missed", at=now - 3600 + i * 120 + 45)
    store.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStation]:
    tmp = tmp_path_factory.mktemp("layout")
    _seed_missed_calls(tmp / "live-state")
    live = start_live(tmp)
    yield live
    stop_live(live)


@pytest.fixture(scope="module")
def module_browser() -> Iterator[Any]:
    with launch() as b:
        yield b


class Kiosks:
    """The station's screen in one language at a time (the station's language is
    `auto`: the browser's); a station has one kiosk, so the other language's closes."""

    def __init__(self, browser: Any, station: LiveStation) -> None:
        self.pages = Pages(browser)
        self.station = station
        self.locale = ""
        self.page: Page | None = None

    def __getitem__(self, locale: str) -> Page:
        if self.page is None or locale != self.locale:
            self.pages.close()
            self.pages.contexts.clear()
            self.page = self.pages.open(
                self.station.kiosk_url,
                viewport={"width": 800, "height": 480},
                has_touch=True,
                locale=locale,
            )
            self.locale = locale
        return self.page


@pytest.fixture(scope="module")
def kiosks(module_browser: Any, station: LiveStation) -> Iterator[Kiosks]:
    opened = Kiosks(module_browser, station)
    yield opened
    opened.pages.close()
    assert not opened.pages.errors, opened.pages.errors


def problems(page: Page, root: str, size: tuple[int, int]) -> list[str]:
    small = size == (800, 480)
    found: list[str] = page.evaluate(
        LAYOUT_PROBLEMS, [root, NAMES, 24 if small else 0, 28 if small else 0]
    )
    return found


def check_sizes(
    page: Page,
    root: str,
    what: str,
    sizes: list[tuple[int, int]] = SIZES,
    more: Callable[[int, int], list[str]] | None = None,
) -> None:
    """Resizes `page` through `sizes` and collects what is wrong at each (and what
    `more` finds wrong there)."""
    failures = []
    for width, height in sizes:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(250)  # the resize handlers (missed rows, tiles) run
        if (width, height) == sizes[0]:
            slug = "".join(c if c.isalnum() else "-" for c in what).strip("-")
            shot(page, f"layout-{slug}-{width}x{height}")
        found = problems(page, root, (width, height)) + (more(width, height) if more else [])
        failures += [f"{what} at {width}x{height}: {p}" for p in found]
    page.set_viewport_size({"width": 800, "height": 480})
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_idle_screen_with_missed_calls_is_readable_and_fits(kiosks: Kiosks, locale: str) -> None:
    kiosk = kiosks[locale]
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(kiosk.get_by_test_id("missed-item").first).to_be_visible()
    expect(kiosk.get_by_test_id("kiosk-clock")).not_to_be_empty()

    def clock_on_one_line(width: int, height: int) -> list[str]:
        """The en-US clock ("10:42 AM"): its box no taller than one line of its font."""
        lines: float = kiosk.get_by_test_id("kiosk-clock").evaluate(
            "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)"
        )
        return [f"the clock takes {lines:.1f} lines"] if lines >= 1.5 else []

    check_sizes(kiosk, '[data-testid="kiosk"]', f"idle ({locale})", more=clock_on_one_line)
    # The Clear pill holds its word, and Do not disturb stays whole on the panel.
    clear = kiosk.get_by_test_id("missed-clear").evaluate(
        "el => [el.scrollWidth, el.clientWidth, el.getBoundingClientRect().height]"
    )
    assert clear[0] <= clear[1] and clear[2] >= 48, f"Clear: {clear}"
    quiet = kiosk.get_by_test_id("quiet-toggle").bounding_box()
    assert quiet and quiet["y"] + quiet["height"] <= 480 and quiet["height"] >= 64, quiet


def control_boxes(kiosk: Page) -> dict[str, dict[str, float]]:
    boxes = {}
    for test_id in ("station-mic", "station-cam", "kiosk-hangup", "volume-down", "volume-up"):
        found = kiosk.get_by_test_id(test_id).bounding_box()
        assert found, f"{test_id} is not laid out"
        boxes[test_id] = found
    return boxes


def check_controls(kiosk: Page, locale: str, muted: bool, camera_off: bool) -> None:
    """The state on the toggles: pressed = muted / off, the icon slashed, the name fixed."""
    labels = LABELS[locale]
    mic = kiosk.get_by_role("button", name=labels["mic"], exact=True)
    cam = kiosk.get_by_role("button", name=labels["cam"], exact=True)
    expect(mic).to_have_attribute("aria-pressed", str(muted).lower())
    expect(cam).to_have_attribute("aria-pressed", str(camera_off).lower())
    expect(mic.locator("svg")).to_have_attribute("data-icon", "micOff" if muted else "mic")
    expect(cam.locator("svg")).to_have_attribute("data-icon", "camOff" if camera_off else "cam")
    expect(kiosk.get_by_role("button", name=labels["hangup"], exact=True)).to_be_visible()

    def control_row(width: int, height: int) -> list[str]:
        """64 px targets clear of the edges, equal widths, Hang up on one line."""
        wrong = []
        boxes = control_boxes(kiosk)
        for test_id, b in boxes.items():
            if b["width"] < 64 or b["height"] < 64:
                wrong.append(f"{test_id} is under 64 px: {b}")
            if b["x"] < 8 or b["x"] + b["width"] > width - 8 or b["y"] + b["height"] > height - 8:
                wrong.append(f"{test_id} touches the edge: {b}")
        widths = [boxes[t]["width"] for t in ("station-mic", "station-cam", "kiosk-hangup")]
        if max(widths) - min(widths) > 1:
            wrong.append(f"unequal widths {widths}")
        hang = kiosk.get_by_test_id("kiosk-hangup").evaluate(
            "el => { const r = document.createRange(); const w = document.createTreeWalker(el, 4);"
            " let n, tops = new Set(); while ((n = w.nextNode())) { r.selectNodeContents(n);"
            " for (const x of r.getClientRects()) if (x.width > 0) tops.add(Math.round(x.top)); }"
            " return tops.size; }"
        )
        return wrong + ([f"Hang up takes {hang} lines"] if hang != 1 else [])

    state = f"in call ({locale}, muted={muted}, camera off={camera_off})"
    check_sizes(kiosk, '[data-testid="kiosk"]', state, more=control_row)


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_ringing_and_in_call_screens_are_readable_and_the_controls_say_their_state(
    kiosks: Kiosks, station: LiveStation, module_browser: Any, locale: str
) -> None:
    kiosk = kiosks[locale]
    phones = Pages(module_browser)
    try:
        name = CALLER[locale]
        guest = call_from_phone(phones, station.guest_link(label=name), name)
        expect(kiosk.get_by_test_id("caller-name")).to_have_text(name)
        check_sizes(kiosk, '[data-testid="kiosk"]', f"ringing ({locale})")

        kiosk.get_by_test_id("kiosk-answer").click()
        expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
        expect(kiosk.locator(".kiosk-call .tile-name")).to_have_text(name)
        mic, cam = kiosk.get_by_test_id("station-mic"), kiosk.get_by_test_id("station-cam")
        check_controls(kiosk, locale, muted=False, camera_off=False)
        mic.click()
        check_controls(kiosk, locale, muted=True, camera_off=False)
        cam.click()
        check_controls(kiosk, locale, muted=True, camera_off=True)
        mic.click()
        check_controls(kiosk, locale, muted=False, camera_off=True)
        cam.click()
        expect(cam).to_have_attribute("aria-pressed", "false")

        # The phone's own call screen: its controls whole at phone sizes, toggles working.
        controls = ["toggle-mic", "toggle-cam", "toggle-fullscreen", "hangup"]
        toggle = guest.get_by_test_id("toggle-mic")
        for pressed in ("false", "true"):  # the phone's toggles: pressed = muted, as the kiosk's
            if pressed == "true":
                toggle.click()
            expect(toggle).to_have_attribute("aria-pressed", pressed)
            for width, height in PHONES:
                guest.set_viewport_size({"width": width, "height": height})
                guest.wait_for_timeout(300)
                for test_id in controls:
                    b = guest.get_by_test_id(test_id).bounding_box()
                    assert b and b["width"] >= 48 and b["height"] >= 48, f"{test_id}: {b}"
                    assert b["x"] >= 0 and b["x"] + b["width"] <= width, f"{test_id}: {b}"
                    assert b["y"] + b["height"] <= height, f"{test_id}: {b}"
            check_sizes(guest, '[data-testid="call-page"]', f"phone ({locale})", PHONES)
        toggle.click()

        # Idle again, no missed calls now (after "Call with …" has gone).
        kiosk.get_by_test_id("kiosk-hangup").click()
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        expect(kiosk.get_by_test_id("missed-calls")).to_be_hidden()
        expect(kiosk.get_by_test_id("kiosk-toast")).to_be_hidden(timeout=20_000)
        check_sizes(kiosk, '[data-testid="kiosk"]', f"idle after a call ({locale})")
    finally:
        assert not phones.errors, phones.errors
        phones.close()

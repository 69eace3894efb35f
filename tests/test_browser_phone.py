"""A phone in a call, in real Chromium against a real station (one station for the
module): the pre-join page's microphone/camera toggles and level meter, and joining
with the camera off (no video is sent until it is turned on); the pre-join page on a
phone held sideways fits without scrolling (English and Russian); the front/back
camera switch (replaceTrack: the other side keeps receiving frames, no
renegotiation); pinch and double tap on the station's picture; a tap on the preview
swaps it with the main picture; the preview's corner avoids tile labels; and a useful
<noscript> in both languages.

Chromium's fake device has one camera. The camera-switch test adds a second, "rear"
one in an init script (enumerateDevices lists it, getUserMedia for its id returns a
canvas track): the page's own code does the rest.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_kit import (
    Browser,
    Page,
    Pages,
    assert_video_flows,
    expect,
    holds,
    settled,
    stats,
    wait_for,
)

pytestmark = pytest.mark.browser

PHONE: dict[str, Any] = {"has_touch": True, "is_mobile": True}
PORTRAIT: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, **PHONE}
LANDSCAPE: dict[str, Any] = {"viewport": {"width": 844, "height": 390}, **PHONE}

REAR_CAMERA = """
(() => {
  const md = navigator.mediaDevices;
  const enumerate = md.enumerateDevices.bind(md);
  const gum = md.getUserMedia.bind(md);
  window.__rear = [];
  const rear = { kind: 'videoinput', deviceId: 'test-rear', groupId: 'test', label: 'Rear' };
  md.enumerateDevices = async () => [...await enumerate(), { ...rear, toJSON() { return this; } }];
  md.getUserMedia = async (c) => {
    const v = c && c.video;
    if (!(v && v.deviceId && v.deviceId.exact === 'test-rear')) return gum(c);
    const canvas = Object.assign(document.createElement('canvas'), { width: 640, height: 480 });
    const g = canvas.getContext('2d');
    let n = 0;
    setInterval(() => {
      g.fillStyle = `hsl(${(n++ * 7) % 360} 80% 50%)`;
      g.fillRect(0, 0, 640, 480);
    }, 33);
    const track = canvas.captureStream(30).getVideoTracks()[0];
    const settings = track.getSettings.bind(track);
    track.getSettings = () => ({ ...settings(), deviceId: 'test-rear', facingMode: 'environment' });
    window.__rear.push(track);
    return new MediaStream([track]);
  };
})();
"""

SENDERS = """() => [...window.videostation.client.peers.values()].filter((l) => l.send)
  .map((l) => ({
  id: l.id, sdp: l.pc.localDescription && l.pc.localDescription.sdp,
  video: (l.pc.getSenders().find((s) => s.track ? s.track.kind === 'video'
    : s.transceiver?.receiver.track.kind === 'video') || {}).track?.id || null }))"""


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.conftest import start_live, stop_live

    live = start_live(tmp_path_factory.mktemp("phone"))
    yield live
    stop_live(live)


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    p = Pages(browser)
    yield p
    p.close()
    assert p.errors == [], "uncaught errors in the pages"


def add_rear_camera(page: Page) -> None:
    page.add_init_script(REAR_CAMERA)


def kiosk_of(pages: Pages, station: Any) -> Page:
    kiosk = pages.open(station.kiosk_url, viewport={"width": 800, "height": 480}, has_touch=True)
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    return kiosk


def answer(kiosk: Page, guest: Page) -> None:
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    kiosk.get_by_test_id("kiosk-answer").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")


def hang_up(kiosk: Page, guest: Page) -> None:
    kiosk.get_by_test_id("kiosk-hangup").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "ended")


def video_sent(page: Page) -> int:
    return sum(int(s["framesSent"]) for s in stats(page).values())


def test_prejoin_toggles_meter_and_joining_with_the_camera_off(station: Any, pages: Pages) -> None:
    kiosk = kiosk_of(pages, station)
    guest = pages.open(station.guest_link(label="Ann"), locale="en-US", **PORTRAIT)
    mic, cam = guest.get_by_test_id("lobby-mic"), guest.get_by_test_id("lobby-cam")
    meter = guest.get_by_test_id("mic-level")
    expect(mic).to_be_enabled()
    # pressed = muted / camera off, as the kiosk's toggles (issue 24)
    expect(mic).to_have_attribute("aria-pressed", "false")
    expect(mic).to_have_attribute("aria-label", "Microphone")
    expect(meter).to_have_attribute("aria-label", "Microphone level")

    def level() -> int:
        return int(meter.get_attribute("aria-valuenow") or 0)

    # The fake microphone beeps: the meter moves. Muted, it stays at zero.
    wait_for(lambda: level() > 20, "the level meter to move", timeout=10)
    mic.click()
    expect(mic).to_have_attribute("aria-pressed", "true")
    guest.wait_for_timeout(300)
    holds(lambda: level() == 0, "the meter moves with the microphone off", seconds=2)
    mic.click()
    wait_for(lambda: level() > 20, "the meter to move again", timeout=10)

    # Camera off before joining: the preview says so, and the call starts that way.
    cam.click()
    expect(cam).to_have_attribute("aria-pressed", "true")
    expect(guest.get_by_test_id("lobby-preview")).to_be_hidden()
    guest.locator("#name").fill("Ann")
    guest.get_by_test_id("start-call").click()
    answer(kiosk, guest)
    in_call = guest.get_by_test_id("toggle-cam")
    expect(in_call).to_have_attribute("aria-pressed", "true")
    expect(guest.get_by_test_id("toggle-mic")).to_have_attribute("aria-pressed", "false")
    # One camera: no switch button.
    expect(guest.get_by_test_id("switch-camera")).to_be_hidden()
    assert_video_flows(guest, lambda pid, s: pid == "station", "on the phone from the station")
    senders = guest.evaluate(SENDERS)
    assert senders and all(s["video"] is None for s in senders), f"camera on a sender: {senders}"
    holds(lambda: video_sent(guest) == 0, "video is sent with the camera off", seconds=2)

    in_call.click()
    expect(in_call).to_have_attribute("aria-pressed", "false")
    wait_for(lambda: video_sent(guest) > 10, "video to be sent once the camera is on")
    assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk from the phone")
    hang_up(kiosk, guest)


@pytest.mark.parametrize(
    ("locale", "mic", "cam"),
    [("en-US", "Microphone", "Camera"), ("ru-RU", "Микрофон", "Камера")],
)
def test_prejoin_on_a_phone_held_sideways_fits(
    station: Any, pages: Pages, locale: str, mic: str, cam: str
) -> None:
    guest = pages.open(station.guest_link(label="Side"), locale=locale, **LANDSCAPE)
    expect(guest.get_by_test_id("lobby")).to_be_visible()
    expect(guest.get_by_test_id("lobby-mic")).to_be_enabled()
    expect(guest.get_by_test_id("lobby-mic")).to_have_attribute("aria-label", mic)
    expect(guest.get_by_test_id("lobby-cam")).to_have_attribute("title", cam)
    size = guest.evaluate("() => [document.scrollingElement.scrollHeight, innerHeight]")
    assert size[0] <= size[1], f"the pre-join page scrolls: {size}"
    start = guest.get_by_test_id("start-call").bounding_box()
    assert start and start["y"] + start["height"] <= 390 and start["height"] >= 48, start
    for toggle in ("lobby-mic", "lobby-cam"):
        box = guest.get_by_test_id(toggle).bounding_box()
        assert box and box["width"] >= 48 and box["height"] >= 48, (toggle, box)


def test_phone_switches_camera_zooms_and_swaps(station: Any, pages: Pages) -> None:
    kiosk = kiosk_of(pages, station)
    guest = pages.open(
        station.guest_link(label="Bob"),
        setup=add_rear_camera,
        locale="ru-RU",
        **PORTRAIT,
    )
    guest.locator("#name").fill("Боб")
    guest.get_by_test_id("start-call").click()
    answer(kiosk, guest)
    assert_video_flows(kiosk, lambda pid, s: pid != "station", "on the kiosk from the phone")

    # Two cameras: the switch is there, in Russian.
    flip = guest.get_by_test_id("switch-camera")
    expect(flip).to_be_visible()
    expect(flip).to_have_attribute("aria-label", "Сменить камеру")
    before = guest.evaluate(SENDERS)
    front = before[0]["video"]
    assert front
    flip.click()
    wait_for(lambda: guest.evaluate("() => window.__rear.length") == 1, "the rear camera")
    rear = guest.evaluate("() => window.__rear[0].id")
    wait_for(lambda: all(s["video"] == rear for s in guest.evaluate(SENDERS)), "the rear sent")
    after = guest.evaluate(SENDERS)
    # replaceTrack: the same sessions, no new offer.
    assert [s["sdp"] for s in after] == [s["sdp"] for s in before], "renegotiated"
    assert guest.evaluate(
        "(id) => document.querySelector('[data-testid=local-video] video')"
        ".srcObject.getVideoTracks()[0].id === id",
        rear,
    ), "the preview does not show the rear camera"
    # The rear camera is not mirrored (the front one is).
    own = guest.locator("[data-testid=local-video] video")
    expect(own).not_to_have_class(re.compile(r"\bmirror\b"))
    kiosk_frames = sum(
        int(s["framesDecoded"]) for pid, s in stats(kiosk).items() if pid != "station"
    )
    wait_for(
        lambda: (
            sum(int(s["framesDecoded"]) for pid, s in stats(kiosk).items() if pid != "station")
            > kiosk_frames + 20
        ),
        "the kiosk to keep receiving frames from the rear camera",
    )
    # And back to the front camera.
    flip.click()
    wait_for(
        lambda: all(s["video"] not in (rear, front, None) for s in guest.evaluate(SENDERS)),
        "a new front track sent",
    )
    expect(own).to_have_class(re.compile(r"\bmirror\b"))

    # The station's picture: whole by default; spread two fingers to fill, pinch back.
    tile = guest.locator(".tile").first
    video = tile.locator(".tile-video")
    assert video.evaluate("v => getComputedStyle(v).objectFit") == "contain"
    cdp = guest.context.new_cdp_session(guest)

    def pinch(start: float, end: float) -> None:
        steps = 6
        for i in range(steps + 1):
            d = start + (end - start) * i / steps
            points = [{"x": 195, "y": 420 - d / 2, "id": 0}, {"x": 195, "y": 420 + d / 2, "id": 1}]
            kind = "touchStart" if i == 0 else "touchMove"
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    pinch(60, 260)
    expect(tile).to_have_class(re.compile(r"\bfill\b"))
    assert video.evaluate("v => getComputedStyle(v).objectFit") == "cover"

    def double_tap() -> None:
        """Two taps 120 ms apart by their own timestamps, as a finger makes them: two
        Playwright taps are two round trips, and at load 18 they came more than the
        page's 350 ms apart (make test, 2026-12-07: read as two single taps)."""
        at = time.time()
        finger = [{"x": 195, "y": 420, "id": 0}]
        for kind, points, when in (
            ("touchStart", finger, 0.0),
            ("touchEnd", [], 0.05),
            ("touchStart", finger, 0.12),
            ("touchEnd", [], 0.17),
        ):
            cdp.send(
                "Input.dispatchTouchEvent",
                {"type": kind, "touchPoints": points, "timestamp": at + when},
            )

    pinch(260, 60)
    expect(tile).not_to_have_class(re.compile(r"\bfill\b"))
    # A double tap fills, another shows it whole again.
    double_tap()
    expect(tile).to_have_class(re.compile(r"\bfill\b"))
    guest.wait_for_timeout(500)
    double_tap()
    expect(tile).not_to_have_class(re.compile(r"\bfill\b"))
    # A single tap changes nothing.
    guest.wait_for_timeout(500)
    guest.touchscreen.tap(195, 420)
    guest.wait_for_timeout(500)
    expect(tile).not_to_have_class(re.compile(r"\bfill\b"))

    # A tap on the preview swaps it with the main picture; another swaps back.
    stage = guest.get_by_test_id("call-page")
    pip = guest.get_by_test_id("local-video")
    top = guest.locator(".call-top").bounding_box()
    expect(guest.get_by_test_id("quality")).to_be_visible()
    assert guest.locator(".call-top").bounding_box() == top, "the top bar grew: the preview moves"
    box = settled(pip)
    guest.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(stage).to_have_class(re.compile(r"\bswapped\b"))
    expect(guest.get_by_test_id("local-main")).to_be_visible()
    shown = guest.evaluate(
        """() => {
          const ids = (el) => el.srcObject ? el.srcObject.getVideoTracks().map((t) => t.id) : [];
          const q = (s) => document.querySelector(s);
          return { main: ids(q('[data-testid=local-main]')),
                   pip: ids(q('[data-testid=local-video] video')),
                   tile: ids(q('.tile .tile-video')),
                   sent: window.videostation.client.localStream.getVideoTracks().map((t) => t.id) };
        }"""
    )
    assert shown["main"] == shown["sent"], shown
    assert shown["pip"] and set(shown["pip"]) <= set(shown["tile"]), shown
    after_tap = pip.bounding_box()
    assert after_tap == box, "a tap moved the preview"
    guest.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(stage).not_to_have_class(re.compile(r"\bswapped\b"))
    expect(guest.get_by_test_id("local-main")).to_be_hidden()
    hang_up(kiosk, guest)


def floating_page(station: Any, pages: Pages) -> Page:
    """A bare portrait page with pip.js loaded: ``window.__floating`` holds
    ``makeFloating``, a stage filling the page, a focusable preview box with its resize
    handle (in the stage, not yet floating) and ``el(className)`` to make more divs."""
    page = pages.open(station.base_url + "/", reduced_motion="reduce", **PORTRAIT)
    page.wait_for_load_state()
    page.evaluate(
        """async () => {
          const app = document.querySelector('script[type=module]').src;
          const { makeFloating } = await import(new URL('ui/pip.js', app).href);
          const el = (className) => Object.assign(document.createElement('div'), { className });
          document.body.replaceChildren();
          const stage = el('call-stage');
          const box = Object.assign(el('pip'), { tabIndex: 0 });
          const handle = el('pip-handle');
          box.append(handle);
          stage.append(box);
          document.body.append(stage);
          window.__floating = { makeFloating, stage, box, handle, el };
        }"""
    )
    return page


def test_preview_corner_leaves_tile_labels_uncovered(station: Any, pages: Pages) -> None:
    """pip.js in the page: with a label in the bottom-left corner, a drag there snaps to
    the nearest free corner instead; with reduced motion there is no glide."""
    page = floating_page(station, pages)
    page.evaluate(
        """() => {
          const { makeFloating, stage, box, handle, el } = window.__floating;
          const label = el('tile-label');
          label.style.cssText = 'position:absolute;left:10px;bottom:10px;width:120px;height:30px';
          stage.prepend(label);
          window.__taps = 0;
          window.__glide = [];
          new MutationObserver(() => {
            if (box.classList.contains('snapping')) {
              window.__glide.push(getComputedStyle(box).transitionDuration);
            }
          }).observe(box, { attributes: true, attributeFilter: ['class'] });
          makeFloating(box, stage, { handle, avoid: () => [label.getBoundingClientRect()],
                                     onTap: () => { window.__taps += 1; } });
        }"""
    )
    pip = page.locator(".pip")
    label = page.locator(".tile-label")
    box = pip.bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(40, 800, steps=6)
    page.mouse.up()
    page.wait_for_timeout(300)
    end, lbox = pip.bounding_box(), label.bounding_box()
    assert end and lbox
    overlap = not (
        end["x"] + end["width"] <= lbox["x"]
        or end["x"] >= lbox["x"] + lbox["width"]
        or end["y"] + end["height"] <= lbox["y"]
        or end["y"] >= lbox["y"] + lbox["height"]
    )
    assert not overlap, f"the preview {end} covers the label {lbox}"
    # The nearest free corner: bottom right (the drag ended bottom left).
    assert end["x"] + end["width"] >= 390 - 12 and end["y"] + end["height"] >= 844 - 12, end
    assert page.evaluate("() => window.__taps") == 0, "a drag counted as a tap"
    # It snapped, without the glide (reduced motion: 0.01 ms).
    glide = page.evaluate("() => window.__glide")
    assert glide and all(float(d.rstrip("s")) < 0.001 for d in glide), glide
    # The phone turns: the preview stays in its corner (bottom right).
    page.set_viewport_size({"width": 844, "height": 390})
    page.wait_for_timeout(300)
    turned = pip.bounding_box()
    assert turned and turned["x"] + turned["width"] >= 844 - 12, turned
    assert turned["y"] + turned["height"] >= 390 - 12, turned
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    end = pip.bounding_box()
    assert end
    hbox = page.locator(".pip-handle").bounding_box()
    assert hbox and hbox["width"] >= 44 and hbox["height"] >= 44
    # The handle stays on the inner corner: bottom-left of a window on the right.
    assert abs(hbox["x"] - end["x"]) < 3 and abs(hbox["y"] + 44 - (end["y"] + end["height"])) < 3, (
        hbox,
        end,
    )


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or a["x"] >= b["x"] + b["width"]
        or a["y"] + a["height"] <= b["y"]
        or a["y"] >= b["y"] + b["height"]
    )


def test_preview_at_rest_never_covers_a_label_however_it_got_there(
    station: Any, pages: Pages
) -> None:
    """pip.js in the page, with three labels placed so that a big preview covers one in
    every corner: resized to its largest, it comes to rest smaller, in a free corner;
    moved corner to corner with the arrow keys and grown with +, it never rests on a
    label; a label that appears under it, or a top bar that grows over it, moves it."""
    page = floating_page(station, pages)
    page.evaluate(
        """() => {
          const { makeFloating, stage, box, handle, el } = window.__floating;
          const top = el('');
          top.style.cssText = 'position:absolute;left:0;right:0;top:0;height:0';
          const grid = el('');
          const place = (css) => {
            const label = el('tile-label');
            label.style.cssText = 'position:absolute;' + css;
            grid.append(label);
          };
          place('left:150px;top:100px;width:40px;height:20px');
          place('left:10px;bottom:10px;width:120px;height:30px');
          place('left:200px;top:700px;width:40px;height:20px');
          stage.prepend(top, grid);
          window.__place = place;
          window.__top = top;
          makeFloating(box, stage, {
            handle, watch: [top, grid],
            reserveTop: () => top.getBoundingClientRect().bottom + 4,
            avoid: () => [...grid.querySelectorAll('.tile-label')]
              .map((el) => el.getBoundingClientRect()),
          });
        }"""
    )
    pip = page.locator(".pip")

    def labels() -> list[dict[str, float]]:
        return [
            dict(b)
            for b in (
                page.locator(".tile-label").nth(i).bounding_box()
                for i in range(page.locator(".tile-label").count())
            )
            if b
        ]

    def at_rest_on_no_label(what: str) -> dict[str, float]:
        box = settled(pip)
        covered = [lab for lab in labels() if overlaps(box, lab)]
        assert not covered, f"{what}: the preview {box} rests on {covered}"
        return box

    start = at_rest_on_no_label("at first")
    # Resized as big as it goes (the handle dragged far out and down).
    handle = page.locator(".pip-handle").bounding_box()
    assert handle
    page.mouse.move(handle["x"] + 20, handle["y"] + 20)
    page.mouse.down()
    page.mouse.move(5, 700, steps=8)
    grown = pip.bounding_box()
    assert grown and grown["width"] > 200, f"the resize did not grow it: {grown}"
    page.mouse.up()
    rest = at_rest_on_no_label("after a resize")
    assert rest["width"] < grown["width"], "it rests at the size that covered a label"

    # The keyboard: from corner to corner, then bigger; it never rests on a label.
    pip.focus()
    for key in ("ArrowDown", "ArrowLeft", "ArrowUp", "ArrowRight", "ArrowDown", *["+"] * 12):
        page.keyboard.press(key)
        box = at_rest_on_no_label(f"after {key}")
        assert box["x"] <= 12 or box["x"] + box["width"] >= 390 - 12, f"not in a corner: {box}"

    # A label appears right under it: it moves off by itself.
    box = settled(pip)
    page.evaluate(
        "(b) => window.__place(`left:${b.x + 10}px;top:${b.y + 10}px;width:30px;height:16px`)",
        box,
    )
    at_rest_on_no_label("after a label appeared under it")

    # The top bar grows (the reconnecting banner wraps): it stays below.
    page.keyboard.press("ArrowUp")
    settled(pip)
    page.evaluate("() => { window.__top.style.height = '150px'; }")
    below = at_rest_on_no_label("after the top bar grew")
    assert below["y"] >= 150, f"the preview {below} covers the top bar"
    assert start["width"] >= 96


@pytest.mark.parametrize("locale", ["ru-RU", "en-US"])
def test_noscript_speaks_both_languages(station: Any, pages: Pages, locale: str) -> None:
    page = pages.open(station.base_url + "/", locale=locale, java_script_enabled=False)
    texts = page.locator("noscript p, p.noscript")
    expect(texts.first).to_be_visible()
    shown = {p.get_attribute("lang"): p.inner_text() for p in texts.all()}
    assert "JavaScript" in shown.get("en", "") and "JavaScript" in shown.get("ru", ""), shown
    assert re.search("[\u0400-\u04ff]", shown["ru"]), shown


def test_html_lang_follows_the_browser(station: Any, pages: Pages) -> None:
    page = pages.open(station.base_url + "/", locale="ru-RU")
    expect(page.locator("html")).to_have_attribute("lang", "ru")

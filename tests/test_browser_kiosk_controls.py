"""The kiosk's own call controls in real Chromium against a real station: the ringtone
(its level measured on the page's audio output, silent the moment someone answers or
the caller gives up), the callers' volume (remembered across a reload), the station's
microphone mute and camera off (the caller's page says so and hears silence), the
microphone meter, and the layouts on the 7" panel and a 1080p TV."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser_kit import Browser, Page, Pages, call_from_phone, expect, sign_in, wait_for

pytestmark = pytest.mark.browser

# Before the page's scripts: every AudioContext's output also goes to an analyser, so
# the test hears what the page plays (peak of the last 2048 samples, open contexts).
RING_TAP = """
(() => {
  window.__ctxs = [];
  const Ctx = window.AudioContext;
  window.AudioContext = class extends Ctx {
    constructor(...a) {
      super(...a);
      this.__bus = super.createGain();
      this.__tap = super.createAnalyser();
      this.__tap.fftSize = 2048;
      this.__bus.connect(super.destination);
      this.__bus.connect(this.__tap);
      window.__ctxs.push(this);
    }
    get destination() { return this.__bus; }
  };
  window.__level = () => {
    let peak = 0;
    for (const c of window.__ctxs) {
      if (c.state === 'closed') continue;
      const d = new Float32Array(2048);
      c.__tap.getFloatTimeDomainData(d);
      for (const v of d) peak = Math.max(peak, Math.abs(v));
    }
    return peak;
  };
  window.__loudest = async (ms) => {
    let peak = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      peak = Math.max(peak, window.__level());
      await new Promise((r) => setTimeout(r, 15));
    }
    return peak;
  };
})();
"""

# The level (0..1, from getStats) of the sound a caller receives from the station.
STATION_AUDIO_LEVEL = """
async () => {
  const link = window.videostation.client.peers.get('station');
  if (!link) return null;
  let level = null;
  (await link.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') level = r.audioLevel ?? null;
  });
  return level;
}
"""


def loudest(page: Page, ms: int) -> float:
    value: float = page.evaluate("(ms) => window.__loudest(ms)", ms)
    return value


def contexts_closed(page: Page) -> bool:
    result: bool = page.evaluate("() => window.__ctxs.every((c) => c.state === 'closed')")
    return result


def heard_from_station(guest: Page) -> float:
    level = guest.evaluate(STATION_AUDIO_LEVEL)
    return -1.0 if level is None else float(level)


def tile_volumes(kiosk: Page) -> list[float]:
    result: list[float] = kiosk.eval_on_selector_all(
        ".kiosk-call .tile-video", "els => els.map((v) => v.volume)"
    )
    return result


def box(page: Page, test_id: str) -> dict[str, float]:
    found = page.get_by_test_id(test_id).bounding_box()
    assert found, f"{test_id} is not on screen"
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_ringtone_volume_mute_camera_and_meter(live_station: Any, pages: Pages) -> None:
    kiosk = pages.open(
        live_station.kiosk_url,
        setup=lambda p: p.add_init_script(RING_TAP),
        viewport={"width": 800, "height": 480},
        has_touch=True,
    )
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()

    # A caller gives up: the ring stops and stays stopped.
    quitter = call_from_phone(pages, live_station.guest_link(label="Uncle"), "Uncle")
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    peak = loudest(kiosk, 3500)  # a whole ring period
    assert 0.2 < peak <= 0.35, f"the ringtone peaks at {peak:.2f} of full scale (meant: 0.32)"
    quitter.get_by_role("button", name="Hang up").click()
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    wait_for(lambda: contexts_closed(kiosk), "the ringtone to stop when the caller gave up", 5)
    assert loudest(kiosk, 3200) == 0.0

    # Answered at the kiosk: silent within 150 ms of the touch, taken during a ring.
    guest = call_from_phone(pages, live_station.guest_link(label="Grandma"), "Grandma")
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    after = kiosk.evaluate(
        """async () => {
          const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
          for (let i = 0; i < 400 && window.__level() < 0.1; i++) await sleep(10);
          const during = window.__level();
          document.querySelector('[data-testid="kiosk-answer"]').click();
          await sleep(150);
          return [during, window.__level()];
        }"""
    )
    assert after[0] >= 0.1, f"no ring sounding before the answer ({after[0]:.3f})"
    assert after[1] == 0.0, f"the ring still sounds 150 ms after Answer ({after[1]:.3f})"
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    wait_for(lambda: contexts_closed(kiosk), "the ringtone's context to close", 5)

    # The controls: ≥ 64 px targets beside Hang up.
    controls = kiosk.get_by_test_id("station-audio")
    expect(controls).to_be_attached()
    for test_id in ("volume-down", "volume-up", "station-mic", "station-cam", "kiosk-hangup"):
        b = box(kiosk, test_id)
        assert b["width"] >= 64 and b["height"] >= 64, f"{test_id} is {b}"
        assert b["x"] >= 0 and b["x"] + b["width"] <= 800, f"{test_id} is off screen: {b}"

    # The meter shows what the station sends: the test tone, about -15 dBFS.
    meter = kiosk.get_by_test_id("mic-meter")
    wait_for(lambda: float(meter.get_attribute("data-level") or 0) > 0.6, "the meter to move", 20)
    assert -18 <= int(meter.get_attribute("aria-valuenow") or -99) <= -12
    wait_for(lambda: heard_from_station(guest) > 0.05, "the caller to hear the station", 20)

    # Mute (the "Microphone" toggle pressed): the caller is told and hears silence; the
    # meter shows muted and empty.
    mic = kiosk.get_by_test_id("station-mic")
    expect(mic).to_have_accessible_name("Microphone")
    expect(mic).to_have_attribute("aria-pressed", "false")
    mic.click()
    expect(mic).to_have_attribute("aria-pressed", "true")
    note = guest.get_by_test_id("station-muted")
    expect(note).to_have_text("Station muted")
    expect(meter).to_have_attribute("data-muted", "true")
    expect(meter).to_have_attribute("data-level", "0.00")
    wait_for(lambda: 0 <= heard_from_station(guest) < 0.01, "the caller to hear silence", 20)
    expect(kiosk.get_by_test_id("live-indicator")).to_have_attribute("data-mode", "camera-only")
    mic.click()
    expect(note).to_be_hidden()
    wait_for(lambda: float(meter.get_attribute("data-level") or 0) > 0.6, "the meter back", 20)
    wait_for(lambda: heard_from_station(guest) > 0.05, "the sound back on the caller's side", 20)

    # Camera off: LIVE says microphone only; the caller is told.
    cam = kiosk.get_by_test_id("station-cam")
    expect(cam).to_have_accessible_name("Camera")
    cam.click()
    expect(cam).to_have_attribute("aria-pressed", "true")
    live = kiosk.get_by_test_id("live-indicator")
    expect(live).to_have_attribute("data-mode", "mic-only")
    expect(live).to_have_attribute("title", re.compile("microphone only"))
    expect(note).to_have_text("Station camera off")
    cam.click()
    expect(live).to_have_attribute("data-mode", "live")
    expect(note).to_be_hidden()

    # Volume: three steps down from 80 %, applied to the callers' media elements...
    expect(kiosk.get_by_test_id("volume-value")).to_have_text("80%")
    wait_for(lambda: tile_volumes(kiosk) == [0.8], "the caller's tile at 80 %")
    for _ in range(3):
        kiosk.get_by_test_id("volume-down").click()
    expect(kiosk.get_by_test_id("volume-value")).to_have_text("50%")
    assert tile_volumes(kiosk) == [0.5]
    # ... and still so after a reload (the kiosk rejoins the running call).
    kiosk.reload()
    expect(kiosk.get_by_test_id("kiosk-call")).to_be_visible()
    expect(kiosk.get_by_test_id("volume-value")).to_have_text("50%")
    wait_for(lambda: tile_volumes(kiosk) == [0.5], "the reloaded kiosk to play at 50 %")

    # Hang-up: the next call starts with the microphone and camera on.
    mic = kiosk.get_by_test_id("station-mic")
    mic.click()
    expect(note).to_have_text("Station muted")
    kiosk.get_by_test_id("kiosk-hangup").click()
    expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "ended")
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(mic).to_have_attribute("aria-pressed", "false")


def ring_and_answer_two(live_station: Any, pages: Pages, kiosk: Page) -> list[Page]:
    guests = [
        call_from_phone(pages, live_station.guest_link(label=name), name)
        for name in ("Grandma", "Grandpa")
    ]
    expect(kiosk.get_by_test_id("caller-name")).to_have_text("Grandma and Grandpa")
    kiosk.get_by_test_id("kiosk-answer").click()
    for guest in guests:
        expect(guest.get_by_test_id("call-page")).to_have_attribute("data-state", "in-call")
    return guests


def test_two_callers_the_preview_covers_nobody_on_the_panel_and_a_tv(
    live_station: Any, pages: Pages
) -> None:
    kiosk = pages.open(
        live_station.kiosk_url, viewport={"width": 800, "height": 480}, has_touch=True
    )
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    ring_and_answer_two(live_station, pages, kiosk)
    tiles = kiosk.locator(".kiosk-call .tile:not(.waiting)")
    expect(tiles).to_have_count(2, timeout=30_000)
    expect(kiosk.get_by_test_id("station-preview")).to_have_class(re.compile(r"\bhas-video\b"))
    for width, height in ((800, 480), (1920, 1080)):
        kiosk.set_viewport_size({"width": width, "height": height})
        kiosk.wait_for_timeout(300)
        preview = box(kiosk, "station-preview")
        assert preview["x"] + preview["width"] <= width and preview["y"] >= 0
        boxes = [tiles.nth(i).bounding_box() for i in range(2)]
        for i, tile in enumerate(boxes):
            assert tile, f"tile {i} is not on screen at {width}x{height}"
            assert not overlap(preview, tile), (
                f"at {width}x{height} the preview {preview} covers tile {i} {tile}"
            )
            # the callers still get most of the screen
            assert tile["height"] >= 0.9 * height and tile["width"] >= 0.25 * width, tile


def sizes(kiosk: Page) -> dict[str, float]:
    result: dict[str, float] = kiosk.evaluate(
        """() => {
          const px = (sel, prop) => {
            const el = document.querySelector(sel);
            if (!el) return 0;
            if (prop === 'font') return parseFloat(getComputedStyle(el).fontSize);
            return el.getBoundingClientRect()[prop];
          };
          return {
            clock: px('.clock', 'font'), name: px('.station-name', 'font'),
            hint: px('.idle-hint', 'font'), qr: px('.kiosk-qr', 'height'),
            caller: px('.caller-name', 'font'), answer: px('.huge.answer', 'height'),
            answerWidth: px('.huge.answer', 'width'), avatar: px('.ring-avatar', 'height'),
          };
        }"""
    )
    return result


def test_idle_and_ringing_screens_scale_up_on_a_1080p_tv(live_station: Any, pages: Pages) -> None:
    kiosk = pages.open(
        live_station.kiosk_url, viewport={"width": 1280, "height": 720}, has_touch=True
    )
    expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
    expect(kiosk.get_by_test_id("kiosk-qr")).to_have_attribute("src", re.compile("^data:"))
    small = sizes(kiosk)
    kiosk.set_viewport_size({"width": 1920, "height": 1080})
    kiosk.wait_for_timeout(300)
    tv = sizes(kiosk)
    for key in ("clock", "name", "hint"):
        assert tv[key] >= 1.4 * small[key], f"idle {key}: {small[key]} px -> {tv[key]} px on a TV"
    assert tv["qr"] >= 0.95 * 1080 - 40, f"the QR code no longer fills the height: {tv['qr']}"

    call_from_phone(pages, live_station.guest_link(label="Grandma"), "Grandma")
    expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
    ring_tv = sizes(kiosk)
    kiosk.set_viewport_size({"width": 1280, "height": 720})
    kiosk.wait_for_timeout(300)
    ring_small = sizes(kiosk)
    for key in ("caller", "answer", "answerWidth", "avatar"):
        assert ring_tv[key] >= 1.4 * ring_small[key], (
            f"ringing {key}: {ring_small[key]} px -> {ring_tv[key]} px on a TV"
        )


def test_the_ring_stops_when_the_station_answers_by_itself(
    tmp_path: Path, browser: Browser
) -> None:
    """Auto-answer (as the GPIO button, an answer that does not come from the kiosk's
    touch): the ringtone is silenced by the call state, the moment it says in-call."""
    from tests.conftest import start_live, stop_live

    cfg = tmp_path / "auto-answer.toml"
    cfg.write_text(
        "[call]\nauto_answer = true\nauto_answer_delay_seconds = 2\n\n"
        '[screen]\npower_command = ""\n'
    )
    live = start_live(tmp_path, "--config", str(cfg))
    p = Pages(browser)
    try:
        kiosk = p.open(live.kiosk_url, setup=lambda page: page.add_init_script(RING_TAP))
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible()
        user = sign_in(p, live)  # auto-answer is for the household, not for guests
        user.goto(live.base_url + "/#/room/station")
        expect(user.get_by_test_id("lobby")).to_be_visible()
        if not user.locator("#name").input_value():
            user.locator("#name").fill("Dad")
        user.get_by_test_id("start-call").click()
        expect(kiosk.get_by_test_id("kiosk-ringing")).to_be_visible()
        heard = kiosk.evaluate(
            """async () => {
              const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
              const state = () => document.querySelector('[data-testid="kiosk"]').dataset.state;
              let ringing = 0;
              for (let i = 0; i < 1000 && state() !== 'in-call'; i++) {
                ringing = Math.max(ringing, window.__level());
                await sleep(10);
              }
              await sleep(150);
              return [ringing, state(), window.__level()];
            }"""
        )
        assert heard[0] >= 0.1, f"the ring was not heard before the station answered: {heard}"
        assert heard[1] == "in-call", heard
        assert heard[2] == 0.0, f"the ring still sounds 150 ms after the answer: {heard}"
        wait_for(lambda: contexts_closed(kiosk), "the ringtone's context to close", 5)
        assert loudest(kiosk, 3200) == 0.0
    finally:
        p.close()
        stop_live(live)

"""Shared helpers for the real-Chromium tests (Playwright driving /usr/bin/chromium):
the browser and page fixtures, page openers per device, waits and WebRTC statistics.

The fixtures `browser` (one Chromium per module) and `pages` (a :class:`Pages` whose
pages must end without uncaught errors) are in tests/conftest.py; a browser test
module imports what it uses from here (which skips it, or fails it under CI, when
Playwright or Chromium is missing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Screenshots go to tests/.artifacts (ignored by git); `make screenshots` refreshes the
# README's pictures in docs/screenshots.
SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "tests" / ".artifacts" / "screenshots")
ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _missing(reason: str) -> None:
    skip_or_fail(reason, module_level=True)


try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    _missing("playwright is not installed (pip install -e '.[test]')")
if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    _missing(f"{CHROMIUM} not found (apt install chromium)")

# A shared 2-core CI box runs Chromium, the service and aiortc side by side: give
# assertions on pages more than Playwright's default 5 s to come true.
expect.set_options(timeout=15_000)


@contextmanager
def launch() -> Iterator[Browser]:
    """Debian's Chromium with a fake camera and microphone (the `browser` fixture)."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Pages:
    """Opens pages in fresh contexts and collects their uncaught errors."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def open(
        self, url: str, *, setup: Callable[[Page], None] | None = None, **context: Any
    ) -> Page:
        """A page in a fresh context; ``setup`` runs before it loads ``url`` (init
        scripts, WebSocket routes)."""
        ctx = self.browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context})
        ctx.set_default_timeout(20_000)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{url}: {exc}"))
        if setup is not None:
            setup(page)
        page.goto(url)
        return page

    def kiosk(self, url: str, *, setup: Callable[[Page], None] | None = None) -> Page:
        return self.open(url, setup=setup, viewport={"width": 1280, "height": 720}, has_touch=True)

    def phone(self, url: str, *, setup: Callable[[Page], None] | None = None) -> Page:
        return self.open(
            url,
            setup=setup,
            viewport={"width": 412, "height": 860},
            has_touch=True,
            is_mobile=True,
        )

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def stats(page: Page) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = page.evaluate("() => window.videostation.client.stats()")
    return result


def wait_for(check: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def frames_from(page: Page, pick: Callable[[str, dict[str, Any]], bool]) -> int:
    return sum(int(s["framesDecoded"]) for pid, s in stats(page).items() if pick(pid, s))


def assert_video_flows(page: Page, pick: Callable[[str, dict[str, Any]], bool], what: str) -> None:
    """framesDecoded of the picked connections is positive and still increasing."""
    try:
        first = wait_for(
            lambda: frames_from(page, pick), f"first decoded frames {what}", timeout=30
        )
    except AssertionError as exc:  # say what each connection was doing
        states = page.evaluate(
            "() => [...window.videostation.client.peers.values()].map(l => [l.id,"
            " l.pc.signalingState, l.pc.iceConnectionState, l.pc.connectionState])"
        )
        raise AssertionError(f"{exc}; connections: {states}") from None
    wait_for(
        lambda: frames_from(page, pick) > first + 5, f"frames decoded {what} to keep increasing"
    )


def kiosk_state(kiosk: Page) -> str | None:
    return kiosk.get_by_test_id("kiosk").get_attribute("data-state")


def call_from_phone(pages: Pages, url: str, name: str) -> Page:
    guest = pages.phone(url)
    expect(guest.get_by_test_id("lobby")).to_be_visible()
    assert "guest_token" not in guest.url, "the token must leave the address bar"
    guest.locator("#name").fill(name)
    guest.get_by_test_id("start-call").click()
    return guest


def sign_in(pages: Pages, live: Any) -> Page:
    page = pages.open(live.base_url + "/")
    page.get_by_test_id("household-login").click()  # past "Ask for a new invitation"
    page.locator("#password").fill(live.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("room-list")).to_be_visible()
    return page


def recent_call(page: Page, caller: str) -> Any:
    return page.get_by_test_id("recent-calls").locator("li.call-item", has_text=caller)


def kiosk_code(live: Any) -> str:
    """A live code, as the kiosk's screen gets it."""
    from tests.conftest import http_json

    key = (live.state_dir / "kiosk.key").read_text().strip()
    status, _, headers = http_json(f"{live.base_url}/api/auth/kiosk", {"key": key})
    assert status == 200
    cookie = str(headers["Set-Cookie"]).split(";")[0]
    status, body, _ = http_json(f"{live.base_url}/api/kiosk/guest-link", {}, cookie=cookie)
    assert status == 201, body
    return str(body["guest_token"])


def station_metrics(live: Any) -> dict[str, float]:
    from tests.conftest import http_json, login_cookie

    cookie = login_cookie(live.base_url, live.password)
    _, text, _ = http_json(f"{live.base_url}/api/metrics/", cookie=cookie)
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values


# -- looking inside a page --------------------------------------------------------------

# Before any page script: record every RTCPeerConnection the page makes and every track
# getUserMedia hands it, so a test can say what the page sent and what it still holds.
INSTRUMENT = """
(() => {
  const pcs = [];
  const tracks = [];
  window.__pcs = pcs;
  window.__gumTracks = tracks;
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); pcs.push(this); }
  };
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await gum(constraints);
      tracks.push(...stream.getTracks());
      return stream;
    };
  }
})();
"""

# Media elements that play sound right now: not paused, not muted, with a live audio track.
AUDIBLE_ELEMENTS = """
() => [...document.querySelectorAll('video, audio')].filter((el) => el.srcObject && !el.paused
  && !el.muted && el.volume > 0
  && el.srcObject.getAudioTracks().some((t) => t.readyState === 'live')).length
"""


def instrument(page: Page) -> None:
    """A `setup` for :meth:`Pages.open`: see INSTRUMENT."""
    page.add_init_script(INSTRUMENT)


def peer_connections(page: Page) -> list[dict[str, Any]]:
    """Every RTCPeerConnection the page made: its state and what it sends."""
    result: list[dict[str, Any]] = page.evaluate(
        """() => (window.__pcs || []).map((pc) => ({
            signaling: pc.signalingState, connection: pc.connectionState,
            local: pc.localDescription ? pc.localDescription.type : null,
            sending: pc.getSenders().filter((s) => s.track).map((s) => s.track.kind),
        }))"""
    )
    return result


def local_tracks(page: Page) -> list[dict[str, str]]:
    """Every track getUserMedia gave the page, with its readyState."""
    result: list[dict[str, str]] = page.evaluate(
        "() => (window.__gumTracks || []).map((t) => ({kind: t.kind, state: t.readyState}))"
    )
    return result


def elements_showing_local_tracks(page: Page) -> int:
    """Media elements whose srcObject still holds one of the page's own camera/mic tracks."""
    count: int = page.evaluate(
        """() => { const own = new Set(window.__gumTracks || []);
            return [...document.querySelectorAll('video, audio')].filter((el) => el.srcObject
              && el.srcObject.getTracks().some((t) => own.has(t))).length; }"""
    )
    return count


class ForgedSocket:
    """Routes a page's signaling WebSocket through Playwright to the real service, so a
    test can also hand the page messages the service never sent (what a service that
    relays anything would deliver). Install with ``setup=forged.install``."""

    def __init__(self) -> None:
        self.route: Any = None

    def install(self, page: Page) -> None:
        def handler(route: Any) -> None:
            route.connect_to_server()  # everything else passes through unchanged
            self.route = route

        page.route_web_socket(re.compile(r"/ws/$"), handler)

    def inject(self, message: dict[str, Any]) -> None:
        assert self.route is not None, "the page has not opened its WebSocket"
        self.route.send(json.dumps(message))


def holds(check: Callable[[], Any], what: str, seconds: float = 4.0) -> None:
    """``check`` stays true for ``seconds`` (polled): for things that must never happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.2)
    assert check(), what


# -- an attacker with a guest link -------------------------------------------------------

ATTACKER_JS = """
(() => {
  const a = {
    msgs: [], pcs: {}, peerId: null,
    async join(name) {
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      this.ws = new WebSocket(`${proto}://${location.host}/ws/`);
      this.ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        this.msgs.push(m);
        void this.got(m);
      };
      await new Promise((resolve) => { this.ws.onopen = resolve; });
      this.ws.send(JSON.stringify({ type: 'join', version: 1, room: 'station', name }));
      for (let i = 0; i < 100 && !this.peerId; i++) {
        const w = this.msgs.find((m) => m.type === 'welcome');
        if (w) this.peerId = w.peer_id;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return this.peerId;
    },
    /** An offer with camera and microphone to `to`, sent through the station. */
    async offer(to) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      const pc = new RTCPeerConnection();
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      await pc.setLocalDescription();
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve(undefined);
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve(undefined);
        });
        setTimeout(resolve, 3000);
      });
      this.pcs[to] = pc;
      const description = pc.localDescription.toJSON();
      this.ws.send(JSON.stringify({ type: 'signal', to, description }));
      return description;
    },
    async got(m) {
      const pc = m.type === 'signal' ? this.pcs[m.from] : null;
      if (!pc) return;
      try {
        if (m.description && m.description.type === 'answer') {
          await pc.setRemoteDescription(m.description);
        } else if (m.candidate) {
          await pc.addIceCandidate(m.candidate);
        }
      } catch (err) { this.msgs.push({ type: 'local-error', message: String(err) }); }
    },
  };
  window.attacker = a;
})();
"""


class Attacker:
    """A guest of the station room who speaks the signaling protocol by hand from a real
    Chromium page (its own camera and microphone are Chromium's fake devices)."""

    def __init__(self, pages: Pages, guest_url: str, name: str = "Mallory") -> None:
        self.page = pages.phone(guest_url)
        self.page.get_by_test_id("lobby").wait_for()  # the guest session cookie is set
        self.page.evaluate(ATTACKER_JS)
        self.peer_id: str = self.page.evaluate("(name) => window.attacker.join(name)", name)
        assert self.peer_id, "the attacker could not join"

    def offer(self, to: str) -> dict[str, Any]:
        """Sends an audio+video offer to peer ``to``; returns it (to forge relays with)."""
        description: dict[str, Any] = self.page.evaluate("(to) => window.attacker.offer(to)", to)
        return description

    def messages(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.evaluate("() => window.attacker.msgs")
        return result

    def signals_from(self, peer_id: str) -> list[dict[str, Any]]:
        return [
            m for m in self.messages() if m.get("type") == "signal" and m.get("from") == peer_id
        ]

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.messages() if m.get("type") == "error"]

    def leave(self) -> None:
        self.page.evaluate("() => window.attacker.ws.close()")


def settled(box: Any) -> dict[str, float]:
    """The bounding box of ``box`` once its glide has ended (the same three times in a row;
    a loaded machine animates slowly, so no fixed wait)."""
    last, still = None, 0
    for _ in range(100):  # bounded: 10 s
        now = box.bounding_box()
        moving = {"snapping", "dragging"} & set((box.get_attribute("class") or "").split())
        still = still + 1 if now is not None and now == last and not moving else 0
        if still >= 2:  # the same three times over 200 ms
            return dict(now)
        last = now
        box.page.wait_for_timeout(100)
    raise AssertionError(f"the preview never came to rest: {last}")

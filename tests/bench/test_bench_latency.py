"""B2: glass-to-glass latency at 1280x720@30 -- from the moment a frame is captured to
the moment Chromium presents it -- against Chromium sending to itself (the reference,
in the same run).

The station's test pattern stamps each frame's capture time (milliseconds since the
epoch, as bits along its bottom edge: ``appliance/media/pattern.py``). A guest page in
a call with the station reads the stamp back from every presented frame
(``requestVideoFrameCallback``, the frame drawn to a canvas) and subtracts it from the
frame's expected display time. The reference draws the same stamp on a 1280x720 canvas,
sends ``canvas.captureStream(30)`` from one ``RTCPeerConnection`` to another in the same
page (loopback) and reads it back the same way: Chromium's own encode, packetize,
decode and render, with no network -- what the station path is compared to. Both
clocks are this machine's wall clock. Targets (issue #10): p95 <= 120 ms, ratio <= 1.25.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser_kit import Pages

from .kit import AnsweringKiosk, percentiles

pytestmark = [pytest.mark.bench, pytest.mark.browser]

SECONDS = 3 if os.environ.get("BENCH_QUICK") == "1" else 15
TARGET_P95_MS, TARGET_RATIO = 120, 1.25

# window.__readStamps(video): records (display time - stamped capture time) of every
# frame ``video`` presents, in window.__latency, and in window.__split the two parts of
# it: stamped capture -> the frame's last packet received (the sender and the network),
# received -> display (the receiving browser: jitter buffer, decode, compositor). Frames
# not read are counted: __late (the element had moved on to a newer frame when the
# callback ran: reading that one would pass for a faster path), __blurred (a cell of the
# stamp neither dark nor light: a picture still coarse at the start of a call), __misreads
# (the stamp's check failed, or it gave no sane latency). window.__presented: the
# element's count of presented frames at the first and the latest callback -- a callback
# runs at most once per page update, so frames presented while the page's main thread
# is busy (reading a stamp) have none: they are neither read nor counted above. The stamp
# (``appliance/media/pattern.py``): 30 bits of milliseconds, then 10 bits of that time
# modulo 1021.
READER = """
window.__latency = []; window.__split = [];
window.__late = 0; window.__blurred = 0; window.__misreads = 0; window.__presented = [null, 0];
window.__readStamps = (video) => {
  const BITS = 40, CHECK_BITS = 10, CHECK = 1021, MOD = 2 ** 30;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  // the stamp of the picture on the canvas, or null when a cell is neither dark nor light:
  // each bit is the mean luma of the middle half of its cell, over the cell's middle rows
  const read = (w, h) => {
    const cell = Math.max(2, Math.floor(h / 24)) & ~1;
    const rows = Math.max(1, cell >> 1);
    const band = ctx.getImageData(0, h - cell + (cell >> 2), w, rows).data;
    let stamp = 0;
    for (let b = 0; b < BITS; b++) {
      const left = Math.floor(((4 * b + 1) * w) / (4 * BITS));
      const right = Math.max(left + 1, Math.floor(((4 * b + 3) * w) / (4 * BITS)));
      let sum = 0;
      for (let r = 0; r < rows; r++) {
        for (let x = left; x < right; x++) sum += band[4 * (r * w + x)];
      }
      const mean = sum / (rows * (right - left));
      if (mean > 80 && mean < 176) return null;
      stamp = stamp * 2 + (mean >= 128 ? 1 : 0);
    }
    return stamp;
  };
  const onFrame = (now, meta) => {
    video.requestVideoFrameCallback(onFrame);
    window.__presented[1] = meta.presentedFrames;
    window.__presented[0] ??= meta.presentedFrames;
    const frame = new VideoFrame(video);
    const same = Math.abs(frame.timestamp - meta.mediaTime * 1e6) < 500;
    const w = meta.width, h = meta.height;
    if (same) {
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(frame, 0, 0, w, h);
    }
    frame.close();
    if (!same) { window.__late += 1; return; }
    const value = read(w, h);
    if (value === null) { window.__blurred += 1; return; }
    const stamp = Math.floor(value / 2 ** CHECK_BITS);
    if (value % 2 ** CHECK_BITS !== stamp % CHECK) { window.__misreads += 1; return; }
    const shown = (performance.timeOrigin + meta.expectedDisplayTime) % MOD;
    const ms = (shown - stamp + MOD) % MOD;
    if (ms < 5000) window.__latency.push(ms); else window.__misreads += 1;
    if (ms < 5000 && meta.receiveTime) {
      const got = (performance.timeOrigin + meta.receiveTime) % MOD;
      window.__split.push([(got - stamp + MOD) % MOD, meta.expectedDisplayTime - meta.receiveTime]);
    }
  };
  video.requestVideoFrameCallback(onFrame);
};
window.__pcs = [];
const NativePC = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePC {
  constructor(...args) { super(...args); window.__pcs.push(this); }
};
new MutationObserver(() => {
  for (const v of document.querySelectorAll('[data-testid=remote-tiles] video')) {
    if (!v.__stamped) { v.__stamped = true; window.__readStamps(v); }
  }
}).observe(document, { childList: true, subtree: true });
"""

# A 1280x720 canvas stamped like the station's test pattern (its capture time, then the
# check), redrawn every animation frame: ``stamped()`` returns it (pasted into a function).
STAMPED = """
const stamped = () => {
  const BITS = 40, W = 1280, H = 720, MOD = 2 ** 30;
  const canvas = document.createElement('canvas');
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext('2d');
  const cell = Math.max(2, Math.floor(H / 24)) & ~1;
  const draw = () => {
    ctx.fillStyle = '#405060'; ctx.fillRect(0, 0, W, H - cell);
    ctx.fillStyle = '#fff'; ctx.fillRect((performance.now() / 4) % W, H / 2, 80, 80);
    const stamp = Math.floor(performance.timeOrigin + performance.now()) % MOD;
    const value = stamp * 1024 + (stamp % 1021);  // the station's stamp: time, then check
    for (let b = 0; b < BITS; b++) {
      const bit = Math.floor(value / 2 ** (BITS - 1 - b)) % 2;
      ctx.fillStyle = bit ? '#ebebeb' : '#101010';
      ctx.fillRect(Math.floor((b * W) / BITS), H - cell, Math.ceil(W / BITS), cell);
    }
    requestAnimationFrame(draw);
  };
  draw();
  return canvas;
};
"""

# Chromium to itself: a stamped canvas, sent from one peer connection to another.
LOOPBACK = (
    "async () => {"
    + STAMPED
    + """
  const canvas = stamped();
  const stream = canvas.captureStream(30);
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  for (const track of stream.getTracks()) a.addTrack(track, stream);
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.append(video);
  b.ontrack = (e) => { video.srcObject = e.streams[0]; window.__readStamps(video); };
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  window.__loopback = [a, b];
}
"""
)


# Where a received frame spends its time in Chromium (getStats, averages per frame, ms):
# the jitter buffer, decoding, receive-to-decoded; and the sender's encode (Chromium's own,
# for the reference).
STATS = """
async () => {
  const out = {};
  for (const pc of window.__pcs) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.jitterBufferEmittedCount) {
        out.audio_jitter_buffer = 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount;
      }
      if (s.kind !== 'video') return;
      if (s.type === 'inbound-rtp' && s.framesDecoded) {
        out.jitter_buffer = 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount;
        out.jitter_target = 1000 * (s.jitterBufferTargetDelay || 0) / s.jitterBufferEmittedCount;
        out.decode = 1000 * s.totalDecodeTime / s.framesDecoded;
        out.receive_to_decoded = 1000 * (s.totalProcessingDelay || 0) / s.framesDecoded;
        out.fps = s.framesPerSecond || 0;
      }
      if (s.type === 'outbound-rtp' && s.framesEncoded) {
        out.encode = 1000 * s.totalEncodeTime / s.framesEncoded;
      }
    });
  }
  return out;
}
"""


def station_encode_ms(frames: int = 60) -> float:
    """The station's H.264 encode of one 1280x720 test-pattern frame (ms, median), with
    the encoder settings of a call, measured in this process."""
    from appliance.media.encoder import VideoEncoder
    from appliance.media.pattern import PatternPainter

    painter = PatternPainter(1280, 720)
    encoder = VideoEncoder("H264", width=1280, height=720, fps=30, bitrate=1_500_000)
    took = []
    for index in range(frames):
        frame = painter.paint(index)
        frame.pts = index * 3000
        start = time.perf_counter()
        encoder.encode(frame, keyframe=index == 0)
        took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took[1:])


def split(page: Page) -> str:
    """The medians of the two parts of the frames' latency (see ``READER``)."""
    rows = page.evaluate("() => window.__split")
    if not rows:
        return "no receive times"
    sent = statistics.median(row[0] for row in rows)
    shown = statistics.median(row[1] for row in rows)
    return f"capture -> received {sent:.1f}, received -> display {shown:.1f}"


def unread(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {cause}" for cause, count in counts.items())


def breakdown(stats: dict[str, float]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in sorted(stats.items()))


def collect(page: Page, seconds: float) -> tuple[list[float], dict[str, int]]:
    """Latencies (ms) of the frames presented over ``seconds``, after the first second,
    and how many frames were not read, by cause (see ``READER``)."""
    page.wait_for_function("() => window.__latency.length > 5", timeout=30_000)
    page.wait_for_timeout(1000)
    page.evaluate(
        "() => { window.__latency = []; window.__split = [];"
        " window.__late = window.__blurred = window.__misreads = 0;"
        " window.__presented = [null, 0]; }"
    )
    page.wait_for_timeout(seconds * 1000)
    latency, counts = page.evaluate(
        "() => [window.__latency, {late: window.__late, blurred: window.__blurred,"
        " misread: window.__misreads, 'without a callback': window.__presented[1]"
        " - (window.__presented[0] ?? 0) + 1 - window.__latency.length - window.__late"
        " - window.__blurred - window.__misreads}]"
    )
    return [float(ms) for ms in latency], {k: int(v) for k, v in counts.items()}


def test_glass_to_glass(
    live_station: Any,
    pages: Pages,
    kiosk: AnsweringKiosk,
) -> None:
    # the reference: Chromium to itself, in a page of the station's origin
    reference_page = pages.open(live_station.base_url + "/")
    reference_page.evaluate(f"() => {{ {READER} }}")
    reference_page.evaluate(LOOPBACK)
    reference, reference_unread = collect(reference_page, SECONDS)
    reference_split = split(reference_page)
    reference_page.evaluate("() => { window.__pcs = window.__loopback; }")
    reference_stats = reference_page.evaluate(STATS)
    reference_page.close()

    assert kiosk.idle.wait(20)
    context = pages.browser.new_context(viewport={"width": 1280, "height": 800})
    pages.contexts.append(context)
    context.add_init_script(READER)
    guest = context.new_page()
    guest.goto(live_station.guest_link(label="Latency"))
    guest.locator("#name").fill("Latency")
    guest.get_by_test_id("start-call").click()
    station, station_unread = collect(guest, SECONDS)
    station_stats = guest.evaluate(STATS)
    station_split = split(guest)
    encode_ms = station_encode_ms()

    r50, r95 = percentiles(reference)
    s50, s95 = percentiles(station)
    print(f"\nB2 glass-to-glass at 1280x720@30 on loopback, {SECONDS} s each:")
    print(f"  Chromium -> Chromium (reference) p50 {r50:5.0f} ms  p95 {r95:5.0f} ms  "
          f"({len(reference)} frames; not read: {unread(reference_unread)})")  # fmt: skip
    print(f"  station -> Chromium               p50 {s50:5.0f} ms  p95 {s95:5.0f} ms  "
          f"({len(station)} frames; not read: {unread(station_unread)})")  # fmt: skip
    targets = f"target p95 <= {TARGET_P95_MS} ms, ratio <= {TARGET_RATIO}"
    print(f"  ratio p95 {s95 / r95:.2f}   ({targets})")
    print("  where a frame's time goes, ms per frame (medians, the frames' receive times):")
    print(f"    reference: {reference_split}")
    print(f"    station:   {station_split}")
    print("  and in the receiving browser (getStats averages):")
    print(f"    reference: {breakdown(reference_stats)}")
    print(f"    station:   {breakdown(station_stats)}, station encode {encode_ms:.1f}")
    print(f"  machine load (1 min) {os.getloadavg()[0]:.1f}")
    # the stamps were read: frames kept coming (at least 3 fps however loaded the machine),
    # the reference's all but read whole, and most of the station's (a frame presented
    # with a wrong cell fails the stamp's check and is left out, counted as misread)
    assert len(reference) >= SECONDS * 3 and reference_unread["misread"] <= len(reference) // 20
    assert len(station) >= SECONDS * 3 and station_unread["misread"] <= len(station) // 4


# The reference on the test bed: a Chromium at home (beside the station) sends the same
# stamped canvas as LOOPBACK to the phone's Chromium, its peer connection set up through
# Playwright (the whole offer and answer, candidates gathered first).
SEND_CANVAS = (
    "async (iceServers) => {"
    + STAMPED
    + """
  const canvas = stamped();
  const stream = canvas.captureStream(30);
  const pc = new RTCPeerConnection({ iceServers });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  await pc.setLocalDescription();
  await window.__gathered(pc);
  window.__sender = pc;
  return pc.localDescription.sdp;
}
"""
)
RECEIVE_CANVAS = """
async ([offer, iceServers]) => {
  const pc = new RTCPeerConnection({ iceServers });
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.append(video);
  pc.ontrack = (e) => { video.srcObject = e.streams[0]; window.__readStamps(video); };
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  await pc.setLocalDescription();
  await window.__gathered(pc);
  window.__pcs = [pc];
  return pc.localDescription.sdp;
}
"""
# The candidate types of each of the page's connected paths, e.g. ['relay', 'srflx'].
PATHS = """
async () => {
  const paths = [];
  for (const pc of window.__pcs) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        paths.push([stats.get(s.localCandidateId).candidateType,
                    stats.get(s.remoteCandidateId).candidateType]);
      }
    });
  }
  return paths;
}
"""
GATHERED = """
window.__gathered = (pc) => new Promise((done) => {
  if (pc.iceGatheringState === 'complete') return done();
  pc.addEventListener('icegatheringstatechange', () => {
    if (pc.iceGatheringState === 'complete') done();
  });
  setTimeout(done, 5000);
});
"""


def turn_servers(secret: str, turn_addr: str) -> list[dict[str, str]]:
    """coturn's short-lived credentials (``use-auth-secret``), as the station mints them."""
    import base64
    import hashlib
    import hmac

    username = f"{int(time.time()) + 600}:b2-reference"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return [{
        "urls": f"turn:{turn_addr}:3478?transport=udp",
        "username": username,
        "credential": base64.b64encode(digest).decode(),
    }]  # fmt: skip


def test_glass_to_glass_on_the_test_bed(tmp_path: Any, pages: Pages) -> None:
    """B2 on the network test bed (``tests/net``): a phone behind the carrier's symmetric
    NAT calls the station at home, its media through coturn; the reference is Chromium
    at home sending the stamped canvas to the same phone through the same relay. No
    cap, no loss: what the NATs and the relay add, and whether the station's path keeps
    its ratio there."""
    from tests.net.chromium import join, launch_phone
    from tests.net.conftest import testbed
    from tests.net.services import SECRET, start_station, start_turn
    from tests.net.testbed import HOME, PHONES, TURN_ADDR

    chromium = pages.browser.browser_type  # this session's Playwright, in the namespaces
    with testbed("symmetric"):
        turn = start_turn(tmp_path, SECRET)
        station = start_station(tmp_path, turn_secret=SECRET)
        browsers = []
        try:
            phone = launch_phone(chromium, PHONES[0], tmp_path)
            home = launch_phone(chromium, HOME, tmp_path)
            browsers = [phone, home]
            viewport = {"width": 1280, "height": 800}
            ice = turn_servers(SECRET, TURN_ADDR)
            sender = home.new_page(viewport=viewport)
            sender.evaluate(f"() => {{ {GATHERED} }}")
            receiver = phone.new_page(viewport=viewport)
            receiver.evaluate(f"() => {{ {READER} {GATHERED} }}")
            offer = sender.evaluate(SEND_CANVAS, ice)
            answer = receiver.evaluate(RECEIVE_CANVAS, [offer, ice])
            sender.evaluate(
                "(sdp) => window.__sender.setRemoteDescription({type: 'answer', sdp})", answer
            )
            reference, reference_unread = collect(receiver, SECONDS)
            reference_split = split(receiver)
            reference_path = receiver.evaluate(PATHS)
            receiver.close()
            sender.close()

            guest = join(phone, "Latency", viewport=(1280, 800), script=READER)
            station_frames, station_unread = collect(guest, SECONDS)
            station_split = split(guest)
            station_path = guest.evaluate(PATHS)
            guest.close()
        finally:
            for browser in browsers:
                browser.close()
            station.kill()
            station.wait(timeout=10)
            turn.kill()
            turn.wait(timeout=10)

    r50, r95 = percentiles(reference)
    s50, s95 = percentiles(station_frames)
    print(f"\nB2 glass-to-glass at 1280x720@30 on the test bed (phone behind symmetric NAT,"
          f" media through coturn), {SECONDS} s each:")  # fmt: skip
    print(f"  Chromium at home -> phone (reference) p50 {r50:5.0f} ms  p95 {r95:5.0f} ms  "
          f"({len(reference)} frames; not read: {unread(reference_unread)})")  # fmt: skip
    print(f"  station -> phone                      p50 {s50:5.0f} ms  p95 {s95:5.0f} ms  "
          f"({len(station_frames)} frames; not read: {unread(station_unread)})")  # fmt: skip
    print(
        f"  ratio p95 {s95 / r95:.2f}   (target p95 <= {TARGET_P95_MS} ms, ratio <= {TARGET_RATIO})"
    )
    print(f"    reference: {reference_split}")
    print(f"    station:   {station_split}")
    print(f"  the path (the phone's candidate, the far end's): reference {reference_path},"
          f" station {station_path}")  # fmt: skip
    assert len(reference) >= SECONDS * 3 and reference_unread["misread"] <= len(reference) // 20
    assert len(station_frames) >= SECONDS * 3
    assert station_unread["misread"] <= len(station_frames) // 4

"""How far away a phone reads the kiosk's QR code.

The kiosk is rendered in real Chromium at 800x480 (the 7" panel, 154 mm wide) and at
1920x1080 (a 43" TV, 952 mm wide). A phone camera is simulated: 70° horizontal field of
view, a 1280x720 frame. At a distance d the frame spans 2·d·tan(35°), so the panel
covers 1280 · panel width / that many pixels; the screenshot is averaged down to that
size (what the sensor integrates), blurred (lens, focus, a steady hand) and given
sensor noise, then zxing-cpp decodes it. A phone's scanner reads video, not one photo:
the code scans from a distance when one of the first three frames there (a tenth of a
second at 30 fps, each with its own sensor noise) decodes. The test walks away in steps
and reports the farthest distance up to which every step scanned (figures in
docs/benchmarks.md). With one frame per step, one unlucky noise draw at a step where
the modules alias with the pixels ended the walk: the same code read to 1.4 m or 1.6 m.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zxingcpp  # the test extra: a missing one fails, never skips

from tests.browser_kit import SHOTS, Browser, Pages, expect

pytestmark = pytest.mark.browser

from PIL import Image, ImageFilter  # noqa: E402 - after the skips

FOV_DEGREES = 70.0
FRAME = (1280, 720)
BLUR_PX = 0.8  # Gaussian sigma on the camera frame
NOISE = 6.0  # sensor noise, standard deviation on 0-255
FRAMES = 3  # frames a scanner gets at each distance (0.1 s of 30 fps video)
# screen, viewport, panel width (mm), distances to try (m), target (m)
SCREENS = {
    "7-inch": ((800, 480), 154.0, [x / 100 for x in range(30, 401, 10)], 1.5),
    "43-inch TV": ((1920, 1080), 952.0, [x / 100 for x in range(100, 1501, 25)], 5.0),
}


def camera_frame(shot: Image.Image, panel_mm: float, distance_m: float, seed: int) -> Any:
    """What a 1280x720, 70° camera sees of the screenshot from `distance_m` away."""
    span_mm = 2 * distance_m * 1000 * math.tan(math.radians(FOV_DEGREES / 2))
    scale = FRAME[0] * panel_mm / span_mm / shot.width
    size = (max(1, round(shot.width * scale)), max(1, round(shot.height * scale)))
    panel = shot.resize(size, Image.Resampling.BOX)
    frame = Image.new("L", FRAME, 40)  # a dim room around the screen
    frame.paste(panel, ((FRAME[0] - size[0]) // 2, (FRAME[1] - size[1]) // 2))
    frame = frame.filter(ImageFilter.GaussianBlur(BLUR_PX))
    rng = np.random.default_rng(seed)
    pixels = np.asarray(frame, dtype=np.float64) + rng.normal(0.0, NOISE, (FRAME[1], FRAME[0]))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def decodes(frame: Any, expected: str) -> bool:
    found = zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
    return any(r.text.upper() == expected.upper() for r in found)


def scans(shot: Image.Image, panel_mm: float, distance_m: float, url: str, step: int) -> bool:
    """One of the scanner's first :data:`FRAMES` frames from ``distance_m`` decodes."""
    return any(
        decodes(camera_frame(shot, panel_mm, distance_m, seed=step * FRAMES + k), url)
        for k in range(FRAMES)
    )


def farthest(shot: Image.Image, panel_mm: float, distances: list[float], url: str) -> float:
    """The farthest distance up to which every step scanned (0: not even the first)."""
    best = 0.0
    for i, d in enumerate(distances):
        if not scans(shot, panel_mm, d, url, step=i):
            break
        best = d
    return best


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, float]]:
    found: dict[str, float] = {}
    yield found
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS.parent / "qr-distance.json").write_text(json.dumps(found, indent=2))


@pytest.mark.parametrize("screen", list(SCREENS))
def test_kiosk_qr_scans_across_the_room(
    live_station: Any, browser: Browser, screen: str, results: dict[str, float]
) -> None:
    (width, height), panel_mm, distances, target = SCREENS[screen]
    pages = Pages(browser)
    try:
        kiosk = pages.open(
            live_station.kiosk_url, viewport={"width": width, "height": height}, has_touch=True
        )
        qr = kiosk.get_by_test_id("kiosk-qr")
        expect(qr).to_be_visible()
        kiosk.wait_for_function(
            "() => { const i = document.querySelector('[data-testid=kiosk-qr]');"
            " return i.complete && i.naturalWidth > 0; }"
        )
        url = qr.get_attribute("data-url")
        assert url and "/j/" in url, url
        # The layout at rest: the same box three reads in a row (a busy renderer can be
        # caught with the code still growing into its place, which reads as a shorter reach).
        boxes = [qr.bounding_box() for _ in range(3)]
        while len({str(b) for b in boxes[-3:]}) > 1 and len(boxes) < 60:
            kiosk.wait_for_timeout(100)
            boxes.append(qr.bounding_box())
        box = boxes[-1]
        assert box
        # The code fills the height the layout leaves it.
        assert box["height"] >= 0.85 * height, box
        png = kiosk.screenshot()
        assert qr.get_attribute("data-url") == url, "the code rotated under the screenshot"
        shot = Image.open(io.BytesIO(png)).convert("L")
        assert shot.size == (width, height)

        # A check that can fail: up close it decodes, from 30 m no frame does.
        assert decodes(camera_frame(shot, panel_mm, distances[0], seed=0), url)
        assert not scans(shot, panel_mm, 30.0, url, step=0)

        reach = farthest(shot, panel_mm, distances, url)
        results[screen] = reach
        print(
            f"\nkiosk QR on the {screen} ({width}x{height}, {panel_mm:g} mm): "
            f"decodes up to {reach:.2f} m (target {target} m)"
        )
        assert reach >= target, f"{screen}: decodes only up to {reach} m"
        assert pages.errors == []
    finally:
        pages.close()

"""Pictures the station draws itself: the moving test pattern and "camera unavailable".

Everything Pillow draws is drawn once per size; a test-pattern frame is then a copy
of the pre-rendered YUV picture plus a moving box and the clock and frame counter
blitted from pre-rendered digit tiles, so a frame costs well under a millisecond
even at 1280x720 (see ``tests/test_media_sources.py``)::

    painter = PatternPainter(1280, 720)
    frame = painter.paint(index=42, now=time.time())   # an av.VideoFrame, yuv420p
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
)
GLYPHS = "0123456789:.# "
BLACK, WHITE = 16, 235
# The capture time, in milliseconds since the epoch modulo 2**STAMP_TIME_BITS, then a
# check (that time modulo STAMP_CHECK, a prime: any one wrong bit, and almost any few,
# break it), drawn as a strip of black (0) and white (1) cells along the bottom edge, most
# significant bit first: a page reads it back from decoded frames to measure
# glass-to-glass latency (tests/bench/test_bench_latency.py) and drops a frame whose check
# fails. Cells are a 40th of the width: they survive H.264 at any rung.
STAMP_TIME_BITS, STAMP_CHECK_BITS, STAMP_CHECK = 30, 10, 1021
STAMP_BITS = STAMP_TIME_BITS + STAMP_CHECK_BITS


def stamp_value(millis: int) -> int:
    """The bits the strip shows for ``millis``: the time, then its check.

    >>> stamp_value(1021 * 5 + 7) == ((1021 * 5 + 7) << 10) | 7
    True
    """
    time_part = millis % (1 << STAMP_TIME_BITS)
    return (time_part << STAMP_CHECK_BITS) | (time_part % STAMP_CHECK)


Plane = npt.NDArray[np.uint8]


def even(value: int) -> int:
    """yuv420p needs even sizes."""
    return max(2, value - value % 2)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A bundled-in-Debian monospace font, else Pillow's own."""
    for path in FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def planes(yuv: Plane, width: int, height: int) -> tuple[Plane, Plane, Plane]:
    """Views of the Y, U and V planes of a ``(height * 3 // 2, width)`` yuv420p array."""
    flat = yuv.reshape(-1)
    ysize, csize = width * height, (width // 2) * (height // 2)
    y = flat[:ysize].reshape(height, width)
    u = flat[ysize : ysize + csize].reshape(height // 2, width // 2)
    v = flat[ysize + csize : ysize + 2 * csize].reshape(height // 2, width // 2)
    return y, u, v


def from_planes(y: Plane, u: Plane, v: Plane) -> av.VideoFrame:
    height, width = y.shape
    flat = np.concatenate((y.reshape(-1), u.reshape(-1), v.reshape(-1)))
    return av.VideoFrame.from_ndarray(flat.reshape(height * 3 // 2, width), format="yuv420p")


def to_yuv(image: Image.Image) -> Plane:
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    return yuv_array(frame)


def yuv_array(frame: av.VideoFrame) -> Plane:
    """The ``(height * 3 // 2, width)`` array of a yuv420p frame."""
    return np.asarray(frame.to_ndarray(), dtype=np.uint8)


@lru_cache(maxsize=4)
def _unavailable(width: int, height: int, text: str) -> Plane:
    image = Image.new("RGB", (width, height), (40, 40, 48))
    draw = ImageDraw.Draw(image)
    face = font(max(10, height // 14))
    box = draw.textbbox((0, 0), text, font=face)
    x, y = (width - (box[2] - box[0])) // 2, (height - (box[3] - box[1])) // 2
    draw.text((x, y), text, fill=(230, 230, 230), font=face)
    return to_yuv(image)


def unavailable_frame(width: int, height: int, text: str = "camera unavailable") -> av.VideoFrame:
    """A grey picture saying the camera is gone, shown while it is re-opened."""
    yuv = _unavailable(even(width), even(height), text)
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


class PatternPainter:
    """Draws test-pattern frames of one size: colour bars, a moving box, a clock
    (wall time), a frame counter and the capture time as a strip of bits."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = even(width), even(height)
        w, h = self.width, self.height
        self._glyph_h = max(8, h // 10) & ~1
        face = font(self._glyph_h * 4 // 5)
        self._glyph_w = max(4, int(face.getlength("0")) + 2) & ~1
        self._glyphs = {c: self._render_glyph(c, face) for c in GLYPHS}
        self._text_x, self._text_y = w // 20 & ~1, (h * 7 // 10) & ~1
        self._box = max(2, h // 9) & ~1
        self._base = self._render_base()

    def _render_glyph(self, char: str, face: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Plane:
        tile = Image.new("L", (self._glyph_w, self._glyph_h), 0)
        ImageDraw.Draw(tile).text((1, self._glyph_h // 10), char, fill=255, font=face)
        luma = np.asarray(tile, dtype=np.float32) / 255.0
        return (BLACK + luma * (WHITE - BLACK)).astype(np.uint8)

    def _render_base(self) -> Plane:
        w, h = self.width, self.height
        image = Image.new("RGB", (w, h), (0, 0, 0))
        draw = ImageDraw.Draw(image)
        bars = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0),
                (192, 0, 192), (192, 0, 0), (0, 0, 192)]  # fmt: skip
        for i, colour in enumerate(bars):
            draw.rectangle((i * w // 7, 0, (i + 1) * w // 7, h * 9 // 20), fill=colour)
        for x in range(0, w, max(1, w // 64)):
            grey = 255 * x // w
            draw.rectangle((x, h * 9 // 20, x + w // 64, h * 21 // 40), fill=(grey, grey, grey))
        draw.text((w // 20, h * 9 // 10 - h // 30), "Video Station test pattern",
                  fill=(200, 200, 200), font=font(max(8, h // 24)))  # fmt: skip
        return to_yuv(image)

    def paint(self, index: int, now: float | None = None) -> av.VideoFrame:
        """Frame number ``index`` showing wall time ``now`` (default: now)."""
        w, h = self.width, self.height
        yuv = self._base.copy()
        y, u, v = planes(yuv, w, h)
        # the moving box sweeps across the band between the bars and the clock
        size, top = self._box, (h * 27 // 50) & ~1
        span = max(1, w - size)
        x = (index * max(2, w // 90)) % (2 * span)
        x = (x if x < span else 2 * span - x) & ~1
        y[top : top + size, x : x + size] = WHITE
        u[top // 2 : (top + size) // 2, x // 2 : (x + size) // 2] = 128
        v[top // 2 : (top + size) // 2, x // 2 : (x + size) // 2] = 128
        stamp = now if now is not None else time.time()
        clock = (
            time.strftime("%H:%M:%S", time.localtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}"
        )
        self._blit(y, f"{clock} #{index:06d}")
        self._stamp(y, u, v, int(stamp * 1000))
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        return frame

    def _stamp(self, y: Plane, u: Plane, v: Plane, millis: int) -> None:
        w, h = self.width, self.height
        cell_h = max(2, h // 24) & ~1
        top = h - cell_h
        u[top // 2 :, :] = 128
        v[top // 2 :, :] = 128
        value = stamp_value(millis)
        for bit in range(STAMP_BITS):
            left, right = bit * w // STAMP_BITS, (bit + 1) * w // STAMP_BITS
            on = (value >> (STAMP_BITS - 1 - bit)) & 1
            y[top:, left:right] = WHITE if on else BLACK

    def _blit(self, y: Plane, text: str) -> None:
        gw, gh = self._glyph_w, self._glyph_h
        top, left = self._text_y, self._text_x
        if top + gh > self.height:
            return
        for i, char in enumerate(text):
            x = left + i * gw
            if x + gw > self.width:
                break
            y[top : top + gh, x : x + gw] = self._glyphs.get(char, self._glyphs[" "])

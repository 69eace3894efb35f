"""QR codes for guest links: a PNG data URL for pages, text blocks for the terminal.

The smallest version the data fits (larger modules on the same screen: a phone reads
them from further away), then the strongest error correction that still fits that
version; a four-module quiet zone unless the page draws its own. The kiosk's code for a
relay name (``HTTPS://GRANDMA-KITCHEN.RELAY.VIDEOSTATION.EXAMPLE/J/<code>``, 63
characters) is version 3 with correction L; at M it would be version 4, its modules
12 % smaller.
"""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.constants

# Strongest first.
_LEVELS = (
    qrcode.constants.ERROR_CORRECT_H,
    qrcode.constants.ERROR_CORRECT_Q,
    qrcode.constants.ERROR_CORRECT_M,
    qrcode.constants.ERROR_CORRECT_L,
)


def _code(data: str, *, box_size: int, border: int = 4) -> qrcode.QRCode:
    def version(level: int) -> int:
        probe = qrcode.QRCode(error_correction=level)
        probe.add_data(data)
        return int(probe.best_fit())  # counts bits only; make() draws (~35 ms)

    smallest = version(qrcode.constants.ERROR_CORRECT_L)
    level = next(level for level in _LEVELS if version(level) == smallest)
    code = qrcode.QRCode(version=smallest, error_correction=level, box_size=box_size, border=border)
    code.add_data(data)
    code.make(fit=False)
    return code


def png_bytes(data: str, *, box_size: int = 8, border: int = 4) -> bytes:
    code = _code(data, box_size=box_size, border=border)
    image = code.make_image(fill_color="black", back_color="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def png_data_url(data: str, *, box_size: int = 8, border: int = 4) -> str:
    """``border``: the quiet zone in modules (the kiosk draws its code on a white card,
    which adds its own)."""
    png = png_bytes(data, box_size=box_size, border=border)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def terminal_text(data: str) -> str:
    """The code drawn with Unicode half blocks (two modules per character row)."""
    matrix = _code(data, box_size=1).get_matrix()
    lines = []
    for top, bottom in zip(matrix[0::2], [*matrix[1::2], [False] * len(matrix[0])], strict=True):
        line = []
        for upper, lower in zip(top, bottom, strict=True):
            # Terminals are usually dark: draw the light modules (and the quiet zone) as
            # blocks and leave the dark ones blank, so the code reads dark-on-light.
            line.append(
                {(True, True): " ", (True, False): "▄", (False, True): "▀"}.get((upper, lower), "█")
            )
        lines.append("".join(line))
    return "\n".join(lines)

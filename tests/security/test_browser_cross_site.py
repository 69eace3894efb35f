"""Another site's page against the kiosk's codes, in real Chromium (issue 22, item 3).

A hostile page on 127.0.0.2 (another site to the browser) points images at
``/j/<wrong code>`` to lock everyone behind the household's address out of scanning, and
navigates a signed-in household member's browser to ``/j/<live code>`` to swap their
session for a guest one. Both worked on the earlier code (5 minutes of "too many
failed logins"; the household session replaced). All traffic stays on loopback."""

from __future__ import annotations

import html
import http.server
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_kit import Pages, expect, kiosk_code, sign_in, wait_for

from ..conftest import LiveStation

pytestmark = pytest.mark.browser
WRONG = [f"WRONGCODE{c}" for c in "23456789ABCDEFGHJKMNPQRSTUVWXYZ"[:25]]


@pytest.fixture
def hostile(live_station: LiveStation) -> Iterator[dict[str, Any]]:
    """A page server on 127.0.0.2: ``/images`` (25 wrong codes as images) and
    ``/link?to=…`` (a link to click)."""
    station = live_station.base_url
    images = "".join(f'<img src="{station}/j/{code}">' for code in WRONG)

    class HostilePages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/images":
                body = f"<html><body>{images}</body></html>"
            else:
                to = html.escape(urllib.parse.parse_qs(url.query)["to"][0])
                body = f'<html><body><a id="go" href="{to}">a prize</a></body></html>'
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    # port 0: the kernel picks one free on 127.0.0.2 (no race with parallel workers)
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), HostilePages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": f"http://127.0.0.2:{server.server_address[1]}"}
    server.shutdown()
    server.server_close()


def test_another_sites_images_of_wrong_codes_lock_nobody_out(
    live_station: LiveStation, pages: Pages, hostile: dict[str, Any]
) -> None:
    page = pages.open(f"{hostile['base']}/images")
    wait_for(
        lambda: page.evaluate("[...document.images].every((i) => i.complete)"),
        "the hostile page's images to finish",
    )
    # the same address (loopback) now scans the kiosk's live code, as a phone does
    code = kiosk_code(live_station)
    phone = pages.phone(f"{live_station.base_url}/j/{code}")
    expect(phone.get_by_test_id("lobby")).to_be_visible()
    assert phone.evaluate("fetch('/api/auth/me').then((r) => r.json())")["role"] == "guest"
    # and the images counted nothing: 20 wrong codes from this address are still refused
    # one by one (303 to the start page), not with 429
    opener = urllib.request.build_opener(_NoRedirect)
    for wrong in WRONG[:20]:
        request = urllib.request.Request(
            f"{live_station.base_url}/j/{wrong}", headers={"Sec-Fetch-Dest": "document"}
        )
        try:
            opener.open(request)
        except urllib.error.HTTPError as exc:
            assert exc.code == 303, (wrong, exc.code)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_a_cross_site_navigation_to_a_live_code_keeps_the_household_session(
    live_station: LiveStation, pages: Pages, hostile: dict[str, Any]
) -> None:
    user = sign_in(pages, live_station)
    assert user.evaluate("fetch('/api/auth/me').then((r) => r.json())")["role"] == "user"
    code = kiosk_code(live_station)
    user.goto(f"{hostile['base']}/link?to={live_station.base_url}/j/{code}")
    user.click("#go")
    user.wait_for_url(f"{live_station.base_url}/**")
    expect(user.get_by_test_id("lobby")).to_be_visible()
    me = user.evaluate("fetch('/api/auth/me').then((r) => r.json())")
    assert me["role"] == "user", me  # still the household member, in the station's room
    assert "code=" not in user.url, "the code must leave the address bar"
    # and a phone that came the same way, signed in to nothing, gets in as a guest
    phone = pages.phone(f"{hostile['base']}/link?to={live_station.base_url}/j/{code}")
    phone.click("#go")
    expect(phone.get_by_test_id("lobby")).to_be_visible()
    assert phone.evaluate("fetch('/api/auth/me').then((r) => r.json())")["role"] == "guest"

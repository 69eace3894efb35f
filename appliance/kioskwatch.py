"""The kiosk session's watchdog: is the station's own screen in the station room?

``videostation kiosk-watch`` runs beside the compositor in the kiosk session
(``kiosk-session``). It signs in with the kiosk key like the screen does and reads
``kiosk_screen`` from ``/api/health/``. It returns 1 -- and the session then stops the
compositor, so the kiosk unit's ``Restart=always`` starts a fresh Chromium -- when the
screen has not joined within ``grace`` seconds of the start, or was lost and did not
come back within ``lost`` seconds. A page that stays blank (e.g. Chromium's network
service dying during the first navigation), a crashed renderer that leaves a "sad tab",
or a page that never reconnects after a network hiccup all end there. While the service
itself does not answer, the clock stops: that is systemd's business, not the screen's.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from .config import Config

log = logging.getLogger(__name__)


class _Client:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def _request(self, path: str, body: object = None) -> tuple[int, dict[str, object]]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Origin": self.base}
        if data is not None:
            headers["Content-Type"] = "application/json"
        # The base is the config's own http(s) URL of the station, never user input.
        request = urllib.request.Request(self.base + path, data=data, headers=headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def screen(self) -> str | None:
        """``connected``/``absent``, or None when the service does not answer."""
        try:
            _, body = self._request("/api/health/")
            if "kiosk_screen" not in body:  # not signed in (yet, or the service restarted)
                login, _ = self._request("/api/auth/kiosk", {"key": self.key})
                if login != 200:
                    log.warning("kiosk-watch: kiosk sign-in answered %s", login)
                    return None
                _, body = self._request("/api/health/")
        except (OSError, ValueError):
            return None
        value = body.get("kiosk_screen")
        return value if isinstance(value, str) else None


def watch(
    config: Config,
    key: str,
    *,
    grace: float,
    lost: float,
    every: float = 5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Return 1 once the screen is missing for too long; never returns otherwise."""
    client = _Client(config.kiosk_base_url, key)
    deadline: float | None = clock() + grace  # None while the screen is connected
    seen = False
    while True:
        state = client.screen()
        now = clock()
        if state == "connected":
            if not seen or deadline is not None:
                print("kiosk-watch: the screen is in the station room", flush=True)
            seen, deadline = True, None
        elif state is None:
            # The service is away: give the page time to reconnect once it is back.
            if deadline is not None:
                deadline = max(deadline, now + lost)
        else:
            if deadline is None:
                deadline = now + lost
                print(f"kiosk-watch: the screen left; waiting {lost:.0f} s", flush=True)
            if now >= deadline:
                what = "was lost and did not come back" if seen else "never joined"
                print(f"kiosk-watch: the screen {what}: restarting the kiosk", flush=True)
                return 1
        sleep(every)

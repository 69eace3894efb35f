"""Debian's Firefox ESR as a guest, driven offline through Marionette (``marionette_driver``
from PyPI; no geckodriver, no Playwright Firefox).

:func:`launch` starts ``firefox-esr --headless --marionette`` on a fresh profile whose
prefs fake the camera and microphone, grant them without asking, let media autoplay and
keep Firefox off the network (no updates, telemetry, captive-portal or connectivity
probes, safe browsing, remote settings, DNS over HTTPS...): the only traffic is to the
station on this machine. :class:`Firefox` navigates, runs script in the page and waits.

Page globals: Marionette runs a script in a sandbox. Its default sandbox (the one
``marionette_driver`` asks for) sees the page through Xray wrappers: the DOM, but not
what the page's own scripts set on ``window`` (``window.videostation`` is undefined
there; ``window.wrappedJSObject.videostation`` reaches it, and then every object it
returns is a waived wrapper). :meth:`Firefox.js` asks for no named sandbox
(``sandbox=None``): Marionette then evaluates in a fresh sandbox without Xrays over the
page's window, which sees page globals as the page does, so the same script a
Chromium test passes to ``page.evaluate`` works here.

A test module imports this first: it skips the module, or fails it under ``CI=true``,
when firefox-esr or marionette_driver is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.helpers import skip_or_fail

FIREFOX = "/usr/bin/firefox-esr"

try:
    with warnings.catch_warnings():  # mozinfo and mozrunner import deprecated modules
        warnings.simplefilter("ignore", DeprecationWarning)
        from marionette_driver.errors import MarionetteException
        from marionette_driver.marionette import Marionette
except ImportError:  # pragma: no cover - depends on the machine
    skip_or_fail("marionette_driver is not installed (pip install -e '.[test]')", module_level=True)
if not shutil.which(FIREFOX):
    skip_or_fail(f"{FIREFOX} not found (apt install firefox-esr)", module_level=True)

# Everything Firefox would fetch by itself points nowhere (port 1 on loopback refuses at
# once), and the features that phone home are off.
NOWHERE = "http://127.0.0.1:1/"
PREFS: dict[str, Any] = {
    # fake camera and microphone, granted without a prompt; media plays without a gesture
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # no first-run pages, default-browser check or session restore
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "browser.tabs.warnOnClose": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    # no updates of the browser, its add-ons or its media plug-ins (OpenH264)
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.update.url": NOWHERE,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "media.gmp-manager.url": NOWHERE,
    "media.gmp-provider.enabled": False,
    # no telemetry, studies or crash reports
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": NOWHERE,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "browser.crashReports.unsubmittedCheck.autoSubmit2": False,
    "browser.ping-centre.telemetry": False,
    # no captive-portal, connectivity, safe-browsing, remote-settings or region lookups
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": NOWHERE,
    "browser.safebrowsing.provider.google4.updateURL": NOWHERE,
    "services.settings.server": NOWHERE,
    "browser.region.network.url": NOWHERE,
    "browser.region.update.enabled": False,
    "browser.search.update": False,
    "geo.provider.network.url": NOWHERE,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.newtabpage.activity-stream.feeds.system.topstories": False,
    "browser.newtabpage.activity-stream.feeds.snippets": False,
    "browser.contentblocking.report.lockwise.enabled": False,
    "identity.fxaccounts.enabled": False,
    "signon.rememberSignons": False,
    # Marionette: its own recommended prefs too (quiet, no background traffic)
    "remote.prefs.recommended": True,
    "marionette.log.level": "Warn",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user_js(prefs: dict[str, Any]) -> str:
    """The profile's ``user.js``: one ``user_pref`` line per pref.

    >>> user_js({"a.b": True, "c": "x"})
    'user_pref("a.b", true);\\nuser_pref("c", "x");\\n'
    """
    return "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())


class Firefox:
    """One headless Firefox, one tab, one Marionette session."""

    def __init__(self, proc: subprocess.Popen[bytes], client: Any, log_path: Path) -> None:
        self.proc = proc
        self.client = client
        self.log_path = log_path

    def goto(self, url: str) -> None:
        self.client.navigate(url)

    def js(self, script: str, *args: Any, timeout: float = 30.0) -> Any:
        """The value of ``script`` (a function body: ``return ...``, may ``await``) run in
        the page with its globals (see the module's docstring); ``args`` are
        ``arguments[0]``... Async: a promise the body returns is awaited."""
        body = f"return (async () => {{ {script} }})();"
        return self.client.execute_script(
            body, script_args=args, sandbox=None, script_timeout=int(timeout * 1000)
        )

    def wait(self, script: str, what: str, *args: Any, timeout: float = 45.0) -> Any:
        """Polls ``script`` (as :meth:`js`) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = self.js(script, *args)
            if last:
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out in Firefox waiting for {what} (last: {last!r})")
            time.sleep(0.1)

    def text(self, selector: str) -> str:
        return str(
            self.js(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                selector,
            )
        )

    def click(self, selector: str) -> None:
        """Clicks the first element matching ``selector`` once it is there and enabled."""
        self.wait(
            "const e = document.querySelector(arguments[0]);"
            " return !!e && !e.disabled && e.getClientRects().length > 0;",
            f"{selector} to be clickable",
            selector,
        )
        self.js("document.querySelector(arguments[0]).click(); return true;", selector)

    def fill(self, selector: str, value: str) -> None:
        """Types ``value`` into an input as a person would (an ``input`` event fires)."""
        self.wait("return !!document.querySelector(arguments[0]);", selector, selector)
        self.js(
            "const e = document.querySelector(arguments[0]); e.focus(); e.value = arguments[1];"
            " e.dispatchEvent(new Event('input', {bubbles: true})); return true;",
            selector,
            value,
        )

    def quit(self) -> None:
        """Ends the session and stops Firefox (SIGTERM: it shuts down in order; killed if
        it has not gone in 15 s). marionette_driver's own ``quit`` only stops a Firefox
        it launched itself."""
        with suppress(OSError, MarionetteException):  # a crashed browser: stopped below
            self.client.delete_session()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _connect(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> Any:
    client = Marionette(host="127.0.0.1", port=port, startup_timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"firefox-esr exited with {proc.returncode}: {log_path.read_text()}")
        try:
            client.start_session()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


@contextmanager
def launch(
    *,
    language: str = "en-US",
    width: int = 1280,
    height: int = 800,
    prefs: dict[str, Any] | None = None,
    log_dir: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[Firefox]:
    """A headless firefox-esr with a fresh profile (removed afterwards), asking for
    ``language`` first (``intl.accept_languages``, what ``navigator.languages`` says), its
    window ``width`` x ``height`` (a laptop's; headless Firefox makes a window no
    narrower than 500 px)."""
    profile = Path(tempfile.mkdtemp(prefix="videostation-firefox-"))
    port = free_port()
    all_prefs = {
        **PREFS,
        "marionette.port": port,
        "intl.accept_languages": language,
        "intl.locale.requested": language,
        **(prefs or {}),
    }
    (profile / "user.js").write_text(user_js(all_prefs))
    log_path = (log_dir or profile) / "firefox.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the process
    proc = subprocess.Popen(
        [
            FIREFOX,
            "--headless",
            "--marionette",
            "--no-remote",
            "--new-instance",
            "--profile",
            str(profile),
            "--width",
            str(width),
            "--height",
            str(height),
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**_env(), "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"},
        start_new_session=True,  # its content processes go with it (killpg below)
    )
    firefox = None
    try:
        firefox = Firefox(proc, _connect(port, proc, log_path, timeout), log_path)
        firefox.client.set_window_rect(width=width, height=height)
        yield firefox
    finally:
        if firefox is not None:
            firefox.quit()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_group(proc.pid)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MOZ_")}


def _kill_group(pgid: int) -> None:
    """Any process left in Firefox's session (a content process that outlived it)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)

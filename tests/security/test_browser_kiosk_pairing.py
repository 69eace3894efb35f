"""A kiosk that reloads while its key exchange is rate-limited (issue #7, item 14).

Wrong keys (or, on older services, wrong passwords) from the station's own address
fill the limiter that guards `POST /api/auth/kiosk`; the kiosk page that loads then
gets 429 with Retry-After. It must wait that out and pair, not say "This screen is
not paired" for good.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser_kit import Browser, Pages, expect

pytestmark = pytest.mark.browser

WINDOW = 6


def test_a_rate_limited_kiosk_retries_and_pairs(tmp_path: Path, browser: Browser) -> None:
    from tests.conftest import http_json, start_live, stop_live

    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"[auth]\nlogin_attempts = 1\nlogin_window_seconds = {WINDOW}\n\n"
        '[screen]\npower_command = ""\n'
    )
    live = start_live(tmp_path, "--config", str(cfg))
    pages = Pages(browser)
    try:
        status, headers = 0, None
        for _ in range(40):  # until the limiter in front of the key exchange closes
            status, _, headers = http_json(f"{live.base_url}/api/auth/kiosk", {"key": "wrong"})
            if status == 429:
                break
            assert status == 401, status
        assert status == 429 and headers is not None
        assert 1 <= int(headers["Retry-After"]) <= WINDOW + 1

        kiosk = pages.kiosk(live.kiosk_url)
        expect(kiosk.get_by_test_id("kiosk-pairing")).to_be_visible()
        expect(kiosk.get_by_test_id("pairing-retry")).to_contain_text("Trying again in")
        assert "key=" not in kiosk.url, "the key leaves the address bar while waiting"
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible(timeout=(WINDOW + 20) * 1000)
        expect(kiosk.get_by_test_id("error-page")).to_have_count(0)
        expect(kiosk.get_by_test_id("kiosk-qr")).to_be_visible()
        assert pages.errors == []
    finally:
        pages.close()
        stop_live(live)


def test_the_kiosk_opens_its_page_file_and_pairs(tmp_path: Path, browser: Browser) -> None:
    """Issue 22, item 7: the kiosk session gives Chromium a file (`kiosk-url --page`),
    not the key URL; the file's meta refresh leads to the kiosk page, which pairs and
    drops the key from its address."""
    from tests.conftest import run_cli, start_live, stop_live

    live = start_live(tmp_path)
    pages = Pages(browser)
    try:
        page_file = tmp_path / "run" / "videostation-kiosk.html"
        page_file.parent.mkdir(mode=0o700)
        out = run_cli(
            "kiosk-url", "--state-dir", str(live.state_dir), "--port", str(live.port),
            "--page", str(page_file),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == page_file.as_uri()
        assert "key=" not in out.stdout and page_file.stat().st_mode & 0o777 == 0o600
        kiosk = pages.kiosk(page_file.as_uri())
        expect(kiosk.get_by_test_id("kiosk-idle")).to_be_visible(timeout=30_000)
        assert kiosk.url == f"http://127.0.0.1:{live.port}/#/kiosk"
        assert "key=" not in kiosk.evaluate("location.href")
        assert pages.errors == []
    finally:
        pages.close()
        stop_live(live)

"""The PWA's files over HTTP: versioned code cached for good, gzip, ETags, no escape."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.static import (
    IMMUTABLE,
    StaticSite,
    static_handler,
    web_root,
    without_comment_lines,
)

from .conftest import ServiceHarness

VERSIONED = re.compile(r'src="/v/([0-9a-f]{12})/js/app\.js"')


async def _version(client: TestClient) -> str:
    html = await (await client.get("/")).text()
    found = VERSIONED.search(html)
    assert found, html
    assert f'href="/v/{found[1]}/css/app.css"' in html
    return found[1]


async def test_the_pages_code_is_versioned_immutable_and_gzipped(station: ServiceHarness) -> None:
    client = await station.client()
    index = await client.get("/")
    assert index.headers["Cache-Control"] == "no-cache" and index.headers["ETag"]
    version = await _version(client)
    for path in ("js/app.js", "js/api.js", "css/app.css"):
        resp = await client.get(f"/v/{version}/{path}", headers={"Accept-Encoding": "gzip"})
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == IMMUTABLE
        assert resp.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in resp.headers["Vary"]
        source = (web_root() / path).read_text()
        slim = without_comment_lines(source, line_comments=path.endswith(".js"))
        assert await resp.text() == slim  # the client unzips
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        # a subresource: the document's policies apply to it, its own would be ignored
        assert "Content-Security-Policy" not in resp.headers
    js = await client.get(f"/v/{version}/js/app.js")
    assert js.content_type == "text/javascript"


async def test_the_page_names_every_module_a_guest_link_needs_at_once(
    station: ServiceHarness,
) -> None:
    """``<link rel="modulepreload">`` for the app's and the call page's static imports,
    each served under the version: a first visit fetches them side by side."""
    client = await station.client()
    html = await (await client.get("/")).text()
    version = await _version(client)
    preloaded = re.findall(rf'<link rel="modulepreload" href="/v/{version}/(js/[^"]+)">', html)
    assert {"js/views/room.js", "js/ui/pip.js", "js/protocol.js", "js/api.js"} <= set(preloaded)
    assert "js/views/kiosk.js" not in preloaded  # only the kiosk loads it, when it needs it
    assert html.index("modulepreload") < html.index('<script type="module"')
    for module in preloaded:
        resp = await client.get(f"/v/{version}/{module}")
        assert resp.status == 200 and resp.headers["Cache-Control"] == IMMUTABLE, module


async def test_gzip_only_for_clients_that_ask(station: ServiceHarness) -> None:
    client = await station.client()
    version = await _version(client)
    url = client.make_url(f"/v/{version}/js/app.js")
    raw = aiohttp.ClientSession(auto_decompress=False)
    try:
        # served without its comment-only lines (see without_comment_lines)
        plain = without_comment_lines((web_root() / "js/app.js").read_text()).encode()
        for accept, zipped in (("gzip, br", True), ("identity", False), ("gzip;q=0", False)):
            async with raw.get(url, headers={"Accept-Encoding": accept}) as resp:
                body = await resp.read()
                assert (resp.headers.get("Content-Encoding") == "gzip") is zipped, accept
                assert (gzip.decompress(body) if zipped else body) == plain
                if zipped:
                    assert len(body) < len(plain) / 2
        # a PNG is already compressed: sent as it is
        async with raw.get(client.make_url("/icons/icon-192.png")) as resp:
            assert "Content-Encoding" not in resp.headers and resp.content_type == "image/png"
    finally:
        await raw.close()


async def test_a_repeat_visit_revalidates_with_etags(station: ServiceHarness) -> None:
    client = await station.client()
    for path in ("/", "/manifest.webmanifest", "/sw.js", "/icons/icon-192.png"):
        first = await client.get(path)
        assert first.status == 200
        expected = "public, max-age=604800" if "/icons/" in path or "manifest" in path else None
        assert first.headers["Cache-Control"] == (expected or "no-cache"), path
        if "/icons/" not in path:  # documents, the manifest and the worker: all policies
            assert "frame-ancestors 'none'" in first.headers["Content-Security-Policy"]
        again = await client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status == 304 and await again.read() == b""
        other = await client.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status == 200
    sw = await client.get("/sw.js")
    assert sw.headers["Service-Worker-Allowed"] == "/"


async def test_an_old_versions_url_is_served_but_never_pinned(station: ServiceHarness) -> None:
    client = await station.client()
    resp = await client.get("/v/0123456789ab/js/app.js")
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"


async def test_nothing_outside_the_web_root(station: ServiceHarness) -> None:
    client = await station.client()
    version = await _version(client)
    for path in (
        f"/v/{version}/../../pyproject.toml",
        f"/v/{version}/%2e%2e/%2e%2e/pyproject.toml",
        f"/v/{version}/__init__.py",
        "/v/nothex/js/app.js",
        f"/v/{version}/index.html",  # a document never comes without its policies
        f"/v/{version}/sw.js",
        "/js/",
    ):
        assert (await client.get(path)).status == 404, path


async def test_an_edited_file_gets_a_new_version(tmp_path: Path, aiohttp_client: object) -> None:
    root = tmp_path / "web"
    shutil.copytree(web_root(), root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    app = web.Application()
    app.router.add_get("/{path:.*}", static_handler(StaticSite(root)))
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    before = await _version(client)
    script = root / "js/api.js"
    script.write_text(script.read_text() + "\nexport const edited = 1;\n")
    after = await _version(client)
    assert after != before
    resp = await client.get(f"/v/{after}/js/api.js")
    assert (await resp.text()).endswith("export const edited = 1;\n")
    assert resp.headers["Cache-Control"] == IMMUTABLE
    # the version before the edit is no longer pinned
    assert (await client.get(f"/v/{before}/js/api.js")).headers["Cache-Control"] == "no-cache"


def test_comment_lines_are_blanked_and_every_file_still_parses(tmp_path: Path) -> None:
    """What is served is the code without its comment-only lines (about a third less
    to download), line for line, and Node still parses every module."""
    node = shutil.which("node")
    if node is None:
        from .helpers import skip_or_fail

        skip_or_fail("node is not installed (make deps-test installs nodejs)")
    site = StaticSite(web_root())
    scripts = [name for name in site.files if name.endswith(".js")]
    assert len(scripts) > 15
    raw = served = 0
    for name in scripts:
        source = (web_root() / name).read_text()
        slim = site.files[name].body.decode()
        assert slim.count("\n") == source.count("\n"), name
        assert len(slim) < len(source), f"{name}: no comment line blanked"
        raw += len(gzip.compress(source.encode()))
        served += len(gzip.compress(slim.encode()))
        copy = tmp_path / (name.replace("/", "_") + ".mjs")
        copy.write_text(slim)
        check = subprocess.run([node, "--check", str(copy)], capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stderr}"
    assert served < 0.8 * raw, (raw, served)

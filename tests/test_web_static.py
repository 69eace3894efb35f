"""The PWA in web/, checked without a browser: module graph, CSP-safe HTML,
manifest and icons, service-worker shell, stylesheet rules and the type check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from .helpers import skip_or_fail

WEB = Path(__file__).resolve().parent.parent / "web"
JS = sorted((WEB / "js").rglob("*.js"))
IMPORT_RE = re.compile(
    r"""(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)"""
)


STATIC_IMPORT_RE = re.compile(r"""(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]""")


def imports_of(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [a or b for a, b in IMPORT_RE.findall(text)]


def test_there_is_an_app() -> None:
    assert (WEB / "index.html").is_file()
    assert (WEB / "js" / "app.js") in JS
    assert (WEB / "js" / "protocol.js") in JS


@pytest.mark.parametrize("path", JS, ids=lambda p: str(p.relative_to(WEB)))
def test_every_import_resolves_to_a_file(path: Path) -> None:
    specs = imports_of(path)
    for spec in specs:
        assert spec.startswith(("./", "../")), (
            f"{path.name}: {spec!r} is not a relative module (no bundler, no CDN)"
        )
        assert spec.endswith(".js"), (
            f"{path.name}: {spec!r} needs its extension to load in a browser"
        )
        target = (path.parent / spec).resolve()
        assert target.is_file(), f"{path.name} imports missing {spec}"
        assert WEB in target.parents


def test_every_module_is_reachable_from_app_js() -> None:
    seen: set[Path] = set()
    todo = [WEB / "js" / "app.js"]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        todo += [(cur.parent / s).resolve() for s in imports_of(cur)]
    assert set(JS) - seen == set(), "modules nobody imports (dead code or a forgotten import)"


def test_protocol_module_never_touches_the_dom() -> None:
    text = (WEB / "js" / "protocol.js").read_text(encoding="utf-8")
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    for word in ("document", "window", "location", "localStorage", "navigator"):
        assert not re.search(rf"\b{word}\b", code), f"protocol.js uses {word}"
    for name in (
        "onwelcome",
        "onpeerjoined",
        "onpeerleft",
        "onpeerupdated",
        "oncallstate",
        "ontrack",
        "onpeerclosed",
        "onerror",
        "onstatus",
    ):
        assert f"this.{name} = null" in code, f"protocol.js lacks the {name} callback"


@pytest.mark.parametrize("path", JS, ids=lambda p: str(p.relative_to(WEB)))
def test_no_markup_injection_or_eval(path: Path) -> None:
    code = path.read_text(encoding="utf-8")
    assert ".innerHTML" not in code and "outerHTML" not in code and "insertAdjacentHTML" not in code
    assert not re.search(r"\beval\(|new Function\(", code)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def test_index_html_is_csp_clean_and_links_exist() -> None:
    page = _Html()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    assert page.script_text == [], "inline script: blocked by script-src 'self'"
    scripts = [a for t, a in page.tags if t == "script"]
    assert scripts and all(a.get("src") and a.get("type") == "module" for a in scripts)
    for tag, attrs in page.tags:
        for name in attrs:
            assert not name.startswith("on"), (
                f"inline handler {name} on <{tag}>: blocked by the CSP"
            )
            assert name != "style", f"inline style on <{tag}>: blocked by style-src 'self'"
        assert tag != "style", "<style> element: blocked by style-src 'self'"
        ref = attrs.get("src") or (attrs.get("href") if tag == "link" else None)
        if ref:
            assert not re.match(r"^(https?:)?//", ref), (
                f"{ref}: no CDN, the appliance works offline"
            )
            assert (WEB / ref.lstrip("/")).is_file(), f"index.html refers to missing {ref}"
    rels = {a.get("rel") for t, a in page.tags if t == "link"}
    assert {"manifest", "stylesheet"} <= rels
    metas = {a.get("name"): a.get("content") for t, a in page.tags if t == "meta"}
    assert "viewport-fit=cover" in (metas.get("viewport") or "")


def test_manifest_and_icons() -> None:
    manifest = json.loads((WEB / "manifest.webmanifest").read_text(encoding="utf-8"))
    assert manifest["name"] and manifest["short_name"]
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] and manifest["theme_color"] and manifest["background_color"]
    sizes: dict[str, set[str]] = {"any": set(), "maskable": set()}
    for icon in manifest["icons"]:
        path = WEB / icon["src"]
        assert path.is_file(), icon["src"]
        with Image.open(path) as img:
            assert img.format == "PNG"
            assert f"{img.width}x{img.height}" == icon["sizes"], icon["src"]
        for purpose in icon.get("purpose", "any").split():
            sizes[purpose].add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes["any"]
    assert "512x512" in sizes["maskable"]


def test_service_worker_shell_exists_and_api_is_never_cached() -> None:
    sw = (WEB / "sw.js").read_text(encoding="utf-8")
    shell = re.search(r"const SHELL = \[(.*?)\];", sw, re.S)
    assert shell
    entries = re.findall(r"'([^']+)'", shell.group(1))
    for entry in entries:
        if entry != "./":
            assert (WEB / entry).is_file(), f"sw.js precaches missing {entry}"
    # The entry point and everything it imports statically are precached, or the
    # installed app cannot even start offline (the views are cached as they load).
    needed, todo = set(), [WEB / "js" / "app.js"]
    while todo:
        cur = todo.pop()
        if cur not in needed:
            needed.add(cur)
            static = STATIC_IMPORT_RE.findall(cur.read_text(encoding="utf-8"))
            todo += [(cur.parent / spec).resolve() for spec in static]
    assert {str(p.relative_to(WEB)) for p in needed} <= set(entries)
    assert {"./", "css/app.css", "manifest.webmanifest"} <= set(entries)
    assert "'/api/'" in sw and "'/ws'" in sw


def test_stylesheet_follows_the_house_rules() -> None:
    css_files = list(WEB.rglob("*.css"))
    assert [p.name for p in css_files] == ["app.css"], "one stylesheet"
    css = css_files[0].read_text(encoding="utf-8")
    assert "--" in css and "var(--" in css, "custom properties"
    assert "dvh" in css, "dynamic viewport units"
    assert "safe-area-inset" in css
    assert "prefers-reduced-motion" in css
    assert "image-rendering: pixelated" in css, "QR codes stay sharp"
    touch = re.search(r"--touch:\s*(\d+)px", css)
    assert touch and int(touch.group(1)) >= 48


@pytest.mark.parametrize("project", ["tsconfig.json", "tsconfig.sw.json"])
def test_typescript_check_is_clean(project: str) -> None:
    npx = shutil.which("npx")
    if not npx:
        skip_or_fail("npx (Node.js) not installed: JS type check skipped")
    assert npx is not None
    proc = subprocess.run(
        [npx, "--yes", "-p", "typescript@5", "tsc", "-p", str(WEB / project)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=WEB,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

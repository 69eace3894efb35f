"""The PWA's files, served small and cached the way browsers do best.

Every file of ``web/`` is read once into memory with its gzip form (when that is
smaller) and a content hash. The page's own code is served under a versioned prefix
(``/v/<version>/js/app.js``, the version being a hash of every file), with
``Cache-Control: immutable``: a returning guest's browser takes it from its cache
without asking, and an upgraded station changes the version, so nobody runs stale
code. Module imports are relative, so everything ``app.js`` imports lands under the
same prefix. ``index.html`` names the versioned files and is revalidated on every
visit (ETag, 304), as is the service worker; icons and the manifest keep a week.
It also lists, as ``<link rel="modulepreload">``, every module ``app.js`` and the call
page import, found by following their ``import … from`` lines: the browser fetches
them all at once instead of learning of each from the one before (on a first visit
the chain was ten modules deep).

The files are re-read when they change on disk (checked when ``index.html`` or the
service worker is asked for), so editing ``web/`` during development needs no restart.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .http import Handler

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# icons and the manifest change with a redesign, not with a release: a week is fine
LONG_LIVED = "public, max-age=604800"
LONG_LIVED_FILES = re.compile(r"^(icons/.+|manifest\.webmanifest)$")
# only the page's code lives under the version (never a document or the worker)
VERSIONED = re.compile(r"^v/(?P<version>[0-9a-f]{12})/(?P<path>(?:css|js)/.+)$")
# index.html names these two; everything else is imported relative to them
ENTRY_POINTS = ('href="css/app.css"', 'src="js/app.js"')
# the modules a first visit needs at once: the app and the call page a guest link opens
PRELOADED = ("js/app.js", "js/views/room.js")
STATIC_IMPORT = re.compile(r"""(?:\bfrom|^import)\s*['"](\.{1,2}/[^'"]+\.js)['"]""", re.MULTILINE)
COMPRESSIBLE = {".html", ".css", ".js", ".json", ".webmanifest", ".svg", ".txt"}
TYPES = {".js": "text/javascript", ".webmanifest": "application/manifest+json"}


def web_root() -> Path:
    """The PWA's folder: inside the installed wheel, or web/ in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "web", here.parent / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return here.parent / "web"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str
    stamp: tuple[int, int]  # (mtime_ns, size) when read


def module_graph(files: dict[str, Asset], roots: tuple[str, ...]) -> list[str]:
    """``roots`` and every module they import statically, directly or not (dynamic
    ``import()`` is left out: it is loaded when needed).

    >>> files = {n: _asset(b, n, (0, 0)) for n, b in {
    ...     "js/app.js": b"import { a } from './a.js';\\nconst v = import('./lazy.js');",
    ...     "js/a.js": b"import {\\n  b,\\n} from './ui/b.js';\\n// import x from './gone.js';",
    ...     "js/ui/b.js": b"import '../a.js';",
    ... }.items()}
    >>> module_graph(files, ("js/app.js",))
    ['js/a.js', 'js/app.js', 'js/ui/b.js']
    """
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in files:
            continue
        seen.add(name)
        base = posixpath.dirname(name)
        for target in STATIC_IMPORT.findall(files[name].body.decode("utf-8")):
            todo.append(posixpath.normpath(posixpath.join(base, target)))
    return sorted(seen)


def _is_served(rel: Path) -> bool:
    return rel.suffix != ".py" and "__pycache__" not in rel.parts and rel.name[:1] != "."


def without_comment_lines(text: str, *, line_comments: bool = True) -> str:
    """``text`` (JavaScript, or CSS with ``line_comments=False``) with every line that
    holds only a comment blanked. Every line stays, so stack traces keep their line
    numbers; comments after code stay; lines inside a template literal that spans
    lines are never touched. The code here is documented generously (JSDoc types):
    this takes about a third off what a guest downloads, with no bundler.

    >>> without_comment_lines("// why\\nconst a = 1; // stays\\n/**\\n * @type {T}\\n */\\nf();")
    '\\nconst a = 1; // stays\\n\\n\\n\\nf();'
    >>> without_comment_lines("const t = `\\n// in a string\\n`;")
    'const t = `\\n// in a string\\n`;'
    >>> without_comment_lines("/* a */ b();\\n/* c\\n*/ d();")  # code beside: left alone
    '/* a */ b();\\n/* c\\n*/ d();'
    """
    out: list[str] = []
    in_block = in_template = False
    for line in text.split("\n"):
        code = line.strip()
        if in_template:
            out.append(line)
        elif in_block:
            end = code.find("*/")
            if end != -1 and end != len(code) - 2:
                return text  # code after the comment on the same line: keep the file as is
            in_block = end == -1
            out.append("")
            continue
        elif line_comments and code.startswith("//"):
            out.append("")
            continue
        elif code.startswith("/*"):
            end = code.find("*/", 2)
            if end == -1:
                in_block = True
                out.append("")
                continue
            if end == len(code) - 2:
                out.append("")
                continue
            out.append(line)
        else:
            out.append(line)
        if line.count("`") % 2:
            in_template = not in_template
    return "\n".join(out)


def _asset(body: bytes, name: str, stamp: tuple[int, int]) -> Asset:
    suffix = Path(name).suffix
    if suffix in (".js", ".css"):
        slim = without_comment_lines(body.decode("utf-8"), line_comments=suffix == ".js")
        body = slim.encode("utf-8")
    gzipped = None
    if suffix in COMPRESSIBLE:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    content_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0]
    return Asset(
        body=body,
        gzipped=gzipped,
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        content_type=content_type or "application/octet-stream",
        stamp=stamp,
    )


class StaticSite:
    """The files of one web root, their versioned index page and their answers."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.files: dict[str, Asset] = {}  # as on disk
        self.assets: dict[str, Asset] = {}  # as served: index.html names the version
        self.version = ""
        self.refresh()

    def refresh(self) -> None:
        """Re-read what changed on disk; a changed file set gives a new version."""
        files: dict[str, Asset] = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if not path.is_file() or not _is_served(rel):
                continue
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            known = self.files.get(rel.as_posix())
            fresh = known if known and known.stamp == stamp else None
            files[rel.as_posix()] = fresh or _asset(path.read_bytes(), path.name, stamp)
        if files == self.files:
            return
        digest = hashlib.sha256()
        for name, asset in sorted(files.items()):
            digest.update(f"{name}\0{asset.etag}\0".encode())
        self.files, self.version = files, digest.hexdigest()[:12]
        self.assets = dict(files)
        index = files.get("index.html")
        if index is not None:
            html = index.body.decode("utf-8")
            for attr in ENTRY_POINTS:
                name, value = attr.split("=", 1)
                html = html.replace(attr, f'{name}="/v/{self.version}/{value.strip(chr(34))}"')
            links = "".join(
                f'<link rel="modulepreload" href="/v/{self.version}/{module}">\n  '
                for module in module_graph(files, PRELOADED)
                if module != "js/app.js"
            )
            html = html.replace('<script type="module"', links + '<script type="module"', 1)
            self.assets["index.html"] = _asset(html.encode("utf-8"), "index.html", index.stamp)

    def lookup(self, rel: str) -> tuple[Asset, str] | None:
        """The asset at ``rel`` (a request path without its leading slash) and its
        Cache-Control, or None when there is none."""
        rel = rel or "index.html"
        cache = REVALIDATE
        versioned = VERSIONED.match(rel)
        if rel.startswith("v/") and not versioned:
            return None
        if versioned:
            rel = versioned["path"]
            # an old version's URL gets today's file, but must not be pinned to it
            cache = IMMUTABLE if versioned["version"] == self.version else REVALIDATE
        elif LONG_LIVED_FILES.match(rel):
            cache = LONG_LIVED
        if rel.endswith("/"):
            rel += "index.html"
        if rel in ("index.html", "sw.js"):
            self.refresh()
        asset = self.assets.get(rel)
        return (asset, cache) if asset is not None else None


def _accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def static_handler(site: StaticSite) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        found = site.lookup(request.match_info.get("path", ""))
        if found is None:
            raise web.HTTPNotFound()
        asset, cache = found
        headers = {"Cache-Control": cache, "ETag": asset.etag, "Vary": "Accept-Encoding"}
        if request.path.endswith("/sw.js"):
            headers["Service-Worker-Allowed"] = "/"
        if asset.etag in (
            tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")
        ):
            return web.Response(status=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and _accepts_gzip(request):
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        response = web.Response(body=body, headers=headers, content_type=asset.content_type)
        if asset.content_type.startswith("text/") or asset.content_type.endswith("+json"):
            response.charset = "utf-8"
        return response

    return serve

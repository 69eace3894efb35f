"""The README and docs/*.md stay readable and whole: every relative link and picture
points at a file that exists (and, for ``file.md#part``, at a heading of that file), and
the README stays short enough to read (at most 250 lines; the detail lives in docs/).

No network: web links (http, https, mailto) are not followed.
"""

from __future__ import annotations

import doctest
import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 250

# [text](target) and ![alt](target); the target may carry a "title" after a space.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://", "mailto:")


def documents() -> list[Path]:
    """The files this test reads: the README and every page under docs/."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with code spans blanked.

    >>> prose_lines("a `[x](y)` b\\n```\\n[z](w)\\n```\\n[ok](p)")
    [(1, 'a  b'), (5, '[ok](p)')]
    """
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, CODE_SPAN.sub("", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.

    >>> slug("Load and faults, measured (0 leaks)")
    'load-and-faults-measured-0-leaks'
    >>> slug("7. Every configuration key")
    '7-every-configuration-key'
    >>> slug("Where to look for…")
    'where-to-look-for'
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "").strip().lower()
    kept = "".join(
        ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Mn"
    )
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, repeats numbered as GitHub does."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, *, root: Path = ROOT) -> list[str]:
    """One line per link of ``path`` that does not resolve: where it is (relative to
    ``root``) and why."""
    broken: list[str] = []
    where = path.relative_to(root)
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(line):
            target = match.group(1)
            if target.lower().startswith(EXTERNAL):
                continue
            file_part, _, fragment = target.partition("#")
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not resolved.exists():
                broken.append(f"{where}:{number}: {target} (no such file)")
                continue
            in_markdown = fragment and resolved.suffix == ".md"
            if in_markdown and unquote(fragment).lower() not in anchors(resolved):
                broken.append(f"{where}:{number}: {target} (no heading #{fragment})")
    return broken


def test_every_link_and_picture_resolves() -> None:
    broken = [line for path in documents() for line in broken_links(path)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_links_are_found() -> None:
    """The parser sees the README's pictures and links (a regex gone wrong finds none)."""
    readme = [
        m.group(1) for _, line in prose_lines(README.read_text()) for m in LINK.finditer(line)
    ]
    assert "docs/screenshots/kiosk-idle-7in-en.png" in readme
    assert any(target.startswith("docs/") and target.endswith(".md") for target in readme)


def test_a_broken_link_is_named(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## A part\n")
    page.write_text(
        "# Page\n[ok](other.md#a-part) [self](#page) [web](https://example.net/x)\n"
        "[gone](missing.md) ![pic](pics/none.png)\n[bad part](other.md#no-such-part)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "page.md:3: missing.md (no such file)",
        "page.md:3: pics/none.png (no such file)",
        "page.md:4: other.md#no-such-part (no heading #no-such-part)",
    ]


def test_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move the detail to docs/"
    )


def test_the_examples_above_run() -> None:
    assert doctest.testmod(sys.modules[__name__]).failed == 0

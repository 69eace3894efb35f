"""The page's languages: one dictionary per language with the same keys, every key the
code asks for exists, and no view shows a text that is not in the dictionaries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web" / "js"
LANGUAGES = ("en", "ru")
# What Intl.PluralRules answers for integers in each language.
PLURAL_FORMS = {"en": {"one", "other"}, "ru": {"one", "few", "many", "other"}}
# Keys built at run time from a prefix (error codes, link states, finished pages).
DYNAMIC_PREFIXES = (
    "error.",
    "rooms.status.",
    "rooms.codeSession.",
    "room.fin.",
    "quality.level",
)


def dictionary(lang: str) -> dict[str, str | dict[str, str]]:
    text = (WEB / "i18n" / f"{lang}.js").read_text()
    body = text[text.index("export default") + len("export default") :].strip().rstrip(";")
    data: dict[str, str | dict[str, str]] = json.loads(body)
    return data


def code_files() -> list[Path]:
    return [p for p in sorted(WEB.rglob("*.js")) if "i18n" not in p.relative_to(WEB).parts[:1]]


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in code_files():
        code = "\n".join(
            line
            for line in path.read_text().splitlines()
            if not line.lstrip().startswith(("//", "*", "/*"))
        )
        keys |= set(re.findall(r"\b(?:t|tn|i18n\.t)\('([a-zA-Z0-9_.]+)'", code))
    return keys


def placeholders(value: str | dict[str, str]) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in re.findall(r"\{(\w+)\}", text)}


def test_every_language_has_the_same_keys_and_placeholders() -> None:
    en = dictionary("en")
    for lang in LANGUAGES[1:]:
        other = dictionary(lang)
        assert sorted(set(en) - set(other)) == [], f"missing in {lang}"
        assert sorted(set(other) - set(en)) == [], f"only in {lang}"
        for key, value in en.items():
            assert placeholders(value) == placeholders(other[key]), f"{lang}: {key}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_entries_have_every_form_of_the_language(lang: str) -> None:
    for key, value in dictionary(lang).items():
        if isinstance(value, dict):
            assert set(value) == PLURAL_FORMS[lang], f"{lang}: {key}"
            assert all("{n}" in form for form in value.values()), f"{lang}: {key}"


def test_russian_texts_are_translated() -> None:
    en, ru = dictionary("en"), dictionary("ru")
    for key, value in ru.items():
        texts = value.values() if isinstance(value, dict) else [value]
        for text in texts:
            assert re.search("[\u0400-\u04ff]", text), f"ru: {key} is not Russian: {text!r}"
        assert value != en[key], f"ru: {key} is the English text"


def test_every_key_the_code_asks_for_exists_and_every_text_is_used() -> None:
    en = dictionary("en")
    used = used_keys()
    assert used, "the scan found no t('…') calls"
    assert sorted(used - set(en)) == [], "keys used by the code but not in the dictionary"
    source = "\n".join(p.read_text() for p in code_files())
    unused = [
        k
        for k in en
        if k not in used and not k.startswith(DYNAMIC_PREFIXES) and f"'{k}'" not in source
    ]
    assert unused == [], "texts nobody shows"


# A property or child that puts a literal text on the page: text, title, alt,
# placeholder, aria-label, label (actions), textContent assignments, h() children.
LETTER = "[A-Za-z\u0400-\u04ff]"
TEXT = rf"[^'\"`]*{LETTER}[^'\"`]*"
LITERAL_TEXT = re.compile(
    rf"(?:\b(?:text|title|alt|placeholder|label)|'aria-label')\s*:\s*(['\"`])(?P<s>{TEXT})\1"
    rf"|\.textContent\s*=\s*(['\"`])(?P<t>{TEXT})\3"
    rf"|\}}\s*,\s*(['\"`])(?P<c>{TEXT})\5\s*\)"
)


def test_no_view_shows_a_literal_text() -> None:
    found = []
    for path in code_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith(("//", "*", "/*")):
                continue
            for m in LITERAL_TEXT.finditer(line):
                literal = m.group("s") or m.group("t") or m.group("c") or ""
                if not re.search(LETTER, re.sub(r"\$\{[^}]*\}", "", literal)):
                    continue  # only code in a template, e.g. ` · ${formatWhen(at)}`
                found.append(f"{path.relative_to(WEB)}:{n}: {m.group(0)}")
    assert found == [], "texts that bypass the dictionaries"


def test_the_scan_catches_a_literal_text() -> None:
    """The check above can fail: it finds each way a text reaches the page."""
    lines = [
        "h('p', { text: 'Hello' })",
        "h('button', { 'aria-label': 'Close' })",
        "el.textContent = 'Gone';",
        "h('button', { class: 'x' }, 'Answer')",
        "{ label: 'Home', href: '#/' }",
    ]
    assert all(LITERAL_TEXT.search(line) for line in lines)
    assert not LITERAL_TEXT.search("h('p', { text: t('kiosk.answer'), class: 'big' })")

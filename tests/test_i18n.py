"""The page's languages: one dictionary per language with the same keys, every key the
code asks for exists, and no view shows a text that is not in the dictionaries."""

# ruff: noqa: RUF001, RUF002, RUF003 - Russian text, not lookalike letters
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


# -- Russian by a native speaker's rules (docs/i18n.md) ---------------------------------

# Placeholders for names people typed or set (a caller, the station, a room, a link's
# label): Russian would decline them after a preposition ("с Машей"), and the code
# cannot, so a name stands alone: "Разговор: Маша", "На станции «Дача»".
NAME_PLACEHOLDERS = ("name", "station", "room", "label")
PREPOSITIONS = "с|со|у|к|ко|о|об|обо|от|для|без|про|при|по|на|в|во|за|из|изо|перед|через|после|до"
NAME_AFTER_PREPOSITION = re.compile(
    rf"(?<![\w-])(?:{PREPOSITIONS})\s+[«\"']?\{{(?:{'|'.join(NAME_PLACEHOLDERS)})\}}",
    re.IGNORECASE,
)
# Abbreviations have no place on a screen read from 1.5 m (nor on the others).
ABBREVIATION = re.compile(
    r"(?<![\w-])(?:выкл|вкл|откл|мин|сек|ч|нед|мес|тел|напр|прим|т\.\s?е|т\.\s?д|т\.\s?п"
    r"|др|см|стр|ред|настр|подкл|сообщ|автом|прибл|min|mins|sec|secs|hr|hrs|approx|incl|msg)\.",
    re.IGNORECASE,
)
# A configuration key ("ice.turn_secret", "station.name"): it belongs in the log.
CONFIG_KEY = re.compile(r"\b\w+\.\w+_\w+\b")


def config_key_pattern() -> re.Pattern[str]:
    """`<section>.<key>` for every section of the service's configuration."""
    import dataclasses

    from appliance.config import Config

    sections = "|".join(f.name for f in dataclasses.fields(Config))
    return re.compile(rf"\b(?:{sections})\.[a-z_]+\b")


def texts(lang: str) -> list[tuple[str, str]]:
    """(key, text) for every text of a language, each plural form on its own."""
    out = []
    for key, value in dictionary(lang).items():
        for text in value.values() if isinstance(value, dict) else [value]:
            out.append((key, text))
    return out


def test_no_name_follows_a_russian_preposition() -> None:
    found = [f"{key}: {text}" for key, text in texts("ru") if NAME_AFTER_PREPOSITION.search(text)]
    assert found == [], "a name would have to be declined: put it alone ('Разговор: {name}')"


def test_the_name_rule_catches_what_it_should() -> None:
    caught = ["Разговор с {name}", "Идёт разговор с «{name}».", "позвонить на «{station}»",
              "QR-код для {label}"]  # fmt: skip
    fine = ["Разговор: {name} · {duration}", "На станции «{name}» до {time}", "{name} выходит",
            "Позвонить: {name}", "до {time}", "Видеозвонок: {room}"]  # fmt: skip
    assert all(NAME_AFTER_PREPOSITION.search(t) for t in caught)
    assert not any(NAME_AFTER_PREPOSITION.search(t) for t in fine)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_abbreviations(lang: str) -> None:
    found = [f"{key}: {text}" for key, text in texts(lang) if ABBREVIATION.search(text)]
    assert found == []
    assert ABBREVIATION.search("Выкл. звук") and ABBREVIATION.search("через 5 мин.")
    assert not ABBREVIATION.search("Связь потеряна. Включено.")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_config_key_on_any_screen(lang: str) -> None:
    sections = config_key_pattern()
    found = [
        f"{key}: {text}"
        for key, text in texts(lang)
        if CONFIG_KEY.search(text) or sections.search(text)
    ]
    assert found == [], "say it in words; the service's log names the key"
    assert sections.search("(check ice.turn_urls)") and sections.search("station.name")
    assert CONFIG_KEY.search("ice.turn_secret")


def test_one_term_for_do_not_disturb() -> None:
    """Quiet is "Do not disturb" / "Не беспокоить" everywhere, and says what it does:
    calls do not come through (not "calls without sound")."""
    en, ru = dictionary("en"), dictionary("ru")
    assert en["kiosk.dnd"] == en["room.quiet"] == "Do not disturb"
    assert ru["kiosk.dnd"] == ru["room.quiet"] == "Не беспокоить"
    assert [k for k, t in texts("en") if re.search(r"\bquiet\b|\bsilent mode\b", t, re.I)] == []
    assert [k for k, t in texts("ru") if re.search(r"тих\w* (режим|час)|беззвуч", t, re.I)] == []
    assert "не проходят" in str(ru["room.quietText"])
    assert "do not come through" in str(en["room.quietText"])


# Russian nouns the texts refer back to with "её" / "новую": a text that uses them names
# a feminine noun in itself (an invitation, "приглашение", is neuter: "его", "новое").
FEMININE = re.compile(r"ссылк|станци|комнат|камер|страниц", re.IGNORECASE)
FEMININE_REFERENCE = re.compile(r"(?<!\w)(её|ее|новую|она|ней)(?!\w)", re.IGNORECASE)


def test_russian_pronouns_agree_with_what_they_refer_to() -> None:
    ru = dictionary("ru")
    found = [
        f"{key}: {text}"
        for key, text in texts("ru")
        if FEMININE_REFERENCE.search(text) and not FEMININE.search(text)
    ]
    # The page for a link that cannot be used: the error's text, then what to do.
    after = str(ru["room.askForNew"])
    for key, text in texts("ru"):
        if key.startswith("error."):
            body = f"{text} {after}"
            if FEMININE_REFERENCE.search(after) and not FEMININE.search(body):
                found.append(f"{key} + room.askForNew: {body}")
    assert found == []


def test_every_number_shown_is_formatted_by_intl() -> None:
    """No toFixed() or a bare percentage sign glued to a number in the page code: the
    numbers people see go through formatNumber / formatPercent (Intl.NumberFormat)."""
    found = []
    for path in code_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"toFixed\(|toPrecision\(", line) and not re.search(
                r"style\.|dataset\.|transform|scaleX", line
            ):
                found.append(f"{path.relative_to(WEB)}:{n}: {line.strip()}")
            if re.search(r"\}%`|\+ '%'|\+ \"%\"", line):
                found.append(f"{path.relative_to(WEB)}:{n}: {line.strip()}")
    assert found == []

"""The household's everyday settings, changed in the app (issue 24, item 9): the
station's name, the kiosk's language, the quiet hours and which guest links are
answered without a touch.

The config file gives the defaults; what the household changes in the app is kept in
the database (one JSON row of the ``settings`` table) and wins over the file from then
on, across restarts, until changed again in the app. See docs/settings.md.

A change is checked whole before anything is kept: one bad field and nothing changes.

Example::

    >>> from pathlib import Path
    >>> from appliance.config import Config
    >>> from appliance.store import Store
    >>> store = Store(Path(":memory:"))
    >>> settings = StationSettings(Config(), store)
    >>> settings.name, settings.language, settings.quiet_hours
    ('', 'auto', None)
    >>> hours = {"start": "22:00", "end": "07:00"}
    >>> settings.update(parse_patch({"name": "  Dacha ", "quiet_hours": hours}))
    >>> settings.name, settings.quiet_hours, settings.quiet_text
    ('Dacha', ('22:00', '07:00'), '22:00-07:00')
    >>> StationSettings(Config(), store).name  # kept
    'Dacha'
    >>> parse_patch({"colour": "red"})
    Traceback (most recent call last):
    ...
    appliance.errors.ValidationError: Unknown setting 'colour'.
    >>> store.close()
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .config import UNNAMED_STATION, Config
from .errors import ValidationError
from .quiet import QuietHours
from .store import Store

log = logging.getLogger(__name__)

KEY = "household_settings"
"""The settings row that keeps what the household changed in the app."""
LANGUAGES = ("auto", "en", "ru")
"""The kiosk's language: ``auto`` follows the kiosk's browser."""
MAX_NAME = 40
"""Characters in the station's name (the kiosk shows it 28 px and more on 800 px)."""
MAX_AUTO_ANSWER = 50
"""Guest links answered without a touch, at most."""
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
FIELDS = ("name", "language", "quiet_hours", "auto_answer")


@dataclass(frozen=True, slots=True)
class Patch:
    """A checked change: only the fields sent are set (None: not sent)."""

    name: str | None = None
    language: str | None = None
    quiet_hours: tuple[str, str] | None = None
    clear_quiet_hours: bool = False
    """``quiet_hours: null`` was sent: no quiet hours."""
    auto_answer: tuple[str, ...] | None = None


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("'name' must be a string.")
    name = " ".join(value.split())
    if len(name) > MAX_NAME:
        raise ValidationError(f"'name' may have at most {MAX_NAME} characters.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ValidationError("'name' may not contain control or format characters.")
    return name


def _quiet(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise ValidationError('\'quiet_hours\' must be null or {"start": "HH:MM", "end": "HH:MM"}.')
    start, end = value["start"], value["end"]
    for key, text in (("start", start), ("end", end)):
        if not isinstance(text, str) or not _TIME.match(text):
            raise ValidationError(f"'quiet_hours.{key}' must be a time \"HH:MM\" (00:00 to 23:59).")
    if start == end:
        raise ValidationError("'quiet_hours' must start and end at different times.")
    return start, end


def _links(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(j, str) and 0 < len(j) <= 64 for j in value
    ):
        raise ValidationError("'auto_answer' must be a list of guest link ids.")
    if len(value) > MAX_AUTO_ANSWER:
        raise ValidationError(f"'auto_answer' may name at most {MAX_AUTO_ANSWER} links.")
    return tuple(dict.fromkeys(value))


def parse_patch(data: dict[str, Any]) -> Patch:
    """A PATCH body checked whole: unknown keys, wrong types, bad times or languages
    raise ValidationError (400), and nothing is changed."""
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        raise ValidationError(f"Unknown setting {unknown[0][:40]!r}.")
    if not data:
        raise ValidationError(f"Send at least one of {', '.join(FIELDS)}.")
    language = data.get("language")
    if "language" in data and language not in LANGUAGES:
        raise ValidationError(f"'language' must be one of {', '.join(LANGUAGES)}.")
    return Patch(
        name=_name(data["name"]) if "name" in data else None,
        language=language,
        quiet_hours=_quiet(data["quiet_hours"]) if "quiet_hours" in data else None,
        clear_quiet_hours="quiet_hours" in data and data["quiet_hours"] is None,
        auto_answer=_links(data["auto_answer"]) if "auto_answer" in data else None,
    )


class StationSettings:
    """The settings in force: the config file's, overlaid by those the household kept."""

    def __init__(self, config: Config, store: Store) -> None:
        self.store = store
        self.name = config.station.name
        """Empty: each screen shows its language's default name."""
        self.language = config.station.language
        self.quiet_hours = _from_text(config.call.quiet_hours)
        """(start, end) as "HH:MM", or None: no quiet hours."""
        self.auto_answer: tuple[str, ...] = ()
        """Guest links (jti) whose callers are answered after the countdown."""
        self._load()

    @property
    def quiet_text(self) -> str:
        """The quiet hours as the config writes them (``"22:00-07:00"``, or ``""``)."""
        return "-".join(self.quiet_hours) if self.quiet_hours else ""

    @property
    def name_or_default(self) -> str:
        """For the service's own use (log, the kiosk's peer): never shown by a page."""
        return self.name or UNNAMED_STATION

    def update(self, patch: Patch) -> None:
        """Apply and keep ``patch`` (one write; if it fails, nothing changed)."""
        kept = self._kept()
        if patch.name is not None:
            kept["name"] = patch.name
        if patch.language is not None:
            kept["language"] = patch.language
        if patch.quiet_hours is not None or patch.clear_quiet_hours:
            hours = patch.quiet_hours
            kept["quiet_hours"] = {"start": hours[0], "end": hours[1]} if hours else None
        if patch.auto_answer is not None:
            kept["auto_answer"] = list(patch.auto_answer)
        self.store.set_setting(KEY, json.dumps(kept))
        self._apply(kept)

    def _kept(self) -> dict[str, Any]:
        """The row as kept, checked as strictly as a change; unreadable (spoiled by
        hand) counts as empty, and the next change replaces it."""
        text = self.store.get_setting(KEY)
        if text is None:
            return {}
        try:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("not an object")
            if value:
                parse_patch(value)
        except (ValueError, ValidationError) as exc:
            log.error("the settings kept in the database are unreadable, ignored: %s", exc)
            return {}
        return value

    def _load(self) -> None:
        self._apply(self._kept())

    def _apply(self, kept: dict[str, Any]) -> None:
        if "name" in kept:
            self.name = kept["name"]
        if "language" in kept:
            self.language = kept["language"]
        if "quiet_hours" in kept:
            hours = kept["quiet_hours"]
            self.quiet_hours = (hours["start"], hours["end"]) if hours else None
        if "auto_answer" in kept:
            self.auto_answer = tuple(kept["auto_answer"])


def _from_text(text: str) -> tuple[str, str] | None:
    """``"22:00-07:00"`` (validated by the config) as ("22:00", "07:00")."""
    hours = QuietHours.parse(text)
    if hours.start is None or hours.end is None:
        return None
    return hours.start.strftime("%H:%M"), hours.end.strftime("%H:%M")

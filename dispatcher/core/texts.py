"""Every text a person reads or hears, per language, from the catalogues in ``catalogues/``.

Each language is one TOML file (``zh.toml``, ``en.toml``) of ``[section]`` tables,
loaded once per process; a person's ``language`` picks it, and anything unknown
falls back to Chinese. Placeholders in ``{braces}`` are filled by ``str.format``.
No other module of the daemon holds a sentence meant for a person.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

CATALOGUES = Path(__file__).with_name("catalogues")
DEFAULT_LANGUAGE = "zh"
LANGUAGES = ("zh", "en")


def language_of(language: str | None) -> str:
    """``language`` when a catalogue exists for it, else the default (Chinese)."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@cache
def catalogue(language: str) -> dict[str, dict[str, str]]:
    """The texts of ``language`` as {section: {key: text}}, read once per process."""
    with (CATALOGUES / f"{language_of(language)}.toml").open("rb") as f:
        data = tomllib.load(f)
    out: dict[str, dict[str, str]] = {}
    for section, texts in data.items():
        _flatten(section, texts, out)
    return out


def _flatten(section: str, table: dict[str, object], out: dict[str, dict[str, str]]) -> None:
    """A table within a table (``[console.dispatch]``) is a section of its own, named
    with its dots, so that each feature may keep its texts in a table of its own."""
    own: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            _flatten(f"{section}.{key}", value, out)
        else:
            own[key] = str(value)
    out[section] = own


def text(language: str | None, key: str, **values: object) -> str:
    """The text ``section.key`` of ``language`` with its placeholders filled."""
    texts = catalogue(language_of(language))
    section, _, name = key.rpartition(".")  # "console.dispatch.title": the inner table's
    if name not in texts.get(section, {}):
        section, _, name = key.partition(".")
    return texts[section][name].format(**values)

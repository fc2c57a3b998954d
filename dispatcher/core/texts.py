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
    """The texts of ``language`` as {section: {key: text}}, read once per process. A
    table within a section (``[console.protocol]``) is a section of its own,
    ``console.protocol``, so that each feature keeps its texts in a table of its own."""
    with (CATALOGUES / f"{language_of(language)}.toml").open("rb") as f:
        data = tomllib.load(f)
    out: dict[str, dict[str, str]] = {}

    def add(section: str, table: dict[str, object]) -> None:
        out[section] = {k: v for k, v in table.items() if isinstance(v, str)}
        for key, value in table.items():
            if isinstance(value, dict):
                add(f"{section}.{key}", value)

    for section, table in data.items():
        add(section, table)
    return out


def text(language: str | None, key: str, **values: object) -> str:
    """The text ``section.key`` of ``language`` with its placeholders filled."""
    section, _, name = key.rpartition(".")
    return catalogue(language_of(language))[section][name].format(**values)

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
    _flatten("", data, out)
    return out


def _flatten(prefix: str, table: dict[str, object], out: dict[str, dict[str, str]]) -> None:
    # A sub-table (``[console.board]``) is a section of its own, ``console.board``: one
    # feature's texts in one table, so that tables added side by side merge simply.
    for name, value in table.items():
        if isinstance(value, dict):
            _flatten(f"{prefix}{name}.", value, out)
        else:
            out.setdefault(prefix.removesuffix("."), {})[name] = str(value)


def text(language: str | None, key: str, **values: object) -> str:
    """The text ``section.key`` of ``language`` with its placeholders filled (the
    section may be a sub-table: ``console.board.title``)."""
    section, _, name = key.rpartition(".")
    return catalogue(language_of(language))[section][name].format(**values)

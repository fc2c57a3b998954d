"""Operator protocols from the data folder's ``protocols.toml`` (its comments give the
format), and :class:`ProtocolFile`, which follows changes to the file while the
daemon runs.

The file is kept by hand, so every problem is reported as ``file:line: where: problem``
and nothing is half loaded: either the whole file is valid or
:class:`~dispatcher.adapters.files.directory_files.DataFileError` lists what is wrong.
An absent file means no protocols (the call page says so).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dispatcher.adapters.files.directory_files import DataFileError
from dispatcher.core.call_protocols import (
    FIXED_ANSWERS,
    ID_PATTERN,
    AnswerKind,
    CallProtocol,
    Choice,
    ProtocolBook,
    Step,
)
from dispatcher.core.calls import CallKind
from dispatcher.core.texts import LANGUAGES

log = structlog.get_logger(__name__)

PROTOCOLS = "protocols.toml"

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Line = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Texts(_Strict):
    """A text in every language of the catalogues (Chinese and English)."""

    zh: Line
    en: Line

    def as_dict(self) -> dict[str, str]:
        return {language: getattr(self, language) for language in LANGUAGES}


class _Choice(_Texts):
    id: Id


class _Step(_Strict):
    id: Id
    text: _Texts
    answer: AnswerKind
    choices: list[_Choice] = Field(default_factory=list)
    guidance: _Texts | None = None
    default: Id | None = None

    @model_validator(mode="after")
    def _answers(self) -> _Step:
        if self.answer is AnswerKind.CHOICE:
            if len(self.choices) < 2:
                raise ValueError('answer = "choice" needs at least two choices')
            ids = [c.id for c in self.choices]
            if len(set(ids)) != len(ids):
                raise ValueError(f"two choices have the same id ({_repeated(ids)})")
            answers = tuple(ids)
        else:
            if self.choices:
                raise ValueError(f'choices are for answer = "choice", not "{self.answer}"')
            answers = FIXED_ANSWERS[self.answer]
        if self.default is not None and self.default not in answers:
            raise ValueError(f"default {self.default!r} is not one of {', '.join(answers)}")
        return self


class _Protocol(_Strict):
    kind: CallKind
    situation: Id
    title: _Texts
    default: bool = False
    step: Annotated[list[_Step], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_steps(self) -> _Protocol:
        ids = [s.id for s in self.step]
        if len(set(ids)) != len(ids):
            raise ValueError(f"two steps have the same id ({_repeated(ids)})")
        return self


def _repeated(ids: Sequence[str]) -> str:
    return ", ".join(sorted({i for i in ids if ids.count(i) > 1}))


# ------------------------------------------------------------------ positions


class _Lines:
    """Where the n-th ``[[protocol]]``, its m-th ``[[protocol.step]]`` and their keys are:
    tomllib gives no positions, so the file's lines are read once more."""

    _PROTOCOL = re.compile(r"^\s*\[\[\s*protocol\s*\]\]\s*(#.*)?$")
    _STEP = re.compile(r"^\s*\[\[\s*protocol\s*\.\s*step\s*\]\]\s*(#.*)?$")
    _HEADER = re.compile(r"^\s*\[")

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.protocols: list[int] = []  # line index of each [[protocol]]
        self.steps: list[list[int]] = []  # per protocol, line index of each step
        for index, line in enumerate(self.lines):
            if self._PROTOCOL.match(line):
                self.protocols.append(index)
                self.steps.append([])
            elif self._STEP.match(line) and self.steps:
                self.steps[-1].append(index)

    def of(self, loc: Sequence[int | str]) -> int | None:
        """The 1-based line of a pydantic error's location in the file's data."""
        if len(loc) < 2 or loc[0] != "protocol" or not isinstance(loc[1], int):
            return None
        if loc[1] >= len(self.protocols):
            return None
        start, rest = self.protocols[loc[1]], list(loc[2:])
        if len(rest) >= 2 and rest[0] == "step" and isinstance(rest[1], int):
            steps = self.steps[loc[1]]
            if rest[1] >= len(steps):
                return start + 1
            start, rest = steps[rest[1]], rest[2:]
        if rest and isinstance(rest[0], str):
            found = self._key(start, rest[0])
            if found is not None:
                return found + 1
        return start + 1

    def _key(self, start: int, key: str) -> int | None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for index in range(start + 1, len(self.lines)):
            if self._HEADER.match(self.lines[index]):
                return None
            if pattern.match(self.lines[index]):
                return index
        return None


def _where(data: dict[str, Any], loc: Sequence[int | str]) -> str:
    """``protocol 2 (emergency.silent), step 3 (call_home): answer`` for a location."""
    parts: list[str] = []
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "protocol" and isinstance(rest[1], int):
        table = _item(data.get("protocol"), rest[1])
        name = f"{table.get('kind')}.{table.get('situation')}" if table else ""
        parts.append(f"protocol {rest[1] + 1}" + (f" ({name})" if name else ""))
        rest = rest[2:]
        if len(rest) >= 2 and rest[0] == "step" and isinstance(rest[1], int):
            step = _item(table.get("step") if table else None, rest[1])
            step_id = step.get("id") if step else None
            parts.append(f"step {rest[1] + 1}" + (f" ({step_id})" if step_id else ""))
            rest = rest[2:]
    where = ", ".join(parts)
    key = ".".join(str(p) for p in rest)
    return f"{where}: {key}" if where and key else where or key


def _item(found: object, index: int) -> dict[str, Any]:
    if isinstance(found, list) and index < len(found):
        item = found[index]
        if isinstance(item, dict):
            return item
    return {}


# ------------------------------------------------------------------ loading


def load_protocols(path: Path) -> ProtocolBook:
    """The protocols of ``path`` (no protocols when it is absent). Raises DataFileError
    with every problem found."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ProtocolBook()
    except OSError as exc:
        raise DataFileError([f"{path}: cannot read it: {exc.strerror}"]) from None
    return read_protocols(path, raw)


def read_protocols(path: Path, raw: bytes) -> ProtocolBook:
    try:
        text = raw.decode("utf-8-sig")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFileError([f"{path}:{line}: not UTF-8 text ({exc.reason})"]) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        place = f"{path}:{found.group(1)}" if found else str(path)
        raise DataFileError([f"{place}: not valid TOML ({exc})"]) from None

    lines = _Lines(text)
    problems: list[str] = []

    def add(loc: Sequence[int | str], problem: str) -> None:
        line = lines.of(loc)
        place = f"{path}:{line}" if line else str(path)
        where = _where(data, loc)
        problems.append(f"{place}: {where}: {problem}" if where else f"{place}: {problem}")

    for name in data:
        if name != "protocol":
            add((name,), "unknown table: a protocol is a [[protocol]] with its [[protocol.step]]s")
    tables = data.get("protocol", [])
    if not isinstance(tables, list):
        add(("protocol",), "must be [[protocol]] tables")
        tables = []
    read: list[tuple[int, _Protocol]] = []
    for index, table in enumerate(tables):
        try:
            read.append((index, _Protocol.model_validate(table)))
        except ValidationError as exc:
            for error in exc.errors():
                add(("protocol", index, *error["loc"]), _message(error))
    seen: dict[tuple[CallKind, str], int] = {}
    defaults: dict[CallKind, str] = {}
    for index, protocol in read:
        key = (protocol.kind, protocol.situation)
        if key in seen:
            add(
                ("protocol", index, "situation"),
                f"{protocol.kind.value}.{protocol.situation} is already protocol {seen[key] + 1}",
            )
        seen.setdefault(key, index)
        if protocol.default:
            if protocol.kind in defaults:
                add(
                    ("protocol", index, "default"),
                    f"{protocol.kind.value} already has a default protocol "
                    f"({protocol.kind.value}.{defaults[protocol.kind]})",
                )
            defaults.setdefault(protocol.kind, protocol.situation)
    if problems:
        raise DataFileError(problems)
    return ProtocolBook(tuple(_protocol(p) for _, p in read), defaults)


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1] in (
        "id",
        "situation",
        "default",
    ):
        return f"{error['input']!r} is not an id (lower case letters, digits and _, 1-32)"
    return message


def _protocol(p: _Protocol) -> CallProtocol:
    return CallProtocol(
        kind=p.kind,
        situation=p.situation,
        title=p.title.as_dict(),
        steps=tuple(
            Step(
                id=s.id,
                text=s.text.as_dict(),
                answer=s.answer,
                choices=tuple(Choice(c.id, c.as_dict()) for c in s.choices),
                guidance=s.guidance.as_dict() if s.guidance else {},
                default=s.default,
            )
            for s in p.step
        ),
    )


# ------------------------------------------------------------------ following the file


@dataclass(frozen=True)
class _Version:
    mtime_ns: int
    size: int
    inode: int


class ProtocolFile:
    """The protocols in force, read again when the file changes (checked with one
    ``stat`` each time they are asked for: a page or an API request, no poller).

    A changed file is checked in full before it replaces the running protocols; one
    with a mistake is refused, logged once (``protocols_invalid`` with every problem)
    and the running protocols stay. A file deleted while the daemon runs also leaves
    them in force (``protocols_missing``). At start a bad file raises DataFileError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version = self._stat()
        self._book = load_protocols(path)
        self._refused: _Version | None = None

    def book(self) -> ProtocolBook:
        version = self._stat()
        if version == self._version:
            return self._book
        if version is None:
            log.warning("protocols_missing", path=str(self.path), kept="the running protocols")
            self._version = self._refused = None
            return self._book
        if version == self._refused:
            return self._book
        try:
            book = read_protocols(self.path, self.path.read_bytes())
        except (DataFileError, OSError) as exc:
            problems = exc.problems if isinstance(exc, DataFileError) else [str(exc)]
            log.error(
                "protocols_invalid",
                path=str(self.path),
                problems=problems,
                kept="the running protocols",
            )
            self._refused = version
            return self._book
        self._book, self._version, self._refused = book, version, None
        log.info("protocols_reloaded", path=str(self.path), protocols=len(book.protocols))
        return book

    def _stat(self) -> _Version | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return _Version(st.st_mtime_ns, st.st_size, st.st_ino)

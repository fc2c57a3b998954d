"""Escalation policies from the data folder's ``policies.toml``, per call kind and
optionally per community.

The file is kept by hand, so every problem is reported as ``file:line: problem``
(the line of the table it is in) and nothing is half loaded: either every policy
is valid or :class:`~dispatcher.adapters.files.directory_files.DataFileError` lists
what is wrong. An
absent file means the built-in policies (``dispatcher.core.escalation``).

Format (all keys but ``steps`` optional)::

    [emergency]                  # also used for falls, unless [fall] is given
    repeat_every_s = 180         # the last step again at this interval ...
    repeat = 10                  # ... this many times (omitted: for ever), then the
                                 # hotline and the district's supervisors, for ever
    steps = [
      { delay_s = 0,   targets = ["hotline"] },
      { delay_s = 60,  targets = ["hotline", "on_duty:community:primary"] },
      { delay_s = 180, targets = ["hotline", "street_supervisor", "emergency_contacts:1"],
        channels = ["sms", "voice"] },
    ]
    [emergency.ack_timeout]      # omitted: the built-in one; ack_timeout = false: none
    after_s = 2700
    repeat_every_s = 900
    steps = [{ delay_s = 0, targets = ["acknowledger"] },
             { delay_s = 300, targets = ["street_supervisor"] }]

    [community.c-lh.emergency]   # this community's own policy for emergencies (and falls)
    ...

Targets: ``hotline``, ``community``, ``street_supervisor``, ``district_supervisors``,
``emergency_contacts`` (all, in order) or ``emergency_contacts:<n>`` (the first n),
``person:<staff id>``, ``rotation:<rotation id>``,
``on_duty:<community|street|district>[:<primary|backup>]`` (exactly that level of
the resident's chain, no falling back: a step that finds nobody is skipped at
once), ``acknowledger`` (the acknowledgement timeout's: who holds the call).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from dispatcher.adapters.files.directory_files import DataFileError
from dispatcher.core.directory import Directory, Level
from dispatcher.core.escalation import (
    DEFAULT_POLICIES,
    KINDS,
    AckTimeout,
    Policy,
    Step,
    Target,
    TargetKind,
    parse_target,
)
from dispatcher.core.policy_book import PolicyBook

POLICIES = "policies.toml"
_POLICY_KEYS = {"steps", "repeat_every_s", "repeat", "ack_timeout"}
_ACK_KEYS = {"after_s", "steps", "repeat_every_s"}
_STEP_KEYS = {"delay_s", "targets", "channels"}


class _Problems:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.split("\n")
        self.found: list[str] = []

    def add(self, table: tuple[str, ...], problem: str) -> None:
        line = self._line_of(table)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.found.append(f"{where}: [{'.'.join(table)}] {problem}")

    def _line_of(self, table: tuple[str, ...]) -> int | None:
        """The line of ``[a.b]`` or, for a key of an inline table, ``b = `` under ``[a]``."""
        key = r"\s*\.\s*".join(rf"[\"']?{re.escape(k)}[\"']?" for k in table)
        header = re.compile(rf"^\s*\[\[?\s*{key}\s*\]\]?\s*(#.*)?$")
        within = re.compile(rf"^\s*\[\[?\s*{key}\s*\.")  # [a.b.c] when [a.b] is asked
        for pattern in (header, within):
            for number, line in enumerate(self.lines, start=1):
                if pattern.match(line):
                    return number
        if len(table) > 1:
            parent = self._line_of(table[:-1])
            if parent:
                leaf = re.compile(rf"^\s*[\"']?{re.escape(table[-1])}[\"']?\s*=")
                for number in range(parent, len(self.lines)):
                    if leaf.match(self.lines[number]):
                        return number + 1
            return parent
        return None


def load_policies(
    path: Path,
    directory: Directory,
    *,
    base: Mapping[str, Policy] = DEFAULT_POLICIES,
    rotation_ids: Collection[str] | None = None,
) -> PolicyBook:
    """The policies of ``path``, over ``base``; ``base`` alone when the file is absent.

    ``rotation_ids``: the rota's rotations, to check ``rotation:`` targets against
    (None: not checked here; an unknown one then names nobody when it fires).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return PolicyBook(dict(base))
    except OSError as exc:
        raise DataFileError([f"{path}: cannot read it: {exc.strerror}"]) from None
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

    problems = _Problems(path, text)
    reader = _Reader(problems, directory, rotation_ids)
    defaults = dict(base)
    defaults.update(reader.kinds(data, (), base))
    by_community: dict[str, dict[str, Policy]] = {}
    communities = data.get("community", {})
    if not isinstance(communities, dict):
        problems.add(("community",), "must be a table of communities")
        communities = {}
    for community_id, section in communities.items():
        area = directory.areas.get(community_id)
        where = ("community", community_id)
        if area is None or area.level is not Level.COMMUNITY:
            problems.add(where, f"{community_id!r} is not a community in areas.csv")
            continue
        if not isinstance(section, dict):
            problems.add(where, "must be a table of policies by call kind")
            continue
        by_community[community_id] = reader.kinds(section, where, defaults)
    if problems.found:
        raise DataFileError(problems.found)
    return PolicyBook(defaults, by_community)


class _Reader:
    def __init__(
        self, problems: _Problems, directory: Directory, rotation_ids: Collection[str] | None
    ) -> None:
        self.problems = problems
        self.directory = directory
        self.rotation_ids = rotation_ids

    def kinds(
        self, data: dict[str, Any], where: tuple[str, ...], base: Mapping[str, Policy]
    ) -> dict[str, Policy]:
        """The policies of one level (the file's top, or a community), by kind."""
        out: dict[str, Policy] = {}
        for key, value in data.items():
            if not where and key == "community":
                continue
            if key not in KINDS:
                self.problems.add(
                    (*where, key), f"unknown call kind (one of {', '.join(KINDS)}, community)"
                )
                continue
            policy = self.policy(value, (*where, key), base[key])
            if policy is not None:
                out[key] = policy
        if "emergency" in out and "fall" not in out:
            out["fall"] = out["emergency"]  # a fall is an emergency unless told otherwise
        return out

    def policy(self, value: Any, where: tuple[str, ...], base: Policy) -> Policy | None:
        if not isinstance(value, dict):
            self.problems.add(where, "must be a table")
            return None
        before = len(self.problems.found)
        self._unknown_keys(value, _POLICY_KEYS, where)
        steps = self.steps(value.get("steps"), where)
        every = self._int(value, "repeat_every_s", where, base.repeat_every_s, minimum=1)
        repeat = self._int(value, "repeat", where, None, minimum=0)
        ack: AckTimeout | None = base.ack_timeout
        if "ack_timeout" in value:
            ack = self.ack_timeout(value["ack_timeout"], (*where, "ack_timeout"))
        if len(self.problems.found) > before or steps is None or every is None:
            return None
        name = ".".join(k for k in where if k != "community")
        return Policy(name, steps, every, repeat, ack)

    def ack_timeout(self, value: Any, where: tuple[str, ...]) -> AckTimeout | None:
        if value is False:
            return None
        if not isinstance(value, dict):
            self.problems.add(where, "must be a table, or false for none")
            return None
        self._unknown_keys(value, _ACK_KEYS, where)
        after = self._int(value, "after_s", where, None, minimum=1, required=True)
        every = self._int(value, "repeat_every_s", where, None, minimum=1, required=True)
        steps = self.steps(value.get("steps"), where)
        if after is None or every is None or steps is None:
            return None
        return AckTimeout(after, steps, every)

    def steps(self, value: Any, where: tuple[str, ...]) -> tuple[Step, ...] | None:
        at = (*where, "steps")
        if not isinstance(value, list) or not value:
            self.problems.add(at, "a policy needs a list of at least one step")
            return None
        out: list[Step] = []
        for number, raw in enumerate(value, start=1):
            step = self.step(raw, at, number)
            if step is None:
                return None
            if out and step.delay_s < out[-1].delay_s:
                self.problems.add(
                    at,
                    f"step {number}: delay_s {step.delay_s} comes before step {number - 1}'s "
                    f"{out[-1].delay_s}; steps must be in order",
                )
                return None
            out.append(step)
        return tuple(out)

    def step(self, raw: Any, where: tuple[str, ...], number: int) -> Step | None:
        if not isinstance(raw, dict):
            self.problems.add(where, f"step {number}: must be a table")
            return None
        bad = sorted(set(raw) - _STEP_KEYS)
        if bad:
            self.problems.add(where, f"step {number}: unknown key {', '.join(bad)}")
            return None
        delay = raw.get("delay_s")
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            self.problems.add(where, f"step {number}: delay_s must be a whole number >= 0")
            return None
        targets = raw.get("targets")
        if (
            not isinstance(targets, list)
            or not targets
            or not all(isinstance(t, str) for t in targets)
        ):
            self.problems.add(where, f"step {number}: targets must be a list of names")
            return None
        ok = True
        for spec in targets:
            problem = self._target_problem(spec)
            if spec == Target.ACKNOWLEDGER.value and "ack_timeout" not in where:
                problem = "target 'acknowledger' is only for the steps of an ack_timeout"
            if problem:
                self.problems.add(where, f"step {number}: {problem}")
                ok = False
        channels = raw.get("channels", ["sms"])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            self.problems.add(where, f"step {number}: channels must be a list")
            return None
        try:
            return Step(delay, tuple(targets), tuple(channels)) if ok else None
        except ValueError as exc:
            self.problems.add(where, f"step {number}: {exc}")
            return None

    def _target_problem(self, spec: str) -> str | None:
        try:
            target = parse_target(spec)
        except ValueError as exc:
            return str(exc)
        if target.kind is TargetKind.PERSON:
            person = self.directory.staff.get(target.name)
            if person is None:
                return f"target {spec!r}: no staff {target.name!r} in staff.csv"
            if not person.phone:
                return f"target {spec!r}: {target.name} has no phone number"
        if (
            target.kind is TargetKind.ROTATION
            and self.rotation_ids is not None
            and target.name not in self.rotation_ids
        ):
            return f"target {spec!r}: no rotation {target.name!r} in the rota"
        return None

    def _int(
        self,
        value: dict[str, Any],
        key: str,
        where: tuple[str, ...],
        default: int | None,
        *,
        minimum: int,
        required: bool = False,
    ) -> int | None:
        if key not in value:
            if required:
                self.problems.add(where, f"{key} is missing")
            return default
        got = value[key]
        if not isinstance(got, int) or isinstance(got, bool) or got < minimum:
            self.problems.add(where, f"{key} must be a whole number >= {minimum}, not {got!r}")
            return None
        return got

    def _unknown_keys(self, value: dict[str, Any], known: set[str], where: tuple[str, ...]) -> None:
        bad = sorted(set(value) - known)
        if bad:
            names = ", ".join(sorted(known))
            self.problems.add(where, f"unknown key {', '.join(bad)} (known: {names})")

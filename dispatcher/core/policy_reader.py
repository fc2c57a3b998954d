"""One reader and one set of checks for escalation policies, from parsed TOML.

Both places policies are written go through it: the data folder's ``policies.toml``
(``dispatcher.adapters.files.policies``, which places each problem on its line) and
the configuration's ``[escalation.policies]`` (``dispatcher.config``, which names its
key). So a policy is refused for the same reasons, in the same words, wherever it is
written. Pure: the caller reads the file and decides how a problem is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from dispatcher.core.directory import Directory
from dispatcher.core.escalation import (
    KINDS,
    AckTimeout,
    Policy,
    Step,
    Target,
    TargetKind,
    Watchdog,
    parse_target,
)

_POLICY_KEYS = frozenset({"steps", "repeat_every_s", "repeat", "ack_timeout", "watchdog"})
_ACK_KEYS = frozenset({"after_s", "steps", "repeat_every_s"})
_WATCHDOG_KEYS = frozenset({"untaken_after_s", "repeat_every_s", "repeat"})
_STEP_KEYS = frozenset({"delay_s", "targets", "channels"})


class PolicyReader:
    """Reads policies from TOML data, reporting each problem as ``(table, problem)``.

    ``table`` is the key path of the table the problem is in (``("emergency",
    "steps")``), for the caller to place: the data file by its line, the
    configuration by its key. A policy with a problem is left out (None).
    ``directory`` checks ``person:`` targets against staff.csv and ``rotation_ids``
    the ``rotation:`` ones; None skips either check (a target naming nobody then
    finds nobody when it fires). ``ack_timeout=False`` and ``watchdog=False`` refuse
    those keys (the configuration's policies keep the file's or built-in ones).
    """

    def __init__(
        self,
        report: Callable[[tuple[str, ...], str], None],
        directory: Directory | None = None,
        rotation_ids: Collection[str] | None = None,
        *,
        ack_timeout: bool = True,
        watchdog: bool = True,
    ) -> None:
        self.report = report
        self.found = 0  # problems reported so far
        self.directory = directory
        self.rotation_ids = rotation_ids
        refused = {"ack_timeout"} if not ack_timeout else set()
        refused |= {"watchdog"} if not watchdog else set()
        self.policy_keys = _POLICY_KEYS - refused

    def _add(self, table: tuple[str, ...], problem: str) -> None:
        self.found += 1
        self.report(table, problem)

    def kinds(
        self, data: dict[str, Any], where: tuple[str, ...], base: Mapping[str, Policy]
    ) -> dict[str, Policy]:
        """The policies of one level (the file's top, or a community), by kind."""
        out: dict[str, Policy] = {}
        for key, value in data.items():
            if not where and key == "community":
                continue
            if key == "watchdog":
                self._add(
                    (*where, key),
                    "the watchdog is set per call kind: [emergency.watchdog], "
                    "[service.watchdog] ... (a fall follows the emergency's)",
                )
                continue
            if key not in KINDS:
                self._add(
                    (*where, key), f"unknown call kind (one of {', '.join(KINDS)}, community)"
                )
                continue
            policy = self.policy(value, (*where, key), base[key])
            if policy is not None:
                out[key] = policy
        if "emergency" in out and "fall" not in out:
            out["fall"] = out["emergency"]  # a fall is an emergency unless told otherwise
        return out

    def policy(
        self, value: Any, where: tuple[str, ...], base: Policy, name: str | None = None
    ) -> Policy | None:
        """The policy of table ``where`` over ``base`` (for what it leaves out); its
        name is ``name`` or the table's path without ``community``."""
        if not isinstance(value, dict):
            self._add(where, "must be a table")
            return None
        before = self.found
        self._unknown_keys(value, self.policy_keys, where)
        steps = self.steps(value.get("steps"), where)
        every = self._int(value, "repeat_every_s", where, base.repeat_every_s, minimum=1)
        repeat = self._int(value, "repeat", where, None, minimum=0)
        ack: AckTimeout | None = base.ack_timeout
        if "ack_timeout" in value:
            ack = self.ack_timeout(value["ack_timeout"], (*where, "ack_timeout"))
        dog: Watchdog | None = base.watchdog
        if "watchdog" in value:
            dog = self.watchdog(value["watchdog"], (*where, "watchdog"), base.watchdog)
        if self.found > before or steps is None or every is None:
            return None
        if name is None:
            name = ".".join(k for k in where if k != "community")
        return Policy(name, steps, every, repeat, ack, dog)

    def watchdog(
        self, value: Any, where: tuple[str, ...], base: Watchdog | None
    ) -> Watchdog | None:
        """The supervisor watchdog of table ``where``: what it leaves out is ``base``'s
        (the kind's built-in one), else :class:`Watchdog`'s defaults; false: none."""
        if value is False:
            return None
        if not isinstance(value, dict):
            self._add(where, "must be a table, or false for none")
            return None
        before = self.found
        self._unknown_keys(value, _WATCHDOG_KEYS, where)
        start = base or Watchdog()
        after = self._int(value, "untaken_after_s", where, start.untaken_after_s, minimum=1)
        every = self._int(value, "repeat_every_s", where, start.repeat_every_s, minimum=1)
        repeat = self._int(value, "repeat", where, start.repeat, minimum=0)
        if self.found > before or after is None or every is None or repeat is None:
            return None
        return Watchdog(after, every, repeat)

    def ack_timeout(self, value: Any, where: tuple[str, ...]) -> AckTimeout | None:
        if value is False:
            return None
        if not isinstance(value, dict):
            self._add(where, "must be a table, or false for none")
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
            self._add(at, "a policy needs a list of at least one step")
            return None
        out: list[Step] = []
        for number, raw in enumerate(value, start=1):
            step = self.step(raw, at, number)
            if step is None:
                return None
            if out and step.delay_s < out[-1].delay_s:
                self._add(
                    at,
                    f"step {number}: delay_s {step.delay_s} comes before step {number - 1}'s "
                    f"{out[-1].delay_s}; steps must be in order",
                )
                return None
            out.append(step)
        return tuple(out)

    def step(self, raw: Any, where: tuple[str, ...], number: int) -> Step | None:
        if not isinstance(raw, dict):
            self._add(where, f"step {number}: must be a table")
            return None
        bad = sorted(set(raw) - _STEP_KEYS)
        if bad:
            self._add(where, f"step {number}: unknown key {', '.join(bad)}")
            return None
        delay = raw.get("delay_s")
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            self._add(where, f"step {number}: delay_s must be a whole number >= 0")
            return None
        targets = raw.get("targets")
        if (
            not isinstance(targets, list)
            or not targets
            or not all(isinstance(t, str) for t in targets)
        ):
            self._add(where, f"step {number}: targets must be a list of names")
            return None
        ok = True
        for spec in targets:
            problem = self._target_problem(spec)
            if spec == Target.ACKNOWLEDGER.value and "ack_timeout" not in where:
                problem = "target 'acknowledger' is only for the steps of an ack_timeout"
            if problem:
                self._add(where, f"step {number}: {problem}")
                ok = False
        channels = raw.get("channels", ["sms"])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            self._add(where, f"step {number}: channels must be a list")
            return None
        try:
            return Step(delay, tuple(targets), tuple(channels)) if ok else None
        except ValueError as exc:
            self._add(where, f"step {number}: {exc}")
            return None

    def _target_problem(self, spec: str) -> str | None:
        try:
            target = parse_target(spec)
        except ValueError as exc:
            return str(exc)
        if target.kind is TargetKind.PERSON and self.directory is not None:
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
                self._add(where, f"{key} is missing")
            return default
        got = value[key]
        if not isinstance(got, int) or isinstance(got, bool) or got < minimum:
            self._add(where, f"{key} must be a whole number >= {minimum}, not {got!r}")
            return None
        return got

    def _unknown_keys(
        self, value: dict[str, Any], known: Collection[str], where: tuple[str, ...]
    ) -> None:
        bad = sorted(set(value) - set(known))
        if bad:
            names = ", ".join(sorted(known))
            self._add(where, f"unknown key {', '.join(bad)} (known: {names})")

"""A new rota file for a running directory: the trial to check, then the swap.

A new ``rota.toml`` is checked as a *trial* copy of the directory in force
(:func:`with_rota`, which keeps the overrides made through the API); only when every
check passes is the trial put in force, by the directory holder's swap. The areas,
staff and residents are not touched: only the rota is reloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from dispatcher.core.directory import Directory
from dispatcher.core.escalation import Policy, Step, TargetKind, parse_target
from dispatcher.core.policy_book import PolicyBook
from dispatcher.core.rota.model import Override, OverrideBook, Rotation, Schedule


def with_rota(
    live: Directory,
    rotations: dict[str, Rotation],
    schedules: dict[str, Schedule],
    file_overrides: Iterable[Override],
    kept: Iterable[Override],
) -> Directory:
    """A copy of ``live`` with this rota: the file's overrides in place of the old
    file's, and ``kept`` (those made through the API) beside them; one the new file
    also names by id is the file's."""
    book = OverrideBook(file_overrides)
    for override in kept:
        if book.get(override.id) is None:
            book.add(override)
    return replace(live, rotations=rotations, schedules=schedules, overrides=book)


def rotations_named(policies: PolicyBook) -> set[str]:
    """The rotation ids the policies' ``rotation:<id>`` targets name."""
    found: set[str] = set()
    for policy in _every_policy(policies):
        steps: list[Step] = list(policy.steps)
        if policy.ack_timeout is not None:
            steps.extend(policy.ack_timeout.steps)
        for step in steps:
            for spec in step.targets:
                target = parse_target(spec)
                if target.kind is TargetKind.ROTATION:
                    found.add(target.name)
    return found


def _every_policy(policies: PolicyBook) -> Iterable[Policy]:
    yield from policies.defaults.values()
    for own in policies.by_community.values():
        yield from own.values()

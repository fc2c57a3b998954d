"""The policies in force: one per call kind, and the communities' own ones. Built from
``policies.toml`` by ``dispatcher.adapters.files.policies``; read by intake, which copies
the policy onto each call it opens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dispatcher.core.escalation import Policy


@dataclass(frozen=True)
class PolicyBook:
    """The policy for each call kind, and communities' own ones."""

    defaults: dict[str, Policy]
    by_community: dict[str, dict[str, Policy]] = field(default_factory=dict)

    def for_call(self, kind: str, community_id: str | None) -> Policy:
        own = self.by_community.get(community_id or "", {})
        return own.get(kind) or self.defaults[kind]

    def __getitem__(self, kind: str) -> Policy:
        return self.defaults[kind]

    def overridden(self, overrides: Mapping[str, Policy]) -> PolicyBook:
        """The configuration's ``[escalation.policies.<kind>]`` over the defaults; each
        keeps this book's acknowledgement timeout and watchdog for its kind (the
        settings have neither)."""
        defaults = dict(self.defaults)
        for kind, policy in overrides.items():
            own = self.defaults[kind]
            defaults[kind] = replace(policy, ack_timeout=own.ack_timeout, watchdog=own.watchdog)
        return PolicyBook(defaults, self.by_community)


def book(policies: Mapping[str, Policy] | PolicyBook) -> PolicyBook:
    return policies if isinstance(policies, PolicyBook) else PolicyBook(dict(policies))

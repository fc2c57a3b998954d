"""Which SMS leave for one number now, and what each says.

Several open calls pending for one number leave as one message that lists each call
with its reply code. An emergency or a fall always gets its own full message, and
the first one carries the pending others along, so an urgent call is never held back
by a bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.core.calls import CallKind
from dispatcher.core.contact_methods import Channel
from dispatcher.core.messages import BundleItem, also_sms, bundle_sms
from dispatcher.core.notifications.item import OutboxItem

# At most this many calls in one bundled SMS (it stays well under Twilio's 1600 chars).
BUNDLE_MAX = 12
URGENT_KINDS = frozenset({CallKind.EMERGENCY.value, CallKind.FALL.value})
# The channels whose messages to one number are throttled and bundled; every other
# channel's entry (a voice call) leaves on its own.
BUNDLED_CHANNELS = frozenset({Channel.SMS.value})


@dataclass(frozen=True)
class Planned:
    """One message to send: the entries it answers for and its text."""

    items: tuple[OutboxItem, ...]
    body: str


def is_urgent(item: OutboxItem) -> bool:
    return item.kind in URGENT_KINDS


def latest_per_call(items: Sequence[OutboxItem]) -> dict[str, OutboxItem]:
    """Each call's newest entry (its latest step), in the order the calls first appear."""
    calls: dict[str, OutboxItem] = {}
    for item in sorted(items, key=lambda i: i.id):
        calls[item.call_id] = item
    return calls


def plan_sms(items: Sequence[OutboxItem], limit: int = BUNDLE_MAX) -> list[Planned]:
    """The SMS that leave for one number now.

    Every urgent call (emergency, fall) gets its own full message; the non-urgent calls
    ride along with the first one as a list of codes. Without an urgent call, the
    non-urgent ones leave together: one call's own message, or a list of up to ``limit``
    calls with their reply codes. Entries of calls past ``limit`` stay for the next round.
    """
    urgent = latest_per_call([i for i in items if is_urgent(i)])
    others = latest_per_call([i for i in items if not is_urgent(i)])
    carried = list(others)[:limit]
    carried_items = [i for i in items if not is_urgent(i) and i.call_id in carried]
    lines = [BundleItem(others[c].summary or c, others[c].reply_code) for c in carried]
    plans: list[Planned] = []
    for n, (call_id, latest) in enumerate(urgent.items()):
        own = [i for i in items if i.call_id == call_id and is_urgent(i)]
        if n == 0 and lines:
            body = also_sms(latest.language, latest.body, lines)
            plans.append(Planned(tuple(own + carried_items), body))
        else:
            plans.append(Planned(tuple(own), latest.body))
    if not urgent and carried:
        if len(carried) == 1:
            plans.append(Planned(tuple(carried_items), others[carried[0]].body))
        else:
            language = others[carried[0]].language
            plans.append(Planned(tuple(carried_items), bundle_sms(language, lines)))
    return plans

"""What the audit keeps of a record: its fields as JSON, with the secrets left out.

The audit is read by supervisors who may not otherwise see a record's secrets, and it
is kept for good: an API token is never written (only whether one is set, and
whether it changed), and an ID-card number is kept masked as it is shown.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from dispatcher.core.directory import mask_id_card

TOKEN_SET = "(set)"


def audit_json(record: BaseModel | None) -> dict[str, Any] | None:
    if record is None:
        return None
    values: dict[str, Any] = record.model_dump(mode="json")
    if values.get("api_token"):
        values["api_token"] = TOKEN_SET
    if values.get("id_card"):
        values["id_card"] = mask_id_card(values["id_card"])
    return values


@dataclass(frozen=True)
class AuditEntry:
    """One change: who made it, when, to which record, and the record before and after
    (None before a create and after a delete)."""

    id: int
    at: datetime
    actor: str
    kind: str
    record_id: str
    action: str  # create, update, delete, move, retire, link, seed
    area_id: str | None  # the record's area (scope: who may read the entry)
    before: dict[str, Any] | None
    after: dict[str, Any] | None

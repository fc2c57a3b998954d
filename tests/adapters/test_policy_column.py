"""A call's policy column (schema.PolicyJSON): written and read back equal, and one
object for all the rows of one policy (a district has a handful of policies and
thousands of calls)."""

from __future__ import annotations

from sqlalchemy.dialects import sqlite

from dispatcher.adapters.db.schema import PolicyJSON
from dispatcher.core.escalation import DEFAULT_POLICIES


def test_each_policy_reads_back_equal_and_as_one_object_for_every_row() -> None:
    column, dialect = PolicyJSON(), sqlite.dialect()
    for policy in DEFAULT_POLICIES.values():
        text = column.process_bind_param(policy, dialect)
        assert text is not None
        first = column.process_result_value(text, dialect)
        again = column.process_result_value("".join(list(text)), dialect)  # another row's
        assert first == policy and again is first
    assert column.process_bind_param(None, dialect) is None
    assert column.process_result_value(None, dialect) is None

"""The ports the services use, as small protocols the adapters satisfy.

A service never builds SQL: it asks a *store* (a protocol it declares beside itself,
with the few operations it needs) inside a transaction it opens through
:class:`Transactions`. ``dispatcher.adapters.db`` holds the stores that implement them,
bound to one database transaction, and ``dispatcher.bootstrap`` wires them in.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

Store_co = TypeVar("Store_co", covariant=True)


class Transactions(Protocol[Store_co]):
    """Opens one transaction and hands out a store bound to it.

    ``async with tx.begin() as store:`` commits when the block ends normally and rolls
    back when it raises, so that one step of a service is one transaction.
    ``tx.read()`` is the same for reads that change nothing."""

    def begin(self) -> AbstractAsyncContextManager[Store_co]: ...

    def read(self) -> AbstractAsyncContextManager[Store_co]: ...

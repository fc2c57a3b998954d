"""The daemon freezes what start-up kept out of the cycle collector
(:func:`dispatcher.bootstrap.release_start_up_memory`). That is only safe for what
reference counting frees alone: a directory replaced by a reload (from the data
files, or rebuilt by the registry) must hold no reference cycles, or every reload
would keep the old one for ever."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.directory import Directory
from dispatcher.core.registry.build import directory_from, records_of

DATA = Path(__file__).resolve().parents[1] / "config" / "data"


def from_files() -> Directory:
    return load_directory(DATA)


def from_the_registry() -> Directory:
    base = load_directory(DATA)
    records, _ = records_of(base, datetime(2026, 1, 5, tzinfo=UTC))
    return directory_from(records, base)


@pytest.mark.parametrize("build", [from_files, from_the_registry], ids=["files", "registry"])
def test_a_frozen_directory_is_freed_when_dropped(build: Callable[[], Directory]) -> None:
    directory = build()
    own = len(directory.residents) + len(directory.staff) + len(directory.areas)
    assert own > 40  # something to free
    gc.collect()
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        del directory  # only reference counting can free frozen objects
        freed = before - gc.get_freeze_count()
    finally:
        gc.unfreeze()
    assert freed > own  # each record is an object, and more hang off some


@pytest.mark.parametrize("build", [from_files, from_the_registry], ids=["files", "registry"])
def test_a_directory_holds_no_reference_cycles(build: Callable[[], Directory]) -> None:
    gc.disable()  # nothing collected behind the test's back
    try:
        directory = build()
        gc.collect()  # what building it left
        del directory
        assert gc.collect() == 0  # all of it went by reference counting
    finally:
        gc.enable()

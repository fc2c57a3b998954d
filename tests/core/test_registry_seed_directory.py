"""The seed puts the data folder's own directory in force rather than a copy rebuilt
from the records it wrote (services/registry.py ``seed``): that holds only while the
two are equal, which this checks on the example data and on the fleet's data (with
buildings, rooms and a maintenance rota)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.registry.build import directory_from, records_of
from tests.services.fleet_data import fleet_data
from tests.support.app import DATA


@pytest.mark.parametrize("which", ["example", "fleet"])
def test_the_records_of_a_directory_rebuild_the_same_directory(which: str, tmp_path: Path) -> None:
    folder = DATA if which == "example" else fleet_data(tmp_path)
    files = load_directory(folder, "Asia/Shanghai")
    records, _ = records_of(files, datetime(2026, 1, 1, tzinfo=UTC))
    rebuilt = directory_from(records, files)
    assert rebuilt.residents == files.residents
    assert rebuilt.staff == files.staff
    assert rebuilt.areas == files.areas
    assert rebuilt.contact_methods == files.contact_methods
    assert rebuilt.residents_by_device == files.residents_by_device

"""What a search of the registry's lists matches (``dispatcher.core.registry.search``),
on the example data: a resident by name, id, address, device, phone as typed, or
community; a device by its id, model or resident."""

from __future__ import annotations

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.directory import Directory
from dispatcher.core.registry.records import Device, DeviceFields
from dispatcher.core.registry.search import device_matches, resident_matches
from tests.support.app import DATA


@pytest.fixture(scope="module")
def d() -> Directory:
    return load_directory(DATA)


def found(d: Directory, text: str) -> set[str]:
    return {r.id for r in d.residents.values() if resident_matches(d, r, text)}


def test_a_resident_is_found_by_any_of_what_an_operator_knows(d: Directory) -> None:
    assert found(d, "张桂兰") == {"r-0001"}
    assert found(d, "R-0001") == {"r-0001"}  # case does not matter
    assert found(d, "dev-0011") == {"r-0011"}
    assert found(d, "柳湖路88弄") == {"r-0001", "r-0002"}
    assert found(d, "+86 21 6411 0231") == {"r-0001"}
    assert found(d, "6411-0231") == {"r-0001"}
    assert found(d, "青石社区") == found(d, "c-qs") == {f"r-00{n}" for n in range(11, 21)}
    assert found(d, "") == set(d.residents)


def test_too_few_digits_match_no_phone(d: Directory) -> None:
    # "164" is in every 柳湖 home number; three digits are no search for a phone.
    assert found(d, "164") == set()
    assert "r-0001" in found(d, "2164")
    assert found(d, "nobody-of-that-name") == set()


def test_a_device_is_found_by_its_id_model_or_resident(d: Directory) -> None:
    device = Device(DeviceFields(id="dev-0002", model="YK-2", resident_id="r-0002"))
    assert device_matches(d, device, "yk-2")
    assert device_matches(d, device, "李秀英")
    assert device_matches(d, device, "DEV-0002")
    assert not device_matches(d, device, "张桂兰")

"""The registry's pure rules: a record's fields (the data files' validators), the
checks of a change against the directory, what the audit keeps, and the directory
built from the records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.core.directory import Directory, Role, Staff
from dispatcher.core.registry import rules
from dispatcher.core.registry.audit import TOKEN_SET, audit_json
from dispatcher.core.registry.build import directory_from, records_of
from dispatcher.core.registry.records import (
    AreaFields,
    Device,
    DeviceFields,
    FieldError,
    ResidentFields,
    StaffFields,
    resident_fields,
    validated,
)
from tests.support.app import DATA

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def d() -> Directory:
    return load_directory(DATA)


def resident(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "r-9001",
        "name": "钱淑珍",
        "birth_date": "1938-03-02",
        "address": "柳湖路 9 号",
        "community_id": "c-lh",
    }
    return {**base, **over}


def staff(d: Directory, staff_id: str) -> Staff:
    return d.staff[staff_id]


def test_a_resident_record_is_checked_by_the_data_files_rules_naming_the_field() -> None:
    made = validated(ResidentFields, resident(id_card="11010119380302123x", phone=""))
    assert made.id_card == "11010119380302123X" and made.phone is None
    with pytest.raises(FieldError) as bad_phone:
        validated(ResidentFields, resident(phone="138"))
    assert bad_phone.value.field == "phone" and "E.164" in bad_phone.value.message
    with pytest.raises(FieldError) as bad_contact:
        validated(
            ResidentFields,
            resident(contacts=[{"name": "钱伟", "relation": "儿子", "phone": "12"}]),
        )
    assert bad_contact.value.field == "contacts.0.phone"
    with pytest.raises(FieldError) as extra:
        validated(ResidentFields, resident(shoe_size="38"))
    assert extra.value.field == "shoe_size"
    with pytest.raises(FieldError) as bad_date:
        validated(ResidentFields, resident(birth_date="1938-02-30"))
    assert bad_date.value.field == "birth_date" and "not a real date" in bad_date.value.message


def test_a_residents_community_must_be_a_community(d: Directory) -> None:
    rules.check_resident(d, validated(ResidentFields, resident()), None)
    for where, said in (("s-hx", "is a street, not a community"), ("c-zz", "is not an area")):
        with pytest.raises(rules.Refused) as refused:
            rules.check_resident(d, validated(ResidentFields, resident(community_id=where)), None)
        assert refused.value.why is rules.Why.INVALID
        assert refused.value.field == "community_id" and said in refused.value.message
    with pytest.raises(rules.Refused) as twice:
        rules.check_resident(d, validated(ResidentFields, resident(id="r-0001")), None)
    assert twice.value.why is rules.Why.CONFLICT and twice.value.field == "id"


def test_device_ids_are_unique_and_a_resident_has_one_device(d: Directory) -> None:
    devices = {
        "dev-0001": Device(DeviceFields(id="dev-0001", resident_id="r-0001")),
        "dev-old": Device(DeviceFields(id="dev-old"), retired_at=NOW),
    }
    for device_id in ("dev-0001", "dev-old"):
        with pytest.raises(rules.Refused) as taken:
            rules.check_device(d, devices, DeviceFields(id=device_id), None)
        assert taken.value.why is rules.Why.CONFLICT and taken.value.field == "id"
    with pytest.raises(rules.Refused) as has_one:
        rules.check_device(d, devices, DeviceFields(id="dev-new", resident_id="r-0001"), None)
    assert "already has device dev-0001" in has_one.value.message
    with pytest.raises(rules.Refused) as nobody:
        rules.check_device(d, devices, DeviceFields(id="dev-new", resident_id="r-9999"), None)
    assert nobody.value.why is rules.Why.INVALID
    with pytest.raises(rules.Refused) as retired:
        rules.check_device(
            d, devices, DeviceFields(id="dev-old", resident_id="r-0002"), devices["dev-old"]
        )
    assert "retired" in retired.value.message
    rules.check_device(d, devices, DeviceFields(id="dev-new", resident_id="r-0002"), None)


def test_staff_on_the_rota_and_areas_in_use_cannot_be_deleted(d: Directory) -> None:
    with pytest.raises(rules.Refused) as on_rota:
        rules.check_staff_delete(d, "huang-lei")
    assert on_rota.value.why is rules.Why.CONFLICT and "on the rota" in on_rota.value.message
    for area_id in ("c-lh", "s-hx", "d-jb"):
        with pytest.raises(rules.Refused):
            rules.check_area_delete(d, area_id, [])
    empty = replace(
        d, areas={**d.areas, "c-new": replace(d.areas["c-lh"], id="c-new", name="新社区")}
    )
    rules.check_area_delete(empty, "c-new", [])


def test_an_areas_parent_is_the_level_above(d: Directory) -> None:
    ok = AreaFields(id="c-new", level="community", name="新社区", parent_id="s-hx")
    rules.check_area(d, ok, None)
    with pytest.raises(rules.Refused) as wrong:
        rules.check_area(d, ok.model_copy(update={"parent_id": "d-jb"}), None)
    assert wrong.value.field == "parent_id" and "a community's parent is a street" in str(
        wrong.value
    )
    with pytest.raises(rules.Refused):
        rules.check_area(d, AreaFields(id="d-2", level="district", name="二区"), None)


def test_managers_change_records_of_their_area_and_only_an_admin_makes_an_admin(
    d: Directory,
) -> None:
    sun_li = staff(d, "sun-li")  # 河西 street supervisor
    rules.require_manager(d, sun_li, ["c-lh", "c-qs"], "resident")
    with pytest.raises(rules.Refused) as outside:
        rules.require_manager(d, sun_li, ["c-ml"], "resident")
    assert outside.value.why is rules.Why.FORBIDDEN
    for reader in ("ma-lin", "demo-operator"):
        with pytest.raises(rules.Refused) as not_manager:
            rules.require_manager(d, staff(d, reader), ["c-lh"], "resident")
        assert not_manager.value.why is rules.Why.FORBIDDEN
    admin = StaffFields(id="new-admin", name="管理员", area_id="d-jb", role="admin")
    with pytest.raises(rules.Refused) as no_admin:
        rules.check_staff(d, staff(d, "zhao-min"), admin, None)
    assert no_admin.value.field == "role"
    rules.check_staff(d, replace(staff(d, "zhao-min"), role=Role.ADMIN), admin, None)
    token_of_other = admin.model_copy(
        update={"role": Role.STAFF, "api_token": "demo-operator-token"}
    )
    with pytest.raises(rules.Refused) as token:
        rules.check_staff(d, staff(d, "zhao-min"), token_of_other, None)
    assert token.value.field == "api_token" and "demo-operator-token" not in str(token.value)


def test_the_audit_keeps_no_token_and_the_id_card_masked() -> None:
    kept = audit_json(
        validated(ResidentFields, resident(id_card="110101193803021234", medication="阿司匹林"))
    )
    assert kept is not None and kept["id_card"] == "110101********1234"
    assert kept["medication"] == "阿司匹林" and kept["birth_date"] == "1938-03-02"
    member = StaffFields(
        id="x", name="X", area_id="d-jb", role="operator", api_token="secret-token-123456"
    )
    assert audit_json(member)["api_token"] == TOKEN_SET  # type: ignore[index]
    assert audit_json(None) is None


def test_the_directory_built_from_its_records_is_the_one_read_from_the_files(
    d: Directory,
) -> None:
    records, history = records_of(d, NOW)
    assert len(records.devices) == len(d.residents) == len(history)
    rebuilt = directory_from(records, d)
    assert rebuilt.residents == d.residents
    assert rebuilt.staff == d.staff and rebuilt.areas == d.areas
    assert rebuilt.contact_methods == d.contact_methods
    assert rebuilt.overrides is d.overrides  # the book shared, API overrides kept
    # A resident with no device in service is no device's resident.
    moved = [x for x in records.devices if x.id != "dev-0001"]
    without = directory_from(replace(records, devices=moved), d)
    assert without.residents["r-0001"].device_id == ""
    assert "dev-0001" not in without.residents_by_device and "" not in without.residents_by_device
    # A record's fields validate again as they are (a patch re-validates the whole).
    fields = resident_fields(d.residents["r-0001"], d.contact_methods)
    assert validated(ResidentFields, fields.model_dump()) == fields

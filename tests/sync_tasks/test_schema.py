"""Provisioning derived from the mapping, against an in-memory stand-in of the Properties API (the
end-to-end tests run it against the HubSpot sandbox)."""

from __future__ import annotations

from typing import Any

import pytest

from sync_tasks.mapping_file import DEFAULT_MAPPING, parse_mapping, read_mapping
from sync_tasks.schema import SchemaConflict, missing_properties, schema_from_mapping, setup_schema


class FakeProperties:
    def __init__(self) -> None:
        self.props: dict[str, dict[str, dict[str, Any]]] = {
            "contacts": {n: {"name": n, "type": "string"} for n in ("email", "firstname", "lastname", "phone",
                                                                      "address", "city", "zip", "state", "country",
                                                                      "company")},
            "companies": {"name": {"name": "name", "type": "string"}}}
        self.props["contacts"]["hs_language"] = {"name": "hs_language", "type": "enumeration"}
        self.groups: dict[str, set[str]] = {"contacts": set(), "companies": set()}
        self.writes = 0

    def properties(self, obj: str) -> list[dict[str, Any]]:
        return list(self.props[obj].values())

    def property_groups(self, obj: str) -> list[dict[str, Any]]:
        return [{"name": g} for g in self.groups[obj]]

    def create_property_group(self, obj: str, group: dict[str, Any]) -> None:
        self.writes += 1
        self.groups[obj].add(group["name"])

    def create_property(self, obj: str, prop: dict[str, Any]) -> None:
        assert "hubspotDefined" not in prop and prop["groupName"] in self.groups[obj]
        self.writes += 1
        self.props[obj][prop["name"]] = dict(prop)

    def request(self, method: str, path: str, json: Any = None) -> None:
        self.writes += 1
        obj, name = path.split("/")[-2:]
        self.props[obj][name]["options"] = json["options"]


def test_setup_creates_the_mapped_properties_once_and_the_sync_sees_none_missing() -> None:
    api = FakeProperties()
    mapping = read_mapping()
    assert "contacts.ct_customer_id" in missing_properties(api, mapping)  # type: ignore[arg-type]
    report = setup_schema(api, mapping=mapping)  # type: ignore[arg-type]
    assert "contacts.ct_customer_id" in report.created and "contacts.ct_customer_ids" in report.created
    assert api.props["contacts"]["ct_customer_id"]["hasUniqueValue"] is True
    assert api.props["companies"]["ct_company_key"]["hasUniqueValue"] is True
    assert "contacts.firstname" in report.existing  # HubSpot's own: checked, never created
    writes = api.writes
    again = setup_schema(api, mapping=mapping)  # type: ignore[arg-type]
    assert again.created == again.updated == [] and api.writes == writes
    assert missing_properties(api, mapping) == []  # type: ignore[arg-type]


def test_new_enumeration_options_are_added_and_conflicts_reported() -> None:
    api = FakeProperties()
    setup_schema(api, mapping=read_mapping())  # type: ignore[arg-type]
    text = DEFAULT_MAPPING.read_text().replace(
        'options = ["eu", "us", "uk", "jp"]', 'options = ["eu", "us", "uk", "jp", "ch"]')
    wider = parse_mapping(text)
    assert missing_properties(api, wider) == ["contacts.ct_stores option 'ch'"]  # type: ignore[arg-type]
    assert setup_schema(api, mapping=wider).updated == ["contacts.ct_stores"]  # type: ignore[arg-type]
    api.props["contacts"]["ct_newsletter"]["type"] = "string"
    del api.props["contacts"]["hs_language"]
    with pytest.raises(SchemaConflict) as err:
        setup_schema(api, mapping=wider)  # type: ignore[arg-type]
    assert "contacts.ct_newsletter: type is 'string', the mapping needs 'bool'" in str(err.value)
    assert "contacts.hs_language: HubSpot property missing" in str(err.value)


def test_order_sections_derive_unique_keys() -> None:
    schema = schema_from_mapping(read_mapping(), ("order", "cart", "line_item"))
    keys = {obj: [p["name"] for p in props if p["hasUniqueValue"]] for obj, props in schema.items()}
    assert keys == {"orders": ["ct_order_id"], "carts": ["ct_cart_id"], "line_items": ["ct_line_item_id"]}

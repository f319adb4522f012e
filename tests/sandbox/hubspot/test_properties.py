"""Properties API (definitions, groups, batch, unique values) and property value validation."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Client

P = "/crm/v3/properties"


def definition(name: str, **overrides: Any) -> dict[str, Any]:
    return {"name": name, "label": name.title(), "type": "string", "fieldType": "text",
            "groupName": "orderinformation", **overrides}


def test_default_properties(hs: Client) -> None:
    expected = {
        "contacts": {"email", "firstname", "lastname", "phone", "address", "city", "zip", "state", "country",
                     "company", "hs_language", "lifecyclestage", "hs_additional_emails", "hs_marketable_status",
                     "createdate", "lastmodifieddate", "hs_object_id"},
        "companies": {"name", "domain"},
        "orders": {"hs_order_name", "hs_currency_code", "hs_source_store", "hs_pipeline", "hs_pipeline_stage",
                   "hs_total_price", "hs_subtotal_price", "hs_tax", "hs_shipping_cost", "hs_order_discount",
                   "hs_discount_codes", "hs_payment_status", "hs_fulfillment_status", "hs_external_order_id",
                   "hs_shipping_address_street", "hs_billing_address_city", "hs_createdate", "hs_lastmodifieddate"},
        "carts": {"hs_cart_name", "hs_external_cart_id", "hs_external_status", "hs_cart_url", "hs_total_price",
                  "hs_currency_code", "hs_source_store", "hs_cart_discount", "hs_tags"},
        "line_items": {"name", "hs_sku", "price", "quantity", "amount", "hs_product_id", "hs_discount_percentage",
                       "hs_tax_rate_group_id"},
        "products": {"name", "hs_sku", "price", "description"},
        "deals": {"dealname", "dealstage", "pipeline", "amount", "closedate"},
    }
    for object_type, names in expected.items():
        response = hs.get(f"{P}/{object_type}")
        assert response.status_code == 200
        have = {p["name"] for p in response.json()["results"]}
        assert names <= have, (object_type, names - have)
    marketable = hs.get(f"{P}/contacts/hs_marketable_status").json()
    assert marketable["modificationMetadata"]["readOnlyValue"] is True
    stage = hs.get(f"{P}/0-1/lifecyclestage").json()
    assert [o["value"] for o in stage["options"]][:3] == ["subscriber", "lead", "marketingqualifiedlead"]
    assert hs.get(f"{P}/contacts/nope").status_code == 404


def test_create_get_patch_property(hs: Client) -> None:
    created = hs.post(f"{P}/orders", definition("ct_state", type="enumeration", fieldType="select",
                                                options=[{"label": "Open", "value": "open"}]))
    assert created.status_code == 201
    body = created.json()
    assert body["hasUniqueValue"] is False and body["hubspotDefined"] is False
    assert hs.get(f"{P}/order/ct_state").json()["options"][0]["value"] == "open"
    patched = hs.patch(f"{P}/orders/ct_state", {"label": "State", "options": [
        {"label": "Open", "value": "open"}, {"label": "Done", "value": "done"}]})
    assert patched.status_code == 200 and patched.json()["label"] == "State"
    again = hs.post(f"{P}/orders", definition("ct_state", type="enumeration", fieldType="select",
                                              options=[{"label": "Open", "value": "open"}]))
    assert again.status_code == 409 and again.json()["category"] == "CONFLICT"


@pytest.mark.parametrize(("kind", "field_type", "ok"), [
    ("string", "text", True), ("string", "textarea", True), ("string", "phonenumber", True),
    ("string", "html", True), ("string", "file", True), ("string", "number", False),
    ("number", "number", True), ("number", "text", False), ("bool", "booleancheckbox", True),
    ("bool", "select", False), ("enumeration", "checkbox", True), ("enumeration", "radio", True),
    ("enumeration", "text", False), ("date", "date", True), ("datetime", "date", True),
    ("datetime", "text", False), ("widget", "text", False),
])
def test_type_field_type_pairs(hs: Client, kind: str, field_type: str, ok: bool) -> None:
    options = [{"label": "A", "value": "a"}] if kind == "enumeration" else None
    body = definition(f"p_{kind}_{field_type}", type=kind, fieldType=field_type)
    if options:
        body["options"] = options
    response = hs.post(f"{P}/orders", body)
    assert response.status_code == (201 if ok else 400), response.text


def test_definition_rules(hs: Client) -> None:
    no_options = hs.post(f"{P}/orders", definition("ct_e", type="enumeration", fieldType="select"))
    assert no_options.status_code == 400
    bad_group = hs.post(f"{P}/orders", definition("ct_g", groupName="nosuchgroup"))
    assert bad_group.status_code == 400
    missing = hs.post(f"{P}/orders", {"name": "ct_x"})
    assert missing.status_code == 400 and missing.json()["category"] == "VALIDATION_ERROR"


def test_groups(hs: Client) -> None:
    assert hs.post(f"{P}/orders/groups", {"name": "commercetools", "label": "commercetools"}).status_code == 201
    assert hs.post(f"{P}/orders/groups", {"name": "commercetools", "label": "x"}).status_code == 409
    assert hs.post(f"{P}/orders/groups", {"name": "nolabel"}).status_code == 400
    assert hs.get(f"{P}/orders/groups/commercetools").json()["label"] == "commercetools"
    assert hs.get(f"{P}/orders/groups/nosuch").status_code == 404
    names = {g["name"] for g in hs.get(f"{P}/orders/groups").json()["results"]}
    assert {"orderinformation", "commercetools"} <= names
    assert hs.post(f"{P}/orders", definition("ct_id", groupName="commercetools")).status_code == 201


def test_batch_create_and_read(hs: Client) -> None:
    response = hs.post(f"{P}/carts/batch/create", {"inputs": [
        definition("ct_cart_id", groupName="cartinformation", hasUniqueValue=True),
        definition("ct_cart_note", groupName="cartinformation")]})
    assert response.status_code == 201
    assert response.json()["status"] == "COMPLETE" and len(response.json()["results"]) == 2
    partial = hs.post(f"{P}/carts/batch/create", {"inputs": [
        definition("ct_other", groupName="cartinformation"), definition("ct_cart_id", groupName="cartinformation")]})
    assert partial.status_code == 207 and partial.json()["numErrors"] == 1
    read = hs.post(f"{P}/carts/batch/read", {"inputs": [{"name": "ct_cart_id"}, {"name": "hs_cart_name"},
                                                         {"name": "nope"}]})
    assert read.status_code == 207
    assert [p["name"] for p in read.json()["results"]] == ["ct_cart_id", "hs_cart_name"]


def test_unique_immutable_and_limit(hs: Client) -> None:
    assert hs.post(f"{P}/orders", definition("ct_u0", hasUniqueValue=True)).status_code == 201
    change = hs.patch(f"{P}/orders/ct_u0", {"hasUniqueValue": False})
    assert change.status_code == 400
    assert hs.patch(f"{P}/orders/ct_u0", {"hasUniqueValue": True, "label": "same"}).status_code == 200
    hs.post(f"{P}/orders", definition("ct_plain"))
    assert hs.patch(f"{P}/orders/ct_plain", {"hasUniqueValue": True}).status_code == 400
    for i in range(1, 10):
        assert hs.post(f"{P}/orders", definition(f"ct_u{i}", hasUniqueValue=True)).status_code == 201
    eleventh = hs.post(f"{P}/orders", definition("ct_u10", hasUniqueValue=True))
    assert eleventh.status_code == 400
    assert hs.post(f"{P}/orders", definition("ct_not_unique")).status_code == 201


def _write_error(hs: Client, props: dict[str, Any], object_type: str = "contacts") -> dict[str, Any]:
    response = hs.post(f"/crm/v3/objects/{object_type}", {"properties": props})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [")
    return dict(body["errors"][0])


def test_unknown_property(hs: Client) -> None:
    error = _write_error(hs, {"email": "a@x.com", "x": "1"})
    assert error == {"message": 'Property "x" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                     "context": {"propertyName": ["x"]}}


@pytest.mark.parametrize(("object_type", "props", "code", "name"), [
    ("contacts", {"total_revenue": "12abc"}, "INVALID_INTEGER", "total_revenue"),
    ("contacts", {"email": "not-an-email"}, "INVALID_EMAIL", "email"),
    ("contacts", {"hs_additional_emails": "ok@x.com;bad"}, "INVALID_EMAIL", "hs_additional_emails"),
    ("contacts", {"lifecyclestage": "vip"}, "INVALID_OPTION", "lifecyclestage"),
    ("contacts", {"hs_object_id": "5"}, "READ_ONLY_VALUE", "hs_object_id"),
    ("contacts", {"hs_marketable_status": "true"}, "READ_ONLY_VALUE", "hs_marketable_status"),
    ("contacts", {"createdate": "2024-01-01"}, "READ_ONLY_VALUE", "createdate"),
    ("contacts", {"firstname": "x" * 65_537}, "INVALID_LONG_STRING", "firstname"),
    ("orders", {"hs_processed_date": "yesterday"}, "INVALID_DATETIME", "hs_processed_date"),
    ("orders", {"hs_pipeline_stage": "nosuchstage"}, "INVALID_OPTION", "hs_pipeline_stage"),
    ("deals", {"dealstage": "nosuchstage"}, "INVALID_OPTION", "dealstage"),
])
def test_invalid_values(hs: Client, object_type: str, props: dict[str, Any], code: str, name: str) -> None:
    error = _write_error(hs, props, object_type)
    assert error["code"] == code
    assert error["context"]["propertyName"] == [name]


def test_value_formats(hs: Client) -> None:
    for prop in (definition("ct_day", type="date", fieldType="date"),
                 definition("ct_flag", type="bool", fieldType="booleancheckbox"),
                 definition("ct_tags", type="enumeration", fieldType="checkbox",
                            options=[{"label": v, "value": v} for v in ("a", "b", "c")])):
        assert hs.post(f"{P}/orders", prop).status_code == 201
    order = hs.create("orders", {"ct_day": 1_704_067_200_000, "ct_flag": True, "ct_tags": "a;b",
                                 "hs_processed_date": "2024-01-02T03:04:05Z", "hs_total_price": 12.5})
    wanted = "ct_day,ct_flag,ct_tags,hs_processed_date,hs_total_price"
    props = hs.get(f"/crm/v3/objects/orders/{order['id']}", params={"properties": wanted}).json()["properties"]
    assert props["ct_day"] == "2024-01-01"
    assert props["ct_flag"] == "true"
    assert props["ct_tags"] == "a;b"
    assert props["hs_processed_date"] == "2024-01-02T03:04:05.000Z"
    assert props["hs_total_price"] == "12.5"
    assert _write_error(hs, {"ct_day": 1_704_067_200_001}, "orders")["code"] == "INVALID_DATE"
    assert _write_error(hs, {"ct_day": "2024-13-01"}, "orders")["code"] == "INVALID_DATE"
    assert _write_error(hs, {"ct_flag": "maybe"}, "orders")["code"] == "INVALID_BOOLEAN"
    assert _write_error(hs, {"ct_tags": "a;z"}, "orders")["code"] == "INVALID_OPTION"
    assert hs.post("/crm/v3/objects/orders", {"properties": {"ct_day": "2024-02-29"}}).status_code == 201
    # A leading ';' appends to a multi-checkbox; "" clears.
    hs.patch(f"/crm/v3/objects/orders/{order['id']}", {"properties": {"ct_tags": ";c", "hs_total_price": ""}})
    props = hs.get(f"/crm/v3/objects/orders/{order['id']}",
                   params={"properties": "ct_tags,hs_total_price"}).json()["properties"]
    assert props["ct_tags"] == "a;b;c"
    assert props["hs_total_price"] is None


def test_string_cap_is_65536(hs: Client) -> None:
    assert hs.post("/crm/v3/objects/contacts", {"properties": {"firstname": "x" * 65_536}}).status_code == 201


def test_lifecyclestage_forward_only(hs: Client) -> None:
    cid = hs.create("contacts", {"email": "l@x.com", "lifecyclestage": "lead"})["id"]

    def stage() -> str:
        return str(hs.get(f"/crm/v3/objects/contacts/{cid}", params={"properties": "lifecyclestage"}).json()[
            "properties"]["lifecyclestage"])

    hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"lifecyclestage": "customer"}})
    assert stage() == "customer"
    backward = hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"lifecyclestage": "lead"}})
    assert backward.status_code == 200  # silently ignored
    assert stage() == "customer"
    hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"lifecyclestage": ""}})
    hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"lifecyclestage": "lead"}})
    assert stage() == "lead"


def test_pipelines(hs: Client) -> None:
    deals = hs.get("/crm/v3/pipelines/deals").json()["results"]
    assert deals[0]["id"] == "default" and deals[0]["stages"]
    orders = hs.get("/crm/v3/pipelines/orders").json()["results"]
    assert len(orders) == 1
    assert {s["metadata"]["state"] for s in orders[0]["stages"]} == {"OPEN", "CLOSED"}
    created = hs.post("/crm/v3/pipelines/orders", {"label": "Shop", "displayOrder": 1, "stages": [
        {"label": "Placed", "displayOrder": 0, "metadata": {"state": "OPEN"}},
        {"label": "Done", "displayOrder": 1, "metadata": {"state": "CLOSED"}}]})
    assert created.status_code == 201
    pipe = created.json()
    assert pipe["id"] and all(s["id"] for s in pipe["stages"])
    assert hs.get(f"/crm/v3/pipelines/orders/{pipe['id']}").json()["label"] == "Shop"
    bad = hs.post("/crm/v3/pipelines/orders", {"label": "Bad", "stages": [{"label": "x", "metadata": {}}]})
    assert bad.status_code == 400
    assert hs.get("/crm/v3/pipelines/carts").status_code == 400
    order = hs.create("orders", {"hs_pipeline": pipe["id"], "hs_pipeline_stage": pipe["stages"][1]["id"]})
    assert order["properties"]["hs_pipeline_stage"] == pipe["stages"][1]["id"]
    deal = hs.create("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon"})
    assert deal["properties"]["dealstage"] == "closedwon"

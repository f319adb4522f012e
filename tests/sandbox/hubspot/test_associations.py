"""Associations v4: labelled and default creates, reads, paging, archive, type-id validation, dedupe
and the one-parent rule for line items."""

from __future__ import annotations

import requests

from .conftest import Client

A = "/crm/v4/associations"


def spec(type_id: int) -> list[dict[str, object]]:
    return [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]


def test_labels_reference_ids(hs: Client) -> None:
    expected = {("orders", "contacts"): 507, ("contacts", "orders"): 508, ("orders", "line_items"): 513,
                ("line_items", "orders"): 514, ("orders", "carts"): 593, ("carts", "orders"): 592,
                ("orders", "deals"): 512, ("deals", "orders"): 511, ("carts", "contacts"): 586,
                ("contacts", "carts"): 587, ("carts", "line_items"): 590, ("line_items", "carts"): 591,
                ("deals", "line_items"): 19, ("line_items", "deals"): 20, ("contacts", "companies"): 279,
                ("companies", "contacts"): 280, ("orders", "companies"): 934}
    for (src, dst), type_id in expected.items():
        response = hs.get(f"{A}/{src}/{dst}/labels")
        assert response.status_code == 200
        assert type_id in {t["typeId"] for t in response.json()["results"]}, (src, dst)
    primary = hs.get(f"{A}/contacts/companies/labels").json()["results"]
    assert {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"} in primary
    assert {t["typeId"] for t in hs.get(f"{A}/0-123/0-2/labels").json()["results"]} >= {509, 934}


def test_batch_create_read_dedupe(hs: Client, base: str) -> None:
    order = hs.create("orders", {"hs_order_name": "#1"})["id"]
    contact = hs.create("contacts", {"email": "a@x.com"})["id"]
    body = {"inputs": [{"from": {"id": order}, "to": {"id": contact}, "types": spec(507)}]}
    response = hs.post(f"{A}/orders/contacts/batch/create", body)
    assert response.status_code == 201
    result = response.json()["results"][0]
    assert result["fromObjectTypeId"] == "0-123" and result["toObjectTypeId"] == "0-1"
    assert result["fromObjectId"] == int(order) and result["toObjectId"] == int(contact)
    assert response.json()["status"] == "COMPLETE"
    assert hs.post(f"{A}/orders/contacts/batch/create", body).status_code == 201  # again: no duplicate
    pairs = requests.get(f"{base}/_sandbox/associations/orders/contacts", timeout=5).json()
    assert pairs["results"] == [{"fromId": order, "toId": contact, "typeIds": [507]}]
    reverse = requests.get(f"{base}/_sandbox/associations/contacts/orders", timeout=5).json()
    assert reverse["results"] == [{"fromId": contact, "toId": order, "typeIds": [508]}]
    read = hs.post(f"{A}/contacts/orders/batch/read", {"inputs": [{"id": contact}]})
    assert read.status_code == 200
    assert read.json()["results"] == [{"from": {"id": contact}, "to": [{"toObjectId": int(order), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 508, "label": None}]}]}]
    missing = hs.post(f"{A}/contacts/orders/batch/read", {"inputs": [{"id": contact}, {"id": "999999"}]})
    assert missing.status_code == 207 and missing.json()["numErrors"] == 1
    listed = hs.get(f"/crm/v4/objects/orders/{order}/associations/contacts").json()
    assert listed["results"] == [{"toObjectId": int(contact), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 507, "label": None}]}]


def test_invalid_type_id_and_unknown_ids(hs: Client) -> None:
    order = hs.create("orders", {})["id"]
    contact = hs.create("contacts", {"email": "a@x.com"})["id"]
    wrong = hs.post(f"{A}/orders/contacts/batch/create", {"inputs": [
        {"from": {"id": order}, "to": {"id": contact}, "types": spec(513)}]})
    assert wrong.status_code == 400 and wrong.json()["category"] == "VALIDATION_ERROR"
    unknown = hs.post(f"{A}/orders/contacts/batch/create", {"inputs": [
        {"from": {"id": order}, "to": {"id": "999999"}, "types": spec(507)}]})
    assert unknown.status_code == 400
    partial = hs.post(f"{A}/orders/contacts/batch/create", {"inputs": [
        {"from": {"id": order}, "to": {"id": contact}, "types": spec(507)},
        {"from": {"id": "888888"}, "to": {"id": contact}, "types": spec(507)}]})
    assert partial.status_code == 207
    assert partial.json()["numErrors"] == 1 and len(partial.json()["results"]) == 1
    not_associable = hs.post(f"{A}/products/contacts/batch/associate/default", {"inputs": [
        {"from": {"id": "1"}, "to": {"id": contact}}]})
    assert not_associable.status_code == 400


def test_default_associations_and_put(hs: Client) -> None:
    cart = hs.create("carts", {})["id"]
    contact = hs.create("contacts", {"email": "a@x.com"})["id"]
    company = hs.create("companies", {"name": "Acme"})["id"]
    response = hs.post(f"{A}/carts/contacts/batch/associate/default", {"inputs": [
        {"from": {"id": cart}, "to": {"id": contact}}]})
    assert response.status_code == 200
    assert response.json()["results"][0]["associationSpec"] == {"associationCategory": "HUBSPOT_DEFINED",
                                                                "associationTypeId": 586}
    put = hs.put(f"/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}")
    assert put.status_code == 200
    assert put.json()["results"][0]["associationSpec"]["associationTypeId"] == 279
    missing = hs.put(f"/crm/v4/objects/contacts/{contact}/associations/default/companies/999999")
    assert missing.status_code == 400
    primary = hs.post(f"{A}/contacts/companies/batch/create", {"inputs": [
        {"from": {"id": contact}, "to": {"id": company}, "types": spec(1)}]})
    assert primary.status_code == 201 and primary.json()["results"][0]["labels"] == ["Primary"]
    types = hs.get(f"/crm/v4/objects/contacts/{contact}/associations/companies").json()["results"][0][
        "associationTypes"]
    assert {t["typeId"] for t in types} == {1, 279}


def test_line_item_has_one_parent(hs: Client) -> None:
    order = hs.create("orders", {})["id"]
    other_order = hs.create("orders", {})["id"]
    cart = hs.create("carts", {})["id"]
    deal = hs.create("deals", {"dealname": "d"})["id"]
    item = hs.create("line_items", {"name": "x"})["id"]
    first = hs.post(f"{A}/orders/line_items/batch/create", {"inputs": [
        {"from": {"id": order}, "to": {"id": item}, "types": spec(513)}]})
    assert first.status_code == 201
    again = hs.post(f"{A}/line_items/orders/batch/associate/default", {"inputs": [
        {"from": {"id": item}, "to": {"id": order}}]})
    assert again.status_code == 200  # same parent: fine
    for src, parent, type_id in (("orders", other_order, 513), ("carts", cart, 590), ("deals", deal, 19)):
        response = hs.post(f"{A}/{src}/line_items/batch/create", {"inputs": [
            {"from": {"id": parent}, "to": {"id": item}, "types": spec(type_id)}]})
        assert response.status_code == 400, src
        assert "only one" in response.json()["message"]


def test_archive_and_paging(hs: Client) -> None:
    order = hs.create("orders", {})["id"]
    items = [r["id"] for r in hs.post("/crm/v3/objects/line_items/batch/create", {"inputs": [
        {"properties": {"name": f"i{i}"}} for i in range(7)]}).json()["results"]]
    created = hs.post(f"{A}/orders/line_items/batch/create", {"inputs": [
        {"from": {"id": order}, "to": {"id": i}, "types": spec(513)} for i in items]})
    assert created.status_code == 201
    path = f"/crm/v4/objects/orders/{order}/associations/line_items"
    page = hs.get(path, params={"limit": 5}).json()
    assert [r["toObjectId"] for r in page["results"]] == [int(i) for i in items[:5]]
    rest = hs.get(path, params={"limit": 5, "after": page["paging"]["next"]["after"]}).json()
    assert len(rest["results"]) == 2 and "paging" not in rest
    assert hs.get(path, params={"limit": 501}).status_code == 400
    archived = hs.post(f"{A}/orders/line_items/batch/archive", {"inputs": [
        {"from": {"id": order}, "to": [{"id": items[0]}, {"id": items[1]}]}]})
    assert archived.status_code == 204
    assert len(hs.get(path).json()["results"]) == 5
    assert hs.get(f"/crm/v4/objects/line_items/{items[0]}/associations/orders").json()["results"] == []


def test_batch_size_caps(hs: Client) -> None:
    create = hs.post(f"{A}/orders/contacts/batch/create", {"inputs": [
        {"from": {"id": "1"}, "to": {"id": "2"}, "types": spec(507)}] * 2_001})
    assert create.status_code == 400
    read = hs.post(f"{A}/orders/contacts/batch/read", {"inputs": [{"id": str(i)} for i in range(1_001)]})
    assert read.status_code == 400


def test_create_with_associations_inline(hs: Client) -> None:
    contact = hs.create("contacts", {"email": "a@x.com"})["id"]
    response = hs.post("/crm/v3/objects/orders/batch/create", {"inputs": [
        {"properties": {"hs_order_name": "#9"}, "associations": [{"to": {"id": contact}, "types": spec(507)}]}]})
    assert response.status_code == 201
    order = response.json()["results"][0]["id"]
    assert hs.get(f"/crm/v4/objects/contacts/{contact}/associations/orders").json()["results"][0][
        "toObjectId"] == int(order)

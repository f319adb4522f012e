"""CRM objects: single and batch create/read/update/upsert/archive, their response shapes, 207
partial failures, duplicate ids, idProperty rules, 409 conflicts, merge and property history."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .conftest import Client

BATCH = "/crm/v3/objects/{}/batch/{}"


def unique_prop(hs: Client, object_type: str, name: str) -> None:
    groups = hs.get(f"/crm/v3/properties/{object_type}/groups").json()["results"]
    response = hs.post(f"/crm/v3/properties/{object_type}", {
        "name": name, "label": name, "type": "string", "fieldType": "text", "groupName": groups[0]["name"],
        "hasUniqueValue": True})
    assert response.status_code == 201, response.text


def count(base: str, object_type: str) -> dict[str, int]:
    return dict(requests.get(f"{base}/_sandbox/objects/{object_type}/count", timeout=5).json())


def assert_batch_shape(body: dict[str, Any]) -> None:
    assert body["status"] == "COMPLETE"
    for key in ("requestedAt", "startedAt", "completedAt"):
        assert body[key].endswith("Z")
    for result in body["results"]:
        assert set(result) >= {"id", "properties", "createdAt", "updatedAt", "archived"}
        assert result["id"].isdigit()
        assert all(v is None or isinstance(v, str) for v in result["properties"].values())


@pytest.mark.parametrize("segment", ["contacts", "contact", "0-1"])
def test_contact_paths_accept_plural_singular_and_type_id(hs: Client, segment: str) -> None:
    created = hs.post(f"/crm/v3/objects/{segment}", {"properties": {"email": "Seg@Example.com"}})
    assert created.status_code == 201
    body = created.json()
    assert body["properties"]["email"] == "seg@example.com"  # stored lower-cased
    assert body["properties"]["hs_object_id"] == body["id"]
    assert body["properties"]["createdate"] and body["properties"]["lastmodifieddate"]
    assert hs.get(f"/crm/v3/objects/{segment}/{body['id']}").status_code == 200


@pytest.mark.parametrize(("segment", "name_prop"), [
    ("orders", "hs_order_name"), ("order", "hs_order_name"), ("0-123", "hs_order_name"),
    ("carts", "hs_cart_name"), ("cart", "hs_cart_name"), ("0-142", "hs_cart_name"),
    ("line_items", "name"), ("line_item", "name"), ("0-8", "name"), ("products", "name"), ("0-7", "name"),
    ("companies", "name"), ("company", "name"), ("0-2", "name"), ("deals", "dealname"), ("0-3", "dealname"),
])
def test_every_object_type(hs: Client, segment: str, name_prop: str) -> None:
    body = hs.create(segment, {name_prop: "X"})
    assert body["properties"][name_prop] == "X"
    read = hs.get(f"/crm/v3/objects/{segment}/{body['id']}").json()
    assert read["properties"]["hs_object_id"] == body["id"]
    if segment in ("orders", "order", "0-123", "carts", "cart", "0-142"):
        assert read["properties"]["hs_createdate"] and read["properties"]["hs_lastmodifieddate"]


def test_unknown_object_type_400(hs: Client) -> None:
    response = hs.get("/crm/v3/objects/widgets/1")
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_single_read_update_archive(hs: Client) -> None:
    created = hs.create("contacts", {"email": "a@x.com", "firstname": "Ann", "total_revenue": 10.5})
    cid = created["id"]
    assert created["properties"]["total_revenue"] == "10.5"
    read = hs.get(f"/crm/v3/objects/contacts/{cid}", params={"properties": "firstname,total_revenue"}).json()
    assert read["properties"]["firstname"] == "Ann"
    assert read["properties"]["total_revenue"] == "10.5"
    assert "email" not in read["properties"]  # only requested (plus defaults)
    assert read["properties"]["hs_object_id"] == cid
    default = hs.get(f"/crm/v3/objects/contacts/{cid}").json()
    assert set(default["properties"]) == {"createdate", "email", "firstname", "hs_object_id",
                                          "lastmodifieddate", "lastname"}
    assert default["properties"]["lastname"] is None
    by_email = hs.get("/crm/v3/objects/contacts/A@X.COM", params={"idProperty": "email"})
    assert by_email.status_code == 200 and by_email.json()["id"] == cid
    updated = hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"lastname": "Lee"}})
    assert updated.status_code == 200
    assert updated.json()["properties"]["lastname"] == "Lee"
    patched_by_email = hs.patch("/crm/v3/objects/contacts/a@x.com", {"properties": {"city": "Oslo"}},
                                params={"idProperty": "email"})
    assert patched_by_email.status_code == 200
    assert hs.delete(f"/crm/v3/objects/contacts/{cid}").status_code == 204
    missing = hs.get(f"/crm/v3/objects/contacts/{cid}")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"
    archived = hs.get(f"/crm/v3/objects/contacts/{cid}", params={"archived": "true"}).json()
    assert archived["archived"] is True and archived["archivedAt"]
    # The archived contact's email is free again.
    assert hs.post("/crm/v3/objects/contacts", {"properties": {"email": "a@x.com"}}).status_code == 201


def test_list_objects_pages(hs: Client) -> None:
    ids = [hs.create("products", {"name": f"P{i}"})["id"] for i in range(5)]
    first = hs.get("/crm/v3/objects/products", params={"limit": 3}).json()
    assert [r["id"] for r in first["results"]] == ids[:3]
    after = first["paging"]["next"]["after"]
    second = hs.get("/crm/v3/objects/products", params={"limit": 3, "after": after}).json()
    assert [r["id"] for r in second["results"]] == ids[3:]
    assert "paging" not in second


def test_batch_create_shape_and_201(hs: Client) -> None:
    response = hs.post(BATCH.format("orders", "create"), {"inputs": [
        {"properties": {"hs_order_name": f"#{i}", "hs_total_price": i * 10}} for i in range(3)]})
    assert response.status_code == 201
    body = response.json()
    assert_batch_shape(body)
    assert [r["properties"]["hs_order_name"] for r in body["results"]] == ["#0", "#1", "#2"]
    assert body["results"][2]["properties"]["hs_total_price"] == "20"
    ids = [int(r["id"]) for r in body["results"]]
    assert ids == sorted(ids)  # numeric, increasing


def test_batch_over_100_inputs_400(hs: Client) -> None:
    for op, item in (("create", {"properties": {}}), ("upsert", {"id": "x", "idProperty": "email"}),
                     ("update", {"id": "1", "properties": {}}), ("read", {"id": "1"})):
        inputs = [dict(item, id=f"{i}@x.com") if op != "create" else item for i in range(101)]
        response = hs.post(BATCH.format("contacts", op), {"inputs": inputs})
        assert response.status_code == 400, op
        assert response.json()["category"] == "VALIDATION_ERROR"


def test_batch_create_without_trace_ids_fails_whole_batch(hs: Client, base: str) -> None:
    response = hs.post(BATCH.format("contacts", "create"), {"inputs": [
        {"properties": {"email": "good@x.com"}}, {"properties": {"email": "bad"}}]})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["code"] == "INVALID_EMAIL"
    assert count(base, "contacts")["total"] == 0  # nothing written


def test_batch_create_with_trace_ids_207(hs: Client, base: str) -> None:
    hs.create("contacts", {"email": "taken@x.com"})
    response = hs.post(BATCH.format("contacts", "create"), {"inputs": [
        {"properties": {"email": "good@x.com"}, "objectWriteTraceId": "t1"},
        {"properties": {"email": "bad"}, "objectWriteTraceId": "t2"},
        {"properties": {"email": "TAKEN@x.com"}, "objectWriteTraceId": "t3"}]})
    assert response.status_code == 207
    body = response.json()
    assert_batch_shape(body)
    assert body["numErrors"] == 2
    assert [r["properties"]["email"] for r in body["results"]] == ["good@x.com"]
    by_trace = {e["context"]["objectWriteTraceId"][0]: e for e in body["errors"]}
    assert by_trace["t2"]["category"] == "VALIDATION_ERROR" and by_trace["t2"]["status"] == "error"
    assert by_trace["t3"]["category"] == "CONFLICT"
    assert "Existing ID" in by_trace["t3"]["message"]
    assert count(base, "contacts")["total"] == 2


def test_batch_upsert_by_email(hs: Client) -> None:
    first = hs.upsert_contacts(["A@x.com", "b@x.com"], firstname="One")
    assert first.status_code == 200
    body = first.json()
    assert_batch_shape(body)
    assert [r["new"] for r in body["results"]] == [True, True]
    assert body["results"][0]["properties"]["email"] == "a@x.com"
    second = hs.upsert_contacts(["a@X.com", "c@x.com"], firstname="Two").json()
    assert [r["new"] for r in second["results"]] == [False, True]
    assert second["results"][0]["id"] == body["results"][0]["id"]
    assert second["results"][0]["properties"]["firstname"] == "Two"


def test_upsert_duplicate_ids_400_case_insensitive(hs: Client, base: str) -> None:
    response = hs.upsert_contacts(["dup@x.com", "DUP@x.com", "other@x.com"])
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "Duplicate IDs found in batch input: [dup@x.com]. IDs must be unique"
    assert body["context"]["ids"] == ["dup@x.com"]
    assert count(base, "contacts")["total"] == 0
    # Trace ids do not change that.
    traced = hs.post(BATCH.format("contacts", "upsert"), {"inputs": [
        {"id": "d@x.com", "idProperty": "email", "properties": {}, "objectWriteTraceId": "1"},
        {"id": "d@x.com", "idProperty": "email", "properties": {}, "objectWriteTraceId": "2"}]})
    assert traced.status_code == 400


def test_duplicate_ids_in_update_and_read(hs: Client) -> None:
    cid = hs.create("contacts", {"email": "u@x.com"})["id"]
    update = hs.post(BATCH.format("contacts", "update"), {"inputs": [
        {"id": cid, "properties": {"firstname": "a"}}, {"id": cid, "properties": {"lastname": "b"}}]})
    assert update.status_code == 400 and update.json()["context"]["ids"] == [cid]
    read = hs.post(BATCH.format("contacts", "read"), {"inputs": [{"id": cid}, {"id": cid}]})
    assert read.status_code == 400 and "Duplicate IDs" in read.json()["message"]


def test_upsert_by_unique_property_and_non_unique_refused(hs: Client) -> None:
    unique_prop(hs, "orders", "ct_order_id")
    response = hs.post(BATCH.format("orders", "upsert"), {"inputs": [
        {"id": "ct-1", "idProperty": "ct_order_id", "properties": {"hs_order_name": "#1"}}]})
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["new"] is True and result["properties"]["ct_order_id"] == "ct-1"
    again = hs.post(BATCH.format("orders", "upsert"), {"inputs": [
        {"id": "ct-1", "idProperty": "ct_order_id", "properties": {"hs_order_name": "#1b"}}]}).json()
    assert again["results"][0]["new"] is False and again["results"][0]["id"] == result["id"]
    deal = hs.post(BATCH.format("deals", "upsert"), {"inputs": [
        {"id": "Big deal", "idProperty": "dealname", "properties": {}}]})
    assert deal.status_code == 400
    assert deal.json()["message"] == "Unable to perform update/upsert by non-unique 0-3 property dealname"
    by_object_id = hs.post(BATCH.format("contacts", "upsert"), {"inputs": [
        {"id": "1", "idProperty": "hs_object_id", "properties": {}}]})
    assert by_object_id.status_code == 400
    read_by_unique = hs.post(BATCH.format("orders", "read"), {
        "idProperty": "ct_order_id", "inputs": [{"id": "ct-1"}], "properties": ["hs_order_name"]}).json()
    assert read_by_unique["results"][0]["properties"]["hs_order_name"] == "#1b"
    read_non_unique = hs.post(BATCH.format("orders", "read"), {"idProperty": "hs_order_name",
                                                                "inputs": [{"id": "#1b"}]})
    assert read_non_unique.status_code == 400


def test_batch_update_by_email_refused(hs: Client) -> None:
    hs.create("contacts", {"email": "e@x.com"})
    response = hs.post(BATCH.format("contacts", "update"), {"inputs": [
        {"id": "e@x.com", "idProperty": "email", "properties": {"firstname": "x"}}]})
    assert response.status_code == 400
    assert response.json()["message"] == "Unable to perform update/upsert by non-unique 0-1 property email"


def test_batch_update_200_and_traced_207(hs: Client) -> None:
    ids = [hs.create("carts", {"hs_cart_name": f"c{i}"})["id"] for i in range(2)]
    ok = hs.post(BATCH.format("carts", "update"), {"inputs": [
        {"id": i, "properties": {"hs_external_status": "open"}} for i in ids]})
    assert ok.status_code == 200
    assert_batch_shape(ok.json())
    assert {r["properties"]["hs_external_status"] for r in ok.json()["results"]} == {"open"}
    untraced = hs.post(BATCH.format("carts", "update"), {"inputs": [
        {"id": ids[0], "properties": {"hs_cart_name": "new"}}, {"id": "999999", "properties": {}}]})
    assert untraced.status_code == 404
    assert hs.get(f"/crm/v3/objects/carts/{ids[0]}", params={"properties": "hs_cart_name"}).json()[
        "properties"]["hs_cart_name"] == "c0"
    traced = hs.post(BATCH.format("carts", "update"), {"inputs": [
        {"id": ids[0], "properties": {"hs_cart_name": "new"}, "objectWriteTraceId": "a"},
        {"id": "999999", "properties": {}, "objectWriteTraceId": "b"},
        {"id": ids[1], "properties": {"hs_total_price": "abc"}, "objectWriteTraceId": "c"}]})
    assert traced.status_code == 207
    body = traced.json()
    assert body["numErrors"] == 2
    assert {e["category"] for e in body["errors"]} == {"OBJECT_NOT_FOUND", "VALIDATION_ERROR"}
    assert body["results"][0]["objectWriteTraceId"] == "a"


def test_upsert_traced_207(hs: Client) -> None:
    response = hs.post(BATCH.format("contacts", "upsert"), {"inputs": [
        {"id": "ok@x.com", "idProperty": "email", "properties": {}, "objectWriteTraceId": "1"},
        {"id": "bad@x.com", "idProperty": "email", "properties": {"lifecyclestage": "nope"},
         "objectWriteTraceId": "2"}]})
    assert response.status_code == 207
    body = response.json()
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["2"]
    assert body["errors"][0]["errors"][0]["code"] == "INVALID_OPTION"
    assert body["results"][0]["new"] is True


def test_batch_read_missing_207_and_history(hs: Client) -> None:
    cid = hs.create("contacts", {"email": "h@x.com", "firstname": "v1"})["id"]
    hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"firstname": "v2"}})
    all_found = hs.post(BATCH.format("contacts", "read"), {"inputs": [{"id": cid}]})
    assert all_found.status_code == 200
    response = hs.post(BATCH.format("contacts", "read"), {
        "inputs": [{"id": cid}, {"id": "424242"}], "properties": ["firstname"],
        "propertiesWithHistory": ["firstname"]})
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 1
    error = body["errors"][0]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["424242"]
    history = body["results"][0]["propertiesWithHistory"]["firstname"]
    assert [h["value"] for h in history] == ["v2", "v1"]  # newest first
    assert history[0]["timestamp"] > history[1]["timestamp"]
    assert set(history[0]) == {"value", "timestamp", "sourceType", "sourceId"}
    assert history[0]["sourceType"] == "INTEGRATION"
    by_email = hs.post(BATCH.format("contacts", "read"), {"idProperty": "email", "inputs": [{"id": "H@X.com"}]})
    assert by_email.json()["results"][0]["id"] == cid
    single = hs.get(f"/crm/v3/objects/contacts/{cid}", params={"propertiesWithHistory": "firstname"}).json()
    assert len(single["propertiesWithHistory"]["firstname"]) == 2


def test_batch_archive(hs: Client) -> None:
    ids = [hs.create("line_items", {"name": f"l{i}"})["id"] for i in range(3)]
    response = hs.post(BATCH.format("line_items", "archive"), {"inputs": [{"id": ids[0]}, {"id": ids[1]},
                                                                          {"id": "9999999"}]})
    assert response.status_code == 204
    read = hs.post(BATCH.format("line_items", "read"), {"inputs": [{"id": i} for i in ids]})
    assert read.status_code == 207
    assert sorted(read.json()["errors"][0]["context"]["ids"]) == sorted(ids[:2])
    archived = hs.post(BATCH.format("line_items", "read") + "?archived=true", {"inputs": [{"id": ids[0]}]})
    assert archived.status_code == 200 and archived.json()["results"][0]["archived"] is True


def test_409_email_conflicts(hs: Client) -> None:
    first = hs.create("contacts", {"email": "Dup@x.com", "hs_additional_emails": "alt@x.com;Alt2@x.com"})
    for email in ("dup@X.com", "ALT@x.com", "alt2@x.com"):
        response = hs.post("/crm/v3/objects/contacts", {"properties": {"email": email}})
        assert response.status_code == 409, email
        body = response.json()
        assert body["category"] == "CONFLICT"
        assert body["message"] == f"Contact already exists. Existing ID: {first['id']}"
    other = hs.create("contacts", {"email": "other@x.com"})
    clash = hs.patch(f"/crm/v3/objects/contacts/{other['id']}", {"properties": {"hs_additional_emails": "alt@x.com"}})
    assert clash.status_code == 409
    # Upsert by an additional email finds the contact that owns it.
    upsert = hs.upsert_contacts(["alt2@x.com"], firstname="Z").json()
    assert upsert["results"][0]["id"] == first["id"] and upsert["results"][0]["new"] is False


def test_409_unique_property(hs: Client) -> None:
    unique_prop(hs, "orders", "ct_order_id")
    first = hs.create("orders", {"ct_order_id": "o-1"})
    response = hs.post("/crm/v3/objects/orders", {"properties": {"ct_order_id": "o-1"}})
    assert response.status_code == 409
    body = response.json()
    assert body["category"] == "CONFLICT"
    assert body["message"].startswith(f"Order already exists. Existing ID: {first['id']}")
    assert body["context"]["propertyName"] == ["ct_order_id"]
    in_batch = hs.post(BATCH.format("orders", "create"), {"inputs": [
        {"properties": {"ct_order_id": "o-2"}}, {"properties": {"ct_order_id": "o-2"}}]})
    assert in_batch.status_code == 409


def test_merge_contacts(hs: Client, base: str) -> None:
    primary = hs.create("contacts", {"email": "p@x.com", "firstname": "Primary", "city": "Paris"})
    other = hs.create("contacts", {"email": "o@x.com", "firstname": "Other", "lastname": "Only",
                                   "hs_additional_emails": "o2@x.com"})
    order = hs.create("orders", {"hs_order_name": "#1"})
    assoc = hs.put(f"/crm/v4/objects/contacts/{other['id']}/associations/default/orders/{order['id']}")
    assert assoc.status_code == 200
    response = hs.post("/crm/v3/objects/contacts/merge", {"primaryObjectId": primary["id"],
                                                          "objectIdToMerge": other["id"]})
    assert response.status_code == 200
    merged = response.json()
    new_id = merged["id"]
    assert new_id not in (primary["id"], other["id"])
    assert int(new_id) > int(other["id"])
    props = merged["properties"]
    assert props["email"] == "p@x.com" and props["firstname"] == "Primary"
    assert sorted(props["hs_merged_object_ids"].split(";")) == sorted([primary["id"], other["id"]])
    for old in (primary["id"], other["id"]):
        read = hs.get(f"/crm/v3/objects/contacts/{old}", params={"properties": "lastname,hs_additional_emails,city"})
        assert read.status_code == 200 and read.json()["id"] == new_id
        assert read.json()["properties"]["lastname"] == "Only"
        assert read.json()["properties"]["city"] == "Paris"
        assert set(read.json()["properties"]["hs_additional_emails"].split(";")) == {"o@x.com", "o2@x.com"}
    assert hs.upsert_contacts(["o@x.com"]).json()["results"][0]["id"] == new_id
    assocs = hs.get(f"/crm/v4/objects/orders/{order['id']}/associations/contacts").json()["results"]
    assert [a["toObjectId"] for a in assocs] == [int(new_id)]
    assert count(base, "contacts")["total"] == 1
    assert hs.post("/crm/v3/objects/contacts/merge", {"primaryObjectId": new_id,
                                                      "objectIdToMerge": "999999"}).status_code == 404


def test_history_sources_and_most_recent_wins(hs: Client, base: str) -> None:
    cid = hs.create("contacts", {"email": "m@x.com", "phone": "1"})["id"]
    edit = requests.patch(f"{base}/_sandbox/objects/contacts/{cid}", json={"properties": {"phone": "2"}}, timeout=5)
    assert edit.status_code == 200
    hs.post(BATCH.format("contacts", "update"), {"inputs": [{"id": cid, "properties": {"phone": "3"}}]})
    history = hs.post(BATCH.format("contacts", "read"), {"inputs": [{"id": cid}],
                                                         "propertiesWithHistory": ["phone"]}).json()
    entries = history["results"][0]["propertiesWithHistory"]["phone"]
    assert [e["value"] for e in entries] == ["3", "2", "1"]
    assert [e["sourceType"] for e in entries] == ["INTEGRATION", "CRM_UI", "INTEGRATION"]
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 3


def test_unchanged_write_keeps_modified_date(hs: Client) -> None:
    created = hs.create("contacts", {"email": "same@x.com", "firstname": "A"})
    again = hs.upsert_contacts(["same@x.com"], firstname="A").json()["results"][0]
    assert again["updatedAt"] == created["updatedAt"]

"""Search: index lag, operators, sorts, paging, the 200-per-page and 10,000-result caps, filter limits."""

from __future__ import annotations

import time
from typing import Any

import requests

from .conftest import LAG, Client

S = "/crm/v3/objects/contacts/search"


def flt(name: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    out = {"propertyName": name, "operator": op, **extra}
    if value is not None:
        out["value"] = value
    return out


def ids(body: dict[str, Any]) -> list[str]:
    return [r["id"] for r in body["results"]]


def test_index_lag_on_create_and_update(hs: Client) -> None:
    cid = hs.create("contacts", {"email": "lag@x.com", "firstname": "Old"})["id"]
    query = {"filterGroups": [{"filters": [flt("email", "EQ", "lag@x.com")]}], "properties": ["firstname"]}
    assert hs.post(S, query).json()["total"] == 0  # not indexed yet
    time.sleep(LAG + 0.1)
    found = hs.post(S, query).json()
    assert ids(found) == [cid] and found["results"][0]["properties"]["firstname"] == "Old"
    hs.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"firstname": "New"}})
    assert hs.post(S, query).json()["results"][0]["properties"]["firstname"] == "Old"  # stale snapshot
    by_new = {"filterGroups": [{"filters": [flt("firstname", "EQ", "New")]}]}
    assert hs.post(S, by_new).json()["total"] == 0
    time.sleep(LAG + 0.1)
    assert hs.post(S, query).json()["results"][0]["properties"]["firstname"] == "New"
    assert ids(hs.post(S, by_new).json()) == [cid]
    hs.delete(f"/crm/v3/objects/contacts/{cid}")
    assert hs.post(S, query).json()["total"] == 0  # archived never appears


def seed(base: str, n: int, **props: Any) -> list[str]:
    response = requests.post(f"{base}/_sandbox/objects/contacts", timeout=30, json={"inputs": [
        {"properties": {"email": f"s{i}@x.com", "total_revenue": i, **props}} for i in range(n)]})
    assert response.status_code == 201, response.text
    return [r["id"] for r in response.json()["results"]]


def test_operators(hs: Client, base: str) -> None:
    all_ids = seed(base, 6)
    requests.post(f"{base}/_sandbox/objects/contacts", json={"properties": {"email": "named@x.com", "firstname": "Zed",
                                                                            "lifecyclestage": "lead"}}, timeout=5)

    def run(*filters: dict[str, Any]) -> list[str]:
        response = hs.post(S, {"filterGroups": [{"filters": list(filters)}], "limit": 100})
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert run(flt("total_revenue", "EQ", "3")) == [all_ids[3]]
    assert len(run(flt("total_revenue", "NEQ", "3"))) == 6  # includes the contact without the property
    assert run(flt("total_revenue", "LT", 2)) == all_ids[:2]
    assert run(flt("total_revenue", "LTE", 2)) == all_ids[:3]
    assert run(flt("total_revenue", "GT", 4)) == all_ids[5:]
    assert run(flt("total_revenue", "GTE", 4)) == all_ids[4:]
    assert run(flt("total_revenue", "BETWEEN", 1, highValue=3)) == all_ids[1:4]
    assert run(flt("total_revenue", "IN", values=["1", "5"])) == [all_ids[1], all_ids[5]]
    assert len(run(flt("firstname", "HAS_PROPERTY"))) == 1
    assert len(run(flt("firstname", "NOT_HAS_PROPERTY"))) == 6
    assert len(run(flt("email", "EQ", "NAMED@x.com"))) == 1  # case-insensitive
    assert run(flt("total_revenue", "GTE", 1), flt("total_revenue", "LTE", 2)) == all_ids[1:3]  # AND
    either = hs.post(S, {"filterGroups": [{"filters": [flt("total_revenue", "EQ", 0)]},
                                          {"filters": [flt("total_revenue", "EQ", 5)]}]}).json()  # OR
    assert ids(either) == [all_ids[0], all_ids[5]]
    created = hs.post(S, {"filterGroups": [{"filters": [flt("createdate", "GTE", 0)]}], "limit": 100}).json()
    assert created["total"] == 7


def test_sorts_properties_and_paging(hs: Client, base: str) -> None:
    all_ids = seed(base, 7)
    body = {"sorts": [{"propertyName": "total_revenue", "direction": "DESCENDING"}], "limit": 3,
            "properties": ["total_revenue"]}
    page1 = hs.post(S, body).json()
    assert page1["total"] == 7
    assert ids(page1) == list(reversed(all_ids))[:3]
    assert set(page1["results"][0]["properties"]) == {"total_revenue", "hs_object_id", "createdate",
                                                      "lastmodifieddate"}
    page2 = hs.post(S, {**body, "after": page1["paging"]["next"]["after"]}).json()
    assert ids(page2) == list(reversed(all_ids))[3:6]
    page3 = hs.post(S, {**body, "after": page2["paging"]["next"]["after"]}).json()
    assert ids(page3) == [all_ids[0]] and "paging" not in page3
    ascending = hs.post(S, {"sorts": ["total_revenue"], "limit": 2}).json()
    assert ids(ascending) == all_ids[:2]


def test_limits_on_request(hs: Client) -> None:
    assert hs.post(S, {"limit": 200}).status_code == 200
    assert hs.post(S, {"limit": "ten"}).status_code == 400
    assert hs.get("/crm/v3/objects/contacts", params={"limit": "x"}).status_code == 400
    over = hs.post(S, {"limit": 201})
    assert over.status_code == 400 and over.json()["category"] == "VALIDATION_ERROR"
    six = [{"filters": [flt("email", "HAS_PROPERTY")]}] * 6
    assert hs.post(S, {"filterGroups": six}).status_code == 400
    seven = [{"filters": [flt("email", "HAS_PROPERTY")] * 7}]
    assert hs.post(S, {"filterGroups": seven}).status_code == 400
    nineteen = [{"filters": [flt("email", "HAS_PROPERTY")] * 6}] * 3 + [{"filters": [flt("email", "HAS_PROPERTY")]}]
    assert hs.post(S, {"filterGroups": nineteen}).status_code == 400
    eighteen = [{"filters": [flt("email", "HAS_PROPERTY")] * 6}] * 3
    assert hs.post(S, {"filterGroups": eighteen}).status_code == 200
    assert hs.post(S, {"filterGroups": [{"filters": [flt("email", "LIKE", "x")]}]}).status_code == 400
    assert hs.post(S, {"query": "x" * 3_100}).status_code == 400  # body over 3,000 characters


def test_ten_thousand_result_cap(hs: Client, base: str) -> None:
    for _ in range(11):  # 11,000 contacts, seeded straight into the index
        response = requests.post(f"{base}/_sandbox/objects/contacts", timeout=60, json={"inputs": [
            {"properties": {"firstname": "bulk"}} for _ in range(1_000)]})
        assert response.status_code == 201
    query = {"filterGroups": [{"filters": [flt("firstname", "EQ", "bulk")]}], "limit": 200}
    last = hs.post(S, {**query, "after": 9_800})
    assert last.status_code == 200
    body = last.json()
    assert body["total"] == 11_000 and len(body["results"]) == 200
    assert body["paging"]["next"]["after"] == "10000"
    beyond = hs.post(S, {**query, "after": body["paging"]["next"]["after"]})
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"


def test_other_object_types_searchable(hs: Client, base: str) -> None:
    requests.post(f"{base}/_sandbox/objects/orders", json={"properties": {"hs_order_name": "#42"}}, timeout=5)
    body = hs.post("/crm/v3/objects/orders/search", {"filterGroups": [{"filters": [
        flt("hs_order_name", "EQ", "#42")]}]}).json()
    assert body["total"] == 1

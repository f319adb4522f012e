"""Properties of the seeded shop."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
import requests

from .conftest import ANCHOR, Api, start


@pytest.fixture(scope="module")
def shop(api: Api) -> dict[str, list[dict[str, Any]]]:
    return {name: api.all(f"/{name}") for name in ("customers", "orders", "carts", "payments", "messages",
                                                    "customer-groups", "stores")}


def test_counts(shop: dict[str, list[dict[str, Any]]]) -> None:
    assert len(shop["customers"]) == 300
    assert 1.2 <= len(shop["orders"]) / 300 <= 2.0
    assert {s["key"] for s in shop["stores"]} >= {"eu", "us", "uk"}
    assert len(shop["customer-groups"]) >= 3


def test_same_seed_same_shop(tmp_path_factory: pytest.TempPathFactory, api: Api) -> None:
    other = start(tmp_path_factory, "ct-same", ["--size", "300", "--seed", "42", "--anchor", ANCHOR])
    different = start(tmp_path_factory, "ct-diff", ["--size", "300", "--seed", "7", "--anchor", ANCHOR])
    try:
        a = Api(other.url).all("/orders")
        b = Api(different.url).all("/orders")
        fresh = Api(other.url).all("/customers")
        assert a and a == [o for o in a]  # non-empty
        assert [o["id"] for o in a] != [o["id"] for o in b]
        # the shared server may have been changed by other tests; compare untouched records
        mine = {c["id"]: c for c in api.all("/customers")}
        same = [c for c in fresh if mine.get(c["id"], {}).get("version") == c["version"]]
        assert len(same) > 250 and all(mine[c["id"]] == c for c in same)
        assert requests.get(f"{other.url}/_sandbox/stats", timeout=5).json()["seed"] == 42
    finally:
        other.stop()
        different.stop()


def test_customers_are_realistic_and_messy(shop: dict[str, list[dict[str, Any]]]) -> None:
    customers = shop["customers"]
    stores = Counter(c["stores"][0]["key"] if c["stores"] else "global" for c in customers)
    assert stores["global"] > 20 and stores["eu"] > 20 and stores["us"] > 10 and stores["uk"] > 10
    assert len({c.get("locale") for c in customers}) >= 5
    assert any(c["email"] != c["email"].strip() for c in customers), "padded emails"
    assert any(c["email"] != c["email"].lower() for c in customers), "mixed-case emails"
    assert any("firstName" not in c for c in customers)
    assert any(any(ord(ch) > 0x2000 for ch in (c.get("firstName") or "") + (c.get("lastName") or ""))
               for c in customers), "unicode names"
    assert any(c.get("companyName") for c in customers)
    assert any(c.get("externalId") for c in customers) and any(c.get("customerNumber") for c in customers)
    assert any(c.get("customerGroup") for c in customers)
    with_addr = [c for c in customers if c["addresses"]]
    assert with_addr and all(c["defaultShippingAddressId"] in {a["id"] for a in c["addresses"]} for c in with_addr)
    fields = [c["custom"]["fields"] for c in customers if c.get("custom")]
    assert any(f.get("newsletter") is True and "newsletterOptInDate" in f for f in fields)
    assert {f["consentChannel"] for f in fields} >= {"web", "email"}
    assert any(isinstance(f.get("preferredGreeting"), dict) for f in fields)
    assert any(isinstance(f.get("lifetimeBudget"), dict) and "centAmount" in f["lifetimeBudget"] for f in fields)
    assert any(len(f.get("notes", "")) >= 70_000 for f in fields), "very long value"
    by_email: dict[str, set[str]] = defaultdict(set)
    for c in customers:
        if c["stores"]:
            by_email[c["email"].strip().lower()].add(c["stores"][0]["key"])
    assert any(len(v) >= 2 for v in by_email.values()), "same email in two stores"


def test_timestamps(shop: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("customers", "orders", "carts", "payments", "messages"):
        for r in shop[name]:
            for f in ("createdAt", "lastModifiedAt"):
                ts = r[f]
                assert len(ts) == 24 and ts.endswith("Z") and ts[19] == "."
                # seeded records predate the anchor; records changed by other tests are newer
                assert ts < ANCHOR or r["createdAt"] > ANCHOR or r["version"] > 1 or name == "messages", (name, ts)
            assert r["createdAt"] <= r["lastModifiedAt"]
    created = sorted(c["createdAt"] for c in shop["customers"])
    assert created[0] < "2024-03-01" and created[-1] > "2025-12-01"
    ties = Counter(c["lastModifiedAt"] for c in shop["customers"])
    assert max(ties.values()) >= 2


def test_orders(shop: dict[str, list[dict[str, Any]]]) -> None:
    orders = shop["orders"]
    assert {o["orderState"] for o in orders} == {"Open", "Confirmed", "Complete", "Cancelled"}
    assert {o["paymentState"] for o in orders} == {"BalanceDue", "Failed", "Pending", "CreditOwed", "Paid"}
    assert {o["shipmentState"] for o in orders} >= {"Shipped", "Delivered", "Ready", "Pending", "Delayed",
                                                    "Partial", "Backorder", "Canceled"}
    assert {o["totalPrice"]["currencyCode"] for o in orders} == {"EUR", "USD", "GBP", "JPY"}
    assert all(o["totalPrice"]["fractionDigits"] == 0 for o in orders if o["totalPrice"]["currencyCode"] == "JPY")
    prices = [li["price"]["value"] for o in orders for li in o["lineItems"]]
    assert any(p["type"] == "highPrecision" and "preciseAmount" in p for p in prices)
    guests = [o for o in orders if "customerId" not in o]
    assert guests and all(o.get("anonymousId") and o.get("customerEmail") for o in guests)
    customer_ids = {c["id"] for c in shop["customers"]}
    with_orders = {o["customerId"] for o in orders if "customerId" in o}
    assert with_orders <= customer_ids and len(customer_ids - with_orders) > 30, "some customers without orders"
    assert any(o["returnInfo"] for o in orders)
    assert any(o["discountCodes"] for o in orders)
    assert any(li["discountedPricePerQuantity"] for o in orders for li in o["lineItems"])
    for o in orders[:50]:
        assert o["lineItems"] and o["lineItems"][0]["variant"]["sku"] and isinstance(o["lineItems"][0]["name"], dict)
        assert o["taxedPrice"]["totalGross"] and o["shippingInfo"]["shippingMethodName"]
        assert o["billingAddress"]["country"] and o["shippingAddress"]["country"] and o["store"]["key"]
    assert {o["origin"] for o in orders} >= {"Customer", "Merchant"}
    payment_ids = {p["id"] for p in shop["payments"]}
    refs = [r["id"] for o in orders for r in o.get("paymentInfo", {}).get("payments", [])]
    assert refs and set(refs) <= payment_ids


def test_carts(shop: dict[str, list[dict[str, Any]]]) -> None:
    carts = shop["carts"]
    assert {c["cartState"] for c in carts} >= {"Active", "Ordered", "Merged"}
    orders = {o["id"]: o for o in shop["orders"]}
    ordered = {c["id"] for c in carts if c["cartState"] == "Ordered"}
    linked = {o["cart"]["id"] for o in orders.values() if "cart" in o}
    assert linked and linked <= ordered
    abandoned = [c for c in carts if c["cartState"] == "Active" and c["lastModifiedAt"] < "2025-12-20"
                 and c.get("customerEmail")]
    assert abandoned


def test_payments(shop: dict[str, list[dict[str, Any]]]) -> None:
    txs = [t for p in shop["payments"] for t in p["transactions"]]
    assert {t["type"] for t in txs} >= {"Authorization", "Charge", "Refund", "CancelAuthorization"}
    assert {t["state"] for t in txs} >= {"Pending", "Success", "Failure"}
    assert any(t["type"] == "Chargeback" for t in txs) or len(shop["payments"]) < 1000


def test_messages_sequences(shop: dict[str, list[dict[str, Any]]]) -> None:
    msgs = shop["messages"]
    types = Counter(m["type"] for m in msgs)
    for t in ("CustomerCreated", "OrderCreated", "PaymentCreated", "PaymentTransactionAdded",
              "PaymentTransactionStateChanged", "OrderStateChanged"):
        assert types[t] > 0, t
    per_resource: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in msgs:
        per_resource[m["resource"]["id"]].append(m)
    for rid, ms in per_resource.items():
        ms.sort(key=lambda m: m["sequenceNumber"])
        seqs = [m["sequenceNumber"] for m in ms]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), rid
        versions = [m["resourceVersion"] for m in ms]
        assert versions == sorted(versions)
        if ms[0]["type"].endswith("Created"):
            assert seqs[0] == 1 and versions[0] == 1
    created = next(m for m in msgs if m["type"] == "OrderCreated")
    assert created["order"]["id"] == created["resource"]["id"] and created["order"]["version"] == 1

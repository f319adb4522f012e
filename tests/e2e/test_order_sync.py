"""Orders, line items, associations and rollups end to end over both sandboxes."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import requests

from sync_tasks.localfleet import LocalFleet
from sync_tasks.mapping import normalize_email
from sync_tasks.money import to_decimal
from sync_tasks.pagination import KeysetPaginator
from sync_tasks.redis_conn import get_redis
from sync_tasks.settings import get_settings
from sync_tasks.state import SyncState
from sync_tasks.verify import sandbox_records
from tests.e2e.conftest import backfill as _backfill
from tests.e2e.conftest import ct_client as _ct
from tests.e2e.conftest import delta as _delta
from tests.e2e.conftest import reset_shop, wait_until


def _orders() -> list[dict[str, Any]]:
    return [o for page in KeysetPaginator(_ct(), "orders", expand=["paymentInfo.payments[*]"]) for o in page]


def _links(fleet: LocalFleet, src: str, dst: str) -> list[tuple[str, str]]:
    assert fleet.hubspot
    body = requests.get(f"{fleet.hubspot.url}/_sandbox/associations/{src}/{dst}", timeout=60).json()
    return [(str(p["fromId"]), str(p["toId"])) for p in body["results"]]


def _synced(shop: LocalFleet) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    _backfill("customers")
    run = _backfill("orders")
    assert run["failed"] == 0, run
    assert shop.hubspot
    hs_orders = sandbox_records(shop.hubspot.url, "orders")
    by_ct = {o["properties"]["ct_order_id"]: o for o in hs_orders}
    assert len(by_ct) == len(hs_orders), "one HubSpot order per commercetools order"
    return _orders(), by_ct


@pytest.fixture(scope="module")
def synced(fleet: LocalFleet) -> tuple[LocalFleet, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One synced shop shared by the tests that only read it."""
    shop = reset_shop(fleet)
    orders, by_ct = _synced(shop)
    return shop, orders, by_ct


def test_orders_and_line_items_arrive_once_complete_and_exact(synced: Any) -> None:
    shop, orders, by_ct = synced
    assert set(by_ct) == {o["id"] for o in orders}
    assert shop.hubspot
    line_items = sandbox_records(shop.hubspot.url, "line_items")
    li_by_key = {li["properties"]["ct_line_item_id"]: li for li in line_items}
    assert len(li_by_key) == len(line_items)
    order_links = Counter(a for a, _ in _links(shop, "orders", "line_items"))
    currencies = Counter()
    precise = 0
    for order in orders:
        hs = by_ct[order["id"]]["properties"]
        currencies[order["totalPrice"]["currencyCode"]] += 1
        assert Decimal(hs["hs_total_price"]) == to_decimal(order["totalPrice"])
        assert hs["hs_currency_code"] == order["totalPrice"]["currencyCode"]
        assert hs["hs_order_name"] == order["orderNumber"]
        assert hs["ct_order_state"] == order["orderState"] and hs["hs_payment_status"] == order["paymentState"]
        assert hs["hs_source_store"] == order["store"]["key"]
        assert order_links[str(by_ct[order["id"]]["id"])] == len(order["lineItems"])
        for item in order["lineItems"]:
            li = li_by_key[f"order:{order['id']}:{item['id']}"]["properties"]
            assert Decimal(li["amount"]) == to_decimal(item["totalPrice"])
            assert Decimal(li["price"]) == to_decimal(item["price"]["value"])
            assert li["quantity"] == str(item["quantity"]) and li["hs_sku"] == item["variant"]["sku"]
            if item["price"]["value"].get("type") == "highPrecision":
                precise += 1
            if order["totalPrice"]["currencyCode"] == "JPY":
                assert "." not in li["amount"]
    assert currencies["JPY"] > 0 and len(currencies) >= 3 and precise > 0


def test_every_order_is_linked_to_its_person_and_guests_get_a_contact(synced: Any) -> None:
    shop, orders, by_ct = synced
    assert shop.hubspot
    contacts = {str(c["id"]): c for c in sandbox_records(shop.hubspot.url, "contacts")}
    order_contact = dict(_links(shop, "orders", "contacts"))
    guests = [o for o in orders if not o.get("customerId") and normalize_email(o.get("customerEmail"))]
    assert guests, "the seeded shop has guest orders"
    for order in orders:
        email = normalize_email(order.get("customerEmail"))
        if not email:
            continue
        contact = contacts[order_contact[str(by_ct[order["id"]]["id"])]]
        assert contact["properties"]["email"] == email
    emails = [c["properties"].get("email") for c in contacts.values()]
    assert len(emails) == len(set(emails)), "guest contacts never duplicate an e-mail"


def test_orders_of_customers_with_a_company_are_linked_to_it(synced: Any) -> None:
    shop, orders, by_ct = synced
    from sync_tasks.constants import Keys

    assert shop.hubspot
    companies = {str(c["id"]): c["properties"] for c in sandbox_records(shop.hubspot.url, "companies")}
    customers = {c["id"]: c for c in __import__("sync_tasks.verify").verify.all_customers(_ct())}
    order_company = dict(_links(shop, "orders", "companies"))
    b2b = [o for o in orders if (customers.get(o.get("customerId") or "", {}).get("companyName") or "").strip()]
    assert b2b, "the seeded shop has B2B orders"
    index = get_redis().hgetall(Keys.index("customer-company"))
    emails = Counter(normalize_email(c.get("email")) for c in customers.values())
    # A shared e-mail's contact takes its company from the account that supplies shared fields;
    # an account alone on its e-mail always brings its own.
    alone = [o for o in b2b if emails[normalize_email(customers[o["customerId"]].get("email"))] == 1]
    assert alone and all(o["customerId"] in index for o in alone)
    for order in b2b:
        if order["customerId"] in index:
            assert order_company[str(by_ct[order["id"]]["id"])] == index[order["customerId"]]
            assert index[order["customerId"]] in companies


def test_rollups_count_orders_per_person(synced: Any) -> None:
    shop, orders, by_ct = synced
    assert shop.hubspot
    contacts = {c["properties"]["email"]: c["properties"] for c in sandbox_records(shop.hubspot.url, "contacts")}
    expected: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        email = normalize_email(order.get("customerEmail"))
        if email and order["orderState"] != "Cancelled":
            expected.setdefault(email, []).append(order)
    for email, mine in expected.items():
        props = contacts[email]
        assert props["ct_order_count"] == str(len(mine))
        assert props["ct_first_order_date"] == min(o["createdAt"] for o in mine)
        assert props["ct_last_order_date"] == max(o["createdAt"] for o in mine)
        revenue = Counter()
        for o in mine:
            revenue[o["totalPrice"]["currencyCode"]] += to_decimal(o["totalPrice"])  # type: ignore[operator]
        for part in props["ct_revenue_by_currency"].split(";"):
            currency, amount = part.split(":")
            refunds = sum((Decimal(by_ct[o["id"]]["properties"]["ct_refunded_amount"] or "0") for o in mine
                           if o["totalPrice"]["currencyCode"] == currency), Decimal(0))
            assert Decimal(amount) == revenue[currency] - refunds


def test_refunds_and_returns_show_on_the_order(synced: Any) -> None:
    _, orders, by_ct = synced
    refunded = [o for o in orders if any(tx["type"] in ("Refund", "Chargeback") and tx["state"] == "Success"
                                         for p in (o.get("paymentInfo") or {}).get("payments", [])
                                         for tx in p["obj"]["transactions"])]
    assert refunded
    for order in refunded:
        expected = sum((to_decimal(tx["amount"]) for p in order["paymentInfo"]["payments"]
                        for tx in p["obj"]["transactions"]
                        if tx["type"] in ("Refund", "Chargeback") and tx["state"] == "Success"), Decimal(0))
        assert Decimal(by_ct[order["id"]]["properties"]["ct_refunded_amount"]) == expected
    returned = [o for o in orders if o.get("returnInfo")]
    assert returned and all(by_ct[o["id"]]["properties"]["ct_return_state"] for o in returned)


def test_an_order_walking_through_its_states_moves_stage(shop: LocalFleet) -> None:
    _synced(shop)
    _delta("orders")  # sets the watermark
    ct = _ct()
    order = next(o for o in _orders() if o["orderState"] == "Open" and o["paymentState"] != "Paid"
                 and o["paymentState"] != "CreditOwed")
    pipeline = SyncStatePipeline.get()
    stages_seen = []
    for state in ("Confirmed", "Complete"):
        order = ct.update("orders", order["id"], order["version"],
                          [{"action": "changeOrderState", "orderState": state}])
        run = _delta("orders")
        assert run["updated"] >= 1
        assert shop.hubspot
        hs = next(o for o in sandbox_records(shop.hubspot.url, "orders")
                  if o["properties"]["ct_order_id"] == order["id"])
        assert hs["properties"]["ct_order_state"] == state
        stages_seen.append(hs["properties"]["hs_pipeline_stage"])
    assert stages_seen == [pipeline["stages"]["Confirmed"], pipeline["stages"]["Complete"]]


def test_rerunning_the_same_window_duplicates_nothing(shop: LocalFleet) -> None:
    _synced(shop)
    assert shop.hubspot
    before = {obj: len(sandbox_records(shop.hubspot.url, obj)) for obj in ("orders", "line_items", "contacts")}
    links_before = {pair: len(_links(shop, *pair)) for pair in (("orders", "line_items"), ("orders", "contacts"))}
    get_redis().delete("ctsync:orders:fingerprint")  # forget what was pushed: everything is written again
    run = _backfill("orders")
    assert run["failed"] == 0 and run["created"] == 0
    after = {obj: len(sandbox_records(shop.hubspot.url, obj)) for obj in ("orders", "line_items", "contacts")}
    links_after = {pair: len(_links(shop, *pair)) for pair in links_before}
    assert after == before and links_after == links_before


class SyncStatePipeline:
    @staticmethod
    def get() -> dict[str, Any]:
        import json

        from sync_tasks.constants import Keys

        return dict(json.loads(get_redis().get(Keys.order_pipeline())))


def test_orders_as_deals_and_products_by_sku_when_configured(shop: LocalFleet) -> None:
    """The optional outputs, planned and pushed in this process with the settings switched on."""
    from sync_tasks.commerce_schema import cached_pipeline, setup_all
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.orders import OrderPusher, match_people, plan_orders

    settings = get_settings().model_copy(update={"orders_as_deals": True, "products_by_sku": True})
    hub = HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)
    setup_all(hub, settings, get_redis())
    orders = _orders()[:12]
    state = SyncState(get_redis())
    plan = plan_orders(orders, match_people(orders, state, hub), state, settings, cached_pipeline(get_redis()))
    assert OrderPusher(hub, state, settings, None, "test").push(plan) is None
    assert shop.hubspot
    deals = {d["properties"]["ct_order_id"]: d for d in sandbox_records(shop.hubspot.url, "deals")}
    assert set(deals) == {o["id"] for o in orders}
    skus = {i["variant"]["sku"] for o in orders for i in o["lineItems"]}
    products = {p["properties"]["ct_sku"]: p for p in sandbox_records(shop.hubspot.url, "products")}
    assert set(products) == skus
    items = {li["properties"]["ct_line_item_id"]: li["properties"] for li in sandbox_records(shop.hubspot.url,
                                                                                             "line_items")}
    for order in orders:
        for item in order["lineItems"]:
            order_line = items[f"order:{order['id']}:{item['id']}"]
            deal_line = items[f"deal:{order['id']}:{item['id']}"]  # a line item has exactly one parent
            product = str(products[item["variant"]["sku"]]["id"])
            assert order_line["hs_product_id"] == deal_line["hs_product_id"] == product
    deal_lines = _links(shop, "deals", "line_items")
    assert len(deal_lines) == sum(len(o["lineItems"]) for o in orders)


def test_an_order_chain_whose_stored_values_are_gone_reads_its_orders_again(shop: LocalFleet) -> None:
    """Raw orders and plans travel by reference (`sync_tasks.payloads`). When the stored value is gone
    (its TTL passed, Redis was flushed), the chain reads the orders from commercetools again."""
    import uuid

    from celery import chain

    from sync_tasks.commerce_tasks import order_map, order_match, order_push
    from sync_tasks.constants import Keys, Queue
    from sync_tasks.payloads import chunk_head

    _backfill("customers")
    orders = _orders()[:6]
    state = SyncState(get_redis())
    run_id = state.start_run("orders", "delta")
    ctx = {"entity": "orders", "run_id": run_id, "mode": "delta", "lane": "live", "force": False}
    # The raw orders are gone before the map reads them ...
    head = chunk_head(orders[:3], f"gone-{uuid.uuid4().hex}")
    chain(order_match.si(head, ctx).set(queue=Queue.SYNC.value), order_map.s().set(queue=Queue.SYNC.value),
          order_push.s().set(queue=Queue.PUSH.value)).apply_async()
    # ... and a plan is gone before its push.
    gone_plan = {"ctx": ctx, "plan_ref": f"gone-{uuid.uuid4().hex}", "ids": [o["id"] for o in orders[3:]]}
    order_push.apply_async((gone_plan,), queue=Queue.PUSH.value)
    assert shop.hubspot
    hs_url = shop.hubspot.url
    wanted = {o["id"] for o in orders}
    found = wait_until(lambda: wanted <= {o["properties"]["ct_order_id"] for o in sandbox_records(hs_url, "orders")},
                       timeout=120)
    assert found
    # A finished chain leaves no stored value behind.
    assert wait_until(lambda: not list(get_redis().scan_iter(Keys.payload("*"))), timeout=60)

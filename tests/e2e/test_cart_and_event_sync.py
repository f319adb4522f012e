"""Carts (abandoned, then ordered) and commercetools messages end to end over both sandboxes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import requests

from sync_tasks.carts import sweep_abandoned
from sync_tasks.constants import Keys
from sync_tasks.localfleet import LocalFleet
from sync_tasks.mapping import normalize_email
from sync_tasks.pagination import KeysetPaginator
from sync_tasks.redis_conn import get_redis
from sync_tasks.runs import wait_for_run
from sync_tasks.settings import get_settings
from sync_tasks.state import SyncState
from sync_tasks.verify import sandbox_records
from tests.e2e.conftest import backfill as _backfill
from tests.e2e.conftest import ct_client as _ct
from tests.e2e.conftest import delta as _delta
from tests.e2e.conftest import wait_until


def _all(resource: str) -> list[dict[str, Any]]:
    return [x for page in KeysetPaginator(_ct(), resource) for x in page]


def _hs(shop: LocalFleet, obj: str, key: str) -> dict[str, dict[str, Any]]:
    assert shop.hubspot
    return {r["properties"][key]: r for r in sandbox_records(shop.hubspot.url, obj)}


def _links(shop: LocalFleet, src: str, dst: str) -> set[tuple[str, str]]:
    assert shop.hubspot
    body = requests.get(f"{shop.hubspot.url}/_sandbox/associations/{src}/{dst}", timeout=60).json()
    return {(str(p["fromId"]), str(p["toId"])) for p in body["results"]}


def test_carts_with_an_email_sync_with_status_and_line_items(shop: LocalFleet) -> None:
    _backfill("customers")
    run = _backfill("carts")
    assert run["failed"] == 0
    carts = _all("carts")
    hs = _hs(shop, "carts", "ct_cart_id")
    with_email = [c for c in carts if normalize_email(c.get("customerEmail"))]
    assert {c["id"] for c in with_email} == set(hs)
    now = dt.datetime.now(dt.UTC)
    states = set()
    for cart in with_email:
        props = hs[cart["id"]]["properties"]
        modified = dt.datetime.fromisoformat(cart["lastModifiedAt"].replace("Z", "+00:00"))
        expected = ({"Ordered": "ordered", "Merged": "merged", "Frozen": "frozen"}.get(cart["cartState"])
                    or ("abandoned" if now - modified >= dt.timedelta(hours=24) else "active"))
        assert props["hs_external_status"] == expected
        assert props["hs_cart_url"].endswith(cart["id"])
        states.add(expected)
    assert {"abandoned", "ordered"} <= states
    cart_items = _links(shop, "carts", "line_items")
    assert len(cart_items) == sum(len(c["lineItems"]) for c in with_email)


def test_a_cart_abandoned_then_ordered_is_closed_and_linked_to_its_order(shop: LocalFleet) -> None:
    _backfill("customers")
    _delta("carts")  # delta sync of carts and orders starts now (no backfill of old ones needed here)
    _delta("orders")
    ct = _ct()
    customer = next(c for c in _all("customers") if normalize_email(c.get("email")))
    cart = ct.request("POST", "/carts", json={"currency": "EUR", "customerId": customer["id"],
                                              "customerEmail": customer["email"], "country": "DE"})
    cart = ct.update("carts", cart["id"], cart["version"],
                     [{"action": "addLineItem", "sku": _any_sku(), "quantity": 2}])
    _delta("carts")
    assert _hs(shop, "carts", "ct_cart_id")[cart["id"]]["properties"]["hs_external_status"] == "active"
    # Time passes: the sweep sees it quiet for longer than CART_ABANDONED_AFTER_HOURS.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    state = SyncState(get_redis())
    sweep_run = state.start_run("carts", "sweep")
    swept = sweep_abandoned(ct, get_redis(), get_settings(), _enqueue_at(later), sweep_run, now=later)
    state.finish_extract(sweep_run)
    wait_for_run(state, sweep_run, timeout=120)
    assert swept >= 1
    assert _hs(shop, "carts", "ct_cart_id")[cart["id"]]["properties"]["hs_external_status"] == "abandoned"
    order = ct.request("POST", "/orders", json={"cart": {"typeId": "cart", "id": cart["id"]},
                                                "version": cart["version"]})
    _delta("orders")
    _delta("carts")
    hs_cart = _hs(shop, "carts", "ct_cart_id")[cart["id"]]
    hs_order = _hs(shop, "orders", "ct_order_id")[order["id"]]
    assert hs_cart["properties"]["hs_external_status"] == "ordered"
    assert (str(hs_order["id"]), str(hs_cart["id"])) in _links(shop, "orders", "carts")


def _enqueue_at(now: dt.datetime) -> Any:
    """The real chain, but planned as if it were `now` (the sweep decided these carts are abandoned)."""
    from sync_tasks.carts import enqueue_cart_chunk

    def enqueue(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        aged = [dict(r, lastModifiedAt="2000-01-01T00:00:00.000Z") for r in records]
        enqueue_cart_chunk(aged, ctx)

    return enqueue


def _any_sku() -> str:
    order = next(o for o in _all("orders") if o["lineItems"])
    return str(order["lineItems"][0]["variant"]["sku"])


def test_messages_apply_once_in_order_and_move_the_stage(shop: LocalFleet) -> None:
    _backfill("customers")
    _backfill("orders")
    r = get_redis()
    window_start = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    r.set(Keys.watermark("messages"), window_start)
    ct = _ct()
    order = next(o for o in _all("orders") if o["orderState"] == "Open" and o.get("customerId"))
    order = ct.update("orders", order["id"], order["version"],
                      [{"action": "changeOrderState", "orderState": "Confirmed"}])
    order = ct.update("orders", order["id"], order["version"],
                      [{"action": "changePaymentState", "paymentState": "Paid"}])
    run = _delta("messages")
    assert run["updated"] == 2, run
    hs = wait_until(lambda: (o := _hs(shop, "orders", "ct_order_id")[order["id"]])["properties"]
                    .get("ct_payment_state") == "Paid" and o)
    assert hs["properties"]["ct_last_event_type"] == "OrderPaymentStateChanged"
    stages = __import__("json").loads(r.get(Keys.order_pipeline()))["stages"]
    assert hs["properties"]["hs_pipeline_stage"] == stages["Paid"]
    seq = int(r.hget(Keys.event_sequence(), order["id"]))
    # The same window again (replayed and duplicated messages): nothing is applied twice.
    r.set(Keys.watermark("messages"), window_start)
    again = _delta("messages")
    assert again["updated"] == 0 and again["skipped"] == 2
    assert int(r.hget(Keys.event_sequence(), order["id"])) == seq
    # An older message arriving late is dropped too.
    from sync_tasks.events import plan_events

    old = {"id": "late-1", "type": "OrderStateChanged", "sequenceNumber": seq - 1, "orderState": "Open",
           "resource": {"typeId": "order", "id": order["id"]}, "createdAt": window_start}
    late = plan_events([old], SyncState(r), get_settings(), None)
    assert late.dropped == 1 and not late.order_props and not late.resync_orders


def test_custom_events_fire_once_per_message(shop: LocalFleet) -> None:
    from sync_tasks.events import plan_events, push_events
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.settings import EventTarget

    _backfill("customers")
    _backfill("orders")
    ct = _ct()
    order = next(o for o in _all("orders") if o["orderState"] == "Open" and o.get("customerId"))
    ct.update("orders", order["id"], order["version"], [{"action": "changeOrderState", "orderState": "Confirmed"}])
    messages = [m for m in ct.query("messages", where=[f'resource(id="{order["id"]}")'], limit=500)["results"]]
    settings = get_settings().model_copy(update={"event_targets": [EventTarget.CUSTOM_EVENT]})
    hub = HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)
    from sync_tasks import custom_events

    name = custom_events.ensure_definition(hub, settings.custom_event_name, "order event",
                                           __import__("sync_tasks.events").events.EVENT_PROPERTIES)
    state = SyncState(get_redis())
    for copy in (messages, list(reversed(messages)) + messages):  # replayed, reordered, duplicated
        plan = plan_events(copy, state, settings, name)
        push_events(plan, hub, state, "test")
        get_redis().delete(Keys.event_sequence())  # even with our own dedupe forgotten, HubSpot's holds
    assert shop.hubspot
    sent = requests.get(f"{shop.hubspot.url}/_sandbox/events", timeout=30).json()["results"]
    uuids = [e["uuid"] for e in sent]
    assert len(uuids) == len(set(uuids)) == len({m["id"] for m in messages})


def test_messages_api_disabled_is_reported_once_and_orders_still_sync(shop: LocalFleet) -> None:
    from sync_tasks.commerce_tasks import extract_commerce

    assert shop.ct
    requests.post(f"{shop.ct.url}/_sandbox/messages", json={"enabled": False}, timeout=30).raise_for_status()
    get_redis().set(Keys.watermark("messages"), "2026-01-01T00:00:00.000Z")
    try:
        assert extract_commerce("messages") == {"messages": "disabled"}
        assert get_redis().get(Keys.messages_disabled()) == "1"
        assert extract_commerce("messages") == {"messages": "disabled"}
    finally:
        requests.post(f"{shop.ct.url}/_sandbox/messages", json={"enabled": True}, timeout=30)
    _backfill("customers")
    assert _backfill("orders")["failed"] == 0
    time.sleep(0)

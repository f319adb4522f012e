"""Lifecycle events end to end: real workers, real Redis, both sandboxes over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import requests

from sync_tasks.constants import Entity, Keys, Lane, Queue
from sync_tasks.lifecycle import LifecycleStore
from sync_tasks.localfleet import LocalFleet
from sync_tasks.redis_conn import get_redis
from sync_tasks.state import SyncState
from sync_tasks.verify import sandbox_records
from tests.e2e.conftest import backfill, wait_until
from tests.e2e.conftest import ct_client as _ct
from tests.e2e.conftest import delta as _delta


def _backfill(entity: str) -> dict[str, Any]:
    run = backfill(entity)
    assert run["failed"] == 0, run
    return run


def _customer(email: str, store: str) -> dict[str, Any]:
    body = {"email": email, "firstName": "Life", "lastName": "Cycle", "password": "secret-pw",
            "stores": [{"key": store}]}
    return dict(_ct().request("POST", "/customers", json=body)["customer"])


def _order(customer: dict[str, Any], state: str = "Open", **extra: Any) -> dict[str, Any]:
    store = customer["stores"][0]["key"] if customer.get("stores") else "eu"
    currency = {"eu": "EUR", "us": "USD"}[store]
    body = {"orderNumber": f"LC-{uuid.uuid4().hex[:10]}", "customerId": customer["id"],
            "customerEmail": customer["email"], "store": {"key": store}, "orderState": state,
            "totalPrice": {"currencyCode": currency, "centAmount": 4200},
            "lineItems": [{"variant": {"sku": "LC-SKU"}, "quantity": 1,
                           "price": {"value": {"currencyCode": currency, "centAmount": 4200}}}], **extra}
    return dict(_ct().request("POST", "/orders/import", json=body))


def _contact(fleet: LocalFleet, email: str) -> dict[str, str]:
    assert fleet.hubspot
    found = [c for c in sandbox_records(fleet.hubspot.url, "contacts") if c["properties"].get("email") == email]
    assert len(found) == 1, f"one contact for {email}"
    return {"id": str(found[0]["id"]), **found[0]["properties"]}


def _fired() -> dict[str, str]:
    return {str(k): str(v) for k, v in get_redis().hgetall(Keys.lifecycle_fired()).items()}


def test_backfill_then_live_orders_shared_email_and_a_cancelled_first_order(shop: LocalFleet) -> None:
    email = f"life-{uuid.uuid4().hex[:8]}@example.com"
    account_eu, account_us = _customer(email, "eu"), _customer(email, "us")
    _order(account_eu, state="Cancelled")  # the first order, cancelled before it was ever synced
    history = _order(account_us)
    _backfill("customers")
    _backfill("orders")  # historical: sets dates and counts, marks the events historical
    contact = _contact(shop, email)
    assert contact["ct_first_purchase"] == "false" and contact["ct_first_purchase_historical"] == "true"
    assert contact["ct_first_purchase_date"] == history["createdAt"]
    assert contact["ct_order_count"] == "1" and not contact.get("ct_repeat_purchase")
    person = contact["id"]
    assert [c.key for c in LifecycleStore(get_redis()).claims(person)] == ["first_purchase"]
    _delta("orders")  # the watermark

    live = _order(account_eu, custom={"type": {"key": "order-extras"}, "fields": {"subscriptionId": "sub-1"}})
    run = _delta("orders")  # one delta cycle after the order reached commercetools
    assert run["failed"] == 0
    contact = _contact(shop, email)
    assert contact["ct_repeat_purchase"] == "true" and contact["ct_repeat_purchase_historical"] == "false"
    assert contact["ct_repeat_purchase_number"] == "2" and contact["ct_repeat_purchase_date"] == live["createdAt"]
    assert contact["ct_first_purchase"] == "false", "the historical first purchase does not turn live"
    claims = {c.key: c for c in LifecycleStore(get_redis()).claims(person)}
    assert set(claims) == {"first_purchase", "repeat_purchase:2"}
    assert not claims["repeat_purchase:2"].historical and claims["first_purchase"].historical

    # Replays of everything fire nothing new.
    before = _fired()
    get_redis().delete(Keys.fingerprints(Entity.ORDERS.value))
    _backfill("orders")
    assert _fired() == before

    from typer.testing import CliRunner

    from sync_tasks.cli import app

    out = CliRunner().invoke(app, ["lifecycle", "show", email, "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["person"] == person
    assert [o["state"] for o in shown["orders"]] == ["Cancelled", "Open", "Open"]
    assert [(e["key"], e["at"]) for e in shown["events"]] == [
        ("first_purchase", history["createdAt"]), ("repeat_purchase:2", live["createdAt"])]
    table = CliRunner().invoke(app, ["lifecycle", "show", account_us["id"]], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "repeat_purchase:2" in table.output and "historical" in table.output


def _quiet() -> bool:
    r = get_redis()
    busy = sum(r.llen(q.value) for q in Queue) + r.hlen("unacked")
    return busy == 0


def test_concurrent_workers_fire_each_event_once(shop: LocalFleet) -> None:
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"
    customer = _customer(email, "eu")
    _backfill("customers")
    ids = [_order(customer)["id"] for _ in range(3)]
    quoted = ", ".join(f'"{i}"' for i in ids)
    records = _ct().query("orders", where=[f"id in ({quoted})"], limit=10,
                          expand=["paymentInfo.payments[*]"])["results"]
    assert len(records) == 3
    from sync_tasks.commerce_tasks import enqueue_commerce_chunk

    state = SyncState(get_redis())
    run_id = state.start_run(Entity.ORDERS.value, "delta")
    ctx = {"entity": Entity.ORDERS.value, "run_id": run_id, "mode": "delta", "lane": Lane.LIVE.value, "force": True}
    # The same orders pushed by 8 chains at once, over 2 worker processes of 2 slots each; then an
    # out-of-order duplicate of the first order alone.
    for _ in range(8):
        enqueue_commerce_chunk(records, ctx)
    enqueue_commerce_chunk(records[:1], ctx)
    time.sleep(1.0)
    wait_until(lambda: _quiet() and _quiet(), timeout=120, interval=0.5)
    time.sleep(1.0)
    assert _quiet()
    person = _contact(shop, email)["id"]
    claims = LifecycleStore(get_redis()).claims(person)
    assert [c.key for c in claims] == ["first_purchase", "repeat_purchase:2"]
    assert all(c.sent for c in claims)
    assert _fired() == {"first_purchase|live": "1", "repeat_purchase|live": "1"}
    contact = _contact(shop, email)
    assert contact["ct_first_purchase"] == "true" and contact["ct_repeat_purchase"] == "true"
    assert contact["ct_order_count"] == "3"
    assert shop.ct
    assert requests.get(f"{shop.ct.url}/_sandbox/health", timeout=10).ok


def test_the_daily_churn_task_runs_on_a_worker_and_fires_once(shop: LocalFleet) -> None:
    from sync_tasks.constants import TaskName
    from sync_tasks.settings import CHURN_RISK, get_settings
    from workers import app

    _backfill("customers")
    _backfill("orders")  # the seeded shop has customers whose last order is older than 90 days
    for _ in range(2):  # beat sends it daily; a second day changes nothing for the same episode
        app.send_task(TaskName.LIFECYCLE_CHURN.value, queue=Queue.PUSH.value)
    flag = get_settings().lifecycle_property_names[CHURN_RISK]
    assert shop.hubspot

    def churned() -> list[dict[str, Any]]:
        return [c for c in sandbox_records(shop.hubspot.url, "contacts")  # type: ignore[union-attr]
                if c["properties"].get(f"{flag}_date")]

    wait_until(churned, 120)
    time.sleep(5)  # let the second run finish
    fired = sum(int(v) for k, v in _fired().items() if k.startswith(f"{CHURN_RISK}|"))
    assert fired > 0 and fired == len(churned())  # each churned person once, though the task ran twice


def test_live_events_reach_hubspot_as_custom_events_once(shop: LocalFleet) -> None:
    from sync_tasks.commerce_schema import cached_pipeline
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.orders import OrderPusher, match_people, plan_orders
    from sync_tasks.settings import get_settings

    _backfill("customers")
    customer = _customer(f"live-{uuid.uuid4().hex[:8]}@example.org", "eu")
    _backfill("customers")
    orders = [_order(customer), _order(customer)]
    settings = get_settings().model_copy(update={"lifecycle_custom_events": True})
    hub = HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)
    state = SyncState(get_redis())
    for _ in range(2):  # the same orders pushed twice (a replay): each event is sent once
        plan = plan_orders(orders, match_people(orders, state, hub), state, settings, cached_pipeline(get_redis()),
                           force=True)
        assert OrderPusher(hub, state, settings, None, "test", mode="delta").push(plan) is None
    assert shop.hubspot
    sent = requests.get(f"{shop.hubspot.url}/_sandbox/events", timeout=30).json()["results"]
    contact = _contact(shop, customer["email"].lower())
    mine = [e for e in sent if str(e.get("objectId")) == contact["id"]]
    assert sorted(e["properties"]["event_key"] for e in mine) == ["first_purchase", "repeat_purchase:2"]
    assert len({e["uuid"] for e in mine}) == len(mine)

"""An initial load writes each contact once: the customer backfill reads its people's orders from
commercetools and creates their contacts with the rollups and lifecycle properties; guests' contacts
get theirs in the order backfill's guest upsert. The order backfill's end then finds nothing to
write. Real sandboxes over HTTP; the real map, push and order push in this process (no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import redis

from sync_tasks.changes import plan_contacts
from sync_tasks.commerce_schema import cached_pipeline
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.ledger import Ledger
from sync_tasks.lifecycle import LifecycleStore, contact_properties, subscription_of
from sync_tasks.match import match_customers
from sync_tasks.order_history import (
    decode_history,
    email_variants,
    for_groups,
    group_orders,
    ledger_entry,
    person_properties,
    reader,
)
from sync_tasks.orders import (
    OrderPusher,
    claim_backfill_rollups,
    match_people,
    person_rollups,
    plan_orders,
    write_backfill_rollups,
)
from sync_tasks.push import push_plan
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState
from sync_tasks.verify import all_customers, all_orders, sandbox_records
from tests.sync_tasks.sandboxes import CONTACT_UPDATES, calls, portal

SIZE = 60
EXAMPLE_ORDER = Path("/work/shared/reference/commercetools-examples/order.example.json")


def test_an_initial_load_writes_each_contact_once_with_its_order_history(
        sandboxes: tuple[str, str], redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    settings, hub = portal(ct_url, hs_url, redis_client)
    ct = CommercetoolsClient(settings)
    state = SyncState(redis_client)

    customers = all_customers(ct)
    matches = match_customers(customers, state, hub)
    plan = plan_contacts(matches, state, settings.shared_fields_rule, force=True,
                         history=for_groups(reader(ct), settings))
    assert any("ct_order_count" in e["properties"] for e in plan.creates)
    result = push_plan(plan.as_dict(), hub, state, None, "test")
    assert not result.left and not result.resync

    orders = all_orders(ct)
    assert any(not o.get("customerId") for o in orders)  # guests are part of it
    run_id = state.start_run("orders", "backfill")
    state.count(run_id, extracted=len(orders))
    state.finish_extract(run_id)
    for part in (orders[0::2], orders[1::2]):  # a person's orders in two chunks
        matched = match_people(part, state, hub)
        order_plan = plan_orders(part, matched, state, settings, cached_pipeline(redis_client), force=True)
        assert OrderPusher(hub, state, settings, run_id, "test", mode="backfill", history=reader(ct)).push(
            order_plan) is None
    before = calls(hs_url, CONTACT_UPDATES)
    assert claim_backfill_rollups(state, run_id)
    written, error = write_backfill_rollups(hub, state, settings, run_id, "test")
    assert error is None and written > 0
    assert calls(hs_url, CONTACT_UPDATES) == before, "the order backfill's end wrote contacts the load had written"

    # What HubSpot holds is what the ledger and the lifecycle claims imply (the end writer's values).
    people = sorted(set(state.r.hvals("ctsync:index:order-person")))
    expected = person_rollups(state, settings, people)
    claims = LifecycleStore(state.r).claims_many(people)
    ledgers = Ledger(state.r).entries_many(people)
    contacts = {str(x["id"]): x["properties"] for x in sandbox_records(hs_url, "contacts")}
    for person in people:
        values = {**expected[person], **contact_properties(claims[person], ledgers[person], settings)}
        assert {k: contacts[person].get(k) or "" for k in values} == values, person  # HubSpot holds "" as null


def test_orders_are_grouped_by_account_and_guest_email() -> None:
    orders = [{"id": "1", "customerId": "a"}, {"id": "2", "customerId": "b"}, {"id": "3", "customerEmail": " X@y.io"},
              {"id": "4", "customerId": "zz", "customerEmail": "x@y.io"}, {"id": "5", "customerEmail": "q@y.io"}]
    got = group_orders(orders, {"x@y.io": ["a", "b"], "p@y.io": []})
    assert {k: [o["id"] for o in v] for k, v in got.items()} == {"x@y.io": ["1", "2", "3"], "p@y.io": []}
    assert email_variants([" X@y.io ", None, "x@y.io"]) == [" X@y.io ", "X@y.io", "x@y.io"]


def _by_person(orders: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        out.setdefault(order.get("customerId") or order.get("customerEmail") or "", []).append(order)
    return out


def _same_history(full: list[dict[str, Any]], settings: Settings) -> None:
    """The narrow decode of a page of these orders gives every person the properties the whole
    orders give, and leaves out what no property reads (line items)."""
    narrow = decode_history(orjson.dumps({"limit": 500, "count": len(full), "results": full}))["results"]
    assert [o["id"] for o in narrow] == [o["id"] for o in full]
    assert all("lineItems" not in o for o in narrow)
    assert [(ledger_entry(o), subscription_of(o, settings)) for o in narrow] == \
        [(ledger_entry(o), subscription_of(o, settings)) for o in full]
    wide, thin = _by_person(full), _by_person(narrow)
    assert {p: person_properties(o, settings) for p, o in thin.items()} == \
        {p: person_properties(o, settings) for p, o in wide.items()}


def test_the_narrow_decode_of_a_history_keeps_everything_its_properties_read() -> None:
    settings = Settings()
    base = json.loads(EXAMPLE_ORDER.read_text())
    refund = {"typeId": "payment", "id": "p1", "obj": {"id": "p1", "transactions": [
        {"type": "Refund", "state": "Success", "amount": {"type": "centPrecision", "currencyCode": "EUR",
                                                          "centAmount": 1250, "fractionDigits": 2}}]}}
    subscription = {"type": {"typeId": "type", "id": "t"}, "fields": {settings.lifecycle_subscription_field: "box"}}
    orders = [
        {**base, "id": "o1", "customerId": "c1", "createdAt": "2026-01-02T00:00:00.000Z"},
        {**base, "id": "o2", "customerId": "c1", "createdAt": "2026-02-02T00:00:00.000Z", "orderState": "Cancelled"},
        {**base, "id": "o3", "customerId": "c1", "createdAt": "2026-03-02T00:00:00.000Z",
         "paymentInfo": {"payments": [refund]}, "store": {"typeId": "store", "key": "eu"}},
        *({**base, "id": f"r{n}", "customerId": "c2", "origin": "RecurringOrder"} for n in range(3)),
        *({**base, "id": f"s{n}", "customerId": "c3", "custom": subscription} for n in range(3)),
        {**{k: v for k, v in base.items() if k != "customerId"}, "id": "o6", "customerEmail": "g@example.com"},
    ]
    _same_history(orders, settings)
    props = person_properties(decode_history(orjson.dumps({"results": orders[:3]}))["results"], settings)
    assert props and props == person_properties(orders[:3], settings)


def test_the_narrow_decode_agrees_with_the_whole_orders_of_a_shop(
        sandboxes: tuple[str, str], redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    settings, _ = portal(ct_url, hs_url, redis_client)
    orders = all_orders(CommercetoolsClient(settings))
    assert any((o.get("paymentInfo") or {}).get("payments") for o in orders)
    _same_history(orders, settings)

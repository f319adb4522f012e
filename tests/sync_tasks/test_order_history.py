"""An initial load writes each contact once: the customer backfill reads its people's orders from
commercetools and creates their contacts with the rollups and lifecycle properties; guests' contacts
get theirs in the order backfill's guest upsert. The order backfill's end then finds nothing to
write. Real sandboxes over HTTP; the real map, push and order push in this process (no broker)."""

from __future__ import annotations

import redis

from sync_tasks.changes import plan_contacts
from sync_tasks.commerce_schema import cached_pipeline
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.ledger import Ledger
from sync_tasks.lifecycle import LifecycleStore, contact_properties
from sync_tasks.match import match_customers
from sync_tasks.order_history import email_variants, for_groups, group_orders, reader
from sync_tasks.orders import (
    OrderPusher,
    claim_backfill_rollups,
    match_people,
    person_rollups,
    plan_orders,
    write_backfill_rollups,
)
from sync_tasks.push import push_plan
from sync_tasks.state import SyncState
from sync_tasks.verify import all_customers, all_orders, sandbox_records
from tests.sync_tasks.sandboxes import CONTACT_UPDATES, calls, portal

SIZE = 60


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

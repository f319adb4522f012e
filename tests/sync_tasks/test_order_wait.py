"""Orders of registered customers wait for the customer's contact, and follow a failed customer into
the DLQ (plain functions; real Redis for the id map and the DLQ)."""

from __future__ import annotations

from typing import Any

import redis

from sync_tasks.dlq import DeadLetters
from sync_tasks.match import CONTACTS
from sync_tasks.orders import (
    CONTACT_WAIT_MAX_S,
    NO_CONTACT,
    awaiting_contact,
    dead_customers,
    dead_letter_no_contact,
    match_people,
    sort_by_contact,
    wait_countdown,
)
from sync_tasks.state import SyncState
from tests.sync_tasks.fakes import FakeContacts


def _order(oid: str, customer: str | None, email: str) -> dict[str, Any]:
    return {"id": oid, "customerId": customer, "customerEmail": email} if customer else \
        {"id": oid, "customerEmail": email}


ORDERS = [_order("o1", "c1", "one@example.com"), _order("o2", "c2", "two@example.com"),
          _order("o3", None, "guest@example.com"), _order("o4", "c4", "four@example.com"),
          _order("o5", "c2", "two@example.com")]


def test_a_registered_order_takes_its_customers_contact_or_waits_and_a_recheck_reads_no_hubspot(
        redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.save_ids(CONTACTS, {"c1": "101"})
    hub = FakeContacts([{"id": "300", "properties": {"email": "guest@example.com"}},
                        {"id": "400", "properties": {"email": "four@example.com"}}])
    people = match_people(ORDERS, state, hub)  # type: ignore[arg-type]
    # A registered customer's e-mail is read (a contact made before our Redis); a guest's is left to
    # the guest upsert, which finds or makes the contact in the call it costs anyway.
    assert people["o1"]["contact"] == "101" and people["o4"]["contact"] == "400"
    assert people["o3"]["contact"] is None
    assert hub.reads[0][1] == ["four@example.com", "two@example.com"]
    assert [o["id"] for o in awaiting_contact(ORDERS, people)] == ["o2", "o5"]
    assert len(hub.reads) == 1
    again = match_people(ORDERS, state, hub, read_hubspot=False)  # type: ignore[arg-type]
    assert len(hub.reads) == 1 and again["o2"]["contact"] is None
    state.save_ids(CONTACTS, {"c2": "102"})  # the customer chain made c2's contact meanwhile
    assert match_people(ORDERS, state, hub, read_hubspot=False)["o2"]["contact"] == "102"  # type: ignore[arg-type]


def test_orders_of_a_customer_in_the_dlq_follow_it_there_with_the_reason(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.dead_letter("ctsync.push", ["c2", "c9"], {"p": 1}, {"status": 400, "body": "INVALID_OPTION"}, attempts=1,
                      kind="permanent")
    state.dead_letter("ctsync.match", ["c4"], {"p": 1}, {"status": 502}, attempts=2, kind="exhausted")
    state.dead_letter("ctsync.orders.push", ["c1"], {"p": 1}, {"status": 502}, attempts=2, kind="exhausted",
                      entity="orders")  # an order entry never counts as a customer's
    entries = DeadLetters(redis_client).entries()
    dead = dead_customers(entries, {"c1", "c2", "c4"})
    assert {k: v[0] for k, v in dead.items()} == {"c2": "permanent", "c4": "exhausted"}

    people = {"o1": {"contact": "101"}, "o2": {"contact": None}, "o3": {"contact": "300"},
              "o4": {"contact": None}, "o5": {"contact": None}}
    wait = sort_by_contact(ORDERS, people, dead, waited_s=10)
    assert [o["id"] for o in wait.ready] == ["o1", "o3"] and wait.waiting == []
    assert wait.orders_without_contact == {"c2": ["o2", "o5"], "c4": ["o4"]}
    assert dead_letter_no_contact(state, "ctsync.orders.match", "run-1", wait) == 3
    mine = DeadLetters(redis_client).entries(entity="orders")[1:]
    by_customer = {e.payload["customer_id"]: e for e in mine}
    assert by_customer["c2"].kind == "permanent" and by_customer["c2"].record_ids == ["o2", "o5"]
    assert by_customer["c2"].error["message"].startswith("customer c2 has no contact")
    assert by_customer["c2"].error["category"] == NO_CONTACT and by_customer["c4"].kind == "exhausted"


def test_without_a_dlq_entry_the_order_waits_until_the_wait_is_over() -> None:
    people = {"o2": {"contact": None}}
    orders = [ORDERS[1]]
    assert [o["id"] for o in sort_by_contact(orders, people, {}, waited_s=60).waiting] == ["o2"]
    over = sort_by_contact(orders, people, {}, waited_s=10, max_wait_s=5)
    assert over.waiting == [] and over.no_contact["c2"][0] == "exhausted"
    assert "customer c2 has no contact" in over.no_contact["c2"][1]
    assert wait_countdown(0, 15) <= 5 and wait_countdown(20, 15) <= 15
    assert wait_countdown(20, 10_000) <= CONTACT_WAIT_MAX_S


def test_a_chunk_whose_orders_all_wait_plans_nothing(redis_client: redis.Redis) -> None:
    from sync_tasks.orders import plan_orders
    from sync_tasks.settings import get_settings

    assert plan_orders([], {}, SyncState(redis_client), get_settings(), None) == {"orders": [], "skipped": 0,
                                                                                 "done": []}

"""An order backfill writes each person's rollups once, at its end: the chunks record the ledger and
claim lifecycle events but update no contact; the run is complete only when the deferred rollups
are written, a full batch of people per call. Real sandboxes over HTTP, the real pusher in this
process (no broker)."""

from __future__ import annotations

from collections import defaultdict

import redis
import requests

from sync_tasks.commerce_schema import cached_pipeline
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.ledger import Ledger
from sync_tasks.mapping import normalize_email
from sync_tasks.match import CONTACTS
from sync_tasks.orders import (
    OrderPusher,
    claim_backfill_rollups,
    match_people,
    person_rollups,
    plan_orders,
    write_backfill_rollups,
)
from sync_tasks.state import SyncState
from sync_tasks.verify import all_customers, all_orders, sandbox_records
from tests.sync_tasks.sandboxes import CONTACT_UPDATES, calls, portal

SIZE = 40


def test_backfill_chunks_defer_rollups_and_the_end_writes_them_once_per_person(
        sandboxes: tuple[str, str], redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    settings, hub = portal(ct_url, hs_url, redis_client)
    state = SyncState(redis_client)
    groups: dict[str, list[str]] = defaultdict(list)
    for c in all_customers(CommercetoolsClient(settings)):
        if normalize_email(c.get("email")):
            groups[normalize_email(c.get("email")) or ""].append(c["id"])
    made = requests.post(f"{hs_url}/_sandbox/objects/contacts", timeout=60, json={"inputs": [
        {"properties": {"email": e, "ct_customer_id": ids[0]}} for e, ids in groups.items()]}).json()
    state.save_ids(CONTACTS, {cid: str(rec["id"]) for rec, (_, ids) in zip(made["results"], groups.items(),
                                                                            strict=True) for cid in ids})
    orders = all_orders(CommercetoolsClient(settings))
    run_id = state.start_run("orders", "backfill")
    state.count(run_id, extracted=len(orders))
    state.finish_extract(run_id)
    before = calls(hs_url, CONTACT_UPDATES)
    # Three chunks, so a person's orders are spread over several of them.
    for part in (orders[0::3], orders[1::3], orders[2::3]):
        assert not claim_backfill_rollups(state, run_id)  # records not all counted yet
        plan = plan_orders(part, match_people(part, state, hub), state, settings, cached_pipeline(redis_client))
        assert OrderPusher(hub, state, settings, run_id, "test", mode="backfill").push(plan) is None
    assert calls(hs_url, CONTACT_UPDATES) == before, "a backfill chunk updated contacts"
    assert state.records_done(state.run(run_id)) and not state.run_complete(run_id)  # rollups still owed

    assert claim_backfill_rollups(state, run_id) and not claim_backfill_rollups(state, run_id)  # one writer
    written, error = write_backfill_rollups(hub, state, settings, run_id, "test", batch=7)
    assert error is None
    people = {p for p in state.r.hvals("ctsync:index:order-person")}
    assert written == len(people) > 7
    assert calls(hs_url, CONTACT_UPDATES) - before == -(-len(people) // 7)  # one call per batch of people, no re-writes
    assert state.run_complete(run_id) and not claim_backfill_rollups(state, run_id)
    assert int(state.run(run_id)["rollups_written"]) == written  # the progress a follower sees
    contacts = {str(x["id"]): x["properties"] for x in sandbox_records(hs_url, "contacts")}
    expected = person_rollups(state, settings, people)
    for person, values in expected.items():
        assert {k: contacts[person].get(k) for k in values} == values, person
    counts = [len(Ledger(redis_client).entries(p)) for p in people]
    assert max(counts) > 1 and sum(counts) == len(orders)  # every order recorded; people with several

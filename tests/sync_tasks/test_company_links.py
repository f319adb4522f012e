"""A customer backfill's contact-company associations: kept in the run's set, made in full batches
and at the run's end, the run incomplete until then; pairs HubSpot refuses are dead-lettered with
their customers, the rest made. Real sandboxes over HTTP, the real Redis, no broker."""

from __future__ import annotations

import pytest
import redis

from sync_tasks import company_links, rejected
from sync_tasks.company_links import Link, claim_links, defer_links, finish_links, make_full_batches, waiting
from sync_tasks.constants import Keys
from sync_tasks.dlq import DlqEntry
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.state import LINKS_MADE, LINKS_PENDING, SyncState
from sync_tasks.verify import sandbox_associations
from tests.sync_tasks.sandboxes import calls, portal

SIZE = 5
ASSOCIATE = "POST /crm/v4/associations/contacts/companies/batch/associate/default"


def _people(hub: HubSpotClient, n: int) -> list[Link]:
    """n contacts, each with a company of its own: (contact id, company id, [customer id])."""
    contacts = hub.batch_upsert("contacts", "ct_customer_id", [
        {"id": f"cust-{i}", "properties": {"ct_customer_id": f"cust-{i}", "email": f"p{i}@example.com"}}
        for i in range(n)])
    companies = hub.batch_upsert("companies", "ct_company_key", [
        {"id": f"co-{i}", "properties": {"ct_company_key": f"co-{i}", "name": f"Company {i}"}} for i in range(n)])
    contact_ids = {r["properties"]["ct_customer_id"]: str(r["id"]) for r in contacts.results}
    company_ids = {r["properties"]["ct_company_key"]: str(r["id"]) for r in companies.results}
    return [(contact_ids[f"cust-{i}"], company_ids[f"co-{i}"], [f"cust-{i}"]) for i in range(n)]


def _done_run(state: SyncState, records: int) -> str:
    run_id = state.start_run("customers", "backfill")
    state.count(run_id, extracted=records, created=records)
    state.finish_extract(run_id)
    return run_id


def test_pairs_wait_for_a_full_batch_or_the_runs_end(sandboxes: tuple[str, str], redis_client: redis.Redis,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ct_url, hs_url = sandboxes
    _, hub = portal(ct_url, hs_url, redis_client)
    state = SyncState(redis_client)
    monkeypatch.setattr(company_links, "ASSOCIATION_BATCH_LIMIT", 3)
    links = _people(hub, 5)
    run_id = _done_run(state, 5)
    assert state.run_complete(run_id)

    held = defer_links(state, run_id, links[:2])
    assert held == 2
    assert state.run(run_id)["links"] == LINKS_PENDING and not state.run_complete(run_id)
    before = calls(hs_url, ASSOCIATE)
    assert make_full_batches(state, hub, run_id, "test", held) == 0  # two pairs: not a full batch
    assert calls(hs_url, ASSOCIATE) == before

    held = defer_links(state, run_id, links[2:])
    assert held == 5
    assert make_full_batches(state, hub, run_id, "test", held) == 3  # one full batch, the rest waits
    assert calls(hs_url, ASSOCIATE) == before + 1 and waiting(state, run_id) == 2
    assert not state.run_complete(run_id)

    assert claim_links(state, run_id)
    assert not claim_links(state, run_id), "one maker at a time"
    assert finish_links(state, hub, run_id, "test") == 2
    assert calls(hs_url, ASSOCIATE) == before + 2
    assert state.run(run_id)["links"] == LINKS_MADE and state.run_complete(run_id)
    assert set(sandbox_associations(hs_url, "contacts", "companies")) >= {(c, co) for c, co, _ in links}
    assert state.known_associations("contact-company", [(c, co) for c, co, _ in links]) == \
        {(c, co) for c, co, _ in links}


def test_the_runs_end_waits_for_its_records(sandboxes: tuple[str, str], redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    run_id = state.start_run("customers", "backfill")
    state.count(run_id, extracted=10, created=6)
    defer_links(state, run_id, [("1", "2", ["a"])])
    assert not claim_links(state, run_id)  # still paging
    state.finish_extract(run_id)
    redis_client.sadd(Keys.run_joins(run_id), "j1", "j2", "j3")
    assert not claim_links(state, run_id)  # one record still on its way
    redis_client.sadd(Keys.run_joins(run_id), "j4")
    assert claim_links(state, run_id)  # the joins waiting for the run's end associate on their own


def test_refused_pairs_are_dead_lettered_and_the_others_made(sandboxes: tuple[str, str],
                                                            redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    _, hub = portal(ct_url, hs_url, redis_client)
    state = SyncState(redis_client)
    good = _people(hub, 3)
    # A company gone from HubSpot: a 207 names it among made pairs; two alone are a 400, halved.
    gone: list[Link] = [(good[0][0], "999999991", ["cust-x"]), (good[1][0], "999999992", ["cust-y", "cust-z"]),
                        (good[2][0], "999999993", ["cust-w"])]
    before = calls(hs_url, ASSOCIATE)
    for batch, made in (([*good, gone[0]], 3), (gone[1:], 0)):
        run_id = _done_run(state, 1)
        defer_links(state, run_id, batch)
        assert claim_links(state, run_id)
        assert finish_links(state, hub, run_id, "test") == made
        assert waiting(state, run_id) == 0 and state.run_complete(run_id)
    assert set(sandbox_associations(hs_url, "contacts", "companies")) >= {(c, co) for c, co, _ in good}
    assert calls(hs_url, ASSOCIATE) == before + 1 + 3  # the 207; the 400, then each half alone

    entries = [DlqEntry.from_stream(i, f) for i, f in state.dlq_entries()]
    assert sorted((e.record_ids, e.payload["links"]) for e in entries) == [
        (["cust-w"], [[good[2][0], "999999993"]]), (["cust-x"], [[good[0][0], "999999991"]]),
        (["cust-y", "cust-z"], [[good[1][0], "999999992"]])]
    assert all(e.error.get("message") for e in entries)
    assert sorted(tuple(e["record_ids"]) for e in rejected.entries(state.r)) == [
        ("cust-w",), ("cust-x",), ("cust-y", "cust-z")]

"""A customer backfill leaves the accounts that join a contact by e-mail for its end, then sends them
again grouped by e-mail (sync_tasks/joins.py). Real Redis; the plan comes from the real map step."""

from __future__ import annotations

from typing import Any

import redis

from sync_tasks.changes import plan_contacts
from sync_tasks.constants import Keys
from sync_tasks.joins import by_email, claim_joins, defer_joins, first_pass, send_joins, waiting
from sync_tasks.match import Match
from sync_tasks.state import SyncState
from tests.sync_tasks.fakes import customer


def _run(state: SyncState, extracted: int) -> str:
    run_id = state.start_run("customers", "backfill")
    state.count(run_id, extracted=extracted)
    return run_id


def test_the_map_step_marks_updates_that_join_by_email_and_only_those(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    joining = Match(customer("b", "same@x.io"), hs_id="7", via="email-index")
    known = Match(customer("c", "c@x.io"), hs_id="8", via="idmap")
    new = Match(customer("d", "d@x.io"))
    plan = plan_contacts([joining, known, new], state, "most_recently_modified", force=True)
    assert {u["hs_id"]: u["joins"] for u in plan.updates} == {"7": True, "8": False}

    run_id = _run(state, 3)
    assert defer_joins(state, run_id, plan) == ["b"]
    assert [u["hs_id"] for u in plan.updates] == ["8"] and len(plan.creates) == 1  # the rest goes on now
    assert waiting(state, run_id) == 1 and state.run(run_id)["joins"] == "pending"


def test_the_joins_are_claimed_once_when_every_other_record_is_done(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    run_id = _run(state, 10)
    plan = plan_contacts([Match(customer(i, f"{i}@x.io"), hs_id=f"h{i}", via="email") for i in ("a", "b")], state,
                         "most_recently_modified", force=True)
    defer_joins(state, run_id, plan)
    state.count(run_id, created=8)
    assert not claim_joins(state, run_id)  # still paging
    state.finish_extract(run_id)
    state.count(run_id, created=-1)
    assert not claim_joins(state, run_id)  # one record still in flight
    state.count(run_id, skipped=1)
    assert claim_joins(state, run_id) and not claim_joins(state, run_id)  # one sender
    assert not state.records_done(state.run(run_id))  # the joins are not counted yet: the run goes on


def test_send_joins_reads_them_again_groups_them_by_email_and_counts_the_gone(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    run_id = _run(state, 5)
    ids = ["a1", "b1", "a2", "gone", "b2"]
    state.r.sadd(Keys.run_joins(run_id), *ids)
    state.r.hset(Keys.run(run_id), "joins", "pending")
    current = {i: customer(i, f"{i[0]}@x.io") for i in ids if i != "gone"}
    sent: list[tuple[list[str], dict[str, Any]]] = []

    def enqueue(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        assert waiting(state, run_id) > 0  # leaves the set only once enqueued
        sent.append(([r["id"] for r in records], ctx))

    n = send_joins(state, run_id, {"entity": "customers", "mode": "backfill", "run_id": run_id},
                   lambda wanted: [current[i] for i in wanted if i in current], enqueue, size=2)
    assert n == 4
    assert [ids for ids, _ in sent] == [["a1", "a2"], ["b1", "b2"]]  # each e-mail's accounts in one chunk
    assert all(ctx["joins"] and not first_pass(ctx) for _, ctx in sent)  # never deferred again
    run = state.run(run_id)
    assert run["skipped"] == 1 and run["joins"] == "sent" and waiting(state, run_id) == 0
    assert not claim_joins(state, run_id)


def test_chunks_keep_an_email_together_unless_it_alone_is_too_big() -> None:
    records = [customer(f"{e}{i}", f"{e}@x.io") for e, n in (("a", 3), ("b", 1), ("c", 5)) for i in range(n)]
    chunks = by_email(records, size=4)
    assert [[r["id"] for r in c] for c in chunks] == [["a0", "a1", "a2", "b0"], ["c0", "c1", "c2", "c3"], ["c4"]]
    assert sum(len(c) for c in chunks) == len(records)


def test_deltas_and_the_joins_pass_write_at_once() -> None:
    assert first_pass({"entity": "customers", "mode": "backfill"})
    assert not first_pass({"entity": "customers", "mode": "delta"})
    assert not first_pass({"entity": "orders", "mode": "backfill"})
    assert not first_pass({"entity": "customers", "mode": "backfill", "joins": True})

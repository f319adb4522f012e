"""Which backfills the reconciler resumes: paging stopped, nobody holding the run's lock, no message
of it left in the broker. Real Redis; the broker check is passed in."""

from __future__ import annotations

import time

import redis

from sync_tasks.constants import Keys
from sync_tasks.runs import stalled_backfills
from sync_tasks.state import SyncState

OLD = 600.0


def _backfill(state: SyncState, entity: str, paged_ago: float, done: bool = False, **meta: str | None) -> str:
    run_id = state.start_run(entity, "backfill", **meta)
    state.r.hset(Keys.run(run_id), "paged_at", time.time() - paged_ago)
    if done:
        state.finish_extract(run_id)
    return run_id


def test_only_a_backfill_that_stopped_paging_with_nothing_left_of_it_is_resumed(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    lost = _backfill(state, "customers", OLD + 60, since="2026-01-01T00:00:00.000Z", store="de")
    _backfill(state, "customers", 5)  # paging now
    _backfill(state, "customers", OLD + 60, done=True)  # finished paging
    locked = _backfill(state, "orders", OLD + 60)  # a task still holds its lock (a slow page)
    redis_client.set(Keys.extract_lock(f"orders:{locked}"), "token", ex=60)
    queued = _backfill(state, "orders", OLD + 60)  # its message waits behind others
    state.start_run("customers", "delta")  # deltas are beat's: never resumed here

    found = stalled_backfills(state, OLD, in_broker=lambda run_id: run_id == queued)
    assert found == [{"entity": "customers", "run_id": lost, "since": "2026-01-01T00:00:00.000Z", "store": "de"}]


def test_a_backfill_lost_before_its_first_page_counts_from_its_start(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    run_id = state.start_run("orders", "backfill")
    assert stalled_backfills(state, OLD, in_broker=lambda _: False) == []
    later = time.time() + OLD + 1
    assert [j["run_id"] for j in stalled_backfills(state, OLD, in_broker=lambda _: False, now=later)] == [run_id]

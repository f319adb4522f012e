"""The in-flight ledger of chains (real Redis)."""

from __future__ import annotations

import time

import redis

from sync_tasks.constants import Keys
from sync_tasks.inflight import ChunkLedger


def test_an_untouched_open_chunk_turns_stale_and_a_closed_one_never(redis_client: redis.Redis) -> None:
    ledger = ChunkLedger(redis_client)
    lost = ledger.open(["c1", "c2"], {"run_id": "r", "entity": "customers"})
    done = ledger.open(["c3"], {"run_id": "r", "entity": "customers"})
    busy = ledger.open(["c4"], {"run_id": "r", "entity": "customers"})
    assert ledger.stale(60) == {} and ledger.size() == 3
    for chunk in (lost, done, busy):  # as if an hour went by
        redis_client.hset(Keys.chunks_touched(), chunk, time.time() - 3600)
    ledger.close(done)
    ledger.touch(busy)  # one of its tasks just ran
    assert ledger.stale(60) == {lost: {"ids": ["c1", "c2"], "ctx": {"run_id": "r", "entity": "customers"}}}
    ledger.close(lost)
    assert ledger.stale(60) == {} and ledger.size() == 1
    ledger.touch(None)
    ledger.close(None)  # chains without an entry (a company replay) are fine

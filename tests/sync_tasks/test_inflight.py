"""The in-flight ledger of chains (real Redis)."""

from __future__ import annotations

import time
from typing import Any

import kombu
import redis

from sync_tasks.constants import Keys, Queue
from sync_tasks.errors import RetryableError
from sync_tasks.inflight import ChunkLedger, chunks_in_broker, reconcile_stale
from tests.conftest import UNIT_DB, redis_url


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


def test_order_chains_keep_a_ledger_of_their_own(redis_client: redis.Redis) -> None:
    customers, orders = ChunkLedger(redis_client), ChunkLedger(redis_client, "orders")
    chunk = orders.open(["o1"], {"run_id": "r", "entity": "orders"})
    assert customers.size() == 0 and orders.size() == 1
    redis_client.hset(Keys.entity_chunks_touched("orders"), chunk, time.time() - 3600)
    assert customers.stale(60) == {} and set(orders.stale(60)) == {chunk}


def _publish(queue: str, ctx: dict[str, Any]) -> None:
    """A message as the broker holds it: kombu's own format (base64 body) on the queue's list."""
    with kombu.Connection(redis_url(UNIT_DB)) as conn:
        conn.SimpleQueue(queue).put({"args": [[{"id": "o1"}], ctx]})


def test_a_chain_still_queued_or_reserved_is_late_not_lost(redis_client: redis.Redis) -> None:
    ledger = ChunkLedger(redis_client, "orders")
    queued = ledger.open(["o1"], {"entity": "orders"})
    reserved = ledger.open(["o2"], {"entity": "orders"})
    lost = ledger.open(["o3"], {"entity": "orders"})
    _publish(Queue.PUSH.value, {"entity": "orders", "chunk": queued})
    _publish(Queue.SYNC.value, {"entity": "orders", "chunk": reserved})
    with kombu.Connection(redis_url(UNIT_DB)) as conn:  # delivered, not acknowledged: kombu's `unacked`
        held = conn.SimpleQueue(Queue.SYNC.value).get(timeout=5)
        assert chunks_in_broker(redis_client, [queued, reserved, lost]) == {queued, reserved}
        for chunk in (queued, reserved, lost):
            redis_client.hset(Keys.entity_chunks_touched("orders"), chunk, time.time() - 3600)
        assert set(ledger.stale(60)) == {lost}
        assert ledger.stale(60) == {lost: {"ids": ["o3"], "ctx": {"entity": "orders"}}}  # the others were touched
        held.ack()


def test_reconcile_re_enqueues_a_lost_chain_and_keeps_one_it_could_not_read(redis_client: redis.Redis) -> None:
    ledger = ChunkLedger(redis_client, "orders")
    lost = ledger.open(["o1", "o2"], {"entity": "orders", "run_id": "r"})
    unreadable = ledger.open(["o9"], {"entity": "orders", "run_id": "r"})
    for chunk in (lost, unreadable):
        redis_client.hset(Keys.entity_chunks_touched("orders"), chunk, time.time() - 3600)
    sent: list[tuple[list[str], dict[str, Any]]] = []

    def fetch(ids: list[str]) -> list[dict[str, Any]]:
        if "o9" in ids:
            raise RetryableError("commercetools 503")
        return [{"id": i} for i in ids if i != "o2"]  # o2 was deleted meanwhile

    def enqueue(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        sent.append(([r["id"] for r in records], ctx))

    result = reconcile_stale(ledger, 60, fetch, enqueue)
    assert (result.stale, result.requeued, result.records) == (2, 1, 1)
    assert sent == [(["o1"], {"entity": "orders", "run_id": "r"})]
    assert set(ledger.stale(60)) == {unreadable}  # left for the next round


def test_a_backfill_message_is_found_on_the_extract_queue_by_its_run(redis_client: redis.Redis) -> None:
    """Published by kombu as the fleet's messages are (no worker consumes this database)."""
    from celery import Celery

    from sync_tasks.constants import Queue, TaskName
    from sync_tasks.inflight import backfill_in_broker
    from tests.conftest import UNIT_DB, redis_url

    app = Celery("probe", broker=redis_url(UNIT_DB))
    try:
        app.send_task(TaskName.BACKFILL.value, args=("customers", None, None, "customers-backfill-1"),
                      queue=Queue.EXTRACT.value)
        app.send_task(TaskName.EXTRACT.value, args=("customers-backfill-2",), queue=Queue.EXTRACT.value)
        assert backfill_in_broker(redis_client, "customers-backfill-1")
        assert not backfill_in_broker(redis_client, "customers-backfill-2")  # not a backfill task
        assert not backfill_in_broker(redis_client, "customers-backfill-3")
    finally:
        app.close()

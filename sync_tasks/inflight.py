"""Chunks in flight: a ledger in Redis of every match → map → push chain not yet finished.

Celery on Redis is not quite at-least-once: kombu pops a message (BRPOP) and only then records it as
unacknowledged, so a broker restart or a killed worker between the two loses the message, and with
it the chain (the chaos suite caught one in three runs). Each chain therefore opens an entry when
it is enqueued, touches it whenever one of its tasks runs, and closes it when its push is done or
dead-lettered. An entry untouched for longer than any legitimate wait (the visibility timeout plus
the longest countdown) belongs to a lost chain: the reconciler re-reads its records from
commercetools and enqueues them again. A duplicate of a chain that was merely slow is harmless:
writes are upserts and updates of the same values.

Customer chains use the ledger `ctsync.reconcile` reads (`Keys.chunks_pending`). Order chains keep a
ledger of their own (`ChunkLedger(r, "orders")`), reconciled by `ctsync.orders.reconcile` and by every
orders extraction tick with `reconcile_stale` and the orders' own fetch: an order entry in the
customers' ledger would be re-read as customers, find nothing and be closed, losing the chain.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from sync_tasks.constants import Entity, Keys, Queue
from sync_tasks.errors import RetryableError

log = logging.getLogger(__name__)

UNACKED_KEY = "unacked"  # kombu's Redis transport default (`unacked_key`)
PRIORITY_STEPS = (3, 6, 9)  # kombu's Redis priority lists besides the queue's own (step 0)


class ChunkLedger:
    def __init__(self, client: redis.Redis, entity: str = Entity.CUSTOMERS.value) -> None:
        self.r: Any = client
        self.entity = entity
        if entity == Entity.CUSTOMERS.value:
            self.pending_key, self.touched_key = Keys.chunks_pending(), Keys.chunks_touched()
        else:
            self.pending_key, self.touched_key = Keys.entity_chunks_pending(entity), Keys.entity_chunks_touched(entity)

    def open(self, record_ids: list[str], ctx: dict[str, Any]) -> str:
        chunk = uuid.uuid4().hex
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(self.pending_key, chunk, json.dumps({"ids": record_ids, "ctx": ctx}))
        pipe.hset(self.touched_key, chunk, time.time())
        pipe.execute()
        return chunk

    def touch(self, chunk: str | None) -> None:
        if chunk:
            self.r.hset(self.touched_key, chunk, time.time())

    def close(self, chunk: str | None) -> None:
        if chunk:
            pipe = self.r.pipeline(transaction=False)
            pipe.hdel(self.pending_key, chunk)
            pipe.hdel(self.touched_key, chunk)
            pipe.execute()

    def size(self) -> int:
        return int(self.r.hlen(self.pending_key))

    def stale(self, older_than: float) -> dict[str, dict[str, Any]]:
        """Open chunks untouched for `older_than` seconds and with no message left in the broker:
        chunk id → {ids, ctx}. A chain queued behind a backlog (rate-limited pushes) is untouched
        for as long as the backlog lasts, but its message is still there: it is late, not lost."""
        cutoff = time.time() - older_than
        touched = self.r.hgetall(self.touched_key)
        old = [c for c, ts in touched.items() if float(ts) < cutoff]
        if not old:
            return {}
        waiting = chunks_in_broker(self.r, old)
        for chunk in waiting:
            self.touch(chunk)  # seen queued: look again one period later, not at every round
        old = [c for c in old if c not in waiting]
        if not old:
            return {}
        values = self.r.hmget(self.pending_key, old)
        return {c: json.loads(v) for c, v in zip(old, values, strict=True) if v}


def queue_keys(queues: list[Queue] | None = None) -> list[str]:
    """The Redis lists kombu keeps our queued messages in: one per queue and priority step."""
    chosen = queues if queues is not None else [q for q in Queue if q is not Queue.DEADLETTER]
    return [k for q in chosen for k in (q.value, *(f"{q.value}\x06\x16{p}" for p in PRIORITY_STEPS))]


def broker_messages(client: Any, queues: list[Queue] | None = None) -> list[Any]:
    """Every message queued on `queues` (default: all of ours) and every one delivered but not
    acknowledged (reserved, running or waiting a countdown), as one MULTI/EXEC snapshot, so a message
    moving from a queue to `unacked` meanwhile is seen in one or the other."""
    pipe = client.pipeline(transaction=True)
    for key in queue_keys(queues):
        pipe.lrange(key, 0, -1)
    pipe.hvals(UNACKED_KEY)
    return [m for part in pipe.execute() for m in part]


def chunks_in_broker(client: Any, chunks: list[str]) -> set[str]:
    """Which of `chunks` a message in the broker still carries (its ctx names the chunk). Only read
    when a chunk looks stale."""
    found: set[str] = set()
    for raw in broker_messages(client):
        text = _message_text(raw)
        found.update(c for c in chunks if c in text)
        if len(found) == len(chunks):
            break
    return found


def backfill_in_broker(client: Any, run_id: str) -> bool:
    """Whether a backfill task message of `run_id` is queued on the extract queue or delivered and
    not acknowledged (running, or waiting for its countdown)."""
    from sync_tasks.constants import TaskName

    return any(TaskName.BACKFILL.value in str(raw) and run_id in _message_text(raw)
               for raw in broker_messages(client, [Queue.EXTRACT]))


def _message_text(raw: Any) -> str:
    """A kombu message (or an `unacked` entry: [message, exchange, routing key]) with its body decoded."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):
            message = message[0]
        body = message.get("body", "")
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode("utf-8", errors="replace")
        return str(body)
    except (ValueError, TypeError, AttributeError, IndexError):
        return str(raw)


@dataclass
class Reconciled:
    stale: int = 0
    requeued: int = 0  # chains enqueued again
    records: int = 0


def reconcile_stale(ledger: ChunkLedger, older_than: float, fetch: Callable[[list[str]], list[dict[str, Any]]],
                    enqueue: Callable[[list[dict[str, Any]], dict[str, Any]], None]) -> Reconciled:
    """Re-enqueue the chains of `ledger` untouched for `older_than` seconds: their records are re-read
    with `fetch` (records deleted meanwhile are simply gone) and sent with `enqueue`, which opens a
    new entry; the stale entry is closed only after that. A failed read leaves it for the next round."""
    stale = ledger.stale(older_than)
    out = Reconciled(stale=len(stale))
    for chunk, entry in stale.items():
        ctx = {k: v for k, v in entry["ctx"].items() if k != "chunk"}
        try:
            records = fetch(entry["ids"])
        except RetryableError as exc:
            log.warning("reconcile: %s chunk %s not re-read (%s); next round", ledger.entity, chunk, exc)
            continue
        if records:
            enqueue(records, ctx)
            out.requeued += 1
            out.records += len(records)
        ledger.close(chunk)
        log.warning("reconcile: %s chunk %s of run %s was lost in flight; re-enqueued %d records", ledger.entity,
                    chunk, ctx.get("run_id"), len(records))
    return out

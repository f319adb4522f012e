"""Chunks in flight: a ledger in Redis of every match → map → push chain not yet finished.

Celery on Redis is not quite at-least-once: kombu pops a message (BRPOP) and only then records it as
unacknowledged, so a broker restart or a killed worker between the two loses the message, and with
it the chain (the chaos suite caught one in three runs). Each chain therefore opens an entry when
it is enqueued, touches it whenever one of its tasks runs, and closes it when its push is done or
dead-lettered. An entry untouched for longer than any legitimate wait (the visibility timeout plus
the longest countdown) belongs to a lost chain: the reconciler re-reads its records from
commercetools and enqueues them again. A duplicate of a chain that was merely slow is harmless:
writes are upserts and updates of the same values.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from sync_tasks.constants import Keys


class ChunkLedger:
    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client

    def open(self, record_ids: list[str], ctx: dict[str, Any]) -> str:
        chunk = uuid.uuid4().hex
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(Keys.chunks_pending(), chunk, json.dumps({"ids": record_ids, "ctx": ctx}))
        pipe.hset(Keys.chunks_touched(), chunk, time.time())
        pipe.execute()
        return chunk

    def touch(self, chunk: str | None) -> None:
        if chunk:
            self.r.hset(Keys.chunks_touched(), chunk, time.time())

    def close(self, chunk: str | None) -> None:
        if chunk:
            pipe = self.r.pipeline(transaction=False)
            pipe.hdel(Keys.chunks_pending(), chunk)
            pipe.hdel(Keys.chunks_touched(), chunk)
            pipe.execute()

    def size(self) -> int:
        return int(self.r.hlen(Keys.chunks_pending()))

    def stale(self, older_than: float) -> dict[str, dict[str, Any]]:
        """Open chunks untouched for `older_than` seconds: chunk id → {ids, ctx}."""
        cutoff = time.time() - older_than
        touched = self.r.hgetall(Keys.chunks_touched())
        old = [c for c, ts in touched.items() if float(ts) < cutoff]
        if not old:
            return {}
        values = self.r.hmget(Keys.chunks_pending(), old)
        return {c: json.loads(v) for c, v in zip(old, values, strict=True) if v}

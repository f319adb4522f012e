"""A chain's big values (a page of raw orders, a push's plan) stored once in Redis and passed
between its tasks by reference.

Why: a Celery message is JSON-decoded twice per task (the worker's consumer reads the payload to
check its protocol, then the prefork child decodes it again) after being pickled to the child, and a
chain re-encodes its value into the next message. For an order chain of 500 raw orders (a few MB)
that was most of a worker's CPU. By reference, the value is encoded once when stored and decoded
once by the task that needs it; a push waiting for rate-limit budget re-queues a few bytes.

A reference is only a cache: the message also carries the record ids, so a value that is gone
(TTL, a flushed Redis) is read again from commercetools by the caller
(`commerce_tasks.stored_orders`, or the push re-enqueueing its orders). Nothing is lost.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from sync_tasks.constants import Keys

# A chain deletes its values when it ends; the TTL only bounds what a chain lost with its worker
# leaves behind (the in-flight ledger re-reads such a chain from commercetools).
PAYLOAD_TTL_SECONDS = 24 * 3600
# What the order match reads of a record: the rest stays in the stored value.
PERSON_FIELDS = ("id", "customerId", "customerEmail")


@dataclass(frozen=True)
class Missing:
    """A stored value that is gone: the ids to read again from commercetools."""

    ref: str
    ids: list[str]


class Payloads:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def put(self, value: Any, ref: str | None = None) -> str:
        """Store `value` (under `ref` when given: a retried push saves its progress in place)."""
        ref = ref or uuid.uuid4().hex
        self.r.set(Keys.payload(ref), json.dumps(value, separators=(",", ":")), ex=PAYLOAD_TTL_SECONDS)
        return ref

    def get(self, ref: str) -> Any | None:
        raw = self.r.get(Keys.payload(ref))
        return None if raw is None else json.loads(raw)

    def drop(self, *refs: str | None) -> None:
        keys = [Keys.payload(ref) for ref in refs if ref]
        if keys:
            self.r.delete(*keys)


def chunk_head(records: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The message of an order chain's first task: the stored records' reference and, per record,
    only the fields the match reads."""
    return {"ref": ref, "people": [{k: r[k] for k in PERSON_FIELDS if k in r} for r in records]}


def records_of(payloads: Payloads, ref: str, ids: list[str]) -> list[dict[str, Any]] | Missing:
    """The stored records with these ids, in their stored order; `Missing` when the value is gone."""
    stored = payloads.get(ref)
    if stored is None:
        return Missing(ref, ids)
    wanted = set(ids)
    return [r for r in stored if r.get("id") in wanted]

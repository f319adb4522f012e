"""The dead-letter queue: writes that failed permanently or exhausted their error retries.

Entries live in a Redis stream (`Keys.dlq()`, durable with AOF, trimmed at `DLQ_MAXLEN`). Each holds
the task, the entity and the commercetools record ids, the HubSpot payload, the last error response
(status, category, message, correlationId, body), the attempts and the first and last failure times.

A replay never re-sends the stored payload blindly: it re-reads the records from commercetools and
sends them through the same match → map → push chain as live traffic, so it writes today's values,
and creates stay upserts on `ct_customer_id` (no duplicate, even while the original still retries).
An entry is claimed before it is replayed and deleted once its chain is enqueued, so replaying it
twice, or from two terminals at once, enqueues it once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import redis

from sync_tasks.constants import Keys
from sync_tasks.state import SyncState

CLAIM_SECONDS = 600
FAILURE_TTL_SECONDS = 7 * 24 * 3600
KINDS = ("permanent", "exhausted")


@dataclass
class DlqEntry:
    id: str
    task: str
    entity: str
    kind: str  # permanent | exhausted
    record_ids: list[str]
    payload: Any
    error: dict[str, Any]
    attempts: int
    first_failure: float
    last_failure: float

    @classmethod
    def from_stream(cls, entry_id: str, fields: dict[str, Any]) -> DlqEntry:
        return cls(
            id=entry_id, task=str(fields.get("task", "")), entity=str(fields.get("entity") or "customers"),
            kind=str(fields.get("kind") or "permanent"),
            record_ids=list(json.loads(fields.get("record_ids") or "[]")),
            payload=json.loads(fields.get("payload") or "null"), error=dict(json.loads(fields.get("error") or "{}")),
            attempts=int(fields.get("attempts") or 0), first_failure=float(fields.get("first_failure") or 0),
            last_failure=float(fields.get("last_failure") or 0),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """One line of `ctsync dlq list`: ids and error, no payload (it may hold PII)."""
        return {"id": self.id, "task": self.task, "entity": self.entity, "kind": self.kind,
                "records": len(self.record_ids), "status": self.error.get("status"),
                "category": self.error.get("category"), "attempts": self.attempts,
                "first_failure": self.first_failure, "last_failure": self.last_failure}


class FailureLog:
    """When a task's error retries began: kept per task id (stable across Celery retries), read when
    the task is dead-lettered, deleted when it succeeds or is dead-lettered."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client

    def note(self, task_id: str | None) -> float:
        """Record a failure now; return the first failure's time."""
        now = time.time()
        if not task_id:
            return now
        key = Keys.failures(task_id)
        pipe = self.r.pipeline()
        pipe.hsetnx(key, "first_failure", now)
        pipe.hset(key, "last_failure", now)
        pipe.expire(key, FAILURE_TTL_SECONDS)
        pipe.hget(key, "first_failure")
        first = pipe.execute()[-1]
        return float(first or now)

    def first_failure(self, task_id: str | None) -> float | None:
        if not task_id:
            return None
        value = self.r.hget(Keys.failures(task_id), "first_failure")
        return float(value) if value else None

    def clear(self, task_id: str | None) -> None:
        if task_id:
            self.r.delete(Keys.failures(task_id))


class Replayer(Protocol):
    """How a replay reaches the pipeline: current records from commercetools, and the chain."""

    def fetch(self, entity: str, record_ids: list[str]) -> list[dict[str, Any]]: ...

    def enqueue(self, entity: str, records: list[dict[str, Any]], ctx: dict[str, Any]) -> None: ...

    def push(self, plan: dict[str, Any], ctx: dict[str, Any]) -> None: ...

    def resend(self, task: str, args: list[Any]) -> None: ...


@dataclass
class ReplayReport:
    run_id: str | None = None
    replayed: list[str] = field(default_factory=list)  # entry ids enqueued and removed
    records: int = 0  # records sent through the chain
    gone: list[str] = field(default_factory=list)  # record ids no longer in commercetools
    skipped: dict[str, str] = field(default_factory=dict)  # entry id -> why it was left alone

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeadLetters:
    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client

    def size(self) -> int:
        return int(self.r.xlen(Keys.dlq()))

    def get(self, entry_id: str) -> DlqEntry | None:
        found = self.r.xrange(Keys.dlq(), entry_id, entry_id, count=1)
        return DlqEntry.from_stream(found[0][0], found[0][1]) if found else None

    def entries(self, since: float | None = None, entity: str | None = None, kind: str | None = None,
                limit: int | None = None) -> list[DlqEntry]:
        """Oldest first. `since`: last failure at or after this epoch time."""
        start = f"{int(since * 1000)}-0" if since else "-"
        out: list[DlqEntry] = []
        while True:
            batch = self.r.xrange(Keys.dlq(), start, "+", count=500)
            for entry_id, fields in batch:
                entry = DlqEntry.from_stream(entry_id, fields)
                if (entity is None or entry.entity == entity) and (kind is None or entry.kind == kind):
                    out.append(entry)
                    if limit is not None and len(out) >= limit:
                        return out
            if len(batch) < 500:
                return out
            start = "(" + batch[-1][0]

    def purge(self, ids: Iterable[str] | None = None) -> int:
        """Delete the given entries, or every entry; returns how many went."""
        if ids is None:
            n = self.size()
            self.r.delete(Keys.dlq())
            return n
        ids = list(ids)
        return int(self.r.xdel(Keys.dlq(), *ids)) if ids else 0

    def replay(self, entries: list[DlqEntry], replayer: Replayer, state: SyncState,
               on_entry: Callable[[DlqEntry], None] | None = None) -> ReplayReport:
        """Send `entries` through the pipeline again, each at most once, under one replay run whose
        counters (`ctsync status`, `wait_for_run`) follow the records to the end."""
        report = ReplayReport()
        claimed: list[tuple[DlqEntry, list[dict[str, Any]]]] = []
        for entry in entries:
            claim = Keys.dlq_replaying(entry.id)
            if not self.r.set(claim, "1", nx=True, ex=CLAIM_SECONDS):
                report.skipped[entry.id] = "being replayed by another command"
                continue
            if self.get(entry.id) is None:
                self.r.delete(claim)
                report.skipped[entry.id] = "no longer in the DLQ (replayed already?)"
                continue
            try:
                records = replayer.fetch(entry.entity, entry.record_ids) if entry.record_ids else []
            except Exception as exc:  # a failed read leaves the entry where it is
                self.r.delete(claim)
                report.skipped[entry.id] = f"could not read commercetools: {exc}"
                continue
            claimed.append((entry, records))
        if not claimed:
            return report
        entity = claimed[0][0].entity
        run_id = state.start_run(entity, "replay")
        report.run_id = run_id
        ctx = {"entity": entity, "run_id": run_id, "mode": "replay", "lane": "live", "force": True}
        total = 0
        for entry, records in claimed:
            try:
                found = {r["id"] for r in records}
                gone = [i for i in entry.record_ids if i not in found]
                if records:
                    replayer.enqueue(entry.entity, records, {**ctx, "entity": entry.entity})
                elif not entry.record_ids and isinstance(entry.payload, dict) and entry.payload.get("plan"):
                    replayer.push(entry.payload["plan"], ctx)  # no records to re-read (a company)
                elif not entry.record_ids and isinstance(entry.payload, dict) and "resend_args" in entry.payload:
                    replayer.resend(entry.task, list(entry.payload["resend_args"]))  # a backfill resumes
                total += len(records)
                state.count(run_id, extracted=len(records) + len(gone), skipped=len(gone))
                report.gone += gone
                report.replayed.append(entry.id)
                self.r.xdel(Keys.dlq(), entry.id)
                if on_entry:
                    on_entry(entry)
            except Exception as exc:
                report.skipped[entry.id] = f"not enqueued: {exc}"
            finally:
                self.r.delete(Keys.dlq_replaying(entry.id))
        report.records = total
        state.finish_extract(run_id)
        return report


def parse_since(value: str) -> float:
    """`--since`: an ISO date/datetime (UTC when no zone), or a duration like 30m, 2h, 1d."""
    import datetime as dt

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()

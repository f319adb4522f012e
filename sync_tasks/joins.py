"""A customer backfill's e-mail joins, written together at its end.

In an initial load, an account whose e-mail's contact already exists (an earlier chunk of the run
created it, or a form did) joins that contact: an update of a contact, not a create. Written chunk
by chunk, that is one part-full batch update per chunk holding such an account (about 150 calls for
the 294 joining accounts of the bench's 20,000-customer shop, against 200 for all the creates). So a
backfill's first pass leaves those updates for the run's end: their accounts go into a set of the
run, uncounted, and once every other record of the run is done one task reads them again from
commercetools and sends them through match → map → push, grouped by e-mail, in full batches. The
run is not complete before they are done. Deltas write joins at once (their freshness matters more
than a call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sync_tasks.changes import Plan
from sync_tasks.constants import Keys
from sync_tasks.mapping import normalize_email
from sync_tasks.state import RUN_TTL_SECONDS, SyncState

log = logging.getLogger(__name__)

JOINS_PENDING = "pending"  # run field `joins`: some accounts wait for the run's end
JOINS_SENT = "sent"
JOINS_LOCK_SECONDS = 300  # the sender renews nothing: it reads and enqueues; a lost task's lock expires

Fetch = Callable[[list[str]], list[dict[str, Any]]]
Enqueue = Callable[[list[dict[str, Any]], dict[str, Any]], None]


def first_pass(ctx: dict[str, Any]) -> bool:
    """A customer backfill's chain, not one of the joins sent at its end."""
    return ctx.get("entity") == "customers" and ctx.get("mode") == "backfill" and not ctx.get("joins")


def defer_joins(state: SyncState, run_id: str, plan: Plan) -> list[str]:
    """Take the updates that join an account to a contact by e-mail out of `plan` and leave them for
    the run's end; returns their record ids."""
    keep: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    for entry in plan.updates:
        (deferred if entry.get("joins") else keep).append(entry)
    ids = sorted({i for e in deferred for i in e["record_ids"]})
    if not ids:
        return []
    plan.updates = keep
    pipe = state.r.pipeline()
    pipe.sadd(Keys.run_joins(run_id), *ids)
    pipe.expire(Keys.run_joins(run_id), RUN_TTL_SECONDS)
    pipe.hset(Keys.run(run_id), "joins", JOINS_PENDING)
    pipe.execute()
    return ids


def waiting(state: SyncState, run_id: str) -> int:
    return int(state.r.scard(Keys.run_joins(run_id)))


def only_joins_left(state: SyncState, run_id: str, run: dict[str, Any]) -> bool:
    """The run (`state.run(run_id)`) has paged to its end and every record but the joins waiting in
    its set is done: what a backfill left for its end can start (the joins, `company_links`)."""
    if not run["extract_done"]:
        return False
    done = sum(run[f] for f in ("created", "updated", "skipped", "failed"))
    return done >= run["extracted"] or done + waiting(state, run_id) >= run["extracted"]


def claim_joins(state: SyncState, run_id: str, run: dict[str, Any] | None = None) -> bool:
    """True for the one caller that should now send the run's joins: only they are left
    (`only_joins_left`), and no sender holds the run's lock (it expires if its task is lost).
    `run`: the run as just read, if the caller has it."""
    run = run if run is not None else state.run(run_id)
    if run.get("joins") != JOINS_PENDING or not only_joins_left(state, run_id, run):
        return False
    return bool(state.r.set(Keys.run_joins_lock(run_id), "1", nx=True, ex=JOINS_LOCK_SECONDS))


def by_email(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Chunks of at most `size` records, an e-mail's accounts kept together (one contact, one entry)
    unless they alone exceed `size`."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (normalize_email(r.get("email")) or "", r["id"])):
        groups.setdefault(normalize_email(record.get("email")) or f"ct:{record['id']}", []).append(record)
    out: list[list[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    for group in groups.values():
        if chunk and len(chunk) + len(group) > size:
            out.append(chunk)
            chunk = []
        chunk += group
        while len(chunk) > size:
            out.append(chunk[:size])
            chunk = chunk[size:]
    if chunk:
        out.append(chunk)
    return out


def send_joins(state: SyncState, run_id: str, ctx: dict[str, Any], fetch: Fetch, enqueue: Enqueue,
               size: int) -> int:
    """Read the run's joining accounts again and enqueue them, grouped by e-mail; returns how many.

    Each chunk leaves the set as it is enqueued: a sender lost half-way resends only the rest.
    Accounts deleted meanwhile count as skipped."""
    key = Keys.run_joins(run_id)
    ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in state.r.smembers(key))
    records = fetch(ids) if ids else []
    gone = sorted(set(ids) - {r["id"] for r in records})
    if gone:
        pipe = state.r.pipeline()
        pipe.srem(key, *gone)
        pipe.hincrby(Keys.run(run_id), "skipped", len(gone))
        pipe.execute()
    for chunk in by_email(records, size):
        enqueue(chunk, {**ctx, "joins": True})
        state.r.srem(key, *[r["id"] for r in chunk])
    state.r.hset(Keys.run(run_id), "joins", JOINS_SENT)
    state.r.delete(Keys.run_joins_lock(run_id))
    log.info("backfill %s: %d accounts joining contacts by e-mail sent in full batches", run_id, len(records))
    return len(records)

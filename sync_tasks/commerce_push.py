"""Shared pieces for writing commerce records: keyed upserts and labelled associations.

Upserts are keyed by our unique commercetools-id properties, so a replay never creates a duplicate;
associations already made are remembered in Redis and HubSpot keeps one per pair and type anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks import rejected
from sync_tasks.associations import associate_pairs, record_refused
from sync_tasks.batch_writer import write
from sync_tasks.constants import ASSOCIATION_BATCH_LIMIT, BATCH_LIMIT
from sync_tasks.errors import ErrorDetail, RetryableError
from sync_tasks.hubspot_client import HubSpotClient, trace_id
from sync_tasks.mapping import changed
from sync_tasks.match import CONTACTS
from sync_tasks.state import SyncState

log = logging.getLogger(__name__)

# HUBSPOT_DEFINED association type ids (reference sheet §5.5), from → to.
ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("orders", "contacts"): 507,
    ("orders", "line_items"): 513,
    ("orders", "companies"): 509,
    ("orders", "carts"): 593,
    ("carts", "contacts"): 586,
    ("carts", "line_items"): 590,
    ("deals", "line_items"): 19,
    ("deals", "contacts"): 3,
}
ASSOCIATION_BATCH = ASSOCIATION_BATCH_LIMIT  # the documented cap (hubspot-api.md §1); the sandbox enforces it


@dataclass
class UpsertResult:
    ids: dict[str, str] = field(default_factory=dict)  # key -> HubSpot id
    new: set[str] = field(default_factory=set)  # keys created by this call
    failed: dict[str, ErrorDetail] = field(default_factory=dict)
    retry: list[str] = field(default_factory=list)
    error: RetryableError | None = None


def _trace_by_property(prop: str, traces: dict[str, str]) -> Callable[[dict[str, Any]], str | None]:
    return lambda result: traces.get(str(result.get("properties", {}).get(prop)))


def upsert_keyed(hubspot: HubSpotClient, obj: str, id_property: str, items: list[tuple[str, dict[str, str]]],
                 progress: dict[str, list[Any]] | None = None) -> UpsertResult:
    """Batch upsert `items` [(key, properties)] on `id_property`; sort every key into a result.

    `progress` (kept in the task's plan) remembers the keys written so far, so a retried task sends
    only the rest. Each batch takes its budget as it is sent (`HubSpotClient.prepaid`), and the first
    batch that must be retried (refused budget included) stops the others: a retried step never
    re-sends what already landed."""
    out = UpsertResult()
    progress = {} if progress is None else progress
    for key, _ in items:
        if key in progress:
            out.ids[key] = progress[key][0]
            if progress[key][1]:
                out.new.add(key)
    todo = [(k, v) for k, v in items if k not in progress]
    batches = [todo[i:i + BATCH_LIMIT] for i in range(0, len(todo), BATCH_LIMIT)]
    with hubspot.prepaid(len(batches)):
        for part in batches:
            traces = {trace_id(): key for key, _ in part}
            by_key = {key: t for t, key in traces.items()}
            inputs = [{"id": key, "properties": props, "objectWriteTraceId": by_key[key]} for key, props in part]
            written = write(lambda xs: hubspot.batch_upsert(obj, id_property, xs), inputs,
                            _trace_by_property(id_property, by_key))
            for trace, result in written.results.items():
                key = traces[trace]
                out.ids[key] = str(result["id"])
                if result.get("new", False):
                    out.new.add(key)
                progress[key] = [out.ids[key], key in out.new]
            for trace, existing in written.conflicts.items():
                # A unique-value conflict on an upsert keyed by that value cannot happen for our own
                # keys; it means another property collided: keep the record id we were told about.
                out.ids[traces[trace]] = existing
            out.failed.update({traces[t]: d for t, d in written.failed.items()})
            out.retry += [traces[t] for t in written.retry]
            if written.retry:
                out.error = written.retry_error or RetryableError(f"hubspot: {obj} upsert to retry")
                break
    return out


def associate_all(hubspot: HubSpotClient, state: SyncState, from_obj: str, to_obj: str,
                  pairs: list[tuple[str, str]], task: str, owners: dict[str, str] | None = None) -> int:
    """Create the associations not made before; returns how many were sent. A pair HubSpot refuses
    (associations.py) is not marked made: it goes to the rejected log and the DLQ under the
    commercetools record its `from` object was written for (`owners`: HubSpot id → record id), whose
    replay pushes it again."""
    pairs = sorted(set(pairs))
    name = f"{from_obj}-{to_obj}"
    known = state.known_associations(name, pairs)  # once: in the comprehension it ran once per pair
    new = [p for p in pairs if p not in known]
    type_id = ASSOCIATION_TYPES[(from_obj, to_obj)]
    for i in range(0, len(new), ASSOCIATION_BATCH):
        done = associate_pairs(lambda part: hubspot.associate(from_obj, to_obj, type_id, part),
                               new[i:i + ASSOCIATION_BATCH])
        state.save_associations(name, done.made)
        for (a, b), detail in sorted(done.refused.items()):
            entity, record_id = replay_target(from_obj, (owners or {}).get(a, a))
            record_refused(state, task, f"{from_obj} {a} with {to_obj} {b}", [record_id],
                           {"association": [from_obj, to_obj], "pairs": [[a, b]]}, detail, entity=entity)
    return len(new)


# HubSpot object → the commercetools entity a DLQ replay re-reads for it.
REPLAY_ENTITY = {"orders": "orders", "carts": "carts", "deals": "orders"}


def replay_target(obj: str, key: str) -> tuple[str, str]:
    """(entity, record id) a DLQ replay of a rejected `obj` write re-reads: a line item's parent order
    or cart. Contacts (rollups, guests) and products have no commercetools record of their own: their
    entries keep the HubSpot object as entity, and `ctsync dlq replay` leaves them in place, saying so."""
    if obj == "line_items" and key.count(":") >= 2:
        parent, parent_id = key.split(":")[:2]
        return ("carts" if parent == "cart" else "orders"), parent_id  # a deal's line items: its order's
    return REPLAY_ENTITY.get(obj, obj), key


def dead_letter_failed(state: SyncState, task: str, run_id: str | None, obj: str,
                       failed: dict[str, ErrorDetail], payloads: dict[str, Any], count: bool = True) -> None:
    for key, detail in failed.items():
        log.warning("hubspot rejected %s %s: %s %s (correlationId %s)", obj, key, detail.category,
                    rejected.redact_text(detail.message[:200]), detail.correlation_id)
        entity, record_id = replay_target(obj, key)
        state.dead_letter(task, [record_id], {"object": obj, "key": key, "payload": payloads.get(key)},
                          detail.as_dict() | {"body": detail.body}, attempts=1, entity=entity)
        rejected.record(state.r, "hubspot", task, [key], {"object": obj, "payload": payloads.get(key)}, detail,
                        entity=obj)
        if count:
            state.count(run_id, failed=1)


def update_by_id(hubspot: HubSpotClient, state: SyncState, obj: str, values: dict[str, dict[str, str]], task: str,
                 run_id: str | None, only_changed: bool = True) -> RetryableError | None:
    """Batch-update HubSpot records by id. With `only_changed`, send only what differs from the values
    the sync last wrote (and remember what it writes). Rejections are dead-lettered; the error that
    needs a retry is returned (all of it may be sent again: these writes are idempotent)."""
    written = state.written(obj, sorted(values)) if only_changed else {}
    updates = [(i, d) for i, v in sorted(values.items()) if (d := changed(v, written.get(i, {})) if only_changed
                                                              else v)]
    for start in range(0, len(updates), BATCH_LIMIT):
        part = updates[start:start + BATCH_LIMIT]
        traces = {trace_id(): (i, v) for i, v in part}
        by_id = {i: t for t, (i, _) in traces.items()}
        out = write(lambda xs: hubspot.batch_update(obj, xs),
                    [{"id": i, "properties": v, "objectWriteTraceId": t} for t, (i, v) in traces.items()],
                    _trace_by_id(by_id))
        if only_changed and out.results:
            # One round trip for the batch: the same merges, in the same order, each atomic on its own.
            pipe = state.r.pipeline(transaction=False)
            on_pipe = state.on_pipeline(pipe)
            for trace in out.results:
                hs_id, props = traces[trace]
                on_pipe.save_written(obj, hs_id, props)
            pipe.execute()
        dead_letter_failed(state, task, run_id, obj, {traces[t][0]: d for t, d in out.failed.items()}, dict(part),
                           count=False)
        if out.retry:
            return out.retry_error or RetryableError(f"hubspot: {obj} updates to retry")
    return None


def _trace_by_id(traces: dict[str, str]) -> Callable[[dict[str, Any]], str | None]:
    return lambda result: traces.get(str(result.get("id")))


def upsert_guests(hubspot: HubSpotClient, state: SyncState, task: str, run_id: str | None,
                  records: list[dict[str, Any]], progress: dict[str, list[Any]] | None = None,
                  history: Callable[[list[str]], dict[str, dict[str, str]]] | None = None) -> RetryableError | None:
    """Orders and carts of people with no contact yet: match or create one by e-mail (upsert on
    e-mail), and fill in each record's `contact`. `history` (an order backfill's): e-mails → the
    contact properties of each person's order history, written in the same upsert
    (sync_tasks/order_history.py)."""
    emails = sorted({r["email"] for r in records if r["contact"] is None and r["email"]})
    if not emails:
        return None
    todo = [e for e in emails if e not in (progress or {})]
    extra = history(todo) if history is not None and todo else {}
    result = upsert_keyed(hubspot, CONTACTS, "email", [(e, {"email": e, **extra.get(e, {})}) for e in emails],
                          progress)
    if extra:  # what the order backfill's end compares its values with (`update_by_id`, only_changed)
        pipe = state.r.pipeline(transaction=False)
        on_pipe = state.on_pipeline(pipe)
        for email, props in extra.items():
            if email in result.ids and email not in result.failed:
                on_pipe.save_written(CONTACTS, result.ids[email], {"email": email, **props})
        pipe.execute()
    state.save_emails(result.ids)
    for record in records:
        if record["contact"] is None and record["email"] in result.ids:
            record["contact"] = result.ids[record["email"]]
    dead_letter_failed(state, task, run_id, CONTACTS, result.failed,
                       {e: {"email": "<redacted>"} for e in result.failed}, count=False)
    return result.error


class StepPusher:
    """Runs a plan's write steps in order (`_<step>` methods), marking each done in the plan, so a
    retried task resumes at the first step not done."""

    steps: tuple[str, ...] = ()

    @staticmethod
    def progress(plan: dict[str, Any], name: str) -> dict[str, list[Any]]:
        """What a step has written so far, kept in the plan a retried task carries."""
        return dict.setdefault(plan.setdefault("progress", {}), name, {})

    def push(self, plan: dict[str, Any]) -> RetryableError | None:
        for step in self.steps:
            if step in plan["done"]:
                continue
            try:
                error = getattr(self, f"_{step}")(plan)
            except RetryableError as exc:
                return exc
            if error:
                return error
            plan["done"].append(step)
        return None

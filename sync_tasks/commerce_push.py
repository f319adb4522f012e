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
from sync_tasks.batch_writer import write
from sync_tasks.errors import ErrorDetail, RetryableError
from sync_tasks.hubspot_client import BATCH_LIMIT, HubSpotClient, trace_id
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
ASSOCIATION_BATCH = 1000


@dataclass
class UpsertResult:
    ids: dict[str, str] = field(default_factory=dict)  # key -> HubSpot id
    new: set[str] = field(default_factory=set)  # keys created by this call
    failed: dict[str, ErrorDetail] = field(default_factory=dict)
    retry: list[str] = field(default_factory=list)
    error: RetryableError | None = None


def _trace_by_property(prop: str, traces: dict[str, str]) -> Callable[[dict[str, Any]], str | None]:
    return lambda result: traces.get(str(result.get("properties", {}).get(prop)))


def upsert_keyed(hubspot: HubSpotClient, obj: str, id_property: str,
                 items: list[tuple[str, dict[str, str]]]) -> UpsertResult:
    """Batch upsert `items` [(key, properties)] on `id_property`; sort every key into a result."""
    out = UpsertResult()
    for i in range(0, len(items), BATCH_LIMIT):
        part = items[i:i + BATCH_LIMIT]
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
        for trace, existing in written.conflicts.items():
            # A unique-value conflict on an upsert keyed by that value cannot happen for our own
            # keys; it means another property collided: keep the record id we were told about.
            out.ids[traces[trace]] = existing
        out.failed.update({traces[t]: d for t, d in written.failed.items()})
        out.retry += [traces[t] for t in written.retry]
        if written.retry:
            out.error = written.retry_error or RetryableError(f"hubspot: {obj} upsert to retry")
    return out


def associate_all(hubspot: HubSpotClient, state: SyncState, from_obj: str, to_obj: str,
                  pairs: list[tuple[str, str]]) -> int:
    """Create the associations not made before; returns how many were sent."""
    pairs = sorted(set(pairs))
    name = f"{from_obj}-{to_obj}"
    new = [p for p in pairs if p not in state.known_associations(name, pairs)]
    type_id = ASSOCIATION_TYPES[(from_obj, to_obj)]
    for i in range(0, len(new), ASSOCIATION_BATCH):
        part = new[i:i + ASSOCIATION_BATCH]
        result = hubspot.associate(from_obj, to_obj, type_id, part)
        if result.errors:
            log.warning("hubspot refused %d %s→%s associations: %s", len(result.errors), from_obj, to_obj,
                        str(result.errors[0].get("message", ""))[:200])
        state.save_associations(name, part)
    return len(new)


def dead_letter_failed(state: SyncState, task: str, run_id: str | None, obj: str,
                       failed: dict[str, ErrorDetail], payloads: dict[str, Any], count: bool = True) -> None:
    for key, detail in failed.items():
        log.warning("hubspot rejected %s %s: %s %s (correlationId %s)", obj, key, detail.category,
                    detail.message[:200], detail.correlation_id)
        state.dead_letter(task, [key], {"object": obj, "payload": payloads.get(key)},
                          detail.as_dict() | {"body": detail.body}, attempts=1)
        rejected.record(state.r, "hubspot", task, [key], {"object": obj, "payload": payloads.get(key)}, detail,
                        entity=obj)
        if count:
            state.count(run_id, failed=1)

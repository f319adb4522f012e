"""CPU cost of match, map and serialisation, with HTTP excluded: the product's own functions run in
this process on real records and the real Redis state, with a HubSpot reader that never sends a
request. Process CPU time, so the figure is per core; Redis's own CPU is not in it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sync_tasks.changes import plan_contacts
from sync_tasks.hubspot_client import BatchResult
from sync_tasks.match import match_customers
from sync_tasks.state import SyncState


class NoHttpReader:
    """HubSpot answers 'no such record' without a request: HTTP is what this measurement leaves out."""

    def __init__(self) -> None:
        self.reads = 0

    def batch_read(self, obj: str, ids: list[str], properties: list[str],
                   id_property: str | None = None) -> BatchResult:
        self.reads += 1
        return BatchResult()

    @contextmanager
    def prepaid(self, calls: int) -> Iterator[None]:
        yield


@dataclass
class PipelineResult:
    records: int
    cpu_s: float
    wall_s: float
    planned: int  # creates + updates in the plans (0 would mean nothing was mapped)

    @property
    def records_per_cpu_s(self) -> float:
        return self.records / self.cpu_s if self.cpu_s else 0.0


def measure(records: list[dict[str, Any]], state: SyncState, rule: str, chunk: int = 100) -> PipelineResult:
    """Match, plan (backfill mode: every record mapped and written) and serialise each chunk as a
    Celery message would carry it."""
    reader = NoHttpReader()
    planned = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(0, len(records), chunk):
        part = records[i:i + chunk]
        json.dumps(part)  # the chunk into the match task
        matches = match_customers(part, state, reader)
        payload = json.dumps([m.as_dict() for m in matches])  # match → map message
        plan = plan_contacts([type(matches[0])(**m) for m in json.loads(payload)], state, rule, force=True)
        json.dumps(plan.as_dict())  # map → push message
        planned += len(plan.creates) + len(plan.updates)
    return PipelineResult(len(records), time.process_time() - cpu0, time.perf_counter() - wall0, planned)

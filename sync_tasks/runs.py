"""Starting runs from outside the fleet (CLI, Flower, tests) and following their progress."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sync_tasks.constants import Entity, Keys, Queue, TaskName
from sync_tasks.state import SyncState


def send_backfill(entity: str, since: str | None, store: str | None, run_id: str, countdown: float = 0.0) -> None:
    from workers import app

    app.send_task(TaskName.BACKFILL.value, args=(entity, since, store, run_id), queue=Queue.EXTRACT.value,
                  countdown=countdown or None)


def stalled_backfills(state: SyncState, older_than: float, in_broker: Callable[[str], bool],
                      now: float | None = None) -> list[dict[str, Any]]:
    """Backfill runs whose paging stopped unfinished: no page for `older_than` seconds, nobody
    holding the run's extract lock, and no backfill message of the run left in the broker (a Redis
    restart can reject a running task's message for good). Each: {entity, run_id, since, store}, for
    `send_backfill`, which resumes from the run's cursor."""
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for entity in Entity:
        for run_id in state.recent_runs(entity.value, 20):
            run = state.run(run_id)
            if run.get("mode") != "backfill" or run["extract_done"]:
                continue
            if now - float(run.get("paged_at") or run.get("started_at") or 0) < older_than:
                continue
            if state.r.exists(Keys.extract_lock(f"{entity.value}:{run_id}")) or in_broker(run_id):
                continue
            out.append({"entity": entity.value, "run_id": run_id, "since": json.loads(run.get("since") or "null"),
                        "store": json.loads(run.get("store") or "null")})
    return out


def send_extract(entity: str) -> None:
    from workers import app

    app.send_task(TaskName.EXTRACT.value, args=(entity,), queue=Queue.EXTRACT.value)


def wait_for_run(state: SyncState, run_id: str, timeout: float,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 idle_timeout: float = 120.0) -> dict[str, Any]:
    """Block until every extracted record of the run is created, updated, skipped or failed.

    Gives up after `timeout`, or after `idle_timeout` seconds without any counter moving."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    last_change = time.monotonic()
    while True:
        run = state.run(run_id)
        if on_progress:
            on_progress(run)
        if run != last:
            last, last_change = run, time.monotonic()
        if state.run_complete(run_id):
            return run
        now = time.monotonic()
        if now > deadline or now - last_change > idle_timeout:
            raise TimeoutError(f"run {run_id} did not finish: {run}")
        time.sleep(0.3)


def latest_run_after(state: SyncState, entity: str, after: float, mode: str = "delta") -> str | None:
    for run_id in state.recent_runs(entity, 20):
        run = state.run(run_id)
        if run.get("mode") == mode and float(run.get("started_at", 0)) >= after:
            return run_id
    return None

"""What `ctsync status` and the metrics exporter show: plain functions reading Redis (and, for the
workers alive, asking them over the broker)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from celery import Celery
from rich.console import Console
from rich.table import Table

from sync_tasks.constants import Entity, Keys, Queue
from sync_tasks.extract import parse_ts
from sync_tasks.limiter import RateLimiter
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState

# kombu's Redis transport keeps a queue's messages of priority p in the list `<queue>\x06\x16<p>`
# (p = 0 is the queue name itself); a depth must add them up.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
CONSUMED_QUEUES = [q.value for q in Queue if q is not Queue.DEADLETTER]
HUBSPOT_WINDOW_SECONDS = 10.0


def queue_depths(r: Any) -> dict[str, int]:
    """Messages waiting per queue (not counting those reserved by workers or waiting for an ETA)."""
    pipe = r.pipeline(transaction=False)
    for queue in CONSUMED_QUEUES:
        for step in PRIORITY_STEPS:
            pipe.llen(queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}")
    lengths = pipe.execute()
    n = len(PRIORITY_STEPS)
    return {queue: sum(lengths[i * n:(i + 1) * n]) for i, queue in enumerate(CONSUMED_QUEUES)}


def workers_alive(app: Celery, timeout: float = 1.0) -> dict[str, list[str]]:
    """Worker name → the queues it consumes, for every worker that answers within `timeout`."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {name: sorted(q["name"] for q in queues) for name, queues in sorted(replies.items())}


def entity_status(r: Any, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per entity: the watermark, the lag (now minus watermark, seconds) and the last run."""
    now = time.time() if now is None else now
    state = SyncState(r)
    out: dict[str, dict[str, Any]] = {}
    for entity in Entity:
        wm = r.get(Keys.watermark(entity.value))
        runs = state.recent_runs(entity.value, 1)
        out[entity.value] = {
            "watermark": wm,
            "lag_seconds": round(now - parse_ts(str(wm)).timestamp(), 1) if wm else None,
            "last_run": dict(state.run(runs[0]), run_id=runs[0]) if runs else None,
        }
    return out


def failure_counts(r: Any) -> dict[str, int]:
    """Dead letters and rejected property updates (0 when the stream does not exist yet)."""
    return {"dlq": SyncState(r).dlq_size(), "rejected": int(r.xlen(Keys.rejected()))}


def budget(r: Any, settings: Settings, now: float | None = None) -> dict[str, Any]:
    """HubSpot budget used: in the rolling 10 s (as HubSpot last reported it; 0 once that report is
    older than the window) and today (our fleet's counter, and HubSpot's own when it sent one)."""
    now = time.time() if now is None else now
    seen = r.hgetall(Keys.hubspot_limits()) or {}
    at = float(seen.get("at", 0) or 0)
    fresh = now - at <= HUBSPOT_WINDOW_SECONDS
    burst_max = int(seen["max"]) if seen.get("max") else settings.hubspot_burst_limit
    burst_used = burst_max - int(seen["remaining"]) if fresh and seen.get("remaining") else 0
    daily_hubspot = (int(seen["daily"]) - int(seen["daily_remaining"])
                     if seen.get("daily") and seen.get("daily_remaining") else None)
    usage = RateLimiter(r, settings).usage()
    tokens = usage.get("burst_tokens", math.nan)
    return {
        "per_10s": {"used": burst_used, "limit": burst_max},
        "per_day": {"used": int(usage.get("daily_used", 0)), "hubspot_reported": daily_hubspot,
                    "limit": settings.hubspot_daily_limit},
        "burst_tokens_left": None if math.isnan(tokens) else round(tokens, 1),
        "paused_seconds": round(float(usage.get("paused_s", 0.0)), 1),  # DAILY limit hit: fleet waits
        "reported_at": at or None,
    }


def gather(r: Any, settings: Settings, app: Celery | None = None, timeout: float = 1.0,
           now: float | None = None) -> dict[str, Any]:
    return {
        "queues": queue_depths(r),
        "workers": workers_alive(app, timeout) if app is not None else None,
        "entities": entity_status(r, now),
        **failure_counts(r),
        "budget": budget(r, settings, now),
    }


def render(status: dict[str, Any], console: Console) -> None:
    queues = Table("queue", "messages", title="queues")
    for name, depth in status["queues"].items():
        queues.add_row(name, str(depth))
    queues.add_row("DLQ (stream ctsync:dlq)", str(status["dlq"]))
    queues.add_row("rejected updates (stream ctsync:rejected)", str(status["rejected"]))
    console.print(queues)

    workers = Table("worker", "queues", title="workers alive")
    for name, consumed in (status["workers"] or {}).items():
        workers.add_row(name, ", ".join(consumed))
    if not status["workers"]:
        workers.add_row("[red]none answered[/red]", "")
    console.print(workers)

    entities = Table("entity", "watermark", "lag (s)", "last run", "extracted", "created", "updated", "skipped",
                     "failed", title="sync")
    for name, info in status["entities"].items():
        run = info["last_run"] or {}
        entities.add_row(name, str(info["watermark"]), str(info["lag_seconds"]), str(run.get("run_id", "-")),
                         *(str(run.get(f, "-")) for f in ("extracted", "created", "updated", "skipped", "failed")))
    console.print(entities)

    b = status["budget"]
    console.print(f"HubSpot budget: {b['per_10s']['used']}/{b['per_10s']['limit']} per 10 s, "
                  f"{b['per_day']['used']}/{b['per_day']['limit']} today "
                  f"(HubSpot reports {b['per_day']['hubspot_reported']})"
                  + (f"  [red]paused {b['paused_seconds']} s more (DAILY limit)[/red]" if b["paused_seconds"] else ""))


def as_json(status: dict[str, Any]) -> str:
    return json.dumps(status, default=str)

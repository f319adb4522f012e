"""`make demo`: the main job end to end against the sandboxes.

Starts Redis (the embedded one when none is configured), both sandboxes seeded, a worker and beat as
real processes; runs setup and an initial backfill; changes customers in commercetools; waits for
the next delta cycle; prints a summary; checks every customer has exactly one contact with the
expected values; stops everything it started. Exits 0 only when the check passes.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from rich.console import Console
from rich.table import Table

DEMO_DB = 15  # the demo flushes only this database of whichever Redis it uses


def demo_redis_url() -> tuple[str, str]:
    from sync_tasks.redis_conn import resolve_redis_url

    url, how = resolve_redis_url()
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{DEMO_DB}", parts.query, parts.fragment)), how


def run_demo(size: int, changes: int, interval: int, console: Console) -> int:
    from sync_tasks.localfleet import LocalFleet

    started = time.monotonic()
    url, how = demo_redis_url()
    console.print(f"redis: {how} (database {DEMO_DB})")
    fleet = LocalFleet(redis_url=url, ct_size=size,
                       extra_env={"SYNC_INTERVAL": str(interval), "EXTRACT_OVERLAP_SECONDS": "5"})
    try:
        console.print(f"starting sandboxes ({size} customers)…")
        fleet.start_sandboxes()
        fleet.flush_redis()
        fleet.apply_env()
        return _run(fleet, changes, interval, console, started)
    finally:
        console.print("stopping every process the demo started…")
        fleet.stop()
        if how.startswith("embedded"):
            from sync_tasks.redis_conn import stop_embedded_redis
            from sync_tasks.settings import get_settings

            stop_embedded_redis(get_settings().embedded_redis_dir)  # its data stays in the folder (AOF)


def _run(fleet: Any, changes: int, interval: int, console: Console, started: float) -> int:
    from sync_tasks.cli import follow_run
    from sync_tasks.commerce_schema import setup_all
    from sync_tasks.commercetools_client import CommercetoolsClient
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.runs import latest_run_after, send_backfill, wait_for_run
    from sync_tasks.settings import get_settings
    from sync_tasks.state import SyncState
    from sync_tasks.verify import verify_contacts

    settings = get_settings()
    state = SyncState(get_redis())
    hubspot = HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)
    report = setup_all(hubspot, settings, get_redis())
    console.print(f"setup: created {len(report.created)} properties")

    console.print("starting a worker and beat…")
    fleet.start_worker("demo", concurrency=2)
    fleet.wait_for_workers(1)

    run_id = state.start_run("customers", "backfill")
    send_backfill("customers", None, None, run_id)
    console.print(f"initial backfill {run_id}")
    backfill_run = follow_run(run_id, timeout=1800)

    # The delta watermark starts now: the backfill covered everything before it.
    fleet.start_beat()
    first_delta = _wait_delta(state, latest_run_after, wait_for_run, time.time(), interval)
    console.print(f"first delta cycle: {first_delta['run_id']} ({first_delta['extracted']} records read)")

    touched = requests.post(f"{fleet.ct.url}/_sandbox/customers/touch",
                            json={"count": changes, "action": "setFirstName"}, timeout=60).json()
    console.print(f"changed {changes} customers in commercetools")
    t_change = time.time()
    delta = _wait_delta(state, latest_run_after, wait_for_run, t_change, interval)
    console.print(f"delta cycle {delta['run_id']}: updated={delta['updated']} skipped={delta['skipped']}")

    hs = requests.get(f"{fleet.hubspot.url}/_sandbox/requests?limit=0", timeout=30).json()
    _summary(console, backfill_run, delta, hs, time.monotonic() - started)

    ct = CommercetoolsClient(settings)
    result = verify_contacts(ct, fleet.hubspot.url, settings.shared_fields_rule)
    console.print(f"check: {result.customers} customers, {result.people} people, {result.contacts} contacts; "
                  f"missing={len(result.missing)} duplicates={len(result.duplicates)} "
                  f"mismatched={len(result.mismatched)} without their company={len(result.unlinked)}")
    ok = result.ok and delta["updated"] >= min(changes, len(touched.get("ids", [])) or changes)
    if not result.ok:
        console.print(f"[red]examples: missing {result.missing[:5]} duplicates {result.duplicates[:5]} "
                      f"mismatched {result.mismatched[:5]} without their company {result.unlinked[:5]}[/red]")
    console.print("[green]demo passed[/green]" if ok else "[red]demo failed[/red]")
    return 0 if ok else 1


def _wait_delta(state: Any, latest_run_after: Any, wait_for_run: Any, after: float, interval: int) -> dict[str, Any]:
    """The first delta run that started after `after`, once it has finished."""
    deadline = time.monotonic() + interval * 4 + 60
    while time.monotonic() < deadline:
        run_id = latest_run_after(state, "customers", after)
        if run_id:
            run = dict(wait_for_run(state, run_id, timeout=600))
            run["run_id"] = run_id
            return run
        time.sleep(0.5)
    raise TimeoutError("no delta cycle ran; is beat running? see var/log/beat.log")


def _summary(console: Console, backfill: dict[str, Any], delta: dict[str, Any], hs: dict[str, Any],
             elapsed: float) -> None:
    table = Table("stage", "backfill", "delta", title="records per stage")
    for name in ("extracted", "matched", "created", "updated", "skipped", "failed"):
        table.add_row(name, str(backfill[name]), str(delta[name]))
    console.print(table)
    calls = Table("HubSpot endpoint", "status", "calls", title="HubSpot calls")
    for endpoint, statuses in sorted(hs.get("by_endpoint", {}).items()):
        for status, n in sorted(statuses.items()):
            calls.add_row(endpoint, status, str(n))
    console.print(calls)
    console.print(f"429s: {hs.get('by_status', {}).get('429', 0)}   elapsed: {elapsed:.1f}s")

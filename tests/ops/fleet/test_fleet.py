"""The Procfile fleet as an operator runs it: roles, Flower, the three manual backfills, status, metrics,
structured logs. Every check goes through the real processes `honcho start` launched."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import requests

from sync_tasks.constants import Queue
from sync_tasks.state import SyncState
from tests.ops.fleet.conftest import ROOT, SHOP_SIZE, OpsFleet, wait_until

CTSYNC = str(ROOT / ".venv" / "bin" / "ctsync")
CELERY = str(ROOT / ".venv" / "bin" / "celery")
ALL_QUEUES = {Queue.EXTRACT.value, Queue.SYNC.value, Queue.PUSH.value, Queue.PUSH_BACKFILL.value}


def _first_sync_done(fleet: OpsFleet) -> dict[str, Any]:
    """The fixture sent the first delta extraction: wait for it to finish."""
    state = SyncState(fleet.redis)

    def done() -> dict[str, Any] | None:
        runs = [r for r in state.recent_runs("customers", 20) if state.run(r).get("mode") == "delta"]
        return state.run(runs[-1]) if runs and state.run_complete(runs[-1]) else None

    return dict(wait_until(done, 120, what="the first extraction"))


def _backfill_runs(fleet: OpsFleet) -> set[str]:
    state = SyncState(fleet.redis)
    return {r for r in state.recent_runs("customers", 50) if state.run(r).get("mode") == "backfill"}


def _wait_new_backfill(fleet: OpsFleet, before: set[str]) -> dict[str, Any]:
    state = SyncState(fleet.redis)
    new = wait_until(lambda: _backfill_runs(fleet) - before, 60, what="a new backfill run")
    run_id = next(iter(new))
    return dict(wait_until(lambda: state.run_complete(run_id) and state.run(run_id), 120, what=f"run {run_id}"))


def test_procfile_roles_run_with_their_own_queues_and_limits(ops_fleet: OpsFleet) -> None:
    workers = ops_fleet.flower("/api/workers", params={"refresh": "1"})
    by_role = {name.split("@")[0]: info for name, info in workers.items()}
    assert set(by_role) == {"sync", "push"}
    queues = {role: {q["name"] for q in info["active_queues"]} for role, info in by_role.items()}
    assert queues["sync"] == {Queue.EXTRACT.value, Queue.SYNC.value}
    assert queues["push"] == {Queue.PUSH.value, Queue.PUSH_BACKFILL.value}
    push_pool = by_role["push"]["stats"]["pool"]
    assert by_role["push"]["stats"]["prefetch_count"] == push_pool["max-concurrency"]  # prefetch 1 per process
    assert push_pool["max-tasks-per-child"] == 500
    assert push_pool["timeouts"] == [300, 360]
    assert by_role["sync"]["stats"]["pool"]["max-tasks-per-child"] == 1000


def test_flower_refuses_requests_without_credentials(ops_fleet: OpsFleet) -> None:
    assert requests.get(f"{ops_fleet.flower_url}/api/workers", timeout=10).status_code == 401
    assert requests.get(f"{ops_fleet.flower_url}/workers", timeout=10).status_code == 401
    wrong = requests.get(f"{ops_fleet.flower_url}/api/workers", auth=("operator", "wrong"), timeout=10)
    assert wrong.status_code == 401


def test_flower_api_shows_workers_tasks_and_every_queue_after_a_sync(ops_fleet: OpsFleet) -> None:
    run = _first_sync_done(ops_fleet)
    assert run["extracted"] == SHOP_SIZE and run["failed"] == 0, run
    tasks = ops_fleet.flower("/api/tasks", params={"limit": 1000})
    names = {t["name"] for t in tasks.values() if t.get("state") == "SUCCESS"}
    assert {"ctsync.extract", "ctsync.match", "ctsync.map", "ctsync.push"} <= names
    lengths = ops_fleet.flower("/api/queues/length")
    assert {q["name"] for q in lengths["active_queues"]} == ALL_QUEUES
    assert all(isinstance(q["messages"], int) for q in lengths["active_queues"])


def test_a_backfill_can_be_sent_by_hand_three_ways(ops_fleet: OpsFleet) -> None:
    _first_sync_done(ops_fleet)
    # 1. the CLI
    before = _backfill_runs(ops_fleet)
    out = ops_fleet.run(CTSYNC, "backfill", "customers", "--no-wait").stdout
    run_id = re.search(r"backfill run: (\S+)", out)
    assert run_id, out
    state = SyncState(ops_fleet.redis)
    wait_until(lambda: state.run_complete(run_id.group(1)), 120, what="CLI backfill")
    assert state.run(run_id.group(1))["extracted"] == SHOP_SIZE
    # 2. celery call (the task starts its own run)
    before = _backfill_runs(ops_fleet)
    ops_fleet.run(CELERY, "-A", "workers", "call", "ctsync.backfill", "--args", '["customers", null, null, null]',
                  "--queue", Queue.EXTRACT.value)
    assert _wait_new_backfill(ops_fleet, before)["extracted"] == SHOP_SIZE
    # 3. Flower's task-send API (routed to ctsync.extract by the app's task_routes)
    before = _backfill_runs(ops_fleet)
    sent = requests.post(f"{ops_fleet.flower_url}/api/task/send-task/ctsync.backfill", auth=ops_fleet.auth,
                         json={"args": ["customers", None, None, None]}, timeout=30)
    assert sent.status_code == 200, sent.text
    assert _wait_new_backfill(ops_fleet, before)["extracted"] == SHOP_SIZE


def test_status_json_reports_queues_workers_lag_runs_failures_and_budget(ops_fleet: OpsFleet) -> None:
    _first_sync_done(ops_fleet)
    report = json.loads(ops_fleet.run(CTSYNC, "status", "--json", "--timeout", "3").stdout)
    assert set(report["queues"]) == ALL_QUEUES
    assert {name.split("@")[0] for name in report["workers"]} == {"sync", "push"}
    customers = report["entities"]["customers"]
    assert customers["watermark"] and 0 <= customers["lag_seconds"] < 10 * 86400
    assert customers["last_run"]["extracted"] >= SHOP_SIZE
    assert report["dlq"] == SyncState(ops_fleet.redis).dlq_size()
    assert report["rejected"] == 0
    assert report["budget"]["per_day"]["used"] > 0
    assert report["budget"]["per_10s"]["limit"] > 0
    table = ops_fleet.run(CTSYNC, "status", COLUMNS="160").stdout
    assert "ctsync.push.backfill" in table and "customers" in table and "workers alive" in table


def test_metrics_endpoint_publishes_fleet_counters_and_gauges(ops_fleet: OpsFleet) -> None:
    _first_sync_done(ops_fleet)
    text = wait_until(lambda: requests.get(ops_fleet.metrics_url, timeout=10).text, 30, what="exporter")
    created = re.search(r'ctsync_records_total\{object="contacts",outcome="created"\} (\S+)', text)
    assert created and float(created.group(1)) >= 1
    assert re.search(r'ctsync_hubspot_calls_total\{endpoint="POST /crm/v3/objects/contacts/batch/upsert",'
                     r'status="200"\} [1-9]', text)
    assert re.search(r"^ctsync_dlq_entries \d", text, re.M)
    assert re.search(r"^ctsync_rejected_entries 0", text, re.M)
    assert re.search(r'ctsync_lag_seconds\{entity="customers"\} \d', text)
    assert re.search(r'ctsync_queue_messages\{queue="ctsync.push.backfill"\} \d', text)
    assert re.search(r'ctsync_hubspot_budget_used\{window="day"\} [1-9]', text)


def test_worker_logs_are_json_lines_with_task_context_and_no_emails(ops_fleet: OpsFleet) -> None:
    _first_sync_done(ops_fleet)
    time.sleep(0.5)
    events = []
    for role in ("sync_worker", "push_worker"):
        for line in ops_fleet.log_lines(role):
            if line.startswith("{"):
                events.append(json.loads(line))
            assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", line.replace("sync@", "").replace("push@", "")), line
    in_tasks = [e for e in events if e.get("task_id")]
    assert in_tasks, "some line is logged inside a task"
    assert {"ctsync.extract"} <= {e["task"] for e in in_tasks}
    assert all(e.get("entity") == "customers" for e in in_tasks if e["task"] == "ctsync.extract")

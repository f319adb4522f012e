"""Sentry from real worker processes: SENTRY_DSN points the fleet's own HTTP transport at a loopback
collector. One push that HubSpot refuses for good must give exactly one event, naming the task and
HubSpot's correlationId, with no token and no e-mail anywhere in what was sent."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import requests
from celery import Celery

from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.constants import Queue
from sync_tasks.mapping import normalize_email
from sync_tasks.settings import SANDBOX_HUBSPOT_TOKEN, Settings
from sync_tasks.state import SyncState
from sync_tasks.verify import all_customers
from tests.ops.fleet.conftest import ROOT, OpsFleet, wait_until

EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.]+")


def _lone_customer(fleet: OpsFleet) -> dict[str, Any]:
    """A synced customer with its own e-mail and no company: its push is one contact update."""
    ct = CommercetoolsClient(Settings(ct_api_url=fleet.ct_url, ct_auth_url=fleet.ct_url))  # type: ignore[arg-type]
    customers = all_customers(ct)
    emails = [normalize_email(c.get("email")) for c in customers]
    mapped = SyncState(fleet.redis).lookup_ids("contacts", [c["id"] for c in customers])
    return next(c for c, e in zip(customers, emails, strict=True)
                if e and emails.count(e) == 1 and not c.get("companyName") and c["id"] in mapped)


def test_a_push_hubspot_refuses_gives_exactly_one_sentry_event(ops_fleet: OpsFleet) -> None:
    state = SyncState(ops_fleet.redis)
    wait_until(lambda: ops_fleet.redis.get("ctsync:customers:watermark"), 120, what="the first sync")
    target = _lone_customer(ops_fleet)
    control = Celery(broker=ops_fleet.env["REDIS_URL"]).control
    push_worker = next(n for n in ops_fleet.flower("/api/workers") if n.startswith("push@"))
    dlq_before = state.dlq_size()
    events_before = len(ops_fleet.sentry.items("event"))
    # Hold the push queue, so that the match and map of the change run against a healthy HubSpot ...
    control.cancel_consumer(Queue.PUSH.value, destination=[push_worker], reply=True, timeout=5)
    try:
        requests.post(f"{ops_fleet.ct_url}/_sandbox/customers/touch",
                      json={"ids": [target["id"]], "action": "setFirstName"}, timeout=30).raise_for_status()
        ops_fleet.run(str(ROOT / ".venv" / "bin" / "celery"), "-A", "workers", "call", "ctsync.extract",
                      "--args", '["customers"]', "--queue", Queue.EXTRACT.value)
        wait_until(lambda: ops_fleet.redis.llen(Queue.PUSH.value) == 1, 60, what="the push waiting")
        # ... then let HubSpot refuse every request with a 400 (body with a correlationId) for the push.
        faults = requests.post(f"{ops_fleet.hubspot_url}/_sandbox/faults",
                               json={"error_rate": 1.0, "error_statuses": [400]}, timeout=10)
        faults.raise_for_status()
    finally:
        control.add_consumer(Queue.PUSH.value, destination=[push_worker], reply=True, timeout=5)
    try:
        wait_until(lambda: state.dlq_size() > dlq_before, 60, what="the dead letter")
    finally:
        requests.post(f"{ops_fleet.hubspot_url}/_sandbox/faults", json={"error_rate": 0.0}, timeout=10)
    wait_until(lambda: len(ops_fleet.sentry.items("event")) > events_before, 30, what="a Sentry event")
    time.sleep(3)  # a second event, if one were coming, would have been flushed by now
    events = ops_fleet.sentry.items("event")[events_before:]
    assert len(events) == 1, [e.get("logentry") or e.get("exception") for e in events]
    event = events[0]
    _, entry = state.dlq_entries(1000)[-1]
    correlation_id = json.loads(entry["error"])["correlationId"]
    assert correlation_id
    assert event["tags"]["hubspot.correlation_id"] == correlation_id
    assert event["extra"]["celery-job"]["task_name"] == "ctsync.push"
    assert event["tags"]["celery_task_id"]
    assert event["extra"]["celery-job"]["args"] != [] and "ctx" not in json.dumps(event["extra"]["celery-job"])
    sent = ops_fleet.sentry.all_bytes()
    assert SANDBOX_HUBSPOT_TOKEN.encode() not in sent
    assert target["email"].encode() not in sent and normalize_email(target["email"]).encode() not in sent
    assert not EMAIL.findall(sent.replace(b"publickey@127.0.0.1", b"")), EMAIL.findall(sent)[:3]

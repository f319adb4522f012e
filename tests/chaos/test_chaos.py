"""The chaos suite in CI: runs `tests.chaos.run` as its own process (its fleet, its Redis, its Celery
configuration) and asserts on the JSON report it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHAOS_SIZE = int(os.environ.get("CTSYNC_CHAOS_SIZE", "5000"))


@pytest.mark.timeout(1800)  # ~10 minutes on a quiet 2-core machine; CI machines are noisy
def test_fleet_under_chaos_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    out = Path("test-artifacts/chaos-report.json")
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CT_API_URL", "CT_AUTH_URL",
                                                            "HUBSPOT_BASE_URL"}}
    proc = subprocess.run([sys.executable, "-m", "tests.chaos.run", "--size", str(CHAOS_SIZE), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=1780)
    assert out.exists(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert checks["customers"] >= CHAOS_SIZE
    assert checks["lost"] == 0, checks["lost_examples"]
    assert checks["duplicates"] == 0
    assert checks["mismatched"] == 0, checks["mismatched_examples"]
    assert checks["missing_are_the_permanent_failures"] and checks["every_permanent_failure_in_dlq"]
    assert checks["permanent_entries_complete"]
    assert checks["dlq_has_no_transient_after_replay"] and checks["second_replay_was_a_no_op"]
    assert report["orders"] == "included"
    assert checks["orders_lost"] == 0, checks["orders_lost_examples"]
    assert checks["orders_duplicates"] == 0 and checks["orders_mismatched"] == 0, checks["orders"]
    assert checks["orders_complete"], checks["orders"]  # line items once and linked, contacts linked
    assert checks["orders_missing_are_those_of_permanent_failures"] and checks["orders_of_permanent_failures_in_dlq"]
    assert report["hubspot"]["budget_429_ratio"] <= 0.01
    assert report["hubspot"]["injected_429"] > 0  # the faults really were on
    assert sum(1 for e in report["events"] if e["event"] == "SIGKILL worker") == 2
    assert any(e["event"] == "redis restarted" for e in report["events"])
    assert checks["ok"] and proc.returncode == 0

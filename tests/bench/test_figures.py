"""The benchmark's figure definitions (docs/benchmarks.md), as plain functions."""

from __future__ import annotations

import pytest

from bench.figures import (
    CallCounts,
    budget_of,
    is_write,
    limit_utilization,
    max_rolling,
    min_calls_per_record,
    percentile,
    steady_window,
    theoretical_max_records_per_s,
)
from bench.report import verdicts


def test_budget_and_write_classification_follow_hubspots_buckets():
    assert budget_of("/crm/v3/objects/contacts/batch/upsert") == "burst"
    assert budget_of("/crm/v3/objects/contacts/search") == "search"
    assert budget_of("/crm/v4/associations/orders/contacts/batch/create") == "associations"
    assert is_write("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert not is_write("POST", "/crm/v3/objects/contacts/batch/read")
    assert not is_write("GET", "/crm/v3/properties/contacts")


def test_call_counts_count_every_429_and_split_reads_from_writes():
    counts = CallCounts.from_summary({
        "POST /crm/v3/objects/contacts/batch/upsert": {"200": 10, "429": 2},
        "POST /crm/v3/objects/contacts/batch/read": {"200": 20},
        "POST /crm/v4/associations/contacts/companies/batch/associate/default": {"200": 5},
    })
    assert (counts.total, counts.burst, counts.burst_writes) == (37, 32, 12)
    assert (counts.associations, counts.throttled) == (5, 2)
    assert (counts + counts).total == 74


def test_utilization_uses_the_steady_phase_only():
    # 100 s at exactly 19 writes/s (190 per 10 s), with a slow ramp-up and a long drain around it.
    ramp = [i * 1.0 for i in range(20)]
    steady = [20 + i / 19 for i in range(1900)]
    drain = [120 + i * 2.0 for i in range(20)]
    util = limit_utilization(ramp + steady + drain, limit=190)
    assert util == pytest.approx(1.0, abs=0.03)
    # Half the rate is reported as half, not rounded up.
    assert limit_utilization([i / 9.5 for i in range(950)], limit=190) == pytest.approx(0.5, abs=0.02)


def test_steady_window_needs_enough_calls_over_at_least_a_window():
    assert steady_window([1.0, 2.0]) is None
    assert steady_window([i * 0.1 for i in range(50)]) is None  # 5 s: shorter than HubSpot's window


def test_max_rolling_window_and_percentile():
    assert max_rolling([0, 1, 2, 9.9, 10.0, 30]) == 4
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 95) == 5.0
    assert percentile([], 95) is None


def test_ceiling_figures():
    assert theoretical_max_records_per_s(190) == pytest.approx(1900)
    assert min_calls_per_record() == pytest.approx(0.01)


def test_verdicts_report_missed_targets_as_missed():
    out = {
        "config": {"sync_interval": 30, "scaling_sizes": [10, 100]},
        "figures": {"limit_utilization": 0.5, "throttled_ratio": 0.0, "noop_delta_write_calls": 3,
                    "pipeline_records_per_s_per_core": None, "min_calls_per_record": 0.01,
                    "calls_per_record": {"backfill": 0.035, "delta": 0.01, "backfill_writes_only": 0.02,
                                         "delta_writes_only": 0.01},
                    "delta_scaling": {"seconds": 1.1}, "freshness_p95_s": 36.0, "peak_rss_mb": {"w1": 120.0},
                    "duplicates": {"backfill": 0}, "lost": {"backfill": 1}},
    }
    met = {r["figure"]: r["met"] for r in verdicts(out)}
    assert met["limit_utilization"] is False
    assert met["throttled_ratio"] is True
    assert met["noop_delta_write_calls"] is False
    assert met["pipeline_records_per_s_per_core"] is None  # not measured is never "met"
    assert met["calls_per_record.backfill"] is False and met["calls_per_record.delta"] is True
    assert met["delta_scaling.seconds"] is True
    assert met["freshness_p95_s"] is False
    assert met["lost.backfill"] is False and met["duplicates.backfill"] is True

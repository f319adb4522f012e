"""Sizes and settings of a benchmark run: the full run (`make bench`) and the quick one (`make bench-quick`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

HUBSPOT_WINDOW_S = 10.0  # HubSpot's burst window
HUBSPOT_BATCH = 100  # inputs per HubSpot batch call
BENCH_DB = 12  # the only database of the shared Redis the benchmark uses (and flushes)


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    customers: int  # the backfill shop (customers, with their orders and line items)
    burst_limit: int  # the sandbox enforces it; the fleet's budget is configured to the same
    workers: int  # Celery worker processes sharing the budget
    concurrency: int  # prefork children per worker
    delta_changes: int  # customers changed for the delta and delta-scaling phases
    scaling_sizes: tuple[int, int]  # shops of the delta-scaling comparison; the larger one is the RSS backfill
    freshness_changes: int
    sync_interval: int  # SYNC_INTERVAL of the fleet during the freshness phase
    baseline_seconds: float  # time box of the one-call-per-record baseline
    pipeline_records: int  # records of the CPU measurement (HTTP excluded)
    seed: int = 42
    run_timeout_s: float = 7200.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = BenchConfig(mode="full", customers=20_000, burst_limit=190, workers=3, concurrency=2, delta_changes=200,
                   scaling_sizes=(10_000, 100_000), freshness_changes=120, sync_interval=30, baseline_seconds=60.0,
                   pipeline_records=5_000)
# Quick: a smaller shop, 5k vs 20k for delta scaling (and the RSS backfill), a 10 s interval, a 30 s baseline.
QUICK = replace(FULL, mode="quick", customers=2_500, scaling_sizes=(5_000, 20_000), freshness_changes=100,
                sync_interval=10, baseline_seconds=30.0, pipeline_records=2_000, run_timeout_s=900.0)

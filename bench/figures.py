"""Pure functions that turn request logs and timings into the benchmark's figures. No I/O here, so
every definition in docs/benchmarks.md is unit-tested (tests/bench/test_figures.py)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.config import HUBSPOT_BATCH, HUBSPOT_WINDOW_S

STEADY_TRIM = 0.1  # the steady phase drops the first and last 10 % of the phase's write calls


def budget_of(endpoint: str) -> str:
    """Which HubSpot limit a request counts against (as the sandbox and the product's limiter see it)."""
    if endpoint.endswith("/search"):
        return "search"
    if "/crm/v4/associations/" in endpoint or "/associations/" in endpoint:
        return "associations"
    if "/events/v3/send" in endpoint or "/account-info/" in endpoint:
        return "none"
    return "burst"


def is_write(method: str, endpoint: str) -> bool:
    """A call that changes HubSpot: any non-GET except batch reads and searches."""
    return method != "GET" and "/batch/read" not in endpoint and not endpoint.endswith("/search")


def endpoint_of(key: str) -> tuple[str, str]:
    """'POST /crm/v3/objects/contacts/batch/upsert' → ('POST', '/crm/...')."""
    method, _, path = key.partition(" ")
    return method, path


@dataclass(frozen=True)
class CallCounts:
    """HubSpot calls of one phase, from the sandbox's counts by endpoint and status."""

    total: int = 0
    burst: int = 0  # calls that spend the burst budget (the limit every figure compares with)
    writes: int = 0
    burst_writes: int = 0
    associations: int = 0
    throttled: int = 0  # 429s, whatever their cause

    @classmethod
    def from_summary(cls, by_endpoint: Mapping[str, Mapping[str, int]]) -> CallCounts:
        total = burst = writes = burst_writes = assoc = throttled = 0
        for key, statuses in by_endpoint.items():
            method, path = endpoint_of(key)
            n = sum(statuses.values())
            total += n
            throttled += int(statuses.get("429", 0))
            kind = budget_of(path)
            burst += n if kind == "burst" else 0
            assoc += n if kind == "associations" else 0
            if is_write(method, path):
                writes += n
                burst_writes += n if kind == "burst" else 0
        return cls(total, burst, writes, burst_writes, assoc, throttled)

    def __add__(self, other: CallCounts) -> CallCounts:
        return CallCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.total, self.burst, self.writes, self.burst_writes, self.associations, self.throttled)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(("total", "burst", "writes", "burst_writes", "associations", "throttled"), self.as_tuple(),
                        strict=True))


def steady_window(times: Sequence[float], trim: float = STEADY_TRIM) -> tuple[float, float] | None:
    """The steady part of a phase: from the write at the `trim` quantile to the one at 1 − `trim`,
    which leaves out the ramp-up (queues filling) and the drain (the last chunks finishing)."""
    if len(times) < 10:
        return None
    ordered = sorted(times)
    lo = ordered[int(len(ordered) * trim)]
    hi = ordered[min(len(ordered) - 1, math.ceil(len(ordered) * (1 - trim)) - 1)]
    return (lo, hi) if hi - lo >= HUBSPOT_WINDOW_S else None


def rate_per_window(times: Sequence[float], start: float, end: float, window_s: float = HUBSPOT_WINDOW_S) -> float:
    """Calls per `window_s` between `start` and `end` (both inclusive)."""
    if end <= start:
        return 0.0
    ordered = sorted(times)
    n = bisect.bisect_right(ordered, end) - bisect.bisect_left(ordered, start)
    return n / (end - start) * window_s


def limit_utilization(write_times: Sequence[float], limit: int, trim: float = STEADY_TRIM) -> float | None:
    """Write calls per 10 s over the steady phase, divided by the configured limit."""
    window = steady_window(write_times, trim)
    if window is None:
        return None
    return rate_per_window(write_times, *window) / limit


def max_rolling(times: Sequence[float], window_s: float = HUBSPOT_WINDOW_S) -> int:
    """The most calls in any rolling window: never above the limit when the fleet keeps its budget."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        best = max(best, bisect.bisect_right(ordered, t + window_s - 1e-9) - i)
    return best


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def theoretical_max_records_per_s(limit: int, batch: int = HUBSPOT_BATCH, window_s: float = HUBSPOT_WINDOW_S) -> float:
    """Every burst call a full batch write: the ceiling for one object type."""
    return limit / window_s * batch


def min_calls_per_record(batch: int = HUBSPOT_BATCH) -> float:
    """One batch write carries `batch` records; nothing less is possible."""
    return 1.0 / batch


def per_second(times: Iterable[float], start: float, end: float) -> list[int]:
    """Counts per whole second from `start` (for the chart)."""
    bins = [0] * max(1, math.ceil(end - start))
    for t in times:
        i = int(t - start)
        if 0 <= i < len(bins):
            bins[i] += 1
    return bins


@dataclass(frozen=True)
class Target:
    figure: str
    op: str  # ">=" | "<=" | "=="
    bound: float

    def met(self, value: Any) -> bool | None:
        if value is None:
            return None
        if self.op == ">=":
            return bool(value >= self.bound)
        if self.op == "<=":
            return bool(value <= self.bound)
        return bool(value == self.bound)

    def text(self) -> str:
        return f"{self.op} {self.bound:g}"

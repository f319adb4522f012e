"""HubSpot's limits: a rolling 10-second burst bucket per private app (token), a separate bucket for
the associations v4 endpoints, a per-account 5/s search limiter, and a per-account daily budget
that resets at midnight in the account's time zone. Rejected requests consume nothing."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

BURST_WINDOW = 10.0
SEARCH_WINDOW = 1.0


@dataclass
class LimitSettings:
    burst_limit: int = 190
    daily_limit: int = 1_000_000
    search_limit: int = 5
    associations_limit: int = 150
    search_lag: float = 2.0
    retry_after: bool = False
    daily_reset_utc_offset_hours: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        known = asdict(self)
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown limit setting(s): {', '.join(sorted(unknown))}")
        for key, value in changes.items():
            current = known[key]
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{key} must be a number")
            elif key != "daily_reset_utc_offset_hours" and value < 0:
                raise ValueError(f"{key} must not be negative")
        for key, value in changes.items():
            setattr(self, key, type(known[key])(value))


class RollingWindow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.hits: deque[float] = deque()

    def used(self, now: float) -> int:
        while self.hits and self.hits[0] <= now - self.seconds:
            self.hits.popleft()
        return len(self.hits)

    def try_hit(self, now: float, limit: int) -> bool:
        if self.used(now) >= limit:
            return False
        self.hits.append(now)
        return True

    def reset_in(self, now: float) -> float:
        return max(0.0, self.hits[0] + self.seconds - now) if self.hits else 0.0


@dataclass
class Verdict:
    allowed: bool
    policy: str | None = None  # TEN_SECONDLY_ROLLING / DAILY / SECONDLY when refused
    group: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float = 0.0


class Limiter:
    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self.burst: dict[str, RollingWindow] = {}
        self.assoc: dict[str, RollingWindow] = {}
        self.search = RollingWindow(SEARCH_WINDOW)
        self.daily_used = 0
        self.daily_key = self._day_key()
        self.rejected: dict[str, int] = {"TEN_SECONDLY_ROLLING": 0, "DAILY": 0, "SECONDLY": 0,
                                         "ASSOCIATIONS": 0}

    def _local_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=self.settings.daily_reset_utc_offset_hours)

    def _day_key(self) -> str:
        return self._local_now().date().isoformat()

    def seconds_to_midnight(self) -> float:
        local = self._local_now()
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - local).total_seconds()

    def _roll_day(self) -> None:
        key = self._day_key()
        if key != self.daily_key:
            self.daily_key, self.daily_used = key, 0

    def settings_changed(self) -> None:
        """A new time-zone offset moves the day boundary; keep today's usage rather than wipe it."""
        self.daily_key = self._day_key()

    def reset_usage(self) -> None:
        self.burst.clear()
        self.assoc.clear()
        self.search = RollingWindow(SEARCH_WINDOW)
        self.daily_used = 0
        self.daily_key = self._day_key()

    def _headers(self, window: RollingWindow, limit: int, now: float) -> dict[str, str]:
        return {"X-HubSpot-RateLimit-Daily": str(self.settings.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.settings.daily_limit - self.daily_used)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(BURST_WINDOW * 1000)),
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, limit - window.used(now)))}

    def check(self, token: str, bucket: str) -> Verdict:
        """bucket: "general" (burst + daily), "associations" (own burst + daily), "search" (5/s + daily,
        no headers), "exempt" (nothing consumed; headers still reported)."""
        now = time.monotonic()
        self._roll_day()
        s = self.settings
        if bucket == "search":
            if self.daily_used >= s.daily_limit:
                return self._refuse("DAILY", None, {}, self.seconds_to_midnight())
            if not self.search.try_hit(now, s.search_limit):
                return self._refuse("SECONDLY", None, {}, max(self.search.reset_in(now), 0.001))
            self.daily_used += 1
            return Verdict(True)
        if bucket == "associations":
            window, limit, group = self.assoc.setdefault(token, RollingWindow(BURST_WINDOW)), \
                s.associations_limit, "ASSOCIATIONS"
        else:
            window, limit, group = self.burst.setdefault(token, RollingWindow(BURST_WINDOW)), s.burst_limit, None
        if bucket == "exempt":
            return Verdict(True, headers=self._headers(window, limit, now))
        if self.daily_used >= s.daily_limit:
            return self._refuse("DAILY", None, self._headers(window, limit, now), self.seconds_to_midnight())
        if not window.try_hit(now, limit):
            return self._refuse("TEN_SECONDLY_ROLLING", group, self._headers(window, limit, now),
                                window.reset_in(now))
        self.daily_used += 1
        return Verdict(True, headers=self._headers(window, limit, now))

    def _refuse(self, policy: str, group: str | None, headers: dict[str, str], wait: float) -> Verdict:
        self.rejected[group or policy] += 1
        if self.settings.retry_after:
            headers = {**headers, "Retry-After": str(max(1, math.ceil(wait)))}
        return Verdict(False, policy, group, headers, wait)

    def usage(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"daily_used": self.daily_used, "daily_day": self.daily_key,
                "daily_resets_in_seconds": round(self.seconds_to_midnight(), 1),
                "burst_used": {t: w.used(now) for t, w in self.burst.items()},
                "associations_used": {t: w.used(now) for t, w in self.assoc.items()},
                "search_used": self.search.used(now), "rejected": dict(self.rejected)}

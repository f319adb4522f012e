"""The per-person order ledger in Redis, and the contact rollups derived from it.

Keyed by the matched person (the HubSpot contact), so several commercetools accounts sharing an
e-mail count as one. HubSpot search is never used for it. Entries are keyed by order id, so seeing
an order twice (replays, retries, backfills) changes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sync_tasks.constants import Keys
from sync_tasks.money import as_text
from sync_tasks.redis_conn import hgetall_many

CANCELLED = "Cancelled"


@dataclass(frozen=True)
class LedgerEntry:
    order_id: str
    created_at: str
    state: str
    total: str  # decimal string
    currency: str
    refunded: str = "0"
    store: str = ""
    recurring: bool = False

    def as_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> LedgerEntry:
        return cls(**json.loads(raw))


class Ledger:
    def __init__(self, client: Any) -> None:
        self.r = client

    def record(self, person: str, entries: list[LedgerEntry]) -> None:
        if entries:
            self.r.hset(Keys.ledger(person), mapping={e.order_id: e.as_json() for e in entries})

    def entries(self, person: str) -> list[LedgerEntry]:
        return _sorted_entries(self.r.hgetall(Keys.ledger(person)))

    def entries_many(self, people: list[str]) -> dict[str, list[LedgerEntry]]:
        """`entries` of each person, read in one round trip."""
        raws = hgetall_many(self.r, [Keys.ledger(p) for p in people])
        return {p: _sorted_entries(raw) for p, raw in zip(people, raws, strict=True)}


def _sorted_entries(raw: dict[str, str]) -> list[LedgerEntry]:
    return sorted((LedgerEntry.from_json(v) for v in raw.values()), key=lambda e: (e.created_at, e.order_id))


def rollups(entries: list[LedgerEntry], reporting_currency: str, rates: dict[str, float]) -> dict[str, str]:
    """Contact properties: orders, first/last order date, revenue per currency and in the reporting one.

    Cancelled orders don't count; refunds are taken off revenue. A currency without a rate is left
    out of the reporting total (and named in `ct_revenue_by_currency`, so nothing is hidden)."""
    live = [e for e in entries if e.state != CANCELLED]
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for e in live:
        by_currency[e.currency] += Decimal(e.total) - Decimal(e.refunded or "0")
    total = Decimal(0)
    for cur, amount in by_currency.items():
        if cur == reporting_currency:
            total += amount
        elif cur in rates:
            total += amount * Decimal(str(rates[cur])) / Decimal(str(rates.get(reporting_currency, 1.0)))
    return {
        "ct_order_count": str(len(live)),
        "ct_first_order_date": live[0].created_at if live else "",
        "ct_last_order_date": live[-1].created_at if live else "",
        "ct_revenue_by_currency": ";".join(f"{c}:{as_text(a)}" for c, a in sorted(by_currency.items())),
        "ct_total_revenue": as_text(total.quantize(Decimal("0.01"))) if live else "0",
    }

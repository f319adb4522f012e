"""The order ledger's reads: one person, or a chunk's people in one round trip, give the same entries."""

from __future__ import annotations

import redis

from sync_tasks.ledger import Ledger, LedgerEntry


def _entry(order_id: str, created_at: str) -> LedgerEntry:
    return LedgerEntry(order_id=order_id, created_at=created_at, state="Open", total="10.00", currency="EUR")


def test_entries_many_reads_what_entries_reads(redis_client: redis.Redis) -> None:
    ledger = Ledger(redis_client)
    ledger.record("p1", [_entry("b", "2026-01-02T00:00:00Z"), _entry("a", "2026-01-02T00:00:00Z"),
                         _entry("c", "2026-01-01T00:00:00Z")])
    ledger.record("p2", [_entry("d", "2026-01-03T00:00:00Z")])
    many = ledger.entries_many(["p1", "p2", "nobody"])
    assert many == {p: ledger.entries(p) for p in ("p1", "p2", "nobody")}
    assert [e.order_id for e in many["p1"]] == ["c", "a", "b"] and many["nobody"] == []
    assert ledger.entries_many([]) == {}

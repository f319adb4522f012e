"""A chain's values stored once and passed by reference (real Redis)."""

from __future__ import annotations

import redis

from sync_tasks.constants import Keys
from sync_tasks.payloads import PAYLOAD_TTL_SECONDS, Missing, Payloads, chunk_head, records_of


def _orders() -> list[dict[str, object]]:
    return [{"id": "o1", "customerId": "c1", "customerEmail": "a@example.com", "lineItems": [{"id": "l1"}]},
            {"id": "o2", "customerEmail": "guest@example.com", "totalPrice": {"centAmount": 100}},
            {"id": "o3", "customerId": "c2", "custom": {"fields": {"x": 1}}}]


def test_put_get_drop_round_trip_with_a_ttl(redis_client: redis.Redis) -> None:
    store = Payloads(redis_client)
    ref = store.put(_orders())
    assert store.get(ref) == _orders()
    assert 0 < redis_client.ttl(Keys.payload(ref)) <= PAYLOAD_TTL_SECONDS
    store.put({"done": ["orders"]}, ref)  # in place: a retried push saves its progress
    assert store.get(ref) == {"done": ["orders"]}
    store.drop(ref, None)
    assert store.get(ref) is None
    assert redis_client.exists(Keys.payload(ref)) == 0


def test_chunk_head_carries_only_what_the_match_reads() -> None:
    head = chunk_head(_orders(), "ref1")
    assert head == {"ref": "ref1", "people": [
        {"id": "o1", "customerId": "c1", "customerEmail": "a@example.com"},
        {"id": "o2", "customerEmail": "guest@example.com"},
        {"id": "o3", "customerId": "c2"}]}


def test_records_of_keeps_stored_order_and_says_when_the_value_is_gone(redis_client: redis.Redis) -> None:
    store = Payloads(redis_client)
    ref = store.put(_orders())
    assert [r["id"] for r in records_of(store, ref, ["o3", "o1"])] == ["o1", "o3"]  # type: ignore[union-attr]
    store.drop(ref)
    assert records_of(store, ref, ["o3", "o1"]) == Missing(ref, ["o3", "o1"])

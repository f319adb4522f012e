from __future__ import annotations

from typing import Any

import pytest
import redis

from sync_tasks.constants import Keys
from sync_tasks.extract import chunks, format_ts, parse_ts, run_extract
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState
from tests.sync_tasks.test_pagination import FakeShop, _records


def _settings(**kw: Any) -> Settings:
    return Settings(extract_page_size=10, chunk_size=4, extract_overlap_seconds=5, **kw)  # type: ignore[arg-type]


def test_delta_enqueues_chunks_and_advances_the_watermark(redis_client: redis.Redis) -> None:
    redis_client.set(Keys.watermark("customers"), "2000-01-01T00:00:00.000Z")
    shop = FakeShop(_records(25))
    chunks: list[list[str]] = []
    result = run_extract("customers", shop, redis_client, _settings(),  # type: ignore[arg-type]
                         lambda recs, ctx: chunks.append([r["id"] for r in recs]))
    assert [len(c) for c in chunks] == [4, 4, 2, 4, 4, 2, 4, 1]
    assert redis_client.get(Keys.watermark("customers")) == result.watermark_after == "2026-01-01T00:00:03.000Z"
    run = SyncState(redis_client).run(result.run_id)
    assert run["extracted"] == 25 and run["extract_done"] == 1


def test_next_delta_starts_at_watermark_minus_overlap(redis_client: redis.Redis) -> None:
    redis_client.set(Keys.watermark("customers"), "2026-01-01T00:00:10.000Z")
    shop = FakeShop([])
    run_extract("customers", shop, redis_client, _settings(), lambda r, c: None)  # type: ignore[arg-type]
    assert shop.queries[0] == ['lastModifiedAt >= "2026-01-01T00:00:05.000Z"']


def test_crash_mid_run_leaves_the_watermark(redis_client: redis.Redis) -> None:
    redis_client.set(Keys.watermark("customers"), "2025-01-01T00:00:00.000Z")
    calls = []

    def enqueue(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        run_extract("customers", FakeShop(_records(25)), redis_client, _settings(), enqueue)  # type: ignore[arg-type]
    assert redis_client.get(Keys.watermark("customers")) == "2025-01-01T00:00:00.000Z"
    assert not redis_client.exists(Keys.extract_lock("customers"))


def test_two_runs_never_overlap(redis_client: redis.Redis) -> None:
    redis_client.set(Keys.extract_lock("customers"), "someone-else", ex=60)
    shop = FakeShop(_records(5))
    result = run_extract("customers", shop, redis_client, _settings(), lambda r, c: None)  # type: ignore[arg-type]
    assert result.locked and shop.queries == []


def test_backfill_leaves_the_watermark_and_resumes_from_its_cursor(redis_client: redis.Redis) -> None:
    redis_client.set(Keys.watermark("customers"), "2025-01-01T00:00:00.000Z")
    seen: list[str] = []

    def crash_on_second_page(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        assert ctx["force"] and ctx["lane"] == "backfill"
        if len(seen) >= 10:
            raise ConnectionError("worker killed")
        seen.extend(r["id"] for r in records)

    shop = FakeShop(_records(25))
    with pytest.raises(ConnectionError):
        run_extract("customers", shop, redis_client, _settings(), crash_on_second_page, mode="backfill",  # type: ignore[arg-type]
                    run_id="bf-1")
    resumed: list[str] = []
    run_extract("customers", shop, redis_client, _settings(), lambda r, c: resumed.extend(x["id"] for x in r),  # type: ignore[arg-type]
                mode="backfill", run_id="bf-1")
    assert seen + resumed == [r["id"] for r in _records(25)]
    assert redis_client.get(Keys.watermark("customers")) == "2025-01-01T00:00:00.000Z"


def test_timestamps_keep_milliseconds_and_z() -> None:
    assert format_ts(parse_ts("2026-03-04T05:06:07.089Z")) == "2026-03-04T05:06:07.089Z"


def test_without_a_watermark_delta_sync_starts_now_and_reads_nothing(redis_client: redis.Redis) -> None:
    shop = FakeShop(_records(5))
    result = run_extract("customers", shop, redis_client, _settings(), lambda r, c: None)  # type: ignore[arg-type]
    assert shop.queries == [] and result.extracted == 0
    started = parse_ts(str(redis_client.get(Keys.watermark("customers"))))
    assert abs((parse_ts(format_ts(__import__("datetime").datetime.now(__import__("datetime").UTC)))
                - started).total_seconds() - 5) < 2  # now minus the 5 s overlap


def test_the_first_backfill_starts_delta_sync_and_never_moves_it_back(redis_client: redis.Redis) -> None:
    run_extract("customers", FakeShop(_records(3)), redis_client, _settings(), lambda r, c: None,  # type: ignore[arg-type]
                mode="backfill", run_id="bf-a")
    first = redis_client.get(Keys.watermark("customers"))
    assert first is not None and first > "2026-01-01"
    redis_client.set(Keys.watermark("customers"), "2030-01-01T00:00:00.000Z")
    run_extract("customers", FakeShop(_records(3)), redis_client, _settings(), lambda r, c: None,  # type: ignore[arg-type]
                mode="backfill", run_id="bf-b")
    assert redis_client.get(Keys.watermark("customers")) == "2030-01-01T00:00:00.000Z"


def _order(oid: str, customer: str | None, email: str, items: int) -> dict[str, object]:
    record: dict[str, object] = {"id": oid, "customerEmail": email, "lineItems": [{"id": f"{oid}-{i}"}
                                                                                  for i in range(items)]}
    if customer:
        record["customerId"] = customer
    return record


def test_order_chunks_group_people_guests_first_and_cap_records_and_line_items() -> None:
    settings = _settings(order_chunk_size=3, order_chunk_line_items=5)
    page = [_order("o1", "c2", "b@x.io", 2), _order("o2", None, "G@x.io", 1), _order("o3", "c1", "a@x.io", 2),
            _order("o4", "c2", "b@x.io", 2), _order("o5", None, "g@x.io ", 1), _order("o6", "c3", "c@x.io", 9),
            _order("o7", "c1", "a@x.io", 1)]
    out = [[r["id"] for r in c] for c in chunks("orders", page, settings)]
    # guests (one e-mail, case and spaces aside) first, then by customer; a chunk closes at 3 orders
    # or before its line items pass 5; an order with more line items than that goes alone
    assert out == [["o2", "o5", "o3"], ["o7", "o1", "o4"], ["o6"]]
    assert sorted(i for c in out for i in c) == sorted(str(r["id"]) for r in page)  # every order, once
    customers = [{"id": f"c{i}"} for i in range(7)]
    assert [len(c) for c in chunks("customers", customers, settings)] == [4, 3]  # customers keep CHUNK_SIZE


def test_paced_stops_after_its_slice_and_while_too_many_chains_are_in_flight() -> None:
    from sync_tasks.extract import BACKFILL_PAUSE_SECONDS, paced

    now = [0.0]
    in_flight = [0]
    pause = paced(lambda: in_flight[0], max_chains=3, slice_seconds=10.0, clock=lambda: now[0])
    assert pause() is None
    in_flight[0] = 3
    assert pause() == BACKFILL_PAUSE_SECONDS
    in_flight[0] = 2
    now[0] = 10.0
    assert pause() == 0.0  # the slice is over: go on at once, in the next task


def test_a_paused_backfill_resumes_from_its_cursor_and_finishes_once(redis_client: redis.Redis) -> None:
    shop = FakeShop(_records(25))
    seen: list[str] = []
    pages = [0]

    def enqueue(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        seen.extend(r["id"] for r in records)

    def after_each_page() -> float | None:
        pages[0] += 1
        return 2.0 if pages[0] % 2 == 0 else None  # pause at every second look (the first is before a page)

    slices = []
    while True:
        result = run_extract("customers", shop, redis_client, _settings(), enqueue, mode="backfill",  # type: ignore[arg-type]
                             run_id="bf-paced", pause=after_each_page)
        slices.append(result.resume_in)
        if result.resume_in is None:
            break
        assert not int(redis_client.hget(Keys.run("bf-paced"), "extract_done") or 0)
    assert seen == [r["id"] for r in _records(25)]  # every record once, in order
    assert len(slices) > 2 and slices[-1] is None
    assert int(redis_client.hget(Keys.run("bf-paced"), "extract_done") or 0) == 1
    assert int(redis_client.hget(Keys.run("bf-paced"), "extracted") or 0) == 25

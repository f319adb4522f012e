from __future__ import annotations

import multiprocessing
import time

import redis

from sync_tasks.limiter import Bucket, RateLimiter
from sync_tasks.settings import Settings
from tests.conftest import UNIT_DB, redis_url


def _limiter(client: redis.Redis, **overrides: object) -> RateLimiter:
    return RateLimiter(client, Settings(**overrides))  # type: ignore[arg-type]


def test_burst_never_exceeds_headroom_of_the_limit_in_a_window(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, hubspot_burst_limit=40, hubspot_burst_headroom=0.9)
    granted = []
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        if limiter.acquire(Bucket.BURST).granted:
            granted.append(time.monotonic())
        else:
            time.sleep(0.005)
    # capacity 1 + refill (36-1)/10s → at most ~1 + 3.5*2 = 8 in two seconds
    assert 5 <= len(granted) <= 9


def test_refusal_says_how_long_to_wait(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, hubspot_burst_limit=20, hubspot_burst_headroom=1.0)
    while limiter.acquire(Bucket.BURST).granted:
        pass
    grant = limiter.acquire(Bucket.BURST)
    assert not grant.granted and 0 < grant.wait_seconds <= 1.0


def test_backfill_leaves_a_reserve_for_live_traffic(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, hubspot_burst_limit=1000, hubspot_burst_headroom=1.0,
                       hubspot_backfill_reserve=0.5)
    while limiter.acquire(Bucket.BURST, backfill=True).granted:
        pass
    assert limiter.acquire(Bucket.BURST).granted  # live still gets the reserve


def test_a_cost_above_the_capacity_is_granted_from_a_full_bucket_and_leaves_a_debt(
        redis_client: redis.Redis) -> None:
    """A push prepaying more batches than the bucket holds (capacity 9 at 190/10 s) must not wait
    forever; the debt it leaves holds back the calls after it."""
    limiter = _limiter(redis_client, hubspot_burst_limit=190, hubspot_burst_headroom=0.95)
    assert limiter.acquire(Bucket.BURST, cost=20).granted
    refused = limiter.acquire(Bucket.BURST)
    assert not refused.granted and refused.wait_seconds > 0.5  # ~12 tokens of debt at ~17/s
    backfill = _limiter(redis_client, hubspot_burst_limit=190, hubspot_burst_headroom=0.95,
                        hubspot_backfill_reserve=0.5)
    time.sleep(refused.wait_seconds + 0.6)  # the bucket is full again
    assert backfill.acquire(Bucket.BURST, cost=20, backfill=True).granted  # the reserve still allows it


def test_daily_limit_refuses_until_reset(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, hubspot_burst_limit=1000, hubspot_daily_limit=3)
    results = [limiter.acquire(Bucket.BURST).granted for _ in range(5)]
    assert results[:3] == [True, True, True] and results[3:] == [False, False]
    assert limiter.acquire(Bucket.BURST).wait_seconds > 1


def test_headers_lower_the_bucket(redis_client: redis.Redis) -> None:
    # A slow limit (1 token/s), so a busy machine's pause between the calls refills no whole token.
    limiter = _limiter(redis_client, hubspot_burst_limit=10, hubspot_burst_headroom=1.0)
    assert limiter.acquire(Bucket.BURST).granted
    limiter.observe(Bucket.BURST, remaining=0, maximum=10)
    assert not limiter.acquire(Bucket.BURST).granted


def _hammer(seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    client = redis.Redis.from_url(redis_url(UNIT_DB), decode_responses=True)
    limiter = RateLimiter(client, Settings(hubspot_burst_limit=50, hubspot_burst_headroom=0.9))  # type: ignore[call-arg]
    count = 0
    start = time.time()  # wall clock: comparable across the processes
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if limiter.acquire(Bucket.BURST).granted:
            count += 1
        else:
            time.sleep(0.002)
    out.put((count, start, time.time()))


def test_processes_share_one_budget(redis_client: redis.Redis) -> None:
    # spawn, not fork: a forked child would inherit the broker connections other tests opened.
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(3.0, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    total = sum(count for count, _, _ in results)
    # The processes start apart on a busy machine: the bound is over the span they hammered together.
    span = max(end for _, _, end in results) - min(start for _, start, _ in results)
    # 50/10 s at 0.9 headroom: capacity 2, refill 4.5/s → ≤ 2 + 4.5 × span for all three together,
    # where three independent budgets would grant three times that.
    assert 8 <= total <= 2 + 4.5 * span + 1


def test_interval_header_teaches_the_window(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, hubspot_burst_limit=100, hubspot_burst_headroom=1.0)
    limiter.acquire(Bucket.BURST)
    before = limiter.acquire(Bucket.BURST, cost=50).wait_seconds
    limiter.observe(Bucket.BURST, 0, 100, 100_000)  # HubSpot says: 100 per 100 s, none left
    after = limiter.acquire(Bucket.BURST, cost=50).wait_seconds
    assert redis_client.hget(limiter.key(Bucket.BURST), "window") == "100000"
    assert after > 5 * before  # refills ten times slower


def test_daily_pause_stops_every_bucket_until_it_lifts(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client)
    assert limiter.acquire(Bucket.BURST).granted
    limiter.pause(3600)
    limiter.pause(5)  # a shorter pause never cuts a longer one
    for bucket in (Bucket.BURST, Bucket.SEARCH, Bucket.ASSOCIATIONS):
        grant = limiter.acquire(bucket)
        assert not grant.granted and 3590 < grant.wait_seconds <= 3600
    assert 3590 < limiter.usage()["paused_s"] <= 3600
    redis_client.delete(limiter.pause_key())
    assert limiter.acquire(Bucket.BURST).granted and limiter.paused_for() == 0

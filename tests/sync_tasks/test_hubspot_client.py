"""The HubSpot client's budget handling against the real limiter in Redis (no HTTP sent)."""

from __future__ import annotations

import pytest
import redis

from sync_tasks.errors import RateLimitedError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.limiter import RateLimiter
from sync_tasks.settings import Settings


def _client(r: redis.Redis) -> tuple[HubSpotClient, RateLimiter]:
    settings = Settings(hubspot_burst_limit=1000)  # type: ignore[call-arg]
    limiter = RateLimiter(r, settings)
    return HubSpotClient(settings, limiter), limiter


def test_prepaid_takes_the_first_calls_token_up_front_and_nested_takes_none(redis_client: redis.Redis) -> None:
    hub, limiter = _client(redis_client)
    with hub.prepaid(4):  # one token now; the other calls take theirs as they are sent
        assert limiter.usage()["daily_used"] == 1
        with hub.prepaid(3):  # the outer token is still unspent
            assert limiter.usage()["daily_used"] == 1
    with hub.prepaid(1):  # the outer ended: its unspent token is gone, a new one takes again
        assert limiter.usage()["daily_used"] == 2
    with hub.prepaid(0):
        assert limiter.usage()["daily_used"] == 2


def test_a_refused_prepaid_raises_a_wait_with_the_time_to_wait(redis_client: redis.Redis) -> None:
    hub, limiter = _client(redis_client)
    limiter.pause(5.0)
    with pytest.raises(RateLimitedError) as info, hub.prepaid(2):
        pass
    assert info.value.retry_after and 4.0 < info.value.retry_after <= 5.0


def test_a_worker_waits_out_a_short_refusal_and_re_queues_on_a_long_one(redis_client: redis.Redis) -> None:
    import time

    def client(wait_s: float) -> HubSpotClient:
        settings = Settings(hubspot_burst_limit=20, hubspot_budget_wait_s=wait_s)  # type: ignore[call-arg]
        return HubSpotClient(settings, RateLimiter(redis_client, settings))

    with client(1.5).prepaid(1):  # the bucket holds one call (its least), refilling 1.8 per second
        pass
    start = time.monotonic()
    with client(1.5).prepaid(1):  # refused for ~0.55 s: slept in the task
        pass
    assert 0.3 < time.monotonic() - start < 1.5
    with pytest.raises(RateLimitedError), client(0.0).prepaid(1):  # HUBSPOT_BUDGET_WAIT_S=0: always re-queue
        pass

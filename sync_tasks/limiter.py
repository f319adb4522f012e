"""One HubSpot budget for the whole fleet: token buckets in Redis, run by an atomic Lua script on
the Redis clock, keyed by HubSpot app (a hash of the token, never the token).

Every HubSpot call acquires from its bucket before it is sent; a refusal returns how long to wait,
and the caller re-queues its task with that countdown instead of sleeping. The response headers
(X-HubSpot-RateLimit-Remaining/-Max/-Interval-Milliseconds) correct the bucket when other apps or
processes spend the same budget, or when HubSpot's limit or window differs from the settings.

A DAILY 429 pauses the whole app: a "paused until" key every acquire checks first, so no task of
the fleet calls HubSpot before the reset. Waiting tasks are re-queued in countdowns shorter than
the broker's visibility timeout and meet the pause again until it lifts.

Sizing: a bucket with capacity c refilling at r/s can pass c + r·W requests in any window of W
seconds; we keep that at `headroom` × the limit, so HubSpot's rolling window never sees more as long
as every call takes its token when it is sent (the client does). A cost larger than c is granted
from a full bucket and leaves the bucket in debt, which a window then sees on top: the client never
asks for one (see `HubSpotClient.prepaid`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import redis

from sync_tasks.constants import Keys, app_key
from sync_tasks.settings import Settings

# KEYS: bucket hash, daily counter, pause flag. ARGV: limit, window_ms, headroom, cost, reserve_share,
# daily_limit, ms_to_daily_reset, capacity_share. Returns {granted, wait_ms, tokens_left*1000}. A learnt `max` and
# `window` (from response headers) override the configured limit and window.
_ACQUIRE = """
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return {0, paused, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'max', 'window')
local limit = tonumber(data[3]) or tonumber(ARGV[1])
local window = tonumber(data[4]) or tonumber(ARGV[2])
local total = limit * tonumber(ARGV[3])
local capacity = math.max(1, math.floor(total * tonumber(ARGV[8])))
local rate = (total - capacity) / window
local cost = tonumber(ARGV[4])
local reserve = math.floor(capacity * tonumber(ARGV[5]))
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local daily_limit = tonumber(ARGV[6])
if daily_limit > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + cost > daily_limit then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
    return {0, tonumber(ARGV[7]), math.floor(tokens * 1000)}
  end
end
-- A cost above the capacity (one task prepaying more batches than the bucket holds) could never be
-- granted: it takes a full bucket and leaves a debt that later acquires wait out.
local need = math.min(cost, math.max(1, capacity - reserve))
if tokens >= need + reserve then
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', KEYS[1], window * 10)
  if daily_limit > 0 then
    redis.call('INCRBY', KEYS[2], cost)
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]) + 60000)
  end
  return {1, 0, math.floor(tokens * 1000)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], window * 10)
return {0, math.ceil((need + reserve - tokens) / rate), math.floor(tokens * 1000)}
"""

# KEYS: bucket hash. ARGV: remaining, max (0 = unknown), interval_ms (0 = unknown). Lowers the tokens
# to what HubSpot says is left, and learns the real limit and window.
_OBSERVE = """
local data = redis.call('HMGET', KEYS[1], 'tokens')
local tokens = tonumber(data[1])
local remaining = tonumber(ARGV[1])
if tokens ~= nil and remaining >= 0 and remaining < tokens then
  redis.call('HSET', KEYS[1], 'tokens', tostring(remaining))
end
local max = tonumber(ARGV[2])
if max > 0 then redis.call('HSET', KEYS[1], 'max', max) end
local interval = tonumber(ARGV[3])
if interval > 0 then redis.call('HSET', KEYS[1], 'window', interval) end
return 1
"""


# The bucket's capacity as a share of the window's budget; the rest refills evenly. A bucket holds
# tokens nobody takes only up to it, and the steady rate is (headroom × limit − capacity) per window:
# at 190/10 s and headroom 0.95, 3 % gives 175.5 calls per 10 s (5 % gave 171.5). Multi-call pushes
# take a token per call, so they don't need a big bucket either.
CAPACITY_SHARE = 0.03


class Bucket(StrEnum):
    BURST = "burst"  # the private app's rolling 10-second limit
    SEARCH = "search"  # 5 requests/s per account
    ASSOCIATIONS = "associations"  # association v4 batch endpoints
    NONE = "none"  # endpoints HubSpot exempts (custom events)


@dataclass(frozen=True)
class BucketSpec:
    limit: int
    window_ms: int
    daily: bool  # counts against the daily budget


@dataclass(frozen=True)
class Grant:
    granted: bool
    wait_seconds: float
    tokens_left: float


class RateLimiter:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.app = app_key(settings.hubspot_token.get_secret_value())
        self.specs = {
            Bucket.BURST: BucketSpec(settings.hubspot_burst_limit, 10_000, True),
            Bucket.SEARCH: BucketSpec(settings.hubspot_search_limit, 1_000, True),
            Bucket.ASSOCIATIONS: BucketSpec(settings.hubspot_associations_limit, 10_000, True),
        }
        self._acquire = client.register_script(_ACQUIRE)
        self._observe = client.register_script(_OBSERVE)

    def key(self, bucket: Bucket) -> str:
        return Keys.rate_bucket(self.app, bucket.value)

    def daily_key(self) -> str:
        return Keys.rate_bucket(self.app, f"daily:{dt.datetime.now(dt.UTC):%Y-%m-%d}")

    def pause_key(self) -> str:
        return Keys.rate_bucket(self.app, "paused")

    def pause(self, seconds: float) -> None:
        """Stop every HubSpot call of the fleet for `seconds` (a DAILY 429: until the reset). Only
        ever lengthens a pause already set."""
        ms = max(1, int(seconds * 1000))
        if int(self.redis.pttl(self.pause_key())) < ms:
            self.redis.set(self.pause_key(), "1", px=ms)

    def paused_for(self) -> float:
        """Seconds left of the pause; 0 when HubSpot may be called."""
        return max(0, int(self.redis.pttl(self.pause_key()))) / 1000.0

    def acquire(self, bucket: Bucket, cost: int = 1, backfill: bool = False) -> Grant:
        """Take `cost` tokens, or say how long to wait. Backfills leave a reserve for live traffic."""
        if bucket is Bucket.NONE:
            return Grant(True, 0.0, float("inf"))
        spec = self.specs[bucket]
        reserve = self.settings.hubspot_backfill_reserve if backfill else 0.0
        granted, wait_ms, tokens_milli = self._acquire(
            keys=[self.key(bucket), self.daily_key(), self.pause_key()],
            args=[spec.limit, spec.window_ms, self.settings.hubspot_burst_headroom, cost, reserve,
                  self.settings.hubspot_daily_limit if spec.daily else 0, _ms_to_utc_midnight(), CAPACITY_SHARE],
        )
        return Grant(bool(granted), int(wait_ms) / 1000.0, int(tokens_milli) / 1000.0)

    def observe(self, bucket: Bucket, remaining: int | None, maximum: int | None,
                interval_ms: int | None = None) -> None:
        """Correct the bucket from X-HubSpot-RateLimit-Remaining/-Max/-Interval-Milliseconds."""
        if bucket is Bucket.NONE or remaining is None:
            return
        self._observe(keys=[self.key(bucket)], args=[remaining, maximum or 0, interval_ms or 0])

    def usage(self) -> dict[str, float]:
        """Tokens left per bucket and calls counted today: for `ctsync status`."""
        out: dict[str, float] = {}
        for bucket in self.specs:
            tokens = self.redis.hget(self.key(bucket), "tokens")
            out[f"{bucket.value}_tokens"] = float(tokens) if tokens is not None else float("nan")
        out["daily_used"] = float(self.redis.get(self.daily_key()) or 0)
        out["paused_s"] = self.paused_for()
        return out


def _ms_to_utc_midnight() -> int:
    # HubSpot resets the daily budget at midnight in the account's time zone; UTC is the safe default
    # and the X-HubSpot-RateLimit-Daily-Remaining header corrects drift.
    now = dt.datetime.now(dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - now).total_seconds() * 1000)

"""Auth, the rolling 10-second burst limit, the daily limit, rate-limit headers, Retry-After and the
separate search and associations limiters."""

from __future__ import annotations

import time
import uuid

import requests

from .conftest import OTHER_TOKEN, Client, set_limits

RATE_HEADERS = ("X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining",
                "X-HubSpot-RateLimit-Interval-Milliseconds", "X-HubSpot-RateLimit-Max",
                "X-HubSpot-RateLimit-Remaining")


def _is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


def test_missing_or_wrong_token_gets_401_body(base: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = requests.get(f"{base}/crm/v3/objects/contacts", headers=headers, timeout=5)
        assert response.status_code == 401
        body = response.json()
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["status"] == "error" and body["message"]
        assert _is_uuid(body["correlationId"])


def test_both_tokens_work(base: str) -> None:
    assert Client(base).get("/crm/v3/objects/contacts").status_code == 200
    assert Client(base, OTHER_TOKEN).get("/crm/v3/objects/contacts").status_code == 200


def test_rate_limit_headers_on_every_non_search_response(hs: Client, base: str) -> None:
    set_limits(base, burst_limit=50, daily_limit=1000)
    ok = hs.get("/crm/v3/objects/contacts")
    bad = hs.post("/crm/v3/objects/contacts", {"properties": {"nope": "1"}})
    missing = hs.get("/crm/v3/objects/contacts/999999")
    for response in (ok, bad, missing):
        for header in RATE_HEADERS:
            assert header in response.headers, (response.status_code, header)
    assert ok.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert ok.headers["X-HubSpot-RateLimit-Max"] == "50"
    assert ok.headers["X-HubSpot-RateLimit-Remaining"] == "49"
    assert ok.headers["X-HubSpot-RateLimit-Daily"] == "1000"
    assert ok.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "999"
    assert missing.headers["X-HubSpot-RateLimit-Remaining"] == "47"  # errors consume budget too
    search = hs.post("/crm/v3/objects/contacts/search", {})
    assert search.status_code == 200
    assert not any(h in search.headers for h in RATE_HEADERS)


def test_burst_limit_429_body_and_no_budget_consumed(hs: Client, base: str) -> None:
    set_limits(base, burst_limit=5)
    statuses = [hs.get("/crm/v3/objects/contacts").status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = hs.get("/crm/v3/objects/contacts")
    assert refused.status_code == 429
    body = refused.json()
    assert body["status"] == "error"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["groupName"] == "publicapi:private-app-api-ten-secondly:4242"
    assert _is_uuid(body["correlationId"])
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in refused.headers  # off by default
    for _ in range(3):
        assert hs.get("/crm/v3/objects/contacts").status_code == 429
    usage = set_limits(base)["usage"]
    assert usage["daily_used"] == 5  # rejected requests did not count
    # Another private app (token) has its own burst bucket.
    assert Client(base, OTHER_TOKEN).get("/crm/v3/objects/contacts").status_code == 200


def test_burst_window_rolls(hs: Client, base: str) -> None:
    set_limits(base, burst_limit=2)
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    assert hs.get("/crm/v3/objects/contacts").status_code == 429
    set_limits(base, reset_usage=True)  # stands in for waiting 10 s
    assert hs.get("/crm/v3/objects/contacts").status_code == 200


def test_retry_after_option(hs: Client, base: str) -> None:
    set_limits(base, burst_limit=1, retry_after=True)
    hs.get("/crm/v3/objects/contacts")
    refused = hs.get("/crm/v3/objects/contacts")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 10


def test_daily_limit_shared_across_apps(hs: Client, base: str) -> None:
    set_limits(base, daily_limit=3)
    other = Client(base, OTHER_TOKEN)
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    assert other.get("/crm/v3/objects/contacts").status_code == 200
    last = hs.get("/crm/v3/objects/contacts")
    assert last.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    refused = other.get("/crm/v3/objects/contacts")
    assert refused.status_code == 429
    body = refused.json()
    assert body["message"] == "You have reached your daily limit."
    assert body["policyName"] == "DAILY"
    assert body["errorType"] == "RATE_LIMIT"
    assert set_limits(base)["usage"]["daily_used"] == 3
    # Daily exhaustion also blocks search.
    assert hs.post("/crm/v3/objects/contacts/search", {}).json()["policyName"] == "DAILY"


def test_daily_usage_settable_and_reset_offset(hs: Client, base: str) -> None:
    view = set_limits(base, daily_used=999_999, daily_reset_utc_offset_hours=-5.0)
    assert view["settings"]["daily_reset_utc_offset_hours"] == -5.0
    assert 0 < view["usage"]["daily_resets_in_seconds"] <= 86_400
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    assert hs.get("/crm/v3/objects/contacts").status_code == 429
    usage = hs.get("/account-info/v3/api-usage/daily/private-apps").json()["results"][0]
    assert usage["name"] == "private-apps-api-calls-daily"
    assert usage["usageLimit"] == 1_000_000 and usage["currentUsage"] == 1_000_000


def test_invalid_limit_settings_rejected(base: str) -> None:
    assert requests.post(f"{base}/_sandbox/limits", json={"bogus": 1}, timeout=5).status_code == 400
    assert requests.post(f"{base}/_sandbox/limits", json={"burst_limit": -1}, timeout=5).status_code == 400


def test_search_limit_per_second(hs: Client, base: str) -> None:
    set_limits(base, search_limit=5, burst_limit=1)
    responses = [hs.post("/crm/v3/objects/contacts/search", {}) for _ in range(8)]
    statuses = [r.status_code for r in responses]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["errorType"] == "RATE_LIMIT"
    assert "X-HubSpot-RateLimit-Max" not in refused.headers
    # Search does not use the general burst bucket (burst_limit=1 above).
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    time.sleep(1.05)
    assert hs.post("/crm/v3/objects/contacts/search", {}).status_code == 200


def test_associations_have_their_own_bucket(hs: Client, base: str) -> None:
    set_limits(base, burst_limit=1, associations_limit=3)
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    assert hs.get("/crm/v3/objects/contacts").status_code == 429
    labels = [hs.get("/crm/v4/associations/orders/contacts/labels") for _ in range(4)]
    assert [r.status_code for r in labels] == [200, 200, 200, 429]
    assert labels[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert labels[3].json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_events_exempt_from_general_limits(hs: Client, base: str) -> None:
    set_limits(base, burst_limit=1)
    hs.get("/crm/v3/objects/contacts")
    for _ in range(3):
        assert hs.get("/events/v3/event-definitions").status_code == 200

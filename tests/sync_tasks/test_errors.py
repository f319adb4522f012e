from __future__ import annotations

import datetime as dt

import pytest
import requests

from sync_tasks.errors import (
    BODY_KEEP_CHARS,
    COMMERCETOOLS_ACTIONS,
    HUBSPOT_ACTIONS,
    Action,
    CheckThenRetryError,
    ConflictError,
    ErrorDetail,
    PermanentError,
    RateLimitedError,
    RetryableError,
    TokenExpiredError,
    action_for,
    action_for_category,
    raise_for_response,
    seconds_to_daily_reset,
)


def _response(status: int, body: str = "{}", headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update(headers or {})
    response.request = requests.Request("POST", "http://127.0.0.1/crm/v3/objects/contacts?email=a@b.c").prepare()
    return response


@pytest.mark.parametrize(("status", "expected"), [
    (200, Action.SUCCESS), (207, Action.SUCCESS), (400, Action.FAIL), (404, Action.FAIL),
    (409, Action.CONFLICT), (423, Action.RETRY), (429, Action.RATE_LIMITED), (500, Action.RETRY),
    (502, Action.RETRY), (503, Action.RETRY), (504, Action.RETRY), (599, Action.RETRY), (418, Action.FAIL),
])
def test_hubspot_status_table(status: int, expected: Action) -> None:
    assert action_for(HUBSPOT_ACTIONS, status) is expected


@pytest.mark.parametrize(("status", "expected"), [
    (401, Action.REFRESH_TOKEN), (409, Action.CONFLICT), (500, Action.CHECK_THEN_RETRY),
    (502, Action.RETRY), (503, Action.RETRY), (400, Action.FAIL),
])
def test_commercetools_status_table(status: int, expected: Action) -> None:
    assert action_for(COMMERCETOOLS_ACTIONS, status) is expected


def test_ten_secondly_429_is_a_wait_of_about_ten_seconds() -> None:
    body = '{"status":"error","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING","correlationId":"c-1"}'
    with pytest.raises(RateLimitedError) as info:
        raise_for_response(_response(429, body), HUBSPOT_ACTIONS, "hubspot")
    assert 10.0 <= (info.value.retry_after or 0) <= 12.0
    assert not info.value.daily
    assert info.value.detail and info.value.detail.correlation_id == "c-1"


def test_daily_429_waits_until_the_reset_and_says_daily() -> None:
    body = '{"errorType":"RATE_LIMIT","policyName":"DAILY","message":"You have reached your daily limit."}'
    with pytest.raises(RateLimitedError) as info:
        raise_for_response(_response(429, body), HUBSPOT_ACTIONS, "hubspot")
    assert info.value.daily
    assert abs((info.value.retry_after or 0) - seconds_to_daily_reset()) < 5


def test_seconds_to_daily_reset_counts_to_utc_midnight() -> None:
    now = dt.datetime(2026, 3, 1, 23, 59, 0, tzinfo=dt.UTC)
    assert seconds_to_daily_reset(now) == 60.0


def test_secondly_429_waits_about_a_second() -> None:
    body = '{"errorType":"RATE_LIMIT","policyName":"SECONDLY"}'
    with pytest.raises(RateLimitedError) as info:
        raise_for_response(_response(429, body), HUBSPOT_ACTIONS, "hubspot")
    assert 1.0 <= (info.value.retry_after or 0) <= 1.2


def test_error_record_keeps_the_response_body_bounded() -> None:
    small = ErrorDetail(400, "VALIDATION_ERROR", "bad", body={"message": "bad", "context": {"x": ["1"]}})
    assert small.as_record()["body"] == {"message": "bad", "context": {"x": ["1"]}}
    big = ErrorDetail(400, "VALIDATION_ERROR", "bad", body={"message": "x" * 10_000})
    kept = big.as_record()["body"]
    assert isinstance(kept, str) and len(kept) == BODY_KEEP_CHARS


def test_retry_after_header_wins() -> None:
    with pytest.raises(RateLimitedError) as info:
        raise_for_response(_response(429, "{}", {"Retry-After": "3"}), HUBSPOT_ACTIONS, "hubspot")
    assert info.value.retry_after == 3.0


def test_locked_waits_at_least_two_seconds() -> None:
    with pytest.raises(RetryableError) as info:
        raise_for_response(_response(423, '{"category":"LOCKED"}'), HUBSPOT_ACTIONS, "hubspot")
    assert info.value.retry_after == 2.0


def test_conflict_carries_existing_id_and_message_has_no_query_string() -> None:
    body = '{"category":"CONFLICT","message":"Contact already exists. Existing ID: 37765128953"}'
    with pytest.raises(ConflictError) as info:
        raise_for_response(_response(409, body), HUBSPOT_ACTIONS, "hubspot")
    assert info.value.existing_id == "37765128953"
    assert "a@b.c" not in str(info.value)


def test_commercetools_version_conflict_carries_current_version() -> None:
    body = '{"statusCode":409,"message":"x","errors":[{"code":"ConcurrentModification","currentVersion":7}]}'
    with pytest.raises(ConflictError) as info:
        raise_for_response(_response(409, body), COMMERCETOOLS_ACTIONS, "commercetools")
    assert info.value.current_version == 7


def test_commercetools_401_refreshes_and_500_checks_first() -> None:
    with pytest.raises(TokenExpiredError):
        raise_for_response(_response(401, '{"error":"invalid_token"}'), COMMERCETOOLS_ACTIONS, "commercetools")
    with pytest.raises(CheckThenRetryError):
        raise_for_response(_response(500), COMMERCETOOLS_ACTIONS, "commercetools")


def test_validation_error_is_permanent() -> None:
    with pytest.raises(PermanentError) as info:
        raise_for_response(_response(400, '{"category":"VALIDATION_ERROR","message":"bad"}'),
                           HUBSPOT_ACTIONS, "hubspot")
    assert info.value.detail and info.value.detail.category == "VALIDATION_ERROR"


@pytest.mark.parametrize(("category", "expected"), [
    ("CONFLICT", Action.CONFLICT), ("VALIDATION_ERROR", Action.FAIL), ("OBJECT_NOT_FOUND", Action.FAIL),
    ("LOCKED", Action.RETRY), ("RATE_LIMIT", Action.RATE_LIMITED), ("SOMETHING_NEW", Action.FAIL),
])
def test_per_input_categories(category: str, expected: Action) -> None:
    assert action_for_category(category) is expected

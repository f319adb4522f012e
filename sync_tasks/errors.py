"""The one error taxonomy: every HTTP response from HubSpot or commercetools is classified here, by a
status → action table, and turned into one of these exceptions. Nothing else in the product inspects
status codes to decide whether to retry.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import requests


class Action(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"  # transient: back off and try again, counted against the error budget
    RATE_LIMITED = "rate_limited"  # a wait, not an error: never counted against retries
    FAIL = "fail"  # permanent: dead-letter, never retried
    CONFLICT = "conflict"  # 409: resolved by the caller (existing id, or re-read the version)
    REFRESH_TOKEN = "refresh_token"  # 401 on commercetools: fetch a new token once
    CHECK_THEN_RETRY = "check_then_retry"  # a 500 on a write may have landed: re-read first


# Status → action, per API. Anything missing falls back by class (2xx/4xx/5xx) below.
HUBSPOT_ACTIONS: dict[int, Action] = {
    200: Action.SUCCESS, 201: Action.SUCCESS, 204: Action.SUCCESS, 207: Action.SUCCESS,
    400: Action.FAIL, 401: Action.FAIL, 403: Action.FAIL, 404: Action.FAIL, 405: Action.FAIL,
    409: Action.CONFLICT, 413: Action.FAIL, 414: Action.FAIL, 415: Action.FAIL,
    423: Action.RETRY, 429: Action.RATE_LIMITED, 477: Action.RETRY,
    500: Action.RETRY, 502: Action.RETRY, 503: Action.RETRY, 504: Action.RETRY,
    521: Action.RETRY, 523: Action.RETRY, 524: Action.RETRY,
}
COMMERCETOOLS_ACTIONS: dict[int, Action] = {
    200: Action.SUCCESS, 201: Action.SUCCESS, 204: Action.SUCCESS,
    400: Action.FAIL, 401: Action.REFRESH_TOKEN, 403: Action.FAIL, 404: Action.FAIL,
    409: Action.CONFLICT, 413: Action.FAIL,
    500: Action.CHECK_THEN_RETRY, 502: Action.RETRY, 503: Action.RETRY, 504: Action.RETRY,
}


def action_for(table: dict[int, Action], status: int) -> Action:
    if status in table:
        return table[status]
    if 200 <= status < 300:
        return Action.SUCCESS
    if status >= 500:
        return Action.RETRY
    return Action.FAIL


# Minimum waits, from HubSpot's error-handling guide: locks last about 2 s.
MIN_WAIT_SECONDS = {423: 2.0}
TEN_SECOND_WINDOW = 10.0
# A 429's policyName → how long until that window has room again (DAILY: until the reset).
POLICY_WAIT_SECONDS = {"TEN_SECONDLY_ROLLING": TEN_SECOND_WINDOW, "SECONDLY": 1.0}
BODY_KEEP_CHARS = 4000  # of an error response body kept for the DLQ


@dataclass
class ErrorDetail:
    """What we keep of an error response: safe to log (no token, no request body)."""

    status: int
    category: str = ""
    message: str = ""
    correlation_id: str = ""
    policy_name: str = ""
    body: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "category": self.category, "message": self.message,
                "correlationId": self.correlation_id, "policyName": self.policy_name}

    def as_record(self) -> dict[str, Any]:
        """`as_dict` plus the response body (bounded): what the dead-letter queue keeps. Error bodies
        hold HubSpot's message and context, never our token."""
        body = self.body
        if isinstance(body, str):
            body = body[:BODY_KEEP_CHARS]
        elif body is not None and len(json_dumps(body)) > BODY_KEEP_CHARS:
            body = json_dumps(body)[:BODY_KEEP_CHARS]
        return self.as_dict() | {"body": body}


class SyncError(Exception):
    """Base of the taxonomy."""

    def __init__(self, message: str, detail: ErrorDetail | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class RetryableError(SyncError):
    """Transient: retry with backoff; counts against the error budget."""

    def __init__(self, message: str, detail: ErrorDetail | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, detail)
        self.retry_after = retry_after


class WaitError(RetryableError):
    """A wait, not a failure: re-queued with a countdown and never counted as an error retry."""


class RateLimitedError(WaitError):
    """A wait for budget (ours or HubSpot's 429)."""

    @property
    def daily(self) -> bool:
        return bool(self.detail and self.detail.policy_name == "DAILY")


class BusyError(WaitError):
    """Another push holds the record's write lock (see push.py): wait for it to finish."""


class PermanentError(SyncError):
    """Will fail again unchanged: dead-letter it."""


class ConflictError(SyncError):
    """409: HubSpot's "already exists" (with the existing id) or commercetools' version conflict."""

    @property
    def existing_id(self) -> str | None:
        match = re.search(r"Existing ID:\s*(\d+)", self.detail.message if self.detail else "")
        return match.group(1) if match else None

    @property
    def current_version(self) -> int | None:
        body = self.detail.body if self.detail else None
        if isinstance(body, dict):
            for err in body.get("errors") or []:
                if isinstance(err, dict) and "currentVersion" in err:
                    return int(err["currentVersion"])
        return None


class TokenExpiredError(SyncError):
    """commercetools 401 invalid_token: the client refreshes its token once."""


class CheckThenRetryError(RetryableError):
    """commercetools 500 on a write: re-read the resource before repeating the write."""


def parse_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def detail_from_response(response: requests.Response) -> ErrorDetail:
    body = parse_body(response)
    d = body if isinstance(body, dict) else {}
    message = str(d.get("message") or "")
    if not message and isinstance(d.get("errors"), list) and d["errors"]:
        first = d["errors"][0]
        message = str(first.get("message", "")) if isinstance(first, dict) else ""
    category = str(d.get("category") or d.get("errorType") or "")
    if not category and isinstance(d.get("errors"), list) and d["errors"]:
        first = d["errors"][0]
        category = str(first.get("code", "")) if isinstance(first, dict) else ""
    return ErrorDetail(
        status=response.status_code,
        category=category,
        message=message[:1000],
        correlation_id=str(d.get("correlationId") or response.headers.get("X-Correlation-Id") or ""),
        policy_name=str(d.get("policyName") or ""),
        body=body,
    )


def retry_after_seconds(response: requests.Response, detail: ErrorDetail) -> float | None:
    """Honour Retry-After (seconds) when sent; else the 429's policy; else the status's minimum."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    if response.status_code == 429:
        if detail.policy_name == "DAILY":
            return seconds_to_daily_reset()  # the caller pauses the whole app until then
        window = POLICY_WAIT_SECONDS.get(detail.policy_name, TEN_SECOND_WINDOW)
        return window * (1.0 + random.random() * 0.2)  # jitter: refused workers don't return in step
    return MIN_WAIT_SECONDS.get(response.status_code)


def seconds_to_daily_reset(now: dt.datetime | None = None) -> float:
    """HubSpot resets the daily budget at midnight in the account's time zone; UTC is the default
    (a DAILY 429 carrying Retry-After overrides it)."""
    now = now or dt.datetime.now(dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - now).total_seconds())


def raise_for_response(response: requests.Response, table: dict[int, Action], api: str) -> None:
    """Classify a response by `table` and raise the matching exception; return on success."""
    action = action_for(table, response.status_code)
    if action is Action.SUCCESS:
        return
    detail = detail_from_response(response)
    where = f"{api} {response.request.method} {_path(response)} → {response.status_code}"
    text = f"{where}: {detail.category} {detail.message}".strip()
    if action is Action.RATE_LIMITED:
        raise RateLimitedError(text, detail, retry_after_seconds(response, detail))
    if action is Action.RETRY:
        raise RetryableError(text, detail, retry_after_seconds(response, detail))
    if action is Action.CHECK_THEN_RETRY:
        raise CheckThenRetryError(text, detail)
    if action is Action.CONFLICT:
        raise ConflictError(text, detail)
    if action is Action.REFRESH_TOKEN:
        raise TokenExpiredError(text, detail)
    raise PermanentError(text, detail)


def _path(response: requests.Response) -> str:
    """The request path without the query string: queries may hold emails (PII)."""
    url = response.request.url or ""
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return path.split("?", 1)[0]


# Transport failures: the request may or may not have reached the server.
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def transport_error(exc: Exception, api: str) -> RetryableError:
    return RetryableError(f"{api}: {type(exc).__name__}", ErrorDetail(status=0, category=type(exc).__name__))


def backoff_seconds(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter."""
    return float(random.uniform(0, min(cap, base * 2 ** max(0, attempt))))


def json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# Per-input errors inside a 207 (or a batch's single error) carry a category, not a status.
HUBSPOT_CATEGORY_ACTIONS: dict[str, Action] = {
    "CONFLICT": Action.CONFLICT,
    "OBJECT_NOT_FOUND": Action.FAIL,
    "VALIDATION_ERROR": Action.FAIL,
    "PROPERTY_DOESNT_EXIST": Action.FAIL,
    "INVALID_EMAIL": Action.FAIL,
    "READ_ONLY_VALUE": Action.FAIL,
    "RATE_LIMIT": Action.RATE_LIMITED,
    "RATE_LIMITS": Action.RATE_LIMITED,
    "LOCKED": Action.RETRY,
    "INTERNAL_ERROR": Action.RETRY,
    "TIMEOUT": Action.RETRY,
}


def action_for_category(category: str) -> Action:
    return HUBSPOT_CATEGORY_ACTIONS.get(category.upper(), Action.FAIL)

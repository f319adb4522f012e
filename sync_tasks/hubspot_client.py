"""HubSpot CRM client: the only module that sends requests to HubSpot.

Every call acquires from the fleet-wide budget first (a refusal raises RateLimitedError with the
wait), corrects the budget from the response headers, and classifies the response through
`errors.raise_for_response`. Batch endpoints return their parsed body, 207s included: the caller
reads per-input errors.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from sync_tasks import metrics
from sync_tasks.constants import ASSOCIATION_BATCH_LIMIT, BATCH_LIMIT
from sync_tasks.errors import (
    HUBSPOT_ACTIONS,
    TRANSPORT_ERRORS,
    ErrorDetail,
    RateLimitedError,
    SyncError,
    raise_for_response,
    transport_error,
)
from sync_tasks.limiter import Bucket, RateLimiter
from sync_tasks.settings import Settings

log = logging.getLogger(__name__)

API = "hubspot"
CRM = "/crm/v3/objects"


@dataclass
class BatchResult:
    """A batch write's outcome: results by input key, and per-input errors."""

    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


def trace_id() -> str:
    return uuid.uuid4().hex


class HubSpotClient:
    def __init__(self, settings: Settings, limiter: RateLimiter,
                 session: requests.Session | None = None, backfill: bool = False,
                 wait_for_budget: bool = False) -> None:
        self.settings = settings
        self.limiter = limiter
        self.backfill = backfill
        # Interactive tools (setup, CLI) wait for budget; workers wait out only a short refusal
        # (HUBSPOT_BUDGET_WAIT_S) and re-queue on a longer one.
        self.wait_for_budget = wait_for_budget
        self.session = session or requests.Session()
        self.session.headers.update({
            "Authorization": f"Bearer {settings.hubspot_token.get_secret_value()}",
            "Content-Type": "application/json",
            "User-Agent": "ctsync/0.1",
        })
        self.base = settings.hubspot_base
        self.calls = 0
        self._prepaid: dict[Bucket, int] = {}

    @contextmanager
    def prepaid(self, calls: int, bucket: Bucket = Bucket.BURST) -> Iterator[None]:
        """A task about to make `calls` requests takes its first call's budget before it starts (a
        push refused for budget re-queues before it reads its plan or sends anything); every further
        call takes its own token as it is sent.

        Taking all `calls` at once would let the bucket run into debt, and HubSpot's rolling window
        would see the limiter's steady rate plus that debt: measured, 190 calls in one 10 s window at
        a limit of 190 with pushes of 17 calls prepaid. Taken per call, no window sees more than
        `HUBSPOT_BURST_HEADROOM` × the limit. A call refused half-way is a wait like any other: the
        step's progress is kept and the retried task goes on from it. Nested, the inner one takes
        nothing while the outer one's token is unspent."""
        outer = self._prepaid.get(bucket)
        if calls > 0 and not outer:
            self._take(bucket)
            self._prepaid[bucket] = 1
        try:
            yield
        finally:
            if outer is None:  # the outermost ends: a token it took and did not spend is gone
                self._prepaid.pop(bucket, None)

    def _take(self, bucket: Bucket, cost: int = 1) -> None:
        # A re-queued task comes back a countdown plus jitter later: under a full budget that is
        # up to a second of refilled tokens nobody takes (the bucket holds only 3 % of the limit),
        # so a wait shorter than HUBSPOT_BUDGET_WAIT_S is slept here (a few times at most).
        short = self.settings.hubspot_budget_wait_s
        longest, total = (60.0, math.inf) if self.wait_for_budget else (short, 4 * short)
        grant = self.limiter.acquire(bucket, cost=cost, backfill=self.backfill)
        waited = 0.0
        while not grant.granted and grant.wait_seconds <= longest and waited + grant.wait_seconds <= total:
            time.sleep(grant.wait_seconds)
            waited += grant.wait_seconds
            grant = self.limiter.acquire(bucket, cost=cost, backfill=self.backfill)
        if not grant.granted:
            raise RateLimitedError(f"{API}: fleet budget '{bucket}' exhausted",
                                   ErrorDetail(status=0, category="LOCAL_BUDGET"), grant.wait_seconds)

    # -- transport -----------------------------------------------------------------------------
    def request(self, method: str, path: str, json: Any = None, bucket: Bucket = Bucket.BURST,
                params: dict[str, str] | None = None) -> requests.Response:
        if self._prepaid.get(bucket, 0) > 0:
            self._prepaid[bucket] -= 1
        else:
            self._take(bucket)
        try:
            response = self.session.request(method, self.base + path, json=json, params=params,
                                            timeout=self.settings.http_timeout)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, API) from exc
        self.calls += 1
        self._observe(bucket, response)
        metrics.observe_hubspot(self.limiter.redis, response)
        try:
            raise_for_response(response, HUBSPOT_ACTIONS, API)
        except RateLimitedError as exc:
            if exc.daily and exc.retry_after:
                self.limiter.pause(exc.retry_after)  # the whole fleet stops until the reset
            raise
        return response

    def _observe(self, bucket: Bucket, response: requests.Response) -> None:
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        maximum = response.headers.get("X-HubSpot-RateLimit-Max")
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if remaining is not None:
            self.limiter.observe(bucket, int(remaining), int(maximum) if maximum else None,
                                 int(interval) if interval else None)

    def post(self, path: str, body: Any, bucket: Bucket = Bucket.BURST) -> Any:
        response = self.request("POST", path, json=body, bucket=bucket)
        return metrics.response_json(response) if response.content else None

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return metrics.response_json(self.request("GET", path, params=params))

    # -- objects -------------------------------------------------------------------------------
    def batch_read(self, obj: str, ids: Sequence[str], properties: Iterable[str],
                   id_property: str | None = None) -> BatchResult:
        """Existence checks by id or unique property: no search limiter, no index lag."""
        if not ids:
            return BatchResult()
        _check_size(ids)
        body: dict[str, Any] = {"inputs": [{"id": i} for i in ids], "properties": sorted(set(properties))}
        if id_property:
            body["idProperty"] = id_property
        response = self.request("POST", f"{CRM}/{obj}/batch/read", json=body)
        return _batch_result(response)

    def batch_upsert(self, obj: str, id_property: str, inputs: Sequence[dict[str, Any]]) -> BatchResult:
        """`inputs`: [{id, properties, objectWriteTraceId}] keyed by `id_property`."""
        _check_size(inputs)
        body = {"inputs": [{**i, "idProperty": id_property} for i in inputs]}
        return _batch_result(self.request("POST", f"{CRM}/{obj}/batch/upsert", json=body))

    def batch_update(self, obj: str, inputs: Sequence[dict[str, Any]]) -> BatchResult:
        """`inputs`: [{id, properties, objectWriteTraceId}] by HubSpot record id."""
        _check_size(inputs)
        return _batch_result(self.request("POST", f"{CRM}/{obj}/batch/update", json={"inputs": list(inputs)}))

    def batch_create(self, obj: str, inputs: Sequence[dict[str, Any]]) -> BatchResult:
        _check_size(inputs)
        return _batch_result(self.request("POST", f"{CRM}/{obj}/batch/create", json={"inputs": list(inputs)}))

    # -- associations --------------------------------------------------------------------------
    def associate_default(self, from_obj: str, to_obj: str, pairs: Sequence[tuple[str, str]]) -> BatchResult:
        if not pairs:
            return BatchResult()
        _check_size(pairs, ASSOCIATION_BATCH_LIMIT)
        body = {"inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in pairs]}
        response = self.request("POST", f"/crm/v4/associations/{from_obj}/{to_obj}/batch/associate/default",
                                json=body, bucket=Bucket.ASSOCIATIONS)
        return _batch_result(response)

    def associate(self, from_obj: str, to_obj: str, type_id: int, pairs: Sequence[tuple[str, str]]) -> BatchResult:
        """Labelled associations (HUBSPOT_DEFINED type ids); HubSpot keeps one per pair and type."""
        if not pairs:
            return BatchResult()
        _check_size(pairs, ASSOCIATION_BATCH_LIMIT)
        body = {"inputs": [{"from": {"id": a}, "to": {"id": b}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]} for a, b in pairs]}
        response = self.request("POST", f"/crm/v4/associations/{from_obj}/{to_obj}/batch/create",
                                json=body, bucket=Bucket.ASSOCIATIONS)
        return _batch_result(response)

    # -- properties ----------------------------------------------------------------------------
    def properties(self, obj: str) -> list[dict[str, Any]]:
        return list(self.get(f"/crm/v3/properties/{obj}").get("results", []))

    def property_groups(self, obj: str) -> list[dict[str, Any]]:
        return list(self.get(f"/crm/v3/properties/{obj}/groups").get("results", []))

    def create_property_group(self, obj: str, group: dict[str, Any]) -> Any:
        return self.post(f"/crm/v3/properties/{obj}/groups", group)

    def create_property(self, obj: str, prop: dict[str, Any]) -> Any:
        return self.post(f"/crm/v3/properties/{obj}", prop)


    # -- communication preferences v4 (consent) ---------------------------------------------------
    def consent_statuses(self, email: str) -> list[dict[str, Any]]:
        """Every subscription's status for one e-mail."""
        path = f"/communication-preferences/v4/statuses/{quote(email, safe='')}"
        with _email_redacted(email):
            return list(self.get(path, params={"channel": "EMAIL"}).get("results", []))

    def set_consent(self, email: str, body: dict[str, Any]) -> Any:
        with _email_redacted(email):
            return self.post(f"/communication-preferences/v4/statuses/{quote(email, safe='')}", body)


@contextmanager
def _email_redacted(email: str) -> Iterator[None]:
    """These paths hold an e-mail: keep it out of error messages (they end up in logs)."""
    try:
        yield
    except SyncError as exc:
        exc.args = (str(exc).replace(quote(email, safe=""), "<email>").replace(email, "<email>"),)
        raise


def _check_size(inputs: Sequence[Any], limit: int = BATCH_LIMIT) -> None:
    if len(inputs) > limit:
        raise ValueError(f"a HubSpot batch holds at most {limit} inputs, got {len(inputs)}")


def _batch_result(response: requests.Response) -> BatchResult:
    body = metrics.response_json(response) if response.content else {}
    return BatchResult(results=list(body.get("results") or []), errors=list(body.get("errors") or []),
                       status=response.status_code)

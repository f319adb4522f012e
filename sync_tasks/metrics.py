"""Fleet-wide Prometheus metrics.

Every worker process adds to counters in one Redis hash (`Keys.metrics()`), so totals cover the whole
fleet, survive worker restarts and need no multiprocess directory; one exporter process
(`ctsync metrics`, a Procfile role) publishes them with gauges read at scrape time (DLQ and rejected
sizes, lag, queue depths, HubSpot budget). Counting never breaks a sync: a Redis error here is logged
and dropped.

Published (Prometheus adds `_total` to counters):
  ctsync_records_total{object, outcome}        HubSpot writes per record: created, updated, rejected
  ctsync_hubspot_calls_total{endpoint, status} every HubSpot response
  ctsync_hubspot_429_total{policy}             HubSpot 429s by policy (TEN_SECONDLY_ROLLING, DAILY, ...)
  ctsync_task_retries_total{task, reason}      task re-queues: wait (budget, 429) or error
  ctsync_dlq_entries, ctsync_rejected_entries  stream sizes
  ctsync_lag_seconds{entity}                   now minus watermark
  ctsync_queue_messages{queue}                 messages waiting
  ctsync_hubspot_budget_used{window}           10s (as HubSpot reported) and day (fleet counter)
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import orjson
import redis
import requests
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sync_tasks import status
from sync_tasks.constants import Keys
from sync_tasks.settings import Settings

log = logging.getLogger(__name__)

SEP = "|"
RECORDS, CALLS, RATE_LIMITED, RETRIES = "records", "calls", "429", "retries"
_BATCH_WRITE = re.compile(r"^/crm/v3/objects/(?P<object>[^/]+)/batch/(?P<kind>create|update|upsert)$")
_ID_SEGMENT = re.compile(r"/(\d+|[^/]*@[^/]*)(?=/|$)")  # record ids and e-mails in paths
_LIMIT_HEADERS = {"X-HubSpot-RateLimit-Max": "max", "X-HubSpot-RateLimit-Remaining": "remaining",
                  "X-HubSpot-RateLimit-Daily": "daily", "X-HubSpot-RateLimit-Daily-Remaining": "daily_remaining"}
_NOT_REJECTED = {409, 423, 429}  # a conflict is resolved by the caller; the others are waits


_BODY = "_ctsync_json"  # a parsed body kept on its response: batch answers are large, parse them once


def response_json(response: requests.Response) -> Any:
    """`response.json()`, parsed once per response (the client and the metrics both read it). The
    same object is returned to every reader: readers must not change it."""
    body = getattr(response, _BODY, None)
    if body is None:
        body = orjson.loads(response.content)  # batch answers are 100 records: orjson, 3-5x faster
        setattr(response, _BODY, body)
    return body


def _field(*parts: object) -> str:
    return SEP.join(str(p).replace(SEP, "/") for p in parts)


def endpoint_of(method: str, url: str) -> str:
    """`POST /crm/v3/objects/contacts/batch/upsert`: path without host, query, ids or e-mails."""
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


def _records(method: str, path: str, response: requests.Response) -> dict[str, int]:
    """Per-record outcomes of a batch write: created, updated, rejected."""
    match = _BATCH_WRITE.match(path)
    if not match or method != "POST":
        return {}
    obj, kind, code = match["object"], match["kind"], response.status_code
    counts: dict[str, int] = {}
    if 200 <= code < 300:
        body = response_json(response) if response.content else {}
        for result in body.get("results") or []:
            created = kind == "create" or (kind == "upsert" and bool(result.get("new")))
            key = _field(RECORDS, obj, "created" if created else "updated")
            counts[key] = counts.get(key, 0) + 1
        if body.get("errors"):
            counts[_field(RECORDS, obj, "rejected")] = len(body["errors"])
    elif 400 <= code < 500 and code not in _NOT_REJECTED:
        # A whole batch refused for one input is split until that input stands alone: count it then.
        sent = json.loads(response.request.body or b"{}").get("inputs") or []
        if len(sent) == 1:
            counts[_field(RECORDS, obj, "rejected")] = 1
    return counts


def observe_hubspot(r: Any, response: requests.Response) -> None:
    """Count one HubSpot response: call, 429, record outcomes and the rate-limit headers."""
    try:
        method = response.request.method or "GET"
        endpoint = endpoint_of(method, response.request.url or "")
        pipe = r.pipeline(transaction=False)
        pipe.hincrby(Keys.metrics(), _field(CALLS, endpoint, response.status_code), 1)
        if response.status_code == 429:
            body = response.json() if response.content else {}
            pipe.hincrby(Keys.metrics(), _field(RATE_LIMITED, body.get("policyName") or "unknown"), 1)
        for key, n in _records(method, endpoint.split(" ", 1)[1], response).items():
            pipe.hincrby(Keys.metrics(), key, n)
        limits = {name: response.headers[h] for h, name in _LIMIT_HEADERS.items() if h in response.headers}
        if "remaining" in limits:
            pipe.hset(Keys.hubspot_limits(), mapping={**limits, "at": time.time()})
        pipe.execute()
    except (redis.RedisError, ValueError) as exc:
        log.debug("metrics: response not counted: %s", exc)


def count_retry(r: Any, task: str, reason: str) -> None:
    try:
        r.hincrby(Keys.metrics(), _field(RETRIES, task, reason), 1)
    except redis.RedisError as exc:
        log.debug("metrics: retry not counted: %s", exc)


def counters(r: Any) -> dict[tuple[str, ...], int]:
    """The fleet's counters: (kind, *labels) → value."""
    return {tuple(k.split(SEP)): int(v) for k, v in (r.hgetall(Keys.metrics()) or {}).items()}


class FleetCollector:
    """A prometheus_client collector reading the fleet's state from Redis at every scrape."""

    def __init__(self, r: Any, settings: Settings) -> None:
        self.r = r
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        families = {
            RECORDS: CounterMetricFamily("ctsync_records", "HubSpot record writes by outcome",
                                         labels=["object", "outcome"]),
            CALLS: CounterMetricFamily("ctsync_hubspot_calls", "HubSpot responses", labels=["endpoint", "status"]),
            RATE_LIMITED: CounterMetricFamily("ctsync_hubspot_429", "HubSpot 429 responses", labels=["policy"]),
            RETRIES: CounterMetricFamily("ctsync_task_retries", "task re-queues", labels=["task", "reason"]),
        }
        arity = {RECORDS: 2, CALLS: 2, RATE_LIMITED: 1, RETRIES: 2}
        for (kind, *labels), value in counters(self.r).items():
            if kind in families and len(labels) == arity[kind]:
                families[kind].add_metric(labels, value)
        yield from families.values()

        failures = status.failure_counts(self.r)
        yield GaugeMetricFamily("ctsync_dlq_entries", "entries in the dead-letter stream", value=failures["dlq"])
        yield GaugeMetricFamily("ctsync_rejected_entries", "rejected property updates", value=failures["rejected"])
        lag = GaugeMetricFamily("ctsync_lag_seconds", "now minus the entity's watermark", labels=["entity"])
        for entity, info in status.entity_status(self.r).items():
            if info["lag_seconds"] is not None:
                lag.add_metric([entity], info["lag_seconds"])
        yield lag
        queues = GaugeMetricFamily("ctsync_queue_messages", "messages waiting per queue", labels=["queue"])
        for queue, depth in status.queue_depths(self.r).items():
            queues.add_metric([queue], depth)
        yield queues
        budget = status.budget(self.r, self.settings)
        used = GaugeMetricFamily("ctsync_hubspot_budget_used", "HubSpot calls used", labels=["window"])
        used.add_metric(["10s"], budget["per_10s"]["used"])
        used.add_metric(["day"], budget["per_day"]["used"])
        yield used


def registry(r: Any, settings: Settings) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(r, settings))
    return reg


def serve(r: Any, settings: Settings) -> None:
    """Run the exporter until killed."""
    start_http_server(settings.metrics_port, settings.metrics_address, registry=registry(r, settings))
    log.info("metrics: serving on http://%s:%d/metrics", settings.metrics_address, settings.metrics_port)
    while True:
        time.sleep(3600)

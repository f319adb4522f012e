"""The naive baseline: what a typical hand-written integration does. One HubSpot call per record
through HubSpot's official Python SDK (`hubspot-api-client`), one Celery task per record, and
Celery's per-worker `rate_limit` as the only throttle (no fleet-wide budget, no batching).

Its own Celery app and queue on the benchmark's Redis database; workers are started with
`celery -A bench.baseline worker -Q bench.baseline`. Results are counted in Redis under `bench:baseline:*`
(bench-only keys, flushed with the benchmark's database)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery, Task

QUEUE = "bench.baseline"
TASK = "bench.baseline.create_contact"
OK_KEY = "bench:baseline:ok"  # LIST of completion times of created contacts
COUNT_KEY = "bench:baseline:counts"  # HASH ok | conflict | failed | throttled

# Read at import in each process: the worker gets them from the benchmark through its environment.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
RATE_LIMIT = os.environ.get("BENCH_BASELINE_RATE", "6/s")

app = Celery("ctsync-bench-baseline", broker=REDIS_URL)
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True, result_backend=None,
                worker_prefetch_multiplier=1, task_acks_late=True, task_default_queue=QUEUE,
                broker_connection_retry_on_startup=True)

_client: Any = None


def client() -> Any:
    global _client
    if _client is None:
        from hubspot import HubSpot

        from sync_tasks.settings import get_settings

        settings = get_settings()
        _client = HubSpot(access_token=settings.hubspot_token.get_secret_value(), host=settings.hubspot_base)
    return _client


def counters() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


@app.task(name=TASK, bind=True, rate_limit=RATE_LIMIT, max_retries=5)
def create_contact(self: Task, record: dict[str, Any]) -> None:
    from hubspot.crm.contacts import ApiException, SimplePublicObjectInputForCreate

    from sync_tasks.mapping import map_customer, normalize_email

    properties = dict(map_customer(record).properties)
    email = normalize_email(record.get("email"))
    if email:
        properties["email"] = email
    properties["ct_customer_id"] = record["id"]
    r = counters()
    try:
        client().crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties=properties))
    except ApiException as exc:
        if exc.status == 429:
            r.hincrby(COUNT_KEY, "throttled", 1)
            # The usual hand-written answer to a 429: wait for the window and try again.
            raise self.retry(countdown=10) from exc
        r.hincrby(COUNT_KEY, "conflict" if exc.status == 409 else "failed", 1)
        return
    r.rpush(OK_KEY, time.time())
    r.hincrby(COUNT_KEY, "ok", 1)


def per_worker_rate(limit: int, workers: int, window_s: float = 10.0) -> str:
    """The fairest setting a hand-written integration can pick: the limit split evenly over workers."""
    return f"{limit / window_s / workers:.3f}/s"

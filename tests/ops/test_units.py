"""Plain functions of the operations modules: Flower launch, logs, metrics counting, status, Sentry
scrubbing. No broker; Redis (the unit database) where state is read."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest
import redis
import requests
import sentry_sdk
from prometheus_client import generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry
from sentry_sdk.transport import Transport

from sync_tasks import logs, metrics, status
from sync_tasks.constants import Keys
from sync_tasks.flower import flower_command
from sync_tasks.settings import ConfigError, Settings
from sync_tasks.state import SyncState
from workers import bootstrap

TOKEN = "pat-na1-very-secret-token"


def _settings(**kw: Any) -> Settings:
    return Settings(hubspot_token=TOKEN, **kw)  # type: ignore[arg-type]


def _response(method: str, url: str, status_code: int, body: Any, request_body: Any = None,
              headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status_code
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    response.request = requests.Request(method, url, json=request_body).prepare()
    return response


# -- Flower ------------------------------------------------------------------------------------------
def test_flower_refuses_to_start_without_basic_auth() -> None:
    with pytest.raises(ConfigError, match="FLOWER_BASIC_AUTH"):
        flower_command(_settings())


def test_flower_gets_credentials_by_environment_never_argv() -> None:
    argv, env = flower_command(_settings(flower_basic_auth="ops:pw-123", flower_port=5999),
                               {"FLOWER_UNAUTHENTICATED_API": "true", "PATH": "/bin"})
    assert env["FLOWER_BASIC_AUTH"] == "ops:pw-123"
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    assert not any("pw-123" in a for a in argv)
    assert argv[-5:-3] == ["flower", "--address=127.0.0.1"] and "--port=5999" in argv


@pytest.mark.parametrize("value", ["nopassword", "user:", ":pw", "a:b,c"])
def test_a_malformed_flower_basic_auth_names_the_setting(value: str) -> None:
    with pytest.raises(ValueError, match="flower_basic_auth"):
        _settings(flower_basic_auth=value)


# -- logs --------------------------------------------------------------------------------------------
def _log_line(pii: bool, **extra: Any) -> dict[str, Any]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(pii))
    logger = logging.getLogger("test.ops.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    token = logs.task_context.set({"task_id": "t-1", "task": "ctsync.push", "entity": "customers"})
    try:
        logger.warning("rejected %s for Ada@Example.com", ["c-1"], extra=extra)
    finally:
        logs.task_context.reset(token)
    return dict(json.loads(stream.getvalue()))


def test_a_log_line_is_one_json_object_with_task_context_and_extras() -> None:
    line = _log_line(False, record_ids=["c-1"], correlation_id="abc-123")
    assert line["task_id"] == "t-1" and line["task"] == "ctsync.push" and line["entity"] == "customers"
    assert line["record_ids"] == ["c-1"] and line["correlation_id"] == "abc-123"
    assert line["level"] == "warning" and line["ts"].endswith("Z")


def test_emails_are_masked_in_logs_unless_pii_is_enabled() -> None:
    assert "Ada@Example.com" not in json.dumps(_log_line(False))
    assert "<email>" in _log_line(False)["msg"]
    assert "Ada@Example.com" in _log_line(True)["msg"]


def test_entity_is_found_in_any_task_signature() -> None:
    assert bootstrap.entity_of(("customers",)) == "customers"
    assert bootstrap.entity_of(([{"id": "x"}], {"entity": "customers", "run_id": "r"})) == "customers"
    assert bootstrap.entity_of(({"ctx": {"entity": "customers"}, "plan": {}},)) == "customers"
    assert bootstrap.entity_of(([1, 2],)) is None


# -- metrics -----------------------------------------------------------------------------------------
def test_endpoint_names_hide_ids_emails_and_queries() -> None:
    assert metrics.endpoint_of("GET", "http://h:1/crm/v3/objects/contacts/12345?properties=email") == \
        "GET /crm/v3/objects/contacts/{id}"
    assert metrics.endpoint_of("POST", "http://h/communication-preferences/v4/statuses/a@b.org/unsubscribe-all") == \
        "POST /communication-preferences/v4/statuses/{id}/unsubscribe-all"


def test_responses_are_counted_by_endpoint_status_and_record_outcome(redis_client: redis.Redis) -> None:
    base = "http://127.0.0.1:1/crm/v3/objects/contacts/batch"
    metrics.observe_hubspot(redis_client, _response(
        "POST", f"{base}/upsert", 200, {"results": [{"id": "1", "new": True}, {"id": "2", "new": False}]},
        headers={"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "150",
                 "X-HubSpot-RateLimit-Daily": "1000", "X-HubSpot-RateLimit-Daily-Remaining": "900"}))
    metrics.observe_hubspot(redis_client, _response("POST", f"{base}/update", 207,
                                                    {"results": [{"id": "3"}], "errors": [{"category": "X"}]}))
    metrics.observe_hubspot(redis_client, _response("POST", f"{base}/update", 400, {"message": "bad"},
                                                    request_body={"inputs": [{"id": "4"}]}))
    metrics.observe_hubspot(redis_client, _response("POST", f"{base}/update", 400, {"message": "bad"},
                                                    request_body={"inputs": [{"id": "5"}, {"id": "6"}]}))
    metrics.observe_hubspot(redis_client, _response("POST", f"{base}/update", 429, {"policyName": "DAILY"}))
    metrics.count_retry(redis_client, "ctsync.push", "wait")
    got = metrics.counters(redis_client)
    assert got[("records", "contacts", "created")] == 1
    assert got[("records", "contacts", "updated")] == 2
    assert got[("records", "contacts", "rejected")] == 2  # one per-input error, one lone input refused
    assert got[("calls", "POST /crm/v3/objects/contacts/batch/update", "400")] == 2
    assert got[("429", "DAILY")] == 1 and got[("retries", "ctsync.push", "wait")] == 1
    text = generate_latest(metrics.registry(redis_client, _settings())).decode()
    assert 'ctsync_records_total{object="contacts",outcome="created"} 1.0' in text
    assert 'ctsync_hubspot_429_total{policy="DAILY"} 1.0' in text
    assert 'ctsync_hubspot_budget_used{window="10s"} 40.0' in text


def test_counting_never_breaks_a_sync_when_redis_is_down() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    metrics.observe_hubspot(dead, _response("GET", "http://h/crm/v3/properties/contacts", 200, {}))
    metrics.count_retry(dead, "ctsync.push", "error")


# -- status ------------------------------------------------------------------------------------------
def test_status_reads_depths_lag_last_run_failures_and_budget(redis_client: redis.Redis) -> None:
    now = time.time()
    redis_client.rpush("ctsync.push", "m1", "m2")
    redis_client.rpush("ctsync.push\x06\x163", "m3")
    redis_client.set(Keys.watermark("customers"), time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 90)))
    state = SyncState(redis_client)
    run_id = state.start_run("customers", "delta")
    state.count(run_id, extracted=5, created=4, failed=1)
    state.dead_letter("ctsync.push", ["c-1"], {}, {"status": 400}, attempts=1)
    redis_client.xadd(Keys.rejected(), {"record_id": "c-2"})
    redis_client.hset(Keys.hubspot_limits(), mapping={"max": 190, "remaining": 180, "at": now - 2})
    report = status.gather(redis_client, _settings(), None, now=now)
    assert report["queues"]["ctsync.push"] == 3 and report["queues"]["ctsync.extract"] == 0
    customers = report["entities"]["customers"]
    assert 89 <= customers["lag_seconds"] <= 92
    assert customers["last_run"]["run_id"] == run_id and customers["last_run"]["failed"] == 1
    assert report["dlq"] == 1 and report["rejected"] == 1
    assert report["budget"]["per_10s"] == {"used": 10, "limit": 190}
    later = status.budget(redis_client, _settings(), now=now + 30)
    assert later["per_10s"]["used"] == 0  # HubSpot's report is older than its 10 s window


def test_status_counts_nothing_when_streams_are_absent(redis_client: redis.Redis) -> None:
    assert status.failure_counts(redis_client) == {"dlq": 0, "rejected": 0}
    assert status.entity_status(redis_client)["customers"] == {"watermark": None, "lag_seconds": None,
                                                                "last_run": None}


# -- Sentry ------------------------------------------------------------------------------------------
class _Collect(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.events += [item.payload.json for item in envelope.items if item.type == "event"]


def test_sentry_is_not_started_without_a_dsn() -> None:
    assert bootstrap.init_sentry(_settings()) is False


def test_sentry_events_carry_no_secret_or_email_and_are_tagged_with_the_correlation_id() -> None:
    transport = _Collect()
    try:
        assert bootstrap.init_sentry(_settings(ct_client_secret="ct-secret-xyz"), transport=transport)
        integration = sentry_sdk.get_client().get_integration("celery")
        assert integration is not None and integration.monitor_beat_tasks
        log = logging.getLogger("sync_tasks.push")
        log.warning("hubspot rejected contact write for records %s: %s (correlationId %s)", ["c-9"],
                    f"Bearer {TOKEN} for ada@example.com", "0f6e3c1a-1111-2222-3333-444455556666")
        log.error("push failed for ct-secret-xyz")  # once, through the logging integration
        logging.getLogger("sync_tasks.mapping").warning("not an event")
        sentry_sdk.flush()
    finally:
        sentry_sdk.init(dsn=None)
        for handler in list(logging.getLogger("sync_tasks.push").handlers):
            logging.getLogger("sync_tasks.push").removeHandler(handler)
    assert len(transport.events) == 2
    sent = json.dumps(transport.events)
    assert TOKEN not in sent and "ct-secret-xyz" not in sent and "ada@example.com" not in sent
    assert transport.events[0]["tags"]["hubspot.correlation_id"] == "0f6e3c1a-1111-2222-3333-444455556666"

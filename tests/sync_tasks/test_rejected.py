"""The rejected-update log (real Redis): payload and response kept, retention trimming, reading,
and PII masking."""

from __future__ import annotations

import time

import redis

from sync_tasks import rejected
from sync_tasks.constants import Keys
from sync_tasks.errors import ErrorDetail

DETAIL = ErrorDetail(status=400, category="VALIDATION_ERROR",
                     message="Property values were not valid: ann@example.com is not a valid email",
                     correlation_id="c0ffee", body={"category": "VALIDATION_ERROR", "context": {
                         "propertyName": ["email"]}, "message": "ann@example.com is not a valid email"})
PAYLOAD = {"properties": {"email": "ann@example.com", "phone": "+49 171 5550123", "ct_customer_id": "c1"},
           "hs_id": "101", "key": "c1"}


def test_a_rejection_keeps_payload_response_ids_task_and_time(redis_client: redis.Redis) -> None:
    entry_id = rejected.record(redis_client, "hubspot", "ctsync.push", ["c1", "c2"], PAYLOAD, DETAIL,
                               retention_days=14)
    entry = rejected.get(redis_client, entry_id)
    assert entry is not None
    assert entry["payload"] == PAYLOAD
    assert (entry["api"], entry["task"], entry["record_ids"], entry["status"], entry["category"],
            entry["correlation_id"]) == ("hubspot", "ctsync.push", ["c1", "c2"], 400, "VALIDATION_ERROR", "c0ffee")
    assert entry["message"] == DETAIL.message
    assert entry["error"]["body"]["context"] == {"propertyName": ["email"]}
    assert float(entry["at"]) > 1.7e9
    assert rejected.get(redis_client, "1-0") is None


def test_entries_older_than_the_retention_are_trimmed(redis_client: redis.Redis) -> None:
    redis_client.xadd(Keys.rejected(), {"api": "hubspot"}, id="1000-0")  # 1970: long past any retention
    redis_client.xadd(Keys.rejected(), {"api": "hubspot"}, id="2000-0")
    kept = rejected.record(redis_client, "hubspot", "t", ["c1"], PAYLOAD, DETAIL, retention_days=1)
    assert [e["id"] for e in rejected.entries(redis_client)] == [kept]
    time.sleep(0.3)
    assert rejected.trim(redis_client, retention_days=0.1 / 86400) == 1  # 0.1 s: `kept` is past it now
    assert rejected.entries(redis_client) == []


def test_export_reads_every_page_and_since_filters(redis_client: redis.Redis) -> None:
    ids = [rejected.record(redis_client, "commercetools", "t", [f"c{i}"], {}, DETAIL, retention_days=14)
           for i in range(7)]
    assert [e["id"] for e in rejected.export(redis_client, page=3)] == ids
    later = int(ids[-1].split("-")[0]) / 1000 + 1
    assert list(rejected.export(redis_client, since=later)) == []


def test_redaction_masks_personal_values_and_keeps_ids_and_codes(redis_client: redis.Redis) -> None:
    entry_id = rejected.record(redis_client, "hubspot", "ctsync.push", ["c1"], PAYLOAD, DETAIL, retention_days=14)
    entry = rejected.get(redis_client, entry_id)
    masked = rejected.redact(entry)
    text = str(masked)
    assert "ann@example.com" not in text and "5550123" not in text
    assert masked["payload"]["properties"] == {"email": "<redacted>", "phone": "<redacted>", "ct_customer_id": "c1"}
    assert masked["message"] == "Property values were not valid: <redacted> is not a valid email"
    assert (masked["record_ids"], masked["category"], masked["correlation_id"]) == (["c1"], "VALIDATION_ERROR",
                                                                                    "c0ffee")
    assert masked["error"]["body"]["context"] == {"propertyName": ["email"]}

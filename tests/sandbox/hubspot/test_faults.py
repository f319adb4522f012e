"""Fault injection: 5xx, spurious 429, 423 Locked, slow responses, 504 and dropped connections, set at
run time through /_sandbox/faults, with HubSpot-shaped bodies."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.hubspot.errors import error_body

from .conftest import Client, set_faults


def test_error_rate_5xx(hs: Client, base: str) -> None:
    set_faults(base, error_rate=1.0, error_statuses=[502])
    response = hs.get("/crm/v3/objects/contacts")
    assert response.status_code == 502
    body = response.json()
    assert body["status"] == "error" and body["category"] == "INTERNAL_ERROR" and body["correlationId"]
    assert requests.get(f"{base}/_sandbox/health", timeout=5).ok  # control API is never faulted
    injected = requests.get(f"{base}/_sandbox/faults", timeout=5).json()["injected"]
    assert injected["502"] == 1


def test_rate_limit_fault(hs: Client, base: str) -> None:
    set_faults(base, rate_limit_rate=1.0)
    response = hs.get("/crm/v3/objects/contacts")
    assert response.status_code == 429
    body = response.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["groupName"] == "publicapi:private-app-api-ten-secondly:4242"


def test_locked_fault(hs: Client, base: str) -> None:
    set_faults(base, locked_rate=1.0)
    response = hs.upsert_contacts(["a@x.com"])
    assert response.status_code == 423
    assert response.json()["category"] == "LOCKED"


def test_timeout_fault(hs: Client, base: str) -> None:
    set_faults(base, timeout_rate=1.0, slow_seconds=0.2)
    started = time.monotonic()
    response = hs.get("/crm/v3/objects/contacts")
    assert response.status_code == 504
    assert time.monotonic() - started >= 0.2
    assert response.json()["category"] == "INTERNAL_ERROR"


def test_slow_fault(hs: Client, base: str) -> None:
    set_faults(base, slow_rate=1.0, slow_seconds=0.3)
    started = time.monotonic()
    assert hs.get("/crm/v3/objects/contacts").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_dropped_connection(hs: Client, base: str) -> None:
    set_faults(base, drop_rate=1.0)
    for _ in range(3):
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            requests.get(f"{base}/crm/v3/objects/contacts", timeout=5,
                         headers={"Authorization": "Bearer pat-na1-sandbox-token"})
    set_faults(base, drop_rate=0.0)
    assert hs.get("/crm/v3/objects/contacts").status_code == 200


def test_partial_fault_rate_is_seeded(hs: Client, base: str) -> None:
    set_faults(base, error_rate=0.5, seed=3)
    first = [hs.get("/crm/v3/objects/contacts").status_code for _ in range(20)]
    set_faults(base, error_rate=0.5, seed=3)
    second = [hs.get("/crm/v3/objects/contacts").status_code for _ in range(20)]
    assert first == second and 200 in first and any(s >= 500 for s in first)


def test_error_body_function() -> None:
    assert error_body(429)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert error_body(423)["category"] == "LOCKED"
    for status in (500, 502, 503):
        assert error_body(status)["category"] == "INTERNAL_ERROR"
        assert error_body(status)["status"] == "error"

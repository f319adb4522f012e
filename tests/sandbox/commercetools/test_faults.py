"""Fault injection, at run time through /_sandbox/faults and at start through CLI flags."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import Api, start


def set_faults(api: Api, **cfg: object) -> None:
    assert api.control("/faults", {"seed": 1, **cfg}).status_code == 200


@pytest.mark.usefixtures("clean_faults")
@pytest.mark.parametrize("status,code", [(502, "General"), (503, "OverCapacity"), (500, "General")])
def test_error_statuses(api: Api, status: int, code: str) -> None:
    set_faults(api, error_rate=1.0, error_statuses=[status])
    r = api.get("/customers")
    assert r.status_code == status
    assert r.json() == {"statusCode": status, "message": r.json()["message"],
                        "errors": [{"code": code, "message": r.json()["message"]}]}
    # the control API is never faulted
    assert api.control("/health", method="GET").status_code == 200


@pytest.mark.usefixtures("clean_faults")
def test_slow_and_timeout(api: Api) -> None:
    set_faults(api, slow_rate=1.0, slow_seconds=0.3)
    t = time.monotonic()
    assert api.get("/stores").status_code == 200
    assert time.monotonic() - t >= 0.3
    set_faults(api, slow_rate=0.0, timeout_rate=1.0, slow_seconds=0.1)
    r = api.get("/stores")
    assert r.status_code == 504 and r.json()["statusCode"] == 504


@pytest.mark.usefixtures("clean_faults")
def test_dropped_connection(api: Api) -> None:
    set_faults(api, drop_rate=1.0)
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.get(f"{api.url}/sandbox-shop/stores", headers=api.headers(), timeout=5)


@pytest.mark.usefixtures("clean_faults")
def test_partial_error_rate_and_counters(api: Api) -> None:
    set_faults(api, error_rate=0.5, error_statuses=[503])
    statuses = [api.get("/stores").status_code for _ in range(40)]
    assert 5 < statuses.count(503) < 35 and statuses.count(200) + statuses.count(503) == 40
    injected = api.control("/faults", method="GET").json()["injected"]
    assert injected.get("503", 0) >= statuses.count(503)
    log = api.control("/requests", method="GET").json()
    assert log["by_endpoint"]["GET /{projectKey}/stores"]["200"] >= 1
    assert log["by_status"].get("503", 0) >= statuses.count(503)  # injected faults are logged too


def test_bad_fault_config(api: Api) -> None:
    assert api.control("/faults", {"error_rate": 2}).status_code == 400
    assert api.control("/faults", {"nonsense": 1}).status_code == 400


def test_faults_from_cli(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = start(tmp_path_factory, "ct-faulty", ["--size", "10", "--error-rate", "1", "--error-statuses", "503",
                                                 "--fault-seed", "3"])
    try:
        # the token endpoint is an API path too, so it is faulted as well
        r = requests.post(f"{proc.url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=("ctsync-sandbox", "ctsync-sandbox-secret"), timeout=5)
        assert r.status_code == 503 and r.json()["errors"][0]["code"] == "OverCapacity"
        cfg = requests.get(f"{proc.url}/_sandbox/faults", timeout=5).json()["config"]
        assert cfg["error_rate"] == 1 and cfg["error_statuses"] == [503] and cfg["seed"] == 3
    finally:
        proc.stop()


def test_request_log_tags_endpoints(api: Api) -> None:
    api.control("/requests/reset")
    api.get("/customers")
    api.get("/customers/nope")
    log = api.control("/requests", method="GET").json()
    assert log["by_endpoint"]["GET /{projectKey}/customers"] == {"200": 1}
    assert log["by_endpoint"]["GET /{projectKey}/customers/{id}"] == {"404": 1}

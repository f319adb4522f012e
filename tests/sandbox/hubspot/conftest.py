"""One real HubSpot sandbox server per test session, reset before every test, driven over HTTP with
plain `requests` as any third-party client would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.process import SandboxProcess

TOKEN = "pat-na1-sandbox-token"
OTHER_TOKEN = "pat-na1-second-app"
LAG = 0.3
DEFAULT_LIMITS = {"burst_limit": 10_000, "daily_limit": 1_000_000, "search_limit": 1_000,
                  "associations_limit": 10_000, "search_lag": LAG, "retry_after": False,
                  "daily_reset_utc_offset_hours": 0.0}
NO_FAULTS = {"error_rate": 0.0, "rate_limit_rate": 0.0, "locked_rate": 0.0, "timeout_rate": 0.0,
             "drop_rate": 0.0, "slow_rate": 0.0, "slow_seconds": 0.5, "error_statuses": [502, 503], "seed": 7}


class Client:
    """A thin requests wrapper: base URL + bearer token."""

    def __init__(self, base: str, token: str | None = TOKEN) -> None:
        self.base = base
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=10, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.session.post(self.base + path, json=json, timeout=10, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.session.patch(self.base + path, json=json, timeout=10, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.session.put(self.base + path, json=json, timeout=10, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.session.delete(self.base + path, timeout=10, **kw)

    # helpers for common calls
    def upsert_contacts(self, emails: list[str], **props: Any) -> requests.Response:
        return self.post("/crm/v3/objects/contacts/batch/upsert", {"inputs": [
            {"id": e, "idProperty": "email", "properties": dict(props)} for e in emails]})

    def create(self, object_type: str, properties: dict[str, Any]) -> dict[str, Any]:
        response = self.post(f"/crm/v3/objects/{object_type}", {"properties": properties})
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    log = tmp_path_factory.mktemp("hubspot") / "server.log"
    proc = SandboxProcess("sandbox.hubspot", ["--token", TOKEN, "--token", OTHER_TOKEN, "--search-lag", str(LAG),
                                              "--portal-id", "4242"], log_path=log)
    with proc:
        yield proc


@pytest.fixture()
def base(server: SandboxProcess) -> str:
    url = server.url
    assert requests.post(f"{url}/_sandbox/reset", timeout=10).ok
    assert requests.post(f"{url}/_sandbox/faults", json=NO_FAULTS, timeout=10).ok
    assert requests.post(f"{url}/_sandbox/limits", json={**DEFAULT_LIMITS, "reset_usage": True}, timeout=10).ok
    return url


@pytest.fixture()
def hs(base: str) -> Client:
    return Client(base)


@pytest.fixture()
def control(base: str) -> Client:
    return Client(base, token=None)


def set_limits(base: str, **changes: Any) -> dict[str, Any]:
    response = requests.post(f"{base}/_sandbox/limits", json=changes, timeout=10)
    assert response.ok, response.text
    return dict(response.json())


def set_faults(base: str, **changes: Any) -> None:
    response = requests.post(f"{base}/_sandbox/faults", json=changes, timeout=10)
    assert response.ok, response.text


def log_path(server: SandboxProcess) -> Path | None:
    return server.log_path

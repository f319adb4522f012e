"""Fixtures: real sandbox server processes (small shops) driven over HTTP with `requests`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.process import SandboxProcess

PROJECT = "sandbox-shop"
CLIENT_ID = "ctsync-sandbox"
CLIENT_SECRET = "ctsync-sandbox-secret"
EXAMPLES = Path("/work/shared/reference/commercetools-examples")
ANCHOR = "2026-01-01T00:00:00.000Z"  # fixed, so two servers with one seed are identical


class Api:
    """A tiny commercetools client: token handling plus JSON helpers that return the raw response."""

    def __init__(self, url: str, scope: str | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        self.scope = scope
        self.token = self.fetch_token()

    def fetch_token(self) -> str:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        r = requests.post(f"{self.url}/oauth/token", data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, params: Any = None) -> requests.Response:
        return self.session.get(f"{self.url}/{PROJECT}{path}", params=params, headers=self.headers(), timeout=60)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(f"{self.url}/{PROJECT}{path}", json=body, headers=self.headers(), timeout=60)

    def delete(self, path: str, params: Any = None) -> requests.Response:
        return self.session.delete(f"{self.url}/{PROJECT}{path}", params=params, headers=self.headers(), timeout=60)

    def ok(self, path: str, params: Any = None) -> Any:
        r = self.get(path, params)
        assert r.status_code == 200, r.text
        return r.json()

    def all(self, path: str, wheres: list[str] | None = None) -> list[dict[str, Any]]:
        """Every record, keyset-paged by id (the QueryAll pattern)."""
        out: list[dict[str, Any]] = []
        last = None
        while True:
            params: list[tuple[str, str]] = [("sort", "id asc"), ("limit", "500"), ("withTotal", "false")]
            params += [("where", w) for w in wheres or []]
            if last:
                params += [("where", "id > :lastId"), ("var.lastId", last)]
            page = self.ok(path, params)["results"]
            out.extend(page)
            if len(page) < 500:
                return out
            last = page[-1]["id"]

    def control(self, path: str, body: Any = None, method: str = "POST") -> requests.Response:
        return requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=120)


def start(tmp_path_factory: pytest.TempPathFactory, name: str, args: list[str]) -> SandboxProcess:
    log = tmp_path_factory.mktemp(name) / "server.log"
    return SandboxProcess("sandbox.commercetools", args, log_path=log).start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    proc = start(tmp_path_factory, "ct", ["--size", "300", "--seed", "42", "--anchor", ANCHOR])
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api(server: SandboxProcess) -> Api:
    return Api(server.url)


@pytest.fixture
def clean_faults(api: Api) -> Iterator[None]:
    yield
    api.control("/faults", {"error_rate": 0, "slow_rate": 0, "timeout_rate": 0, "drop_rate": 0})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scale: the 100k-customer scale test (about 45 s)")

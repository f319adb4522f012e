"""OAuth client credentials, bearer checks, expiry and scopes."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .conftest import CLIENT_ID, CLIENT_SECRET, EXAMPLES, PROJECT, Api, start


def test_token_issue_default_scopes(api: Api) -> None:
    r = requests.post(f"{api.url}/oauth/token", data={"grant_type": "client_credentials"},
                      auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 172_800
    scopes = body["scope"].split()
    assert f"manage_project:{PROJECT}" in scopes
    for s in ("view_customers", "view_orders", "view_payments", "view_messages", "view_stores"):
        assert f"{s}:{PROJECT}" in scopes


def test_token_with_requested_scope(api: Api) -> None:
    r = requests.post(f"{api.url}/oauth/token",
                      data={"grant_type": "client_credentials", "scope": f"view_customers:{PROJECT}"},
                      auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert r.status_code == 200
    assert r.json()["scope"] == f"view_customers:{PROJECT}"


@pytest.mark.parametrize("auth", [(CLIENT_ID, "wrong"), ("nobody", CLIENT_SECRET), None])
def test_bad_client_credentials(api: Api, auth: tuple[str, str] | None) -> None:
    r = requests.post(f"{api.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=auth, timeout=10)
    assert r.status_code == 401
    body = r.json()
    assert body["statusCode"] == 401
    assert body["error"] == "invalid_client"
    assert body["errors"][0]["code"] == "invalid_client"
    assert body["error_description"]
    assert body["message"]


def test_bad_grant_type_and_scope(api: Api) -> None:
    r = requests.post(f"{api.url}/oauth/token", data={"grant_type": "password"},
                      auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = requests.post(f"{api.url}/oauth/token", data={"grant_type": "client_credentials", "scope": "manage_all:x"},
                      auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc", "Bearer "])
def test_missing_or_wrong_bearer_is_exact_auth_error(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = requests.get(f"{api.url}/{PROJECT}/customers", headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.json() == json.loads((EXAMPLES / "AuthErrorResponse.json").read_text())


def test_insufficient_scope(api: Api) -> None:
    limited = Api(api.url, scope=f"view_customers:{PROJECT}")
    assert limited.get("/customers").status_code == 200
    assert limited.get("/customer-groups").status_code == 200
    for path in ("/orders", "/carts", "/payments", "/messages"):
        r = limited.get(path)
        assert r.status_code == 403, path
        body = r.json()
        assert body["statusCode"] == 403
        assert body["error"] == "insufficient_scope"
        assert body["errors"][0]["code"] == "insufficient_scope"
        assert "One of the following scopes is missing" in body["message"]
    # read-only scope cannot write
    r = limited.post("/customers", {"email": "x@example.com", "password": "secret"})
    assert r.status_code == 403
    # orders scope covers carts
    orders_only = Api(api.url, scope=f"view_orders:{PROJECT}")
    assert orders_only.get("/carts").status_code == 200
    assert orders_only.get("/customers").status_code == 403


def test_wrong_project_key(api: Api) -> None:
    r = requests.get(f"{api.url}/other-project/customers", headers=api.headers(), timeout=10)
    assert r.status_code == 403
    assert r.json()["errors"][0]["code"] == "insufficient_scope"


def test_tokens_expire_by_lifetime_and_on_demand(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = start(tmp_path_factory, "ct-expiry", ["--size", "20", "--token-lifetime", "1"])
    try:
        client = Api(proc.url)
        assert client.get("/customers").status_code == 200
        time.sleep(1.2)
        r = client.get("/customers")
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "invalid_token"
        client.token = client.fetch_token()
        assert client.get("/customers").status_code == 200
        assert requests.post(f"{proc.url}/_sandbox/tokens/expire", timeout=10).json()["expired"] >= 1
        assert client.get("/customers").status_code == 401
    finally:
        proc.stop()


def test_expire_all_tokens_on_shared_server(api: Api) -> None:
    other = Api(api.url)
    assert other.get("/stores").status_code == 200
    api.control("/tokens/expire")
    assert other.get("/stores").status_code == 401
    api.token = api.fetch_token()  # the shared client gets a fresh token, as a real client would
    assert api.get("/stores").status_code == 200

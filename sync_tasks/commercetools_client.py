"""commercetools client: OAuth client-credentials tokens, queries, reads and versioned updates.

Transient statuses (502/503/504, dropped connections) are retried here a few times with backoff, as
the official SDKs do; what still fails is raised in the taxonomy for the task to retry later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
import requests

from sync_tasks.errors import (
    COMMERCETOOLS_ACTIONS,
    TRANSPORT_ERRORS,
    CheckThenRetryError,
    ConflictError,
    RetryableError,
    TokenExpiredError,
    backoff_seconds,
    raise_for_response,
    transport_error,
)
from sync_tasks.settings import Settings

API = "commercetools"
# Values per `field in (...)` query: 200 ids make a predicate of ~8 kB. 500 (a full page) made one of
# 20 kB, past what the sandbox accepts (its limit stands in for commercetools' URL and complexity ones).
VALUES_PER_QUERY = 200
PAGE_LIMIT = 500
TOKEN_MARGIN_SECONDS = 300
IN_CALL_RETRIES = 3

Decode = Callable[[bytes], Any]  # a response body → its value


class CommercetoolsClient:
    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "ctsync/0.1"})
        self.base = f"{settings.ct_base}/{settings.ct_project_key}"
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        self.calls = 0

    # -- auth ----------------------------------------------------------------------------------
    def _fetch_token(self) -> str:
        data = {"grant_type": "client_credentials"}
        if self.settings.ct_scopes:
            data["scope"] = self.settings.ct_scopes
        try:
            response = self.session.post(
                f"{self.settings.ct_auth_base}/oauth/token", data=data,
                auth=(self.settings.ct_client_id, self.settings.ct_client_secret.get_secret_value()),
                timeout=self.settings.http_timeout)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, API) from exc
        self.calls += 1
        raise_for_response(response, COMMERCETOOLS_ACTIONS, API)
        body = response.json()
        self._token = str(body["access_token"])
        self._token_expires = time.monotonic() + float(body.get("expires_in", 3600)) - TOKEN_MARGIN_SECONDS
        return self._token

    def token(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._token_expires:
                return self._fetch_token()
            return self._token

    # -- transport -----------------------------------------------------------------------------
    def request(self, method: str, path: str, params: Any = None, json: Any = None,
                decode: Decode = orjson.loads) -> Any:
        """Send with a valid token; refresh once on 401; retry transient failures briefly. `decode`
        reads the body (a caller wanting a few fields of big records passes a narrow decoder)."""
        refreshed = False
        attempt = 0
        while True:
            headers = {"Authorization": f"Bearer {self.token()}"}
            try:
                try:
                    response = self.session.request(method, self.base + path, params=params, json=json,
                                                    headers=headers, timeout=self.settings.http_timeout)
                except TRANSPORT_ERRORS as exc:
                    raise transport_error(exc, API) from exc
                self.calls += 1
                raise_for_response(response, COMMERCETOOLS_ACTIONS, API)
                # orjson: a page of 500 orders with their payments is MBs; the json module's decoding
                # of it was a fifth of a backfill's worker time.
                return decode(response.content)
            except TokenExpiredError:
                if refreshed:
                    raise
                refreshed = True
                self.token(refresh=True)
            except CheckThenRetryError:
                raise  # a write may have landed: the caller re-reads before repeating it
            except RetryableError:
                # Reads are safe to repeat; writes carry a version, so a repeat that already landed
                # comes back as a 409 the caller resolves.
                attempt += 1
                if attempt > IN_CALL_RETRIES:
                    raise
                time.sleep(min(backoff_seconds(attempt, base=0.2), 2.0))

    # -- resources -----------------------------------------------------------------------------
    def query(self, resource: str, where: list[str] | None = None, sort: list[str] | None = None,
              limit: int = 500, with_total: bool = False, expand: list[str] | None = None,
              decode: Decode = orjson.loads) -> dict[str, Any]:
        params: list[tuple[str, str]] = [("limit", str(limit)), ("withTotal", str(with_total).lower())]
        params += [("where", w) for w in where or []]
        params += [("sort", s) for s in sort or []]
        params += [("expand", e) for e in expand or []]
        return dict(self.request("GET", f"/{resource}", params=params, decode=decode))

    def get(self, resource: str, resource_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/{resource}/{resource_id}"))

    def update(self, resource: str, resource_id: str, version: int, actions: list[dict[str, Any]],
               max_conflicts: int = 3,
               rebuild: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        """Apply update actions with a version check; on 409 ConcurrentModification re-read the
        current version and try again. The actions must be safe to re-apply, or `rebuild` makes them
        afresh from the re-read resource (no actions left: the resource already holds the change)."""
        for _ in range(max_conflicts + 1):
            try:
                return dict(self.request("POST", f"/{resource}/{resource_id}",
                                         json={"version": version, "actions": actions}))
            except ConflictError as exc:
                if rebuild is not None:
                    current = self.get(resource, resource_id)
                    actions, version = rebuild(current), int(current["version"])
                    if not actions:
                        return current
                    continue
                version = exc.current_version or int(self.get(resource, resource_id)["version"])
            except CheckThenRetryError:
                current = self.get(resource, resource_id)
                if int(current["version"]) > version:
                    return current  # the write landed before the 500
        raise RetryableError(f"{API}: {resource}/{resource_id} kept changing; update not applied")


class Queryable(Protocol):
    def query(self, resource: str, where: list[str] | None = None, sort: list[str] | None = None,
              limit: int = 500, with_total: bool = False, expand: list[str] | None = None,
              decode: Decode = orjson.loads) -> dict[str, Any]: ...


def query_in(ct: Queryable, resource: str, field: str, values: Iterable[str], expand: list[str] | None = None,
             where: tuple[str, ...] = (), decode: Decode = orjson.loads) -> list[dict[str, Any]]:
    """Every `resource` whose `field` is one of `values`: groups of VALUES_PER_QUERY values, each group
    paged by id (a group of customers may have more orders than a page). A value holding a quote or a
    backslash is left out: it cannot be quoted safely, and no commercetools id holds one."""
    usable = sorted({v for v in values if v and '"' not in v and "\\" not in v})
    out: list[dict[str, Any]] = []
    for i in range(0, len(usable), VALUES_PER_QUERY):
        quoted = ", ".join(f'"{v}"' for v in usable[i:i + VALUES_PER_QUERY])
        last: str | None = None
        while True:
            predicates = [f"{field} in ({quoted})", *where] + ([f'id > "{last}"'] if last else [])
            page = ct.query(resource, where=predicates, sort=["id asc"], limit=PAGE_LIMIT,
                            expand=expand, decode=decode).get("results", [])
            out += page
            if len(page) < PAGE_LIMIT:
                break
            last = page[-1]["id"]
    return out

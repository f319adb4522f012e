"""The sandboxes' `/_sandbox/` control and inspection APIs, as the benchmark uses them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests

from bench.figures import CallCounts

TIMEOUT = 600


def reset_log(url: str) -> None:
    requests.post(f"{url}/_sandbox/requests/reset", timeout=TIMEOUT).raise_for_status()


def summary(url: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{url}/_sandbox/requests", params={"limit": 0}, timeout=TIMEOUT).json()
    return body


def counts(url: str) -> CallCounts:
    return CallCounts.from_summary(summary(url).get("by_endpoint", {}))


def entries(url: str, since: float = 0.0, capacity: int = 1_000_000) -> list[dict[str, Any]]:
    """Request-log entries (timestamp, method, endpoint, status; bodies dropped here)."""
    body = requests.get(f"{url}/_sandbox/requests", params={"limit": capacity, "since": since}, timeout=TIMEOUT).json()
    return [{k: e[k] for k in ("ts", "method", "endpoint", "status")} for e in body.get("entries", [])]


def total_requests(url: str) -> int:
    return int(summary(url).get("total", 0))


def hubspot_objects(url: str, obj: str, page: int = 20_000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = requests.get(f"{url}/_sandbox/objects/{obj}", params={"offset": offset, "limit": page},
                            timeout=TIMEOUT).json()
        batch = body.get("results", body) if isinstance(body, dict) else body
        out += [r for r in batch if not r.get("archived")]
        if len(batch) < page:
            return out
        offset += page


def key_census(records: list[dict[str, Any]], key: str) -> tuple[set[str], int]:
    """Distinct values of our unique key, and records beyond one per key (duplicates)."""
    seen = Counter(str(r.get("properties", {}).get(key)) for r in records if r.get("properties", {}).get(key))
    return set(seen), sum(n - 1 for n in seen.values())


def hubspot_contact(url: str, hs_id: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{url}/_sandbox/objects/contacts/{hs_id}", timeout=TIMEOUT).json()
    return body


def reset_hubspot(url: str) -> None:
    requests.post(f"{url}/_sandbox/reset", timeout=TIMEOUT).raise_for_status()


def reset_commercetools(url: str, size: int, seed: int) -> dict[str, Any]:
    response = requests.post(f"{url}/_sandbox/reset", params={"size": size, "seed": seed}, timeout=TIMEOUT)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def ct_stats(url: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{url}/_sandbox/stats", timeout=TIMEOUT).json()
    return body


def touch(url: str, count: int | None = None, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Change customers in commercetools through its normal update path (setFirstName)."""
    body: dict[str, Any] = {"action": "setFirstName"}
    if ids:
        body["ids"] = ids
    else:
        body["count"] = count
    response = requests.post(f"{url}/_sandbox/customers/touch", json=body, timeout=TIMEOUT)
    response.raise_for_status()
    return list(response.json()["touched"])

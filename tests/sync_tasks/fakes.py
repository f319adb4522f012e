"""Stand-ins for HubSpot's batch endpoints, for unit tests that run without a broker or a server.
(The end-to-end tests use the real sandbox over HTTP.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sync_tasks.hubspot_client import BatchResult


class FakeContacts:
    def __init__(self, contacts: list[dict[str, Any]] | None = None) -> None:
        self.contacts = {str(c["id"]): c for c in contacts or []}
        self.reads: list[tuple[str | None, list[str]]] = []
        self.prepaid_calls: list[int] = []

    @contextmanager
    def prepaid(self, calls: int) -> Iterator[None]:
        self.prepaid_calls.append(calls)
        yield

    def batch_read(self, obj: str, ids: list[str], properties: list[str],
                   id_property: str | None = None) -> BatchResult:
        self.reads.append((id_property, list(ids)))
        results = []
        for wanted in ids:
            for cid, contact in self.contacts.items():
                props = contact["properties"]
                value = props.get(id_property) if id_property else cid
                if value is not None and str(value).lower() == wanted.lower():
                    results.append({"id": cid, "properties": dict(props)})
        return BatchResult(results=results)


def customer(cid: str, email: str | None, modified: str = "2026-01-01T00:00:00.000Z", **extra: Any) -> dict[str, Any]:
    return {"id": cid, "version": 1, "email": email, "firstName": extra.pop("first", "Ann"),
            "lastName": "Lee", "createdAt": extra.pop("created", "2025-01-01T00:00:00.000Z"),
            "lastModifiedAt": modified, "addresses": [], **extra}

"""Keyset pagination over commercetools resources, ordered by (lastModifiedAt, id).

Never offset paging: offsets stop at 10,000 and shift under concurrent writes. Each page asks for
records strictly after the last (lastModifiedAt, id) seen, so a record changed while we page moves
to the end of the order and is read later in the same run, never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

SORT = ["lastModifiedAt asc", "id asc"]


class QueryClient(Protocol):
    def query(self, resource: str, where: list[str] | None = None, sort: list[str] | None = None,
              limit: int = 500, with_total: bool = False, expand: list[str] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Cursor:
    last_modified_at: str
    id: str

    def predicate(self) -> str:
        ts, rid = _quote(self.last_modified_at), _quote(self.id)
        return f"lastModifiedAt > {ts} or (lastModifiedAt = {ts} and id > {rid})"

    def as_dict(self) -> dict[str, str]:
        return {"lastModifiedAt": self.last_modified_at, "id": self.id}

    @classmethod
    def from_dict(cls, data: dict[str, str] | None) -> Cursor | None:
        return cls(data["lastModifiedAt"], data["id"]) if data else None


@dataclass
class KeysetPaginator:
    """Yields pages of `resource` with lastModifiedAt >= `since` (all when None), after `cursor`."""

    client: QueryClient
    resource: str
    since: str | None = None
    filters: list[str] = field(default_factory=list)
    page_size: int = 500
    cursor: Cursor | None = None
    expand: list[str] = field(default_factory=list)
    pages: int = 0

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            where = list(self.filters)
            if self.since:
                where.append(f"lastModifiedAt >= {_quote(self.since)}")
            if self.cursor:
                where.append(self.cursor.predicate())
            body = self.client.query(self.resource, where=where, sort=SORT, limit=self.page_size,
                                     with_total=False, expand=self.expand or None)
            results: list[dict[str, Any]] = body.get("results", [])
            self.pages += 1
            if not results:
                return
            last = results[-1]
            new_cursor = Cursor(last["lastModifiedAt"], last["id"])
            if self.cursor is not None and (new_cursor.last_modified_at, new_cursor.id) <= (
                    self.cursor.last_modified_at, self.cursor.id):
                raise RuntimeError(f"pagination loop on {self.resource}: cursor did not advance")
            self.cursor = new_cursor
            yield results
            if len(results) < self.page_size:
                return


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

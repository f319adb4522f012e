from __future__ import annotations

from typing import Any

import pytest

from sync_tasks.pagination import Cursor, KeysetPaginator


class FakeShop:
    """Answers keyset queries over an in-memory list, like the commercetools query API would."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.queries: list[list[str]] = []
        self.on_query: Any = None

    def query(self, resource: str, where: list[str] | None = None, sort: list[str] | None = None,
              limit: int = 500, with_total: bool = False, expand: list[str] | None = None) -> dict[str, Any]:
        self.queries.append(list(where or []))
        if self.on_query:
            self.on_query(len(self.queries))
        cursor = None
        for w in where or []:
            if w.startswith("lastModifiedAt > "):
                ts = w.split('"')[1]
                rid = w.split('"')[5]
                cursor = (ts, rid)
        rows = sorted(self.records, key=lambda r: (r["lastModifiedAt"], r["id"]))
        if cursor:
            rows = [r for r in rows if (r["lastModifiedAt"], r["id"]) > cursor]
        return {"results": [dict(r) for r in rows[:limit]]}


def _records(n: int) -> list[dict[str, Any]]:
    # Many share one timestamp: the id must break ties.
    return [{"id": f"id-{i:04d}", "lastModifiedAt": f"2026-01-01T00:00:{i // 7:02d}.000Z"} for i in range(n)]


def test_reads_every_record_once_across_ties() -> None:
    shop = FakeShop(_records(53))
    pages = list(KeysetPaginator(shop, "customers", page_size=10))
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == 53 and len(set(ids)) == 53
    assert [len(p) for p in pages] == [10, 10, 10, 10, 10, 3]
    assert all("offset" not in " ".join(q) for q in shop.queries)


def test_since_and_filters_are_sent_as_where() -> None:
    shop = FakeShop(_records(3))
    list(KeysetPaginator(shop, "customers", since="2026-01-01T00:00:00.000Z", filters=['stores(key="eu")']))
    assert shop.queries[0] == ['stores(key="eu")', 'lastModifiedAt >= "2026-01-01T00:00:00.000Z"']


def test_record_changed_while_paging_is_read_later() -> None:
    records = _records(30)
    shop = FakeShop(records)

    def change_first_record(n: int) -> None:
        if n == 2:  # after the first page was read, record 0 changes
            records[0]["lastModifiedAt"] = "2026-02-01T00:00:00.000Z"
            records[0]["version"] = 2

    shop.on_query = change_first_record
    seen = [r for page in KeysetPaginator(shop, "customers", page_size=10) for r in page]
    assert {r["id"] for r in seen} == {r["id"] for r in records}
    assert seen[-1]["id"] == "id-0000" and seen[-1]["version"] == 2


def test_resumes_from_a_cursor() -> None:
    shop = FakeShop(_records(20))
    cursor = Cursor("2026-01-01T00:00:01.000Z", "id-0009")
    ids = [r["id"] for page in KeysetPaginator(shop, "customers", cursor=cursor) for r in page]
    assert ids[0] == "id-0010" and len(ids) == 10


def test_a_cursor_that_does_not_advance_is_an_error() -> None:
    class Stuck(FakeShop):
        def query(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"results": [{"id": "a", "lastModifiedAt": "2026-01-01T00:00:00.000Z"}] * 2}

    with pytest.raises(RuntimeError, match="did not advance"):
        list(KeysetPaginator(Stuck([]), "customers", page_size=2))


def test_quotes_are_escaped() -> None:
    expected = 'lastModifiedAt > "2026\\"" or (lastModifiedAt = "2026\\"" and id > "x\\"y")'
    assert Cursor('2026"', 'x"y').predicate() == expected

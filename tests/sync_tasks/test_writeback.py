"""The write-back poll against HubSpot search's rules: the 10,000-result cap, paging, the watermark
with the search lag, the page budget, and the echo guard's versions (real Redis; a scripted search)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from sync_tasks.constants import Keys
from sync_tasks.limiter import Bucket
from sync_tasks.mapping_file import DEFAULT_MAPPING, parse_mapping
from sync_tasks.state import SyncState
from sync_tasks.writeback import SEARCH_CAP, own_versions, poll

MAPPING = parse_mapping(DEFAULT_MAPPING.read_text().replace(
    'ct_newsletter = { transform = "boolean",',
    'ct_newsletter = { owner = "hubspot", write_back = true, transform = "boolean",'))
T0 = 1_770_000_000_000


class Search:
    """HubSpot search as documented: GTE filter, ascending sort, pages of `limit`, 400 past 10,000."""

    def __init__(self, stamps: list[int]) -> None:
        self.contacts = sorted((ts, str(i + 1)) for i, ts in enumerate(stamps))
        self.unindexed: set[str] = set()  # written, not yet searchable (HubSpot's index lag)
        self.calls: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def post(self, path: str, body: Any, bucket: Bucket = Bucket.BURST) -> Any:
        assert path == "/crm/v3/objects/contacts/search" and bucket is Bucket.SEARCH
        self.calls.append(body)
        since = int(body["filterGroups"][0]["filters"][0]["value"])
        after, limit = int(body["after"]), int(body["limit"])
        if after >= SEARCH_CAP:
            raise AssertionError("paged past HubSpot's 10,000-result cap")
        hits = [c for c in self.contacts if c[0] >= since and c[1] not in self.unindexed]
        page = hits[after:min(after + limit, SEARCH_CAP)]
        self.seen |= {i for _, i in page}
        out: dict[str, Any] = {"results": [{"id": i, "properties": {"lastmodifieddate": str(ts)}} for ts, i in page]}
        if after + limit < len(hits):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return out


def test_the_poll_restarts_from_the_last_timestamp_before_the_cap_and_reads_everything(
        redis_client: redis.Redis) -> None:
    search = Search([T0 + i for i in range(12_500)])
    redis_client.set(Keys.writeback_watermark(), T0)
    result = poll(search, object(), SyncState(redis_client), MAPPING, "t",  # type: ignore[arg-type]
                  lag_seconds=60, max_pages=1000)
    assert result.complete and len(search.seen) == 12_500
    assert max(int(c["after"]) + int(c["limit"]) for c in search.calls) <= SEARCH_CAP
    restarts = [int(c["filterGroups"][0]["filters"][0]["value"]) for c in search.calls if c["after"] == "0"]
    assert restarts[0] == T0 and len(restarts) == 2 and restarts[1] > T0 + 9_000
    # Complete: the next poll starts one search lag before this one began.
    now_ms = int(redis_client.time()[0]) * 1000
    assert abs(int(redis_client.get(Keys.writeback_watermark()) or 0) - (now_ms - 60_000)) < 5_000
    assert redis_client.get(Keys.writeback_lock()) is None


def test_an_edit_indexed_after_a_poll_is_found_by_the_next_one(redis_client: redis.Redis) -> None:
    now_ms = int(redis_client.time()[0]) * 1000
    search = Search([now_ms - 40_000, now_ms - 1_000])  # "2" was edited a second ago
    search.unindexed.add("2")
    state = SyncState(redis_client)
    poll(search, object(), state, MAPPING, "t", lag_seconds=60, max_pages=10)  # type: ignore[arg-type]
    assert search.seen == {"1"}
    search.unindexed.clear()  # the index caught up
    search.seen.clear()
    poll(search, object(), state, MAPPING, "t", lag_seconds=60, max_pages=10)  # type: ignore[arg-type]
    assert "2" in search.seen


def test_a_poll_cut_short_by_its_page_budget_continues_from_the_last_timestamp(redis_client: redis.Redis) -> None:
    search = Search([T0 + i for i in range(500)])
    redis_client.set(Keys.writeback_watermark(), T0)
    result = poll(search, object(), SyncState(redis_client), MAPPING, "t",  # type: ignore[arg-type]
                  lag_seconds=60, max_pages=2)
    assert not result.complete and result.pages == 2
    assert int(redis_client.get(Keys.writeback_watermark()) or 0) == T0 + 199


def test_contacts_sharing_one_timestamp_beyond_the_cap_do_not_loop_forever(redis_client: redis.Redis) -> None:
    search = Search([T0] * 10_050 + [T0 + 5])
    redis_client.set(Keys.writeback_watermark(), T0)
    result = poll(search, object(), SyncState(redis_client), MAPPING, "t",  # type: ignore[arg-type]
                  lag_seconds=0, max_pages=1000)
    assert result.complete and str(len(search.contacts)) in search.seen  # the later one was reached


def test_no_write_back_property_means_no_search(redis_client: redis.Redis) -> None:
    search = Search([T0])
    result = poll(search, object(), SyncState(redis_client), parse_mapping(DEFAULT_MAPPING.read_text()),  # type: ignore[arg-type]
                  "t", lag_seconds=60, max_pages=10)
    assert search.calls == [] and result.pages == 0


def test_a_running_poll_holds_a_lock(redis_client: redis.Redis) -> None:
    redis_client.set(Keys.writeback_lock(), "1")
    search = Search([T0])
    assert poll(search, object(), SyncState(redis_client), MAPPING, "t",  # type: ignore[arg-type]
                lag_seconds=60, max_pages=10).locked
    assert search.calls == []


@pytest.mark.parametrize("stored", [{"c1": "7"}, {}])
def test_own_versions_reads_the_echo_guard(redis_client: redis.Redis, stored: dict[str, str]) -> None:
    if stored:
        redis_client.hset(Keys.writeback_versions(), mapping=stored)
    assert own_versions(redis_client, ["c1", "c2"]) == stored

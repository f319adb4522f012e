"""The extract step: read changed records from commercetools and hand them on in chunks.

Delta runs read the entity's watermark, query everything modified since then minus an overlap,
and advance the watermark only after every chunk of the run was enqueued: a crash mid-run
re-extracts, it never skips. Backfills ignore the watermark, leave it where it is, and keep a cursor
of their own so an interrupted backfill resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.constants import Keys, Lane
from sync_tasks.pagination import Cursor, KeysetPaginator
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 300
EXPAND = {"customers": ["customerGroup"], "orders": ["paymentInfo.payments[*]"]}
# Messages the sync applies; other types are not read at all.
FILTERS = {"messages": ['resource(typeId="order") or resource(typeId="payment") or resource(typeId="customer")']}


def chunk_size(entity: str, settings: Settings) -> int:
    # Carts keep chains of CHUNK_SIZE: their chain passes raw carts by value (orders by reference,
    # `sync_tasks.payloads`), and a delta holds few of them.
    return settings.order_chunk_size if entity == "orders" else settings.chunk_size


def person_key(record: dict[str, Any]) -> tuple[int, str, str]:
    """Guests first, then by customer: a person's orders share a chunk (one ledger write, and the
    guests' contacts in one upsert per page rather than one per chunk)."""
    customer = record.get("customerId")
    if customer:
        return 1, str(customer), str(record.get("id", ""))
    return 0, str(record.get("customerEmail") or "").strip().lower(), str(record.get("id", ""))


def chunks(entity: str, page: list[dict[str, Any]], settings: Settings) -> Iterator[list[dict[str, Any]]]:
    """A page cut into the chains' chunks. Orders and carts: grouped by person, at most
    ORDER_CHUNK_SIZE records and ORDER_CHUNK_LINE_ITEMS line items each, so their line items go to
    HubSpot in full batches."""
    size = chunk_size(entity, settings)
    if entity not in ("orders", "carts"):
        for i in range(0, len(page), size):
            yield page[i:i + size]
        return
    chunk: list[dict[str, Any]] = []
    items = 0
    for record in sorted(page, key=person_key):
        n = len(record.get("lineItems") or [])
        if chunk and (len(chunk) >= size or items + n > settings.order_chunk_line_items):
            yield chunk
            chunk, items = [], 0
        chunk.append(record)
        items += n
    if chunk:
        yield chunk

Enqueue = Callable[[list[dict[str, Any]], dict[str, Any]], None]
# Asked before each page of a backfill: None goes on; seconds stops the paging here (the cursor is
# saved) for the caller to continue the run that much later.
Pause = Callable[[], float | None]
BACKFILL_SLICE_SECONDS = 120.0  # one backfill task pages this long, far inside the task time limit
BACKFILL_PAUSE_SECONDS = 1.0  # then looks again whether fewer chains are in flight


def paced(in_flight: Callable[[], int], max_chains: int, slice_seconds: float = BACKFILL_SLICE_SECONDS,
          clock: Callable[[], float] = time.monotonic) -> Pause:
    """A backfill's pace: it stops paging for now after `slice_seconds` (a task never meets its time
    limit, however large the shop: the next task goes on from the cursor), and while `max_chains` of
    the entity's chains are in flight (BACKFILL_MAX_CHAINS: the broker and Redis hold a bounded part
    of the shop, not all of it, and live deltas are not queued behind the whole backfill)."""
    started = clock()

    def pause() -> float | None:
        if clock() - started >= slice_seconds:
            return 0.0
        if in_flight() >= max_chains:
            return BACKFILL_PAUSE_SECONDS
        return None

    return pause


@dataclass
class RunContext:
    """Travels with every chunk through match → map → push."""

    entity: str
    run_id: str
    mode: str  # delta | backfill
    lane: str = Lane.LIVE.value
    force: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "run_id": self.run_id, "mode": self.mode, "lane": self.lane,
                "force": self.force}


@dataclass
class ExtractResult:
    run_id: str
    extracted: int = 0
    chunks: int = 0
    pages: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    locked: bool = False
    # A backfill that paused its paging (`pause`): continue the run in this many seconds.
    resume_in: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def store_filter(store: str | None, entity: str = "customers") -> list[str]:
    """Customers list their stores; orders and carts belong to one."""
    if not store or entity == "messages":
        return []
    field = "stores" if entity == "customers" else "store"
    return [f'{field}(key="{store}")']


def run_extract(entity: str, ct: CommercetoolsClient, r: redis.Redis, settings: Settings, enqueue: Enqueue,
                mode: str = "delta", since: str | None = None, store: str | None = None,
                run_id: str | None = None, pause: Pause | None = None) -> ExtractResult:
    state = SyncState(r)
    backfill = mode == "backfill"
    lock_name = Keys.extract_lock(f"{entity}:{run_id}" if backfill and run_id else entity)
    lock = r.lock(lock_name, timeout=LOCK_TIMEOUT_SECONDS, blocking=False)
    if not lock.acquire():
        log.info("extract %s: another run holds the lock; skipping this one", entity)
        return ExtractResult(run_id=run_id or "", locked=True)
    try:
        run_id = state.start_run(entity, mode, run_id, since=since, store=store)
        ctx = RunContext(entity, run_id, mode, Lane.BACKFILL.value if backfill else Lane.LIVE.value, force=backfill)
        result = ExtractResult(run_id=run_id)
        cursor: Cursor | None = None
        if backfill:
            raw = r.get(Keys.backfill_cursor(run_id))
            cursor = Cursor.from_dict(json.loads(raw)) if raw else None
            # The first backfill starts delta sync: changes from now on are the deltas' (a change the
            # backfill also reads is merely written twice); nothing before now is left to them.
            r.set(Keys.watermark(entity), format_ts(dt.datetime.now(dt.UTC)), nx=True)
        else:
            wm = r.get(Keys.watermark(entity))
            result.watermark_before = str(wm) if wm else None
            if not wm:
                # No backfill yet: delta sync starts now. History is an initial load: `ctsync backfill`.
                start = format_ts(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.extract_overlap_seconds))
                r.set(Keys.watermark(entity), start, nx=True)
                log.info("extract %s: no watermark; delta sync starts at %s (run a backfill for history)",
                         entity, start)
                state.finish_extract(run_id)
                result.watermark_after = start
                return result
            since = format_ts(parse_ts(str(wm)) - dt.timedelta(seconds=settings.extract_overlap_seconds))
        filters = FILTERS.get(entity, []) + store_filter(store, entity)
        if entity == "customers" and not store and settings.sync_stores:
            # SYNC_STORES: read only those stores' customers (the map step filters channels).
            keys = ", ".join(f'"{k}"' for k in settings.sync_stores)
            filters.append(f"stores(key in ({keys}))")
        paginator = KeysetPaginator(ct, entity, since=since, filters=filters,
                                    page_size=settings.extract_page_size, cursor=cursor,
                                    expand=EXPAND.get(entity, []))
        newest = result.watermark_before
        if backfill and pause and (wait := pause()) is not None:
            result.resume_in = wait
            return result
        for page in paginator:
            for chunk in chunks(entity, page, settings):
                enqueue(chunk, ctx.as_dict())
                result.chunks += 1
            result.extracted += len(page)
            state.count(run_id, extracted=len(page))
            last = page[-1]["lastModifiedAt"]
            newest = last if newest is None or parse_ts(last) > parse_ts(newest) else newest
            if backfill and paginator.cursor:
                r.set(Keys.backfill_cursor(run_id), json.dumps(paginator.cursor.as_dict()), ex=14 * 24 * 3600)
                state.touch_run(run_id)
            lock.reacquire()
            if backfill and pause and (wait := pause()) is not None:
                result.resume_in = wait
                break
        result.pages = paginator.pages
        if result.resume_in is not None:
            return result  # not finished: the next slice goes on from the cursor
        if not backfill and newest and newest != result.watermark_before:
            # Only now: every chunk of the run is on the queue.
            r.set(Keys.watermark(entity), newest)
        result.watermark_after = newest if not backfill else None
        state.finish_extract(run_id)
        return result
    finally:
        try:
            lock.release()
        except Exception:
            log.warning("extract %s: lock expired before release", entity)

"""Celery tasks: thin wrappers that call the plain functions of extract, match, changes and push.

Retry policy, decided once in `SyncTask.defer`:
- WaitError is a wait: our fleet budget or a HubSpot 429 (RateLimitedError), or another push
  writing the same contact (BusyError). Re-queued with a countdown, never counted as an error retry.
- RetryableError backs off exponentially with jitter and counts; past `MAX_ERROR_RETRIES` the
  work goes to the dead-letter stream.
- PermanentError goes to the dead-letter stream at once.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import Any

import redis
from celery import Task, chain

import celeryconfig
from sync_tasks import order_history
from sync_tasks.changes import Filters, plan_contacts
from sync_tasks.commercetools_client import CommercetoolsClient, query_in
from sync_tasks.company_links import claim_links, finish_links
from sync_tasks.consent import push_consent
from sync_tasks.constants import PUSH_QUEUE_BY_LANE, Entity, Lane, Queue, TaskName
from sync_tasks.dlq import FailureLog
from sync_tasks.errors import PermanentError, RetryableError, SyncError, WaitError, backoff_seconds
from sync_tasks.extract import paced, run_extract
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.inflight import ChunkLedger, backfill_in_broker, reconcile_stale
from sync_tasks.joins import claim_joins, defer_joins, first_pass, send_joins
from sync_tasks.limiter import RateLimiter
from sync_tasks.mapping import load_mapping
from sync_tasks.match import Match, match_customers
from sync_tasks.push import push_plan
from sync_tasks.redis_conn import get_redis
from sync_tasks.runs import send_backfill, stalled_backfills
from sync_tasks.schema import sync_refusal
from sync_tasks.settings import get_settings
from sync_tasks.state import SyncState
from workers.app import app

log = logging.getLogger(__name__)


# -- per-process clients, made lazily after the worker forks -------------------------------------
@functools.lru_cache(maxsize=1)
def commercetools() -> CommercetoolsClient:
    return CommercetoolsClient(get_settings())


@functools.lru_cache(maxsize=2)
def hubspot(lane: str = Lane.LIVE.value) -> HubSpotClient:
    settings = get_settings()
    return HubSpotClient(settings, RateLimiter(get_redis(), settings), backfill=lane == Lane.BACKFILL.value)


def state() -> SyncState:
    return SyncState(get_redis())


def inflight() -> ChunkLedger:
    return ChunkLedger(get_redis())


class SyncTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    max_retries = None  # waits are unlimited; real errors are counted in `errors`
    # Redis itself unreachable (restart, failover): not the task's fault; retried without counting.
    autoretry_for = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    retry_backoff = 2
    retry_backoff_max = 10  # below MAX_COUNTDOWN even at the smallest visibility timeout (20 s)
    retry_jitter = True

    def defer(self, exc: SyncError, args: tuple[Any, ...], errors: int, run_id: str | None,
              record_ids: list[str], payload: Any, entity: str = "customers") -> None:
        """Re-queue after `exc`, or dead-letter when it is permanent or retries ran out.

        Countdowns are chunked below the visibility timeout: a long wait (a DAILY pause) is served
        as several re-queues, each meeting the limiter's pause flag again until it lifts."""
        if isinstance(exc, WaitError):
            wait = exc.retry_after if exc.retry_after is not None else celeryconfig.MAX_COUNTDOWN
            countdown = min(wait + random.uniform(0, 1.0), celeryconfig.MAX_COUNTDOWN)
            raise self.retry(args=args, kwargs={"errors": errors}, countdown=countdown, exc=exc)
        failures = FailureLog(get_redis())
        first_failure = failures.note(self.request.id)
        if isinstance(exc, RetryableError) and errors < get_settings().max_error_retries:
            countdown = max(exc.retry_after or 0.0, backoff_seconds(errors + 1, base=1.0, cap=120.0))
            raise self.retry(args=args, kwargs={"errors": errors + 1},
                             countdown=min(countdown, celeryconfig.MAX_COUNTDOWN), exc=exc)
        detail = exc.detail.as_record() if exc.detail else {"message": str(exc)}
        kind = "exhausted" if isinstance(exc, RetryableError) else "permanent"
        log.error("%s: dead-lettered records %s (%s) after %d error retries: %s", self.name, record_ids, kind,
                  errors, exc)
        store = state()
        store.dead_letter(self.name, record_ids, payload, detail, attempts=errors + 1, first_failure=first_failure,
                          kind=kind, entity=entity, maxlen=get_settings().dlq_maxlen)
        failures.clear(self.request.id)
        store.count(run_id, failed=len(record_ids))

    def on_success(self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if kwargs.get("errors"):
            FailureLog(get_redis()).clear(task_id)  # recovered: forget when its trouble began


def enqueue_chunk(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
    """One chain per chunk: match → map → push, the push on the lane's queue."""
    if ctx["entity"] != "customers":
        from sync_tasks.commerce_tasks import enqueue_commerce_chunk

        enqueue_commerce_chunk(records, ctx)
        return
    push_queue = PUSH_QUEUE_BY_LANE[Lane(ctx["lane"])].value
    ctx = {**ctx, "chunk": inflight().open([r["id"] for r in records], ctx)}
    chain(
        match.si(records, ctx).set(queue=Queue.SYNC.value),
        map_records.s().set(queue=Queue.SYNC.value),
        push.s().set(queue=push_queue),
    ).apply_async()


@app.task(name=TaskName.EXTRACT.value, bind=True, base=SyncTask)
def extract(self: SyncTask, entity: str = "customers", errors: int = 0) -> dict[str, Any]:
    if entity != "customers":
        from sync_tasks.commerce_tasks import extract_commerce

        return extract_commerce(entity)
    try:
        if entity == "customers" and (refusal := sync_refusal(hubspot(), get_redis())):
            log.error("extract %s refused: %s", entity, refusal)
            return {"error": refusal}
        result = run_extract(entity, commercetools(), get_redis(), get_settings(), enqueue_chunk)
    except RetryableError as exc:
        # The next beat tick re-extracts from the same watermark; no need to hold a retry.
        log.warning("extract %s failed transiently: %s", entity, exc)
        return {"error": str(exc)}
    return {"run_id": result.run_id, "extracted": result.extracted, "chunks": result.chunks,
            "watermark": result.watermark_after, "locked": result.locked}


@app.task(name=TaskName.BACKFILL.value, bind=True, base=SyncTask)
def backfill(self: SyncTask, entity: str = "customers", since: str | None = None, store: str | None = None,
             run_id: str | None = None, errors: int = 0) -> dict[str, Any]:
    """A full sync through the same chains; resumable: a repeat with the same run_id continues."""
    run_id = run_id or state().start_run(entity, "backfill", since=since, store=store)
    try:
        if entity == "customers" and (refusal := sync_refusal(hubspot(), get_redis())):
            log.error("backfill %s refused: %s", run_id, refusal)
            return {"run_id": run_id, "error": refusal}
        pause = paced(ChunkLedger(get_redis(), entity).size, get_settings().backfill_max_chains)
        result = run_extract(entity, commercetools(), get_redis(), get_settings(), enqueue_chunk,
                             mode="backfill", since=since, store=store, run_id=run_id, pause=pause)
    except RetryableError as exc:
        self.defer(exc, (entity, since, store, run_id), errors, None, [],
                   {"run_id": run_id, "resend_args": [entity, since, store, run_id]}, entity=entity)
        raise  # unreachable: defer raises
    if result.locked:
        # Redelivered after its worker died: the dead worker's lock holds until it expires. Wait it
        # out (a wait, not an error) and resume from the cursor, rather than end the run here.
        raise self.retry(args=(entity, since, store, run_id), kwargs={"errors": errors},
                         countdown=min(60.0, celeryconfig.MAX_COUNTDOWN))
    if result.resume_in is not None:  # paging paused (see `extract.paced`): the run goes on in a new task
        send_backfill(entity, since, store, run_id, countdown=result.resume_in)
        return {"run_id": run_id, "extracted": result.extracted, "chunks": result.chunks,
                "continues_in": result.resume_in}
    # Its chunks may all be done already: what waits for the run's end starts now.
    if entity == Entity.ORDERS.value:
        from sync_tasks.commerce_tasks import start_backfill_rollups

        start_backfill_rollups({"mode": "backfill", "run_id": result.run_id})
    start_joins({"entity": entity, "mode": "backfill", "run_id": result.run_id})
    return {"run_id": result.run_id, "extracted": result.extracted, "chunks": result.chunks}


@app.task(name=TaskName.MATCH.value, bind=True, base=SyncTask)
def match(self: SyncTask, records: list[dict[str, Any]], ctx: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    inflight().touch(ctx.get("chunk"))
    try:
        matches = match_customers(records, state(), hubspot(ctx["lane"]), get_settings().external_id_properties)
    except (RetryableError, PermanentError) as exc:
        self.defer(exc, (records, ctx), errors, ctx["run_id"], [r["id"] for r in records],
                   {"stage": "match", "record_ids": [r["id"] for r in records]})
        return {"ctx": ctx, "matches": []}
    state().count(ctx["run_id"], matched=sum(1 for m in matches if m.hs_id))
    return {"ctx": ctx, "matches": [m.as_dict() for m in matches]}


@app.task(name=TaskName.MAP.value, bind=True, base=SyncTask)
def map_records(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx = payload["ctx"]
    inflight().touch(ctx.get("chunk"))
    matches = [Match(**m) for m in payload["matches"]]
    store = state()
    try:
        settings = get_settings()
        # A backfill reads its people's orders now, so each contact is written once (order_history.py).
        history = order_history.for_groups(order_history.reader(commercetools()), settings) \
            if ctx.get("mode") == "backfill" else None
        plan = plan_contacts(matches, store, settings.shared_fields_rule, force=ctx["force"],
                             fetch=fetch_customers, filters=Filters.from_settings(settings),
                             reader=hubspot(ctx["lane"]), conflict_reads=settings.conflict_reads, task=self.name,
                             history=history)
    except (RetryableError, PermanentError) as exc:
        ids = [m.record["id"] for m in matches]
        self.defer(exc, (payload,), errors, ctx["run_id"], ids, {"stage": "map", "record_ids": ids})
        return {"ctx": ctx, "plan": {}}
    if first_pass(ctx):
        defer_joins(store, ctx["run_id"], plan)  # uncounted until the run's end writes them
    store.count(ctx["run_id"], skipped=plan.skipped + len(plan.no_email) + len(plan.filtered))
    for rejected in plan.rejected:
        log.warning("record %s: %s left out (%s)", rejected["record_id"], rejected["property"], rejected["reason"])
    return {"ctx": ctx, "plan": plan.as_dict()}


@app.task(name=TaskName.PUSH.value, bind=True, base=SyncTask, rate_limit=get_settings().push_rate_limit)
def push(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx = payload["ctx"]
    inflight().touch(ctx.get("chunk"))
    first_failure = FailureLog(get_redis()).first_failure(self.request.id) if errors else None
    result = push_plan(payload["plan"], hubspot(ctx["lane"]), state(), ctx["run_id"], self.name,
                       attempts=errors + 1, first_failure=first_failure, defer_links=first_pass(ctx))
    again = result.resync or result.replan
    if again:
        # One resync task per push: it closes this chain once it has re-enqueued. A re-plan alone
        # (a stale diff, not a collision) does not count towards the resync depth.
        resync.apply_async((sorted({*result.resync, *result.replan}), ctx), {"rebase": not result.resync},
                           queue=Queue.SYNC.value)
    # Consent after the contacts, so a new contact exists when its subscription status is set.
    consent_left = push_consent(payload["plan"].get("consent") or [], hubspot(ctx["lane"]), state(),
                                load_mapping().consent, self.name)
    if result.error is None and consent_left.error is None:
        if not again:
            inflight().close(ctx.get("chunk"))  # the chain is done (a resync closes it when it has re-enqueued)
            start_joins(ctx)
        return {"run_id": ctx["run_id"], "done": True}
    left = {**result.left, "consent": consent_left.left}
    error = result.error or consent_left.error
    assert error is not None
    record_ids = sorted({i for e in left.get("creates", []) + left.get("updates", []) for i in e["record_ids"]})
    self.defer(error, ({"ctx": ctx, "plan": left},), errors, ctx["run_id"], record_ids, {"plan": left})
    # Dead-lettered (defer did not re-queue): what this chunk did write still counts.
    state().count(ctx["run_id"], **left.get("counts", {}))
    if not again:
        inflight().close(ctx.get("chunk"))  # dead-lettered: the DLQ holds what is left
        start_joins(ctx)
    return {"run_id": ctx["run_id"], "done": False}


MAX_RESYNC_DEPTH = 3
RECONCILE_MARGIN_SECONDS = 15.0  # beyond the longest legitimate silence of a chain


@app.task(name=TaskName.RESYNC.value, bind=True, base=SyncTask)
def resync(self: SyncTask, record_ids: list[str], ctx: dict[str, Any], errors: int = 0,
           rebase: bool = False) -> dict[str, Any]:
    """Match and map records again from fresh commercetools data (after a create met an existing
    contact, or a planned diff went stale). Collisions are bounded, so a record that keeps colliding
    ends in the dead-letter stream; a `rebase` (another push wrote the contact first) is not."""
    depth = int(ctx.get("resync_depth", 0)) + (0 if rebase else 1)
    if depth > MAX_RESYNC_DEPTH:
        exc = PermanentError(f"records {record_ids} kept colliding with existing contacts")
        self.defer(exc, (record_ids, ctx), errors, ctx["run_id"], record_ids, {"record_ids": record_ids})
        inflight().close(ctx.get("chunk"))
        start_joins(ctx)
        return {"resynced": 0}
    try:
        records = fetch_customers(record_ids)
    except RetryableError as exc:
        self.defer(exc, (record_ids, ctx), errors, ctx["run_id"], record_ids, {"record_ids": record_ids})
        inflight().close(ctx.get("chunk"))
        start_joins(ctx)
        return {"resynced": 0}
    gone = set(record_ids) - {r["id"] for r in records}
    state().count(ctx["run_id"], skipped=len(gone))  # deleted meanwhile: nothing to write
    if records:
        enqueue_chunk(records, {**ctx, "resync_depth": depth})
    inflight().close(ctx.get("chunk"))  # the new chain has its own entry
    if not records:
        start_joins(ctx)
    return {"resynced": len(records)}


def start_joins(ctx: dict[str, Any]) -> None:
    """The chain that finishes a customer backfill's first pass (or the backfill task, or the
    reconciler) starts what the run left for its end: the e-mail joins (sync_tasks/joins.py) and
    the contact-company associations not yet made (sync_tasks/company_links.py)."""
    run_id = ctx.get("run_id")
    if not (first_pass(ctx) and run_id):
        return
    store = state()
    run = store.run(run_id)  # one read for both claims: every first-pass chain ends here
    if claim_joins(store, run_id, run):
        joins.apply_async((run_id,), queue=Queue.SYNC.value)
    if claim_links(store, run_id, run):
        links.apply_async((run_id,), queue=Queue.PUSH_BACKFILL.value)


@app.task(name=TaskName.JOINS.value, bind=True, base=SyncTask)
def joins(self: SyncTask, run_id: str, errors: int = 0) -> dict[str, Any]:
    """A customer backfill's accounts that join contacts by e-mail, sent once its other records are
    done, in full batches. A retry reads the accounts still in the run's set; if retries run out they
    stay there: a DLQ replay sends this task again, and so does the reconciler once the lock expires."""
    ctx = {"entity": Entity.CUSTOMERS.value, "run_id": run_id, "mode": "backfill", "lane": Lane.BACKFILL.value,
           "force": True}
    try:
        sent = send_joins(state(), run_id, ctx, fetch_customers, enqueue_chunk, get_settings().chunk_size)
    except (RetryableError, PermanentError) as exc:
        self.defer(exc, (run_id,), errors, None, [], {"stage": "joins", "run_id": run_id, "resend_args": [run_id]})
        return {"run_id": run_id, "sent": 0}
    return {"run_id": run_id, "sent": sent}


@app.task(name=TaskName.LINKS.value, bind=True, base=SyncTask)
def links(self: SyncTask, run_id: str, errors: int = 0) -> dict[str, Any]:
    """A customer backfill's contact-company associations left when its records are done. A retry
    goes on with the pairs still in the run's set; if retries run out they stay there: a DLQ replay
    sends this task again, and so does the reconciler once the lock expires."""
    try:
        made = finish_links(state(), hubspot(Lane.BACKFILL.value), run_id, self.name)
    except RetryableError as exc:
        self.defer(exc, (run_id,), errors, None, [], {"stage": "links", "run_id": run_id, "resend_args": [run_id]})
        return {"run_id": run_id, "made": 0}
    return {"run_id": run_id, "made": made}


@app.task(name=TaskName.RECONCILE.value, bind=True, base=SyncTask)
def reconcile(self: SyncTask, errors: int = 0) -> dict[str, Any]:
    """Re-enqueue chains the broker lost: open chunks untouched for longer than any legitimate wait
    (see `sync_tasks.inflight`), and resume backfills whose paging task was lost (from their cursor).
    Beat runs it every `RECONCILE_INTERVAL`."""
    older_than = celeryconfig.VISIBILITY_TIMEOUT + celeryconfig.MAX_COUNTDOWN + RECONCILE_MARGIN_SECONDS
    chains = reconcile_stale(inflight(), older_than, fetch_customers, enqueue_chunk)
    for run_id in state().recent_runs(Entity.CUSTOMERS.value, 20):  # a joins or links task lost with its worker
        # Only a backfill leaves them pending, and the claims read the run themselves: no read here.
        start_joins({"entity": Entity.CUSTOMERS.value, "mode": "backfill", "run_id": run_id})
    resumed = []
    for job in stalled_backfills(state(), older_than, lambda run_id: backfill_in_broker(get_redis(), run_id)):
        log.warning("reconcile: backfill %s stopped paging (its task was lost); resuming it from its cursor",
                    job["run_id"])
        send_backfill(job["entity"], job["since"], job["store"], job["run_id"])
        resumed.append(job["run_id"])
    return {"stale": chains.stale, "requeued": chains.requeued, "backfills_resumed": resumed}


def fetch_customers(ids: list[str]) -> list[dict[str, Any]]:
    """Current commercetools customers by id (`query_in`: 200 ids per query)."""
    return query_in(commercetools(), "customers", "id", ids, expand=["customerGroup"])


@app.task(name=TaskName.WRITEBACK_POLL.value, bind=True, base=SyncTask)
def writeback_poll(self: SyncTask, errors: int = 0) -> dict[str, Any]:
    """HubSpot-owned properties edited in HubSpot → commercetools (sync_tasks/writeback.py)."""
    from sync_tasks.writeback import poll

    settings = get_settings()
    try:
        result = poll(hubspot(), commercetools(), state(), load_mapping(), self.name,
                      settings.writeback_search_lag, settings.writeback_max_pages)
    except RetryableError as exc:
        # The next beat tick polls again from the same watermark; nothing is lost by waiting for it.
        log.warning("write-back poll failed transiently: %s", exc)
        return {"error": str(exc)}
    return {"pages": result.pages, "contacts": result.contacts, "written_back": result.written_back,
            "unchanged": result.unchanged, "rejected": result.rejected, "complete": result.complete,
            "locked": result.locked}

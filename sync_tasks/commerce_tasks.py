"""Celery tasks for orders, carts and commercetools messages: thin wrappers over orders.py,
carts.py and events.py, on the same queues, lanes and retry policy as the customer chain."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import chain

import celeryconfig
from sync_tasks.commerce_schema import PipelineInfo, cached_pipeline
from sync_tasks.constants import PUSH_QUEUE_BY_LANE, Entity, Keys, Lane, Queue, TaskName
from sync_tasks.dlq import DeadLetters
from sync_tasks.errors import PermanentError, RetryableError
from sync_tasks.extract import chunks, run_extract
from sync_tasks.inflight import ChunkLedger, Reconciled, reconcile_stale
from sync_tasks.orders import (
    CONTACT_WAIT_WHOLE_S,
    OrderPusher,
    awaiting_contact,
    claim_backfill_rollups,
    dead_customers,
    dead_letter_no_contact,
    match_people,
    plan_orders,
    sort_by_contact,
    wait_countdown,
    write_backfill_rollups,
)
from sync_tasks.redis_conn import get_redis
from sync_tasks.settings import get_settings
from sync_tasks.tasks import RECONCILE_MARGIN_SECONDS, SyncTask, commercetools, enqueue_chunk, hubspot, state
from workers.app import app

log = logging.getLogger(__name__)


def order_ledger() -> ChunkLedger:
    """Order chains in flight (see `sync_tasks.inflight`): their own ledger, reconciled here."""
    return ChunkLedger(get_redis(), Entity.ORDERS.value)


def pipeline() -> PipelineInfo | None:
    # Read per chunk (one GET): setup may run again and stage ids differ per portal.
    return cached_pipeline(get_redis())


def extract_commerce(entity: str) -> dict[str, Any]:
    """Delta extraction of orders, carts or messages, with what each needs besides."""
    r = get_redis()
    try:
        result = run_extract(entity, commercetools(), r, get_settings(), enqueue_chunk)
    except PermanentError as exc:
        if entity == Entity.MESSAGES.value:
            return messages_unavailable(exc)
        raise
    except RetryableError as exc:
        log.warning("extract %s failed transiently: %s", entity, exc)
        return {"error": str(exc)}
    out: dict[str, Any] = {"run_id": result.run_id, "extracted": result.extracted, "chunks": result.chunks,
                           "watermark": result.watermark_after, "locked": result.locked}
    if entity == Entity.CARTS.value and not result.locked:
        from sync_tasks.carts import sweep_abandoned

        sweep_run = state().start_run(entity, "sweep")
        out["abandoned_swept"] = sweep_abandoned(commercetools(), r, get_settings(), enqueue_chunk, sweep_run)
        state().finish_extract(sweep_run)
    if entity == Entity.MESSAGES.value:
        r.delete(Keys.messages_disabled())
    if entity == Entity.ORDERS.value:
        # Every orders tick (beat) also re-enqueues order chains the broker lost.
        out["reconciled"] = reconcile_order_chains().requeued
    return out


def messages_unavailable(exc: PermanentError) -> dict[str, Any]:
    """The Messages API is off in this project: say so once, and rely on the state-based sync of
    orders, carts and customers, which runs anyway."""
    if get_redis().set(Keys.messages_disabled(), "1", nx=True):
        log.warning("commercetools Messages API is not enabled for this project (%s); events fall back to "
                    "state-based sync of orders, carts and customers. Enable it in the project settings "
                    "to get event properties, stage moves and custom events.", exc)
    return {"messages": "disabled"}


def enqueue_commerce_chunk(records: list[dict[str, Any]], ctx: dict[str, Any], countdown: float | None = None) -> None:
    entity = ctx["entity"]
    push_queue = PUSH_QUEUE_BY_LANE[Lane(ctx["lane"])].value
    if entity == Entity.ORDERS.value:
        ctx = {**ctx, "chunk": order_ledger().open([r["id"] for r in records], ctx)}
        chain(order_match.si(records, ctx).set(queue=Queue.SYNC.value),
              order_map.s().set(queue=Queue.SYNC.value),
              order_push.s().set(queue=push_queue)).apply_async(countdown=countdown)
    elif entity == Entity.CARTS.value:
        from sync_tasks.carts import enqueue_cart_chunk

        enqueue_cart_chunk(records, ctx)
    elif entity == Entity.MESSAGES.value:
        from sync_tasks.events import enqueue_event_chunk

        enqueue_event_chunk(records, ctx)
    else:
        raise ValueError(f"no pipeline for entity {entity!r}")


@app.task(name=TaskName.ORDER_MATCH.value, bind=True, base=SyncTask)
def order_match(self: SyncTask, records: list[dict[str, Any]], ctx: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    order_ledger().touch(ctx.get("chunk"))
    waits = int(ctx.get("contact_waits", 0))
    try:
        # A re-check while waiting for contacts reads Redis only (the customer chain writes there).
        people = match_people(records, state(), hubspot(ctx["lane"]), read_hubspot=waits == 0)
    except (RetryableError, PermanentError) as exc:
        ids = [r["id"] for r in records]
        self.defer(exc, (records, ctx), errors, ctx["run_id"], ids, {"stage": "order-match", "record_ids": ids},
                   entity=Entity.ORDERS.value)
        return {"ctx": ctx, "records": [], "people": {}}
    records = wait_for_contacts(self.name, records, people, ctx)
    state().count(ctx["run_id"], matched=sum(1 for r in records if people[r["id"]]["contact"]))
    return {"ctx": ctx, "records": records, "people": {r["id"]: people[r["id"]] for r in records}}


def wait_for_contacts(task: str, records: list[dict[str, Any]], people: dict[str, dict[str, Any]],
                      ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Orders of registered customers without a contact leave the chain: they wait in a chain of their
    own (re-checked with a countdown) or, when the customer is in the DLQ or the wait is over, are
    dead-lettered. Returns the orders that go on now."""
    if not awaiting_contact(records, people):
        return records
    now = time.time()
    since = float(ctx.get("contact_wait_since") or now)
    ids = {str(r["customerId"]) for r in awaiting_contact(records, people)}
    dead = dead_customers(DeadLetters(get_redis()).entries(entity=Entity.CUSTOMERS.value), ids)
    wait = sort_by_contact(records, people, dead, now - since)
    dead_letter_no_contact(state(), task, ctx["run_id"], wait)
    if not wait.waiting:
        return wait.ready
    # A young wait holds the whole chunk: every push costs the same few calls however many orders it
    # carries, so splitting off the ready orders at each re-check would multiply the calls.
    whole = now - since < CONTACT_WAIT_WHOLE_S
    waits = int(ctx.get("contact_waits", 0))
    later = {k: v for k, v in ctx.items() if k != "chunk"} | {"contact_wait_since": since, "contact_waits": waits + 1}
    enqueue_commerce_chunk(wait.ready + wait.waiting if whole else wait.waiting, later,
                           countdown=wait_countdown(waits, celeryconfig.MAX_COUNTDOWN))
    return [] if whole else wait.ready


@app.task(name=TaskName.ORDER_MAP.value, bind=True, base=SyncTask)
def order_map(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx = payload["ctx"]
    order_ledger().touch(ctx.get("chunk"))
    plan = plan_orders(payload["records"], payload["people"], state(), get_settings(), pipeline(),
                       force=ctx["force"])
    state().count(ctx["run_id"], skipped=plan["skipped"])
    return {"ctx": ctx, "plan": plan}


@app.task(name=TaskName.ORDER_PUSH.value, bind=True, base=SyncTask, rate_limit=get_settings().push_rate_limit)
def order_push(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx, plan = payload["ctx"], payload["plan"]
    ledger = order_ledger()
    ledger.touch(ctx.get("chunk"))
    error = OrderPusher(hubspot(ctx["lane"]), state(), get_settings(), ctx["run_id"], self.name,
                        mode=ctx.get("mode", "delta")).push(plan)
    if error is None:
        ledger.close(ctx.get("chunk"))
        start_backfill_rollups(ctx)
        return {"run_id": ctx["run_id"], "done": True}
    ids = [o["id"] for o in plan["orders"]]
    self.defer(error, ({"ctx": ctx, "plan": plan},), errors, ctx["run_id"], ids, {"plan": plan},
               entity=Entity.ORDERS.value)
    ledger.close(ctx.get("chunk"))  # dead-lettered (a retry raised above): the DLQ holds the orders
    start_backfill_rollups(ctx)
    return {"run_id": ctx["run_id"], "done": False}


def start_backfill_rollups(ctx: dict[str, Any]) -> None:
    """The chunk that finishes an order backfill (or the extract, or the reconciler) starts the
    writing of the rollups the backfill deferred."""
    run_id = ctx.get("run_id")
    if ctx.get("mode") == "backfill" and run_id and claim_backfill_rollups(state(), run_id):
        backfill_rollups.apply_async((run_id,), queue=PUSH_QUEUE_BY_LANE[Lane.BACKFILL].value)


@app.task(name=TaskName.ORDER_BACKFILL_ROLLUPS.value, bind=True, base=SyncTask)
def backfill_rollups(self: SyncTask, run_id: str, errors: int = 0) -> dict[str, Any]:
    """Each person's order rollups and lifecycle properties, once, at the end of an order backfill.
    A retry goes on with the people not yet written. If retries run out, the people stay in the run's
    set: a DLQ replay sends this task again, and so does the reconciler once the run's lock expires."""
    written, error = write_backfill_rollups(hubspot(Lane.BACKFILL.value), state(), get_settings(), run_id,
                                            self.name)
    if error:
        self.defer(error, (run_id,), errors, None, [],
                   {"stage": "backfill-rollups", "run_id": run_id, "resend_args": [run_id]}, entity="lifecycle")
    return {"run_id": run_id, "written": written, "done": error is None}


@app.task(name=TaskName.ORDER_RECONCILE.value, bind=True, base=SyncTask)
def reconcile_orders(self: SyncTask, errors: int = 0) -> dict[str, Any]:
    """Re-enqueue order chains the broker lost (see `sync_tasks.inflight`)."""
    result = reconcile_order_chains()
    return {"stale": result.stale, "requeued": result.requeued}


def reconcile_order_chains() -> Reconciled:
    older_than = celeryconfig.VISIBILITY_TIMEOUT + celeryconfig.MAX_COUNTDOWN + RECONCILE_MARGIN_SECONDS
    result = reconcile_stale(order_ledger(), older_than, fetch_orders, enqueue_commerce_chunk)
    for run_id in state().recent_runs(Entity.ORDERS.value, 20):  # a rollup writer lost with its worker
        start_backfill_rollups({"mode": state().run(run_id).get("mode"), "run_id": run_id})
    return result


@app.task(name=TaskName.ORDER_RESYNC.value, bind=True, base=SyncTask)
def resync_orders(self: SyncTask, order_ids: list[str], lane: str = Lane.LIVE.value, errors: int = 0) -> dict[str, Any]:
    """Re-read orders from commercetools and sync them by state (after their messages said they
    changed: a stage to move, a refund to count)."""
    try:
        records = fetch_orders(order_ids)
    except RetryableError as exc:
        self.defer(exc, (order_ids, lane), errors, None, order_ids, {"order_ids": order_ids},
                   entity=Entity.ORDERS.value)
        return {"resynced": 0}
    ctx = {"entity": Entity.ORDERS.value, "run_id": None, "mode": "resync", "lane": lane, "force": False}
    for chunk in chunks(Entity.ORDERS.value, records, get_settings()):
        enqueue_commerce_chunk(chunk, ctx)
    return {"resynced": len(records)}


def fetch_orders(ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        quoted = ", ".join(f'"{x}"' for x in ids[i:i + 500])
        body = commercetools().query("orders", where=[f"id in ({quoted})"], limit=500,
                                     expand=["paymentInfo.payments[*]"])
        out += body.get("results", [])
    return out


@app.task(name=TaskName.LIFECYCLE_CHURN.value, bind=True, base=SyncTask)
def lifecycle_churn(self: SyncTask, errors: int = 0) -> dict[str, Any]:
    """Daily (beat): fire churn_risk for people without an order for N days; re-send unsent events.
    A retry claims nothing twice: claimed events stay pending until sent."""
    from sync_tasks.lifecycle import scan_churn

    result = scan_churn(hubspot(Lane.LIVE.value), state(), get_settings(), self.name)
    if result.error:
        self.defer(result.error, (), errors, None, [], {"stage": "lifecycle-churn"}, entity="lifecycle")
    return {"fired": len(result.fired), "sent": result.sent}

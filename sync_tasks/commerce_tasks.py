"""Celery tasks for orders, carts and commercetools messages: thin wrappers over orders.py,
carts.py and events.py, on the same queues, lanes and retry policy as the customer chain."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import chain

import celeryconfig
from sync_tasks import order_history
from sync_tasks.commerce_schema import PipelineInfo, cached_pipeline
from sync_tasks.commercetools_client import query_in
from sync_tasks.constants import PUSH_QUEUE_BY_LANE, Entity, Keys, Lane, Queue, TaskName
from sync_tasks.dlq import DeadLetters
from sync_tasks.errors import PermanentError, RateLimitedError, RetryableError
from sync_tasks.extract import chunks, run_extract
from sync_tasks.hubspot_client import HubSpotClient
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
    push_calls,
    sort_by_contact,
    wait_countdown,
    write_backfill_rollups,
)
from sync_tasks.payloads import Missing, Payloads, chunk_head, records_of
from sync_tasks.redis_conn import get_redis
from sync_tasks.settings import get_settings
from sync_tasks.tasks import RECONCILE_MARGIN_SECONDS, SyncTask, commercetools, enqueue_chunk, hubspot, state
from workers.app import app

log = logging.getLogger(__name__)


def order_ledger() -> ChunkLedger:
    """Order chains in flight (see `sync_tasks.inflight`): their own ledger, reconciled here."""
    return ChunkLedger(get_redis(), Entity.ORDERS.value)


def payloads() -> Payloads:
    return Payloads(get_redis())


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
        # The raw orders go to Redis once; the chain's messages carry their reference (`payloads`).
        head = chunk_head(records, payloads().put(records))
        chain(order_match.si(head, ctx).set(queue=Queue.SYNC.value),
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
def order_match(self: SyncTask, chunk: dict[str, Any] | list[dict[str, Any]], ctx: dict[str, Any],
                errors: int = 0) -> dict[str, Any]:
    """`chunk`: `payloads.chunk_head` (a list of raw orders only in messages queued by an older release)."""
    if isinstance(chunk, list):
        chunk = chunk_head(chunk, payloads().put(chunk))
    order_ledger().touch(ctx.get("chunk"))
    records = chunk["people"]  # id, customerId and customerEmail of each order: all the match reads
    waits = int(ctx.get("contact_waits", 0))
    try:
        # A re-check while waiting for contacts reads Redis only (the customer chain writes there).
        people = match_people(records, state(), hubspot(ctx["lane"]), read_hubspot=waits == 0)
    except (RetryableError, PermanentError) as exc:
        ids = [r["id"] for r in records]
        self.defer(exc, (chunk, ctx), errors, ctx["run_id"], ids, {"stage": "order-match", "record_ids": ids},
                   entity=Entity.ORDERS.value)
        payloads().drop(chunk["ref"])  # dead-lettered: a replay reads the orders from commercetools
        return {"ctx": ctx, "chunk": {"ref": None, "ids": []}, "people": {}}
    ready = wait_for_contacts(self.name, records, people, ctx, chunk["ref"])
    state().count(ctx["run_id"], matched=sum(1 for r in ready if people[r["id"]]["contact"]))
    return {"ctx": ctx, "chunk": {"ref": chunk["ref"], "ids": [r["id"] for r in ready]},
            "people": {r["id"]: people[r["id"]] for r in ready}}


def stored_orders(ref: str | None, ids: list[str]) -> list[dict[str, Any]]:
    """The chain's stored orders with these ids; read again from commercetools if the value is gone."""
    if not ref or not ids:
        return []
    found = records_of(payloads(), ref, ids)
    if isinstance(found, Missing):
        log.warning("order chain: stored orders %s are gone; reading %d orders from commercetools", ref, len(ids))
        return fetch_orders(found.ids)
    return found


def wait_for_contacts(task: str, records: list[dict[str, Any]], people: dict[str, dict[str, Any]],
                      ctx: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    """Orders of registered customers without a contact leave the chain: they wait in a chain of their
    own (re-checked with a countdown) or, when the customer is in the DLQ or the wait is over, are
    dead-lettered. `records` carry the match's fields; `ref` holds the whole orders. Returns the
    orders that go on now."""
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
    again = wait.ready + wait.waiting if whole else wait.waiting
    enqueue_commerce_chunk(stored_orders(ref, [r["id"] for r in again]), later,
                           countdown=wait_countdown(waits, celeryconfig.MAX_COUNTDOWN))
    return [] if whole else wait.ready


@app.task(name=TaskName.ORDER_MAP.value, bind=True, base=SyncTask)
def order_map(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx = payload["ctx"]
    order_ledger().touch(ctx.get("chunk"))
    chunk = payload.get("chunk") or {"ref": None, "ids": []}
    records = payload["records"] if "records" in payload else stored_orders(chunk["ref"], chunk["ids"])
    plan = plan_orders(records, payload["people"], state(), get_settings(), pipeline(), force=ctx["force"])
    state().count(ctx["run_id"], skipped=plan["skipped"])
    ref = payloads().put(plan) if plan["orders"] else None
    payloads().drop(chunk["ref"])  # the raw orders: from here on the plan is the chain's value
    return {"ctx": ctx, "plan_ref": ref, "ids": [o["id"] for o in plan["orders"]], "calls": push_calls(plan)}


def _progress(plan: dict[str, Any]) -> tuple[Any, ...]:
    """What a push has done of a plan (steps done, keys written per step): unchanged, a retry can
    take the stored plan as it is."""
    return tuple(plan["done"]), tuple((k, len(v)) for k, v in sorted((plan.get("progress") or {}).items()))


@app.task(name=TaskName.ORDER_PUSH.value, bind=True, base=SyncTask, rate_limit=get_settings().push_rate_limit)
def order_push(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    """`payload`: {ctx, plan_ref, ids, calls} (a plan inline, {ctx, plan}, in older messages).

    The first call's budget is taken before the plan is read (when `calls`, the push's calls, is not
    0): a push refused for budget re-queues its few bytes of message, not a plan of 500 orders read
    for nothing."""
    ctx = payload["ctx"]
    order_ledger().touch(ctx.get("chunk"))
    hub = hubspot(ctx["lane"])
    try:
        with hub.prepaid(int(payload.get("calls") or 0)):
            return push_stored_plan(self, hub, payload, errors)
    except RateLimitedError as exc:  # refused before the plan was read (the steps return their errors)
        self.defer(exc, (payload,), errors, ctx["run_id"], payload.get("ids") or [], {"stage": "order-push"},
                   entity=Entity.ORDERS.value)  # a wait: always re-queued
        raise


def push_stored_plan(task: SyncTask, hub: HubSpotClient, payload: dict[str, Any], errors: int) -> dict[str, Any]:
    ctx, ref = payload["ctx"], payload.get("plan_ref")
    ledger = order_ledger()
    plan = payload.get("plan") or (payloads().get(ref) if ref else {"orders": [], "skipped": 0, "done": []})
    if plan is None:  # the stored plan is gone: the orders go round the chain again
        ids = payload.get("ids") or []
        log.warning("order push: stored plan %s is gone; reading its %d orders from commercetools again", ref,
                    len(ids))
        enqueue_commerce_chunk(fetch_orders(ids), {k: v for k, v in ctx.items() if k != "chunk"})
        ledger.close(ctx.get("chunk"))
        return {"run_id": ctx["run_id"], "done": False, "requeued": len(ids)}
    before = _progress(plan)
    pusher = OrderPusher(hub, state(), get_settings(), ctx["run_id"], task.name, mode=ctx.get("mode", "delta"),
                         history=order_history.reader(commercetools()))
    error = pusher.push(plan)
    if error is None:
        payloads().drop(ref)
        ledger.close(ctx.get("chunk"))
        start_backfill_rollups(ctx)
        return {"run_id": ctx["run_id"], "done": True}
    ids = [o["id"] for o in plan["orders"]]
    if ref and _progress(plan) != before:
        payloads().put(plan, ref)  # a retry resumes where this push stopped
    retry = {"ctx": ctx, "plan_ref": ref, "ids": ids, "calls": push_calls(plan)} if ref else {"ctx": ctx, "plan": plan}
    task.defer(error, (retry,), errors, ctx["run_id"], ids, {"plan": plan}, entity=Entity.ORDERS.value)
    payloads().drop(ref)  # dead-lettered (a retry raised above): the DLQ entry holds the plan
    ledger.close(ctx.get("chunk"))
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
    return query_in(commercetools(), "orders", "id", ids, expand=["paymentInfo.payments[*]"])


@app.task(name=TaskName.LIFECYCLE_CHURN.value, bind=True, base=SyncTask)
def lifecycle_churn(self: SyncTask, errors: int = 0) -> dict[str, Any]:
    """Daily (beat): fire churn_risk for people without an order for N days; re-send unsent events.
    A retry claims nothing twice: claimed events stay pending until sent."""
    from sync_tasks.lifecycle import scan_churn

    result = scan_churn(hubspot(Lane.LIVE.value), state(), get_settings(), self.name)
    if result.error:
        self.defer(result.error, (), errors, None, [], {"stage": "lifecycle-churn"}, entity="lifecycle")
    return {"fired": len(result.fired), "sent": result.sent}

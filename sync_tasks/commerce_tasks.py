"""Celery tasks for orders, carts and commercetools messages: thin wrappers over orders.py,
carts.py and events.py, on the same queues, lanes and retry policy as the customer chain."""

from __future__ import annotations

import logging
from typing import Any

from celery import chain

from sync_tasks.commerce_schema import PipelineInfo, cached_pipeline
from sync_tasks.constants import PUSH_QUEUE_BY_LANE, Entity, Keys, Lane, Queue, TaskName
from sync_tasks.errors import PermanentError, RetryableError
from sync_tasks.extract import run_extract
from sync_tasks.orders import OrderPusher, match_people, plan_orders
from sync_tasks.redis_conn import get_redis
from sync_tasks.settings import get_settings
from sync_tasks.tasks import SyncTask, commercetools, enqueue_chunk, hubspot, state
from workers.app import app

log = logging.getLogger(__name__)


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
    return out


def messages_unavailable(exc: PermanentError) -> dict[str, Any]:
    """The Messages API is off in this project: say so once, and rely on the state-based sync of
    orders, carts and customers, which runs anyway."""
    if get_redis().set(Keys.messages_disabled(), "1", nx=True):
        log.warning("commercetools Messages API is not enabled for this project (%s); events fall back to "
                    "state-based sync of orders, carts and customers. Enable it in the project settings "
                    "to get event properties, stage moves and custom events.", exc)
    return {"messages": "disabled"}


def enqueue_commerce_chunk(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
    entity = ctx["entity"]
    push_queue = PUSH_QUEUE_BY_LANE[Lane(ctx["lane"])].value
    if entity == Entity.ORDERS.value:
        chain(order_match.si(records, ctx).set(queue=Queue.SYNC.value),
              order_map.s().set(queue=Queue.SYNC.value),
              order_push.s().set(queue=push_queue)).apply_async()
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
    try:
        people = match_people(records, state(), hubspot(ctx["lane"]))
    except (RetryableError, PermanentError) as exc:
        ids = [r["id"] for r in records]
        self.defer(exc, (records, ctx), errors, ctx["run_id"], ids, {"stage": "order-match", "record_ids": ids})
        return {"ctx": ctx, "records": [], "people": {}}
    state().count(ctx["run_id"], matched=sum(1 for p in people.values() if p["contact"]))
    return {"ctx": ctx, "records": records, "people": people}


@app.task(name=TaskName.ORDER_MAP.value, bind=True, base=SyncTask)
def order_map(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx = payload["ctx"]
    plan = plan_orders(payload["records"], payload["people"], state(), get_settings(), pipeline(),
                       force=ctx["force"])
    state().count(ctx["run_id"], skipped=plan["skipped"])
    return {"ctx": ctx, "plan": plan}


@app.task(name=TaskName.ORDER_PUSH.value, bind=True, base=SyncTask, rate_limit=get_settings().push_rate_limit)
def order_push(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx, plan = payload["ctx"], payload["plan"]
    error = OrderPusher(hubspot(ctx["lane"]), state(), get_settings(), ctx["run_id"], self.name,
                        mode=ctx.get("mode", "delta")).push(plan)
    if error is None:
        return {"run_id": ctx["run_id"], "done": True}
    ids = [o["id"] for o in plan["orders"]]
    self.defer(error, ({"ctx": ctx, "plan": plan},), errors, ctx["run_id"], ids, {"plan": plan})
    return {"run_id": ctx["run_id"], "done": False}


@app.task(name=TaskName.ORDER_RESYNC.value, bind=True, base=SyncTask)
def resync_orders(self: SyncTask, order_ids: list[str], lane: str = Lane.LIVE.value, errors: int = 0) -> dict[str, Any]:
    """Re-read orders from commercetools and sync them by state (after their messages said they
    changed: a stage to move, a refund to count)."""
    try:
        records = fetch_orders(order_ids)
    except RetryableError as exc:
        self.defer(exc, (order_ids, lane), errors, None, order_ids, {"order_ids": order_ids})
        return {"resynced": 0}
    ctx = {"entity": Entity.ORDERS.value, "run_id": None, "mode": "resync", "lane": lane, "force": False}
    size = get_settings().order_chunk_size
    for i in range(0, len(records), size):
        enqueue_commerce_chunk(records[i:i + size], ctx)
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

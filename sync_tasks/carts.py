"""Carts and checkouts: carts with an e-mail become HubSpot carts, with their line items, person and
(once ordered) their order.

commercetools sends no message when a cart goes quiet, so abandonment is found by a sweep: each
carts extraction also reads Active carts whose last change falls between the previous sweep's
threshold and now minus CART_ABANDONED_AFTER_HOURS, and marks them abandoned. The sweep keeps its own
watermark, so each cart is swept once, however many extractions run.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import chain

from sync_tasks.commerce_push import StepPusher, associate_all, dead_letter_failed, upsert_guests, upsert_keyed
from sync_tasks.constants import PUSH_QUEUE_BY_LANE, Keys, Lane, Queue, TaskName
from sync_tasks.errors import PermanentError, RetryableError
from sync_tasks.extract import chunks, format_ts
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.mapping import fingerprint
from sync_tasks.match import CONTACTS
from sync_tasks.order_mapping import CART_ID_PROPERTY, LINE_ITEM_ID_PROPERTY, map_cart, map_line_items
from sync_tasks.orders import LINE_ITEMS, ORDERS, match_people
from sync_tasks.pagination import KeysetPaginator
from sync_tasks.settings import Settings, get_settings
from sync_tasks.state import SyncState
from sync_tasks.tasks import SyncTask, hubspot, state
from workers.app import app

log = logging.getLogger(__name__)

CARTS = "carts"
STEPS = ("guests", "carts", "line_items", "associations", "finish")
STATUS = {"Ordered": "ordered", "Merged": "merged", "Frozen": "frozen"}


def cart_status(cart: dict[str, Any], now: dt.datetime, abandoned_after: dt.timedelta) -> str:
    if cart.get("cartState") != "Active":
        return STATUS.get(str(cart.get("cartState")), str(cart.get("cartState", "")).lower())
    modified = dt.datetime.fromisoformat(str(cart["lastModifiedAt"]).replace("Z", "+00:00"))
    return "abandoned" if now - modified >= abandoned_after else "active"


def plan_carts(records: list[dict[str, Any]], people: dict[str, dict[str, Any]], st: SyncState,
               settings: Settings, force: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC)
    after = dt.timedelta(hours=settings.cart_abandoned_after_hours)
    fps = st.fingerprints(CARTS, [r["id"] for r in records])
    orders_by_cart = st.r.hmget(Keys.index("cart-order"), [r["id"] for r in records]) if records else []
    plan: dict[str, Any] = {"carts": [], "skipped": 0, "done": []}
    for record, order_id in zip(records, orders_by_cart, strict=True):
        person = people.get(record["id"], {})
        if not person.get("email"):
            plan["skipped"] += 1  # carts without an e-mail reach nobody: not synced
            continue
        status = cart_status(record, now, after)
        props = map_cart(record, status, settings.cart_recovery_url_template.format(id=record["id"]))
        items = map_line_items("cart", record, tuple(settings.line_item_attributes))
        fp = fingerprint({"cart": fingerprint(props), **{k: fingerprint(v) for k, v in items}})
        if fps.get(record["id"]) == fp and not force:
            plan["skipped"] += 1
            continue
        plan["carts"].append({"id": record["id"], "props": props, "line_items": [[k, v] for k, v in items],
                              "fingerprint": fp, "contact": person.get("contact"), "email": person["email"],
                              "order_id": order_id})
    return plan


class CartPusher(StepPusher):
    steps = STEPS

    def __init__(self, hub: HubSpotClient, st: SyncState, run_id: str | None, task: str) -> None:
        self.hubspot, self.state, self.run_id, self.task = hub, st, run_id, task

    def _guests(self, plan: dict[str, Any]) -> RetryableError | None:
        return upsert_guests(self.hubspot, self.state, self.task, self.run_id, plan["carts"],
                             self.progress(plan, "guests"))

    def _carts(self, plan: dict[str, Any]) -> RetryableError | None:
        items = [(c["id"], c["props"]) for c in plan["carts"]]
        result = upsert_keyed(self.hubspot, CARTS, CART_ID_PROPERTY, items, self.progress(plan, "carts"))
        self.state.save_ids(CARTS, result.ids)
        if result.error:
            return result.error
        dead_letter_failed(self.state, self.task, self.run_id, CARTS, result.failed, dict(items))
        plan["carts"] = [c for c in plan["carts"] if c["id"] not in result.failed]
        for cart in plan["carts"]:
            cart["hs_id"], cart["new"] = result.ids[cart["id"]], cart["id"] in result.new
        return None

    def _line_items(self, plan: dict[str, Any]) -> RetryableError | None:
        items = [(k, v) for c in plan["carts"] for k, v in c["line_items"]]
        result = upsert_keyed(self.hubspot, LINE_ITEMS, LINE_ITEM_ID_PROPERTY, items, self.progress(plan, "line_items"))
        self.state.save_ids(LINE_ITEMS, result.ids)
        dead_letter_failed(self.state, self.task, self.run_id, LINE_ITEMS, result.failed, dict(items), count=False)
        for cart in plan["carts"]:
            cart["line_item_ids"] = [result.ids[k] for k, _ in cart["line_items"] if k in result.ids]
        return result.error

    def _associations(self, plan: dict[str, Any]) -> RetryableError | None:
        carts = plan["carts"]
        orders = self.state.lookup_ids(ORDERS, [c["order_id"] for c in carts if c["order_id"]])
        owners = {c["hs_id"]: c["id"] for c in carts}
        associate_all(self.hubspot, self.state, CARTS, CONTACTS, [(c["hs_id"], c["contact"]) for c in carts
                                                                  if c["contact"]], self.task, owners)
        associate_all(self.hubspot, self.state, CARTS, LINE_ITEMS,
                      [(c["hs_id"], li) for c in carts for li in c.get("line_item_ids", [])], self.task, owners)
        # An ordered cart is linked to its order (whichever of the two arrives second makes the link).
        associate_all(self.hubspot, self.state, ORDERS, CARTS, [(orders[c["order_id"]], c["hs_id"]) for c in carts
                                                                if c["order_id"] in orders], self.task,
                      {orders[c["order_id"]]: c["order_id"] for c in carts if c["order_id"] in orders})
        return None

    def _finish(self, plan: dict[str, Any]) -> RetryableError | None:
        carts = plan["carts"]
        self.state.save_fingerprints(CARTS, {c["id"]: c["fingerprint"] for c in carts})
        created = sum(1 for c in carts if c.get("new"))
        self.state.count(self.run_id, created=created, updated=len(carts) - created)
        return None


def sweep_abandoned(ct: Any, r: Any, settings: Settings, enqueue: Any, run_id: str,
                    now: dt.datetime | None = None) -> int:
    """Hand on Active carts that have gone quiet since the last sweep (see the module docstring)."""
    now = now or dt.datetime.now(dt.UTC)
    threshold = format_ts(now - dt.timedelta(hours=settings.cart_abandoned_after_hours))
    since = r.get(Keys.abandon_watermark())
    filters = ['cartState = "Active"', f'lastModifiedAt < "{threshold}"']
    paginator = KeysetPaginator(ct, CARTS, since=str(since) if since else None, filters=filters,
                                page_size=settings.extract_page_size)
    st = SyncState(r)
    ctx = {"entity": CARTS, "run_id": run_id, "mode": "delta", "lane": Lane.LIVE.value, "force": False}
    seen = 0
    for page in paginator:
        for chunk in chunks("carts", page, settings):
            enqueue(chunk, ctx)
        seen += len(page)
        st.count(run_id, extracted=len(page))
    r.set(Keys.abandon_watermark(), threshold)
    return seen


def enqueue_cart_chunk(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
    push_queue = PUSH_QUEUE_BY_LANE[Lane(ctx["lane"])].value
    chain(cart_map.si(records, ctx).set(queue=Queue.SYNC.value), cart_push.s().set(queue=push_queue)).apply_async()


@app.task(name=TaskName.CART_MAP.value, bind=True, base=SyncTask)
def cart_map(self: SyncTask, records: list[dict[str, Any]], ctx: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    """Match (person by customer id or e-mail) and map carts: one step, carts need no other lookup."""
    try:
        people = match_people(records, state(), hubspot(ctx["lane"]))
    except (RetryableError, PermanentError) as exc:
        ids = [r["id"] for r in records]
        self.defer(exc, (records, ctx), errors, ctx["run_id"], ids, {"stage": "cart-map", "record_ids": ids})
        return {"ctx": ctx, "plan": {"carts": [], "skipped": 0, "done": list(STEPS)}}
    plan = plan_carts(records, people, state(), get_settings(), force=ctx["force"])
    state().count(ctx["run_id"], matched=sum(1 for p in people.values() if p["contact"]), skipped=plan["skipped"])
    return {"ctx": ctx, "plan": plan}


@app.task(name=TaskName.CART_PUSH.value, bind=True, base=SyncTask, rate_limit=get_settings().push_rate_limit)
def cart_push(self: SyncTask, payload: dict[str, Any], errors: int = 0) -> dict[str, Any]:
    ctx, plan = payload["ctx"], payload["plan"]
    error = CartPusher(hubspot(ctx["lane"]), state(), ctx["run_id"], self.name).push(plan)
    if error is None:
        return {"run_id": ctx["run_id"], "done": True}
    ids = [c["id"] for c in plan["carts"]]
    self.defer(error, ({"ctx": ctx, "plan": plan},), errors, ctx["run_id"], ids, {"plan": plan})
    return {"run_id": ctx["run_id"], "done": False}

"""commercetools messages → HubSpot: order, payment and customer events.

The Messages API is polled like any other resource (same watermark and overlap rules). Each event
lands as configured (EVENT_TARGETS):
- `properties`: last event type and time on the order and the contact, last payment state;
- `stage`: the order is re-read and synced by state, which moves its pipeline stage (and picks up
  refunds a payment message announced) from the order's current, complete state;
- `custom_event`: a HubSpot custom event whose uuid derives from the message id, so a replay is
  refused by HubSpot's dedupe.

A message at or below the sequence number already applied for its resource is dropped: events are
never applied out of order or twice. The sequence number is raised only after the writes landed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sync_tasks import custom_events
from sync_tasks.commerce_push import update_by_id
from sync_tasks.constants import PUSH_QUEUE_BY_LANE, Keys, Lane, Queue, TaskName
from sync_tasks.errors import PermanentError, RetryableError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.match import CONTACTS
from sync_tasks.orders import ORDERS
from sync_tasks.settings import EventTarget, Settings, get_settings
from sync_tasks.state import SyncState
from sync_tasks.tasks import SyncTask, hubspot, state
from workers.app import app

log = logging.getLogger(__name__)

# Raise the stored sequence number only upwards, atomically: two workers may apply neighbours.
_RAISE = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0
"""

STATE_MESSAGES = {"OrderStateChanged", "OrderPaymentStateChanged", "OrderShipmentStateChanged", "ReturnInfoAdded",
                  "ReturnInfoSet", "OrderCreated", "OrderImported"}
PAYMENT_MESSAGES = {"PaymentTransactionAdded", "PaymentTransactionStateChanged", "PaymentCreated",
                    "PaymentStatusStateTransition"}
EVENT_PROPERTIES = ["message_type", "resource_type", "resource_id", "order_number", "state"]


@dataclass
class EventPlan:
    order_props: dict[str, dict[str, str]] = field(default_factory=dict)  # HubSpot order id -> props
    contact_props: dict[str, dict[str, str]] = field(default_factory=dict)  # HubSpot contact id -> props
    resync_orders: set[str] = field(default_factory=set)  # commercetools order ids
    occurrences: list[dict[str, Any]] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)  # resource id -> sequence number
    applied_count: int = 0  # messages applied
    dropped: int = 0
    waiting: list[dict[str, Any]] = field(default_factory=list)  # messages whose resource is not synced yet


def _state_of(message: dict[str, Any]) -> str:
    for key in ("orderState", "paymentState", "shipmentState", "state"):
        if message.get(key):
            return str(message[key])
    tx = message.get("transaction") or {}
    return f"{tx.get('type', '')} {tx.get('state', '')}".strip()


def plan_events(messages: list[dict[str, Any]], st: SyncState, settings: Settings,
                event_name: str | None) -> EventPlan:
    plan = EventPlan()
    r = st.r
    ordered = sorted(messages, key=lambda m: (m["resource"]["id"], int(m.get("sequenceNumber", 0))))
    resources = sorted({m["resource"]["id"] for m in ordered})
    applied = dict(zip(resources, r.hmget(Keys.event_sequence(), resources), strict=True)) if resources else {}
    seen_ids: set[str] = set()
    payment_orders = st.r.hmget(Keys.index("payment-order"), [m["resource"]["id"] for m in ordered
                                                               if m["resource"]["typeId"] == "payment"] or ["-"])
    pay_iter = iter(payment_orders)
    pay_to_order = {m["resource"]["id"]: next(pay_iter) for m in ordered if m["resource"]["typeId"] == "payment"}
    order_ids = {m["resource"]["id"] for m in ordered if m["resource"]["typeId"] == "order"}
    order_ids |= {o for o in pay_to_order.values() if o}
    hs_orders = st.lookup_ids(ORDERS, sorted(order_ids))
    people = dict(zip(sorted(order_ids), r.hmget(Keys.index("order-person"), sorted(order_ids)), strict=True)) \
        if order_ids else {}
    customers = st.lookup_ids(CONTACTS, sorted({m["resource"]["id"] for m in ordered
                                                if m["resource"]["typeId"] == "customer"}))
    targets = set(settings.event_targets)
    for message in ordered:
        rid, rtype = message["resource"]["id"], message["resource"]["typeId"]
        seq = int(message.get("sequenceNumber", 0))
        last = plan.applied.get(rid, int(applied.get(rid) or -1))
        if message["id"] in seen_ids or seq <= last:
            plan.dropped += 1  # a duplicate, or older than what was applied: never out of order
            continue
        seen_ids.add(message["id"])
        order_id = rid if rtype == "order" else pay_to_order.get(rid) if rtype == "payment" else None
        hs_order = hs_orders.get(order_id or "")
        contact = customers.get(rid) if rtype == "customer" else people.get(order_id or "")
        if rtype == "payment" and order_id is None:
            plan.dropped += 1  # a payment of no order we know (e.g. a cart's failed attempt)
            continue
        if rtype in ("order", "payment") and hs_order is None:
            plan.waiting.append(message)  # the order has not been synced yet: try again later
            continue
        when = str(message.get("createdAt", ""))
        stamp = {"ct_last_event_type": str(message.get("type", "")), "ct_last_event_at": when}
        if EventTarget.PROPERTIES in targets:
            if hs_order:
                plan.order_props.setdefault(hs_order, {}).update(stamp)
            if contact:
                plan.contact_props.setdefault(contact, {}).update(stamp)
                if rtype == "payment" or message.get("type") == "OrderPaymentStateChanged":
                    plan.contact_props[contact]["ct_last_payment_state"] = _state_of(message)
        if EventTarget.STAGE in targets and order_id and (message.get("type") in STATE_MESSAGES
                                                          or message.get("type") in PAYMENT_MESSAGES):
            plan.resync_orders.add(order_id)
        if EventTarget.CUSTOM_EVENT in targets and event_name and contact:
            plan.occurrences.append({
                "eventName": event_name, "objectId": contact, "occurredAt": when,
                "uuid": custom_events.event_uuid("ct-message", message["id"]),
                "properties": {"message_type": str(message.get("type", "")), "resource_type": rtype,
                               "resource_id": rid, "state": _state_of(message)[:256],
                               "order_number": str((message.get("resourceUserProvidedIdentifiers") or {})
                                                   .get("orderNumber", ""))[:256]}})
        plan.applied[rid] = seq
        plan.applied_count += 1
    return plan


def push_events(plan: EventPlan, hub: HubSpotClient, st: SyncState, task: str) -> None:
    """Write the plan; raises RetryableError to retry all of it (every write here is idempotent)."""
    for obj, updates in ((ORDERS, plan.order_props), (CONTACTS, plan.contact_props)):
        error = update_by_id(hub, st, obj, updates, task, None, only_changed=False)
        if error:
            raise error
    if plan.occurrences:
        custom_events.send(hub, plan.occurrences)
    raise_seq = st.r.register_script(_RAISE)
    for rid, seq in plan.applied.items():
        raise_seq(keys=[Keys.event_sequence()], args=[rid, seq])


def enqueue_event_chunk(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
    queue = PUSH_QUEUE_BY_LANE[Lane(ctx["lane"])].value
    events_apply.apply_async((records, ctx), queue=queue)


def event_name(hub: HubSpotClient, settings: Settings) -> str | None:
    if EventTarget.CUSTOM_EVENT not in settings.event_targets:
        return None
    raw = state().r.get(Keys.custom_event_name())
    if raw:
        return str(raw)
    name = custom_events.ensure_definition(hub, settings.custom_event_name, "commercetools order event",
                                           EVENT_PROPERTIES)
    state().r.set(Keys.custom_event_name(), name)
    return name


MAX_WAITS = 5


@app.task(name=TaskName.EVENTS_APPLY.value, bind=True, base=SyncTask, rate_limit=get_settings().push_rate_limit)
def events_apply(self: SyncTask, messages: list[dict[str, Any]], ctx: dict[str, Any],
                 errors: int = 0) -> dict[str, Any]:
    settings, st = get_settings(), state()
    hub = hubspot(ctx["lane"])
    try:
        plan = plan_events(messages, st, settings, event_name(hub, settings))
        push_events(plan, hub, st, self.name)
    except (RetryableError, PermanentError) as exc:
        ids = [m["id"] for m in messages]
        self.defer(exc, (messages, ctx), errors, ctx["run_id"], ids, {"message_ids": ids})
        return {"applied": 0}
    st.count(ctx["run_id"], updated=plan.applied_count, skipped=plan.dropped)
    if plan.resync_orders:
        from sync_tasks.commerce_tasks import resync_orders

        resync_orders.apply_async((sorted(plan.resync_orders), ctx["lane"]), queue=Queue.SYNC.value)
    waits = int(ctx.get("waits", 0))
    if plan.waiting:
        if waits < MAX_WAITS:
            # Not counted yet: they count when applied (or dropped) on a later try.
            queue = PUSH_QUEUE_BY_LANE[Lane(ctx["lane"])].value
            events_apply.apply_async((plan.waiting, {**ctx, "waits": waits + 1}), queue=queue,
                                     countdown=15 * (waits + 1))
        else:
            log.warning("%d messages dropped: their orders never synced (ids %s)", len(plan.waiting),
                        [m["id"] for m in plan.waiting][:10])
            st.count(ctx["run_id"], skipped=len(plan.waiting))
    return {"applied": plan.applied_count, "dropped": plan.dropped, "waiting": len(plan.waiting)}

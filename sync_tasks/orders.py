"""Orders end to end: match each order to its person, map it to HubSpot order and line items, and
push them with their associations, the person's ledger and the contact rollups.

A guest order (no customer account) matches a contact by e-mail, or creates one by upserting on
e-mail. An order of a registered customer never creates a contact: it takes the customer's contact
(id map, else the e-mail index or HubSpot by e-mail). While the customer's own chain has not made
it yet, the order waits (`contact_waits`); if the customer is in the DLQ, or the wait outlasts
`CONTACT_WAIT_SECONDS`, the order is dead-lettered with "customer <id> has no contact". A guest
contact made from the order's e-mail would hide a customer that failed (the DLQ would be the only
trace of it, and the contact would carry none of its fields).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks.commerce_push import (
    StepPusher,
    associate_all,
    dead_letter_failed,
    upsert_guests,
    upsert_keyed,
)
from sync_tasks.commerce_schema import PipelineInfo, stage_for
from sync_tasks.constants import BATCH_LIMIT, Keys
from sync_tasks.errors import RetryableError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.ledger import Ledger, LedgerEntry, rollups
from sync_tasks.lifecycle import on_recorded, send_pending, subscription_of
from sync_tasks.mapping import fingerprint, normalize_email
from sync_tasks.match import CONTACTS
from sync_tasks.order_history import ReadOrders, for_guests, ledger_entry
from sync_tasks.order_mapping import LINE_ITEM_ID_PROPERTY, ORDER_ID_PROPERTY, map_line_items, map_order
from sync_tasks.settings import Settings
from sync_tasks.state import ROLLUPS_PENDING, RUN_TTL_SECONDS, SyncState

log = logging.getLogger(__name__)

ORDERS = "orders"
LINE_ITEMS = "line_items"
COMPANIES = "companies"
CARTS = "carts"
DEALS = "deals"
PRODUCTS = "products"
SKU_PROPERTY = "ct_sku"
# Waiting for a registered customer's contact: first re-check after CONTACT_WAIT_FIRST_S, doubling
# up to CONTACT_WAIT_MAX_S (and never beyond the caller's cap); dead-lettered after CONTACT_WAIT_SECONDS.
CONTACT_WAIT_FIRST_S = 5.0
CONTACT_WAIT_MAX_S = 300.0
CONTACT_WAIT_SECONDS = 6 * 3600.0
CONTACT_WAIT_WHOLE_S = 600.0  # until then a chunk waits whole; later its ready orders go on alone
NO_CONTACT = "NO_CONTACT"
ROLLUP_RECHECKS = 3  # rewrites of a person's rollups when other chunks keep recording their orders
ROLLUPS_LOCK_SECONDS = 600  # a backfill's rollup writer renews it per batch; a lost task's lock expires
STEPS = ("guests", "products", "orders", "line_items", "associations", "deals", "ledger", "finish")


# -- match --------------------------------------------------------------------------------------------
def match_people(records: list[dict[str, Any]], state: SyncState, hubspot: HubSpotClient,
                 read_hubspot: bool = True) -> dict[str, dict[str, Any]]:
    """record id → {"contact": HubSpot contact id or None, "email": normalised e-mail or None}.
    Guests unknown to Redis stay None: `upsert_guests` finds or makes their contact.

    `read_hubspot=False` (a re-check while waiting for customers' contacts) looks in Redis only:
    the customer chain records the contacts it makes there, and a wait then costs no HubSpot call."""
    out: dict[str, dict[str, Any]] = {
        r["id"]: {"contact": None, "email": normalize_email(r.get("customerEmail"))} for r in records}
    by_customer = state.lookup_ids(CONTACTS, sorted({r["customerId"] for r in records if r.get("customerId")}))
    for r in records:
        if r.get("customerId") in by_customer:
            out[r["id"]]["contact"] = by_customer[r["customerId"]]
    open_emails = sorted({p["email"] for p in out.values() if p["contact"] is None and p["email"]})
    known = state.lookup_emails(open_emails)
    # A guest's e-mail is not read here: the guest upsert on e-mail finds the contact or makes it, in
    # the one call it costs anyway. A registered customer's is: its contact may predate our Redis.
    registered = {normalize_email(r.get("customerEmail")) for r in records if r.get("customerId")}
    missing = [e for e in open_emails if e not in known and e in registered]
    if missing and read_hubspot:
        with hubspot.prepaid(1):
            result = hubspot.batch_read(CONTACTS, missing, ["email"], id_property="email")
        found = {normalize_email(x["properties"].get("email")) or "": str(x["id"]) for x in result.results}
        state.save_emails({e: i for e, i in found.items() if e})
        known.update(found)
    for person in out.values():
        if person["contact"] is None and person["email"] in known:
            person["contact"] = known[person["email"]]
    return out


@dataclass
class ContactWait:
    """The orders of a chunk sorted by whether their person's contact is known."""

    ready: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # the customer's chain may still make it
    # customer id -> (DLQ kind, reason, the customer's DLQ entry id or "") for orders to dead-letter
    no_contact: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    orders_without_contact: dict[str, list[str]] = field(default_factory=dict)  # customer id -> order ids


def awaiting_contact(records: list[dict[str, Any]], people: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Orders of registered customers (customerId set) whose contact is not known yet."""
    return [r for r in records if r.get("customerId") and not people.get(r["id"], {}).get("contact")]


def dead_customers(entries: Iterable[Any], customer_ids: set[str]) -> dict[str, tuple[str, str]]:
    """customer id -> (kind, DLQ entry id) for those of `customer_ids` with a customers DLQ entry;
    a permanent entry wins over an exhausted one. `entries`: `sync_tasks.dlq.DlqEntry`s."""
    out: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.entity != "customers":
            continue
        for cid in customer_ids.intersection(entry.record_ids):
            if cid not in out or (entry.kind == "permanent" and out[cid][0] != "permanent"):
                out[cid] = (entry.kind, entry.id)
    return out


def sort_by_contact(records: list[dict[str, Any]], people: dict[str, dict[str, Any]],
                    dead: dict[str, tuple[str, str]], waited_s: float, max_wait_s: float = CONTACT_WAIT_SECONDS
                    ) -> ContactWait:
    """Ready orders go on; orders of a customer without a contact wait, unless the customer is in the
    DLQ (the order follows it there, same kind: a replayed customer takes its orders along) or the
    wait is over (exhausted: a replay re-checks)."""
    out = ContactWait()
    waiting = {r["id"] for r in awaiting_contact(records, people)}
    for record in records:
        if record["id"] not in waiting:
            out.ready.append(record)
            continue
        cid = str(record["customerId"])
        if cid in dead:
            kind, entry = dead[cid]
            out.no_contact[cid] = (kind, f"customer {cid} has no contact: it is in the DLQ ({kind})", entry)
        elif waited_s >= max_wait_s:
            out.no_contact[cid] = ("exhausted", f"customer {cid} has no contact after {int(waited_s)} s", "")
        else:
            out.waiting.append(record)
            continue
        out.orders_without_contact.setdefault(cid, []).append(record["id"])
    return out


def wait_countdown(waits: int, cap: float) -> float:
    """Seconds before the `waits`-th re-check of the contacts (exponential, jittered, capped)."""
    return min(CONTACT_WAIT_FIRST_S * 2 ** waits, CONTACT_WAIT_MAX_S, cap) * random.uniform(0.8, 1.0)


def dead_letter_no_contact(state: SyncState, task: str, run_id: str | None, wait: ContactWait) -> int:
    """One DLQ entry per customer without a contact, naming its orders; returns the orders sent there."""
    n = 0
    for cid, order_ids in sorted(wait.orders_without_contact.items()):
        kind, reason, entry = wait.no_contact[cid]
        log.warning("orders %s dead-lettered (%s): %s", order_ids, kind, reason)
        state.dead_letter(task, order_ids, {"stage": "order-match", "customer_id": cid, "order_ids": order_ids,
                                            "customer_dlq_entry": entry},
                          {"status": None, "category": NO_CONTACT, "message": reason, "body": None},
                          attempts=1, kind=kind, entity=ORDERS)
        state.count(run_id, failed=len(order_ids))
        n += len(order_ids)
    return n


# -- map ----------------------------------------------------------------------------------------------
def plan_orders(records: list[dict[str, Any]], people: dict[str, dict[str, Any]], state: SyncState,
                settings: Settings, pipeline: PipelineInfo | None, force: bool = False) -> dict[str, Any]:
    plan: dict[str, Any] = {"orders": [], "skipped": 0, "done": []}
    if not records:  # every order of the chunk waits for its contact (or went to the DLQ)
        return plan
    fps = state.fingerprints(ORDERS, [r["id"] for r in records])
    companies = state.r.hmget(Keys.index("customer-company"), [r.get("customerId") or "-" for r in records])
    for record, company in zip(records, companies, strict=True):
        stage_label = stage_for(record, settings)
        stage = (pipeline.pipeline_id, pipeline.stages[stage_label]) if pipeline and stage_label in pipeline.stages \
            else None
        props = map_order(record, stage)
        items = map_line_items("order", record, tuple(settings.line_item_attributes))
        fp = fingerprint({"order": fingerprint(props), **{k: fingerprint(v) for k, v in items}})
        if fps.get(record["id"]) == fp and not force:
            plan["skipped"] += 1
            continue
        person = people.get(record["id"], {})
        plan["orders"].append({
            "id": record["id"], "version": record.get("version"), "props": props,
            "line_items": [[k, v] for k, v in items], "fingerprint": fp,
            "contact": person.get("contact"), "email": person.get("email"),
            "customer_email": record.get("customerEmail"),  # as commercetools holds it (order_history)
            "company": company, "customer_id": record.get("customerId"),
            "cart_id": (record.get("cart") or {}).get("id"),
            "payment_ids": [p["id"] for p in (record.get("paymentInfo") or {}).get("payments") or []],
            "ledger": ledger_entry(record).__dict__,
            "subscription": subscription_of(record, settings),
        })
    return plan


# -- push ---------------------------------------------------------------------------------------------
def push_calls(plan: dict[str, Any]) -> int:
    """Burst-budget calls the push of `plan` makes from where it stands when nothing fails: the
    guests' upsert, the orders and their line items, each in batches of 100, less what is done or
    written already. (Products and deals, when switched on, prepay their own.)"""
    done, progress = set(plan["done"]), plan.get("progress") or {}
    orders = plan["orders"]
    keys = {
        "guests": {o["email"] for o in orders if o["contact"] is None and o["email"]},
        "orders": {o["id"] for o in orders},
        "line_items": {k for o in orders for k, _ in o["line_items"]},
    }
    return sum(-(-len(todo - set(progress.get(step, {}))) // BATCH_LIMIT)
               for step, todo in keys.items() if step not in done)


class OrderPusher(StepPusher):
    steps = STEPS

    def __init__(self, hubspot: HubSpotClient, state: SyncState, settings: Settings, run_id: str | None,
                 task: str, mode: str = "delta", history: ReadOrders | None = None) -> None:
        self.hubspot = hubspot
        self.history = history  # a backfill's: guests' contacts are created with their order history
        self.mode = mode  # "backfill" marks lifecycle events historical
        self.state = state
        self.settings = settings
        self.run_id = run_id
        self.task = task

    def _guests(self, plan: dict[str, Any]) -> RetryableError | None:
        guests = None
        if self.history is not None and self.mode == "backfill":
            spelt = {o["email"]: o.get("customer_email") for o in plan["orders"] if o["email"]}
            guests = for_guests(self.history, self.settings, spelt)
        return upsert_guests(self.hubspot, self.state, self.task, self.run_id, plan["orders"],
                             self.progress(plan, "guests"), guests)

    def _products(self, plan: dict[str, Any]) -> RetryableError | None:
        """PRODUCTS_BY_SKU: one HubSpot product per SKU (HubSpot has no variants), linked from line items."""
        if not self.settings.products_by_sku:
            return None
        products: dict[str, dict[str, str]] = {}
        for order in plan["orders"]:
            for _, item in order["line_items"]:
                if item.get("hs_sku"):
                    products[item["hs_sku"]] = {SKU_PROPERTY: item["hs_sku"], "hs_sku": item["hs_sku"],
                                                "name": item.get("name") or item["hs_sku"], "price": item["price"]}
        known = self.state.lookup_ids(PRODUCTS, sorted(products))
        result = upsert_keyed(self.hubspot, PRODUCTS, SKU_PROPERTY,
                              [(k, v) for k, v in sorted(products.items()) if k not in known],
                              self.progress(plan, "products"))
        self.state.save_ids(PRODUCTS, result.ids)
        known.update(result.ids)
        dead_letter_failed(self.state, self.task, self.run_id, PRODUCTS, result.failed, products, count=False)
        for order in plan["orders"]:
            for _, item in order["line_items"]:
                if item.get("hs_sku") in known:
                    item["hs_product_id"] = known[item["hs_sku"]]
        return result.error

    def _deals(self, plan: dict[str, Any]) -> RetryableError | None:
        """ORDERS_AS_DEALS: each order also as a deal, with line items of its own (one parent each)."""
        if not self.settings.orders_as_deals:
            return None
        deals = [(o["id"], deal_properties(o, self.settings)) for o in plan["orders"]]
        result = upsert_keyed(self.hubspot, DEALS, ORDER_ID_PROPERTY, deals, self.progress(plan, "deals"))
        self.state.save_ids(DEALS, result.ids)
        dead_letter_failed(self.state, self.task, self.run_id, DEALS, result.failed, dict(deals), count=False)
        if result.error:
            return result.error
        items = [(f"deal:{k.split(':', 1)[1]}", {**v, LINE_ITEM_ID_PROPERTY: f"deal:{k.split(':', 1)[1]}"})
                 for o in plan["orders"] if o["id"] in result.ids for k, v in o["line_items"]]
        lines = upsert_keyed(self.hubspot, LINE_ITEMS, LINE_ITEM_ID_PROPERTY, items, self.progress(plan, "deal_lines"))
        self.state.save_ids(LINE_ITEMS, lines.ids)
        pairs = [(result.ids[k.split(":")[1]], hs) for k, hs in lines.ids.items()]
        owners = {hs_id: order_id for order_id, hs_id in result.ids.items()}
        associate_all(self.hubspot, self.state, DEALS, LINE_ITEMS, pairs, self.task, owners)
        associate_all(self.hubspot, self.state, DEALS, CONTACTS, [(result.ids[o["id"]], o["contact"])
                                                                 for o in plan["orders"]
                                                                 if o["contact"] and o["id"] in result.ids],
                      self.task, owners)
        return lines.error

    def _orders(self, plan: dict[str, Any]) -> RetryableError | None:
        items = [(o["id"], o["props"]) for o in plan["orders"]]
        result = upsert_keyed(self.hubspot, ORDERS, ORDER_ID_PROPERTY, items, self.progress(plan, "orders"))
        self.state.save_ids(ORDERS, result.ids)
        if result.error:
            return result.error
        dead_letter_failed(self.state, self.task, self.run_id, ORDERS, result.failed, dict(items))
        plan["orders"] = [o for o in plan["orders"] if o["id"] not in result.failed]
        for order in plan["orders"]:
            order["hs_id"] = result.ids[order["id"]]
            order["new"] = order["id"] in result.new
        return None

    def _line_items(self, plan: dict[str, Any]) -> RetryableError | None:
        items = [(k, v) for o in plan["orders"] for k, v in o["line_items"]]
        result = upsert_keyed(self.hubspot, LINE_ITEMS, LINE_ITEM_ID_PROPERTY, items, self.progress(plan, "line_items"))
        self.state.save_ids(LINE_ITEMS, result.ids)
        dead_letter_failed(self.state, self.task, self.run_id, LINE_ITEMS, result.failed, dict(items), count=False)
        for order in plan["orders"]:
            order["line_item_ids"] = [result.ids[k] for k, _ in order["line_items"] if k in result.ids]
        return result.error

    def _associations(self, plan: dict[str, Any]) -> RetryableError | None:
        orders = plan["orders"]
        # A customer's company may have been written since the order was mapped: look again.
        missing = [o for o in orders if not o["company"] and o.get("customer_id")]
        if missing:
            found = self.state.r.hmget(Keys.index("customer-company"), [o["customer_id"] for o in missing])
            for order, company in zip(missing, found, strict=True):
                order["company"] = company
        carts = self.state.lookup_ids(CARTS, [o["cart_id"] for o in orders if o["cart_id"]])
        with_contact = [(o["hs_id"], o["contact"]) for o in orders if o["contact"]]
        owners = {o["hs_id"]: o["id"] for o in orders}
        associate_all(self.hubspot, self.state, ORDERS, CONTACTS, with_contact, self.task, owners)
        associate_all(self.hubspot, self.state, ORDERS, LINE_ITEMS,
                      [(o["hs_id"], li) for o in orders for li in o.get("line_item_ids", [])], self.task, owners)
        associate_all(self.hubspot, self.state, ORDERS, COMPANIES, [(o["hs_id"], o["company"]) for o in orders
                                                                    if o["company"]], self.task, owners)
        associate_all(self.hubspot, self.state, ORDERS, CARTS, [(o["hs_id"], carts[o["cart_id"]]) for o in orders
                                                                if o["cart_id"] in carts], self.task, owners)
        return None

    def _ledger(self, plan: dict[str, Any]) -> RetryableError | None:
        people: dict[str, list[LedgerEntry]] = {}
        for order in plan["orders"]:
            if order["contact"]:
                people.setdefault(order["contact"], []).append(LedgerEntry(**order["ledger"]))
        if people:
            pipe = self.state.r.pipeline(transaction=False)  # one round trip for the chunk's people
            ledger = Ledger(pipe)
            for person, entries in people.items():
                ledger.record(person, entries)
            pipe.hset(Keys.index("order-person"), mapping={o["id"]: o["contact"] for o in plan["orders"]
                                                           if o["contact"]})
            pipe.execute()
        recorded = {p: [e.order_id for e in es] for p, es in people.items()}
        subscriptions = {o["id"]: o.get("subscription", "") for o in plan["orders"]}
        if self.mode == "backfill" and self.run_id:
            # A backfill writes each person's rollups once, at its end (`write_backfill_rollups`),
            # rather than once per chunk holding some of their orders.
            on_recorded(self.hubspot, self.state, self.settings, recorded, subscriptions, self.mode, self.task,
                        self.run_id, send=False)
            defer_rollups(self.state, self.run_id, people)
            return None
        # Rollups and lifecycle properties go to HubSpot in one batch update per chunk.
        values = person_rollups(self.state, self.settings, people)
        error = on_recorded(self.hubspot, self.state, self.settings, recorded, subscriptions, self.mode, self.task,
                            self.run_id, extra=values).error
        return error or recheck_rollups(self.hubspot, self.state, self.settings, values, self.task, self.run_id)

    def _finish(self, plan: dict[str, Any]) -> RetryableError | None:
        orders = plan["orders"]
        state = self.state
        state.save_fingerprints(ORDERS, {o["id"]: o["fingerprint"] for o in orders})
        if orders:
            state.r.hset(Keys.synced_version(ORDERS), mapping={o["id"]: str(o["version"]) for o in orders})
        carts = {o["cart_id"]: o["id"] for o in orders if o["cart_id"]}
        if carts:
            state.r.hset(Keys.index("cart-order"), mapping=carts)
        payments = {p: o["id"] for o in orders for p in o["payment_ids"]}
        if payments:
            state.r.hset(Keys.index("payment-order"), mapping=payments)
        created = sum(1 for o in orders if o.get("new"))
        state.count(self.run_id, created=created, updated=len(orders) - created)
        return None


# -- rollups ------------------------------------------------------------------------------------------
def person_rollups(state: SyncState, settings: Settings, people: Iterable[str]) -> dict[str, dict[str, str]]:
    entries = Ledger(state.r).entries_many(list(people))  # one round trip for the chunk's people
    return {p: rollups(e, settings.reporting_currency, settings.exchange_rates) for p, e in entries.items()}


def recheck_rollups(hubspot: HubSpotClient, state: SyncState, settings: Settings,
                    written: dict[str, dict[str, str]], task: str, run_id: str | None) -> RetryableError | None:
    """Another chunk of the same person may have recorded orders after `written` was computed and
    written its (larger) rollups before ours landed. Read the ledger again: whoever sees it changed
    writes again, so the last write shows the whole ledger."""
    for _ in range(ROLLUP_RECHECKS):
        now = person_rollups(state, settings, written)
        moved = sorted(p for p, values in now.items() if values != written[p])
        if not moved:
            return None
        written = {p: now[p] for p in moved}
        # All of it: `written` may hold the other chunk's values while HubSpot shows ours.
        error = send_pending(hubspot, state, settings, moved, task, run_id, written, only_changed=False)[1]
        if error:
            return error
    return None


def defer_rollups(state: SyncState, run_id: str, people: Iterable[str]) -> None:
    """Leave these people's rollups (and lifecycle properties) for the end of backfill `run_id`;
    `run_complete` waits for them."""
    members = sorted(people)
    if not members:
        return
    pipe = state.r.pipeline()
    pipe.sadd(Keys.run_rollups(run_id), *members)
    pipe.expire(Keys.run_rollups(run_id), RUN_TTL_SECONDS)
    pipe.hset(Keys.run(run_id), "rollups", ROLLUPS_PENDING)
    pipe.execute()


def claim_backfill_rollups(state: SyncState, run_id: str) -> bool:
    """True for the one caller that should now write the run's deferred rollups: every record of the
    run is done, some rollups wait, and no writer holds the run's lock (it expires if its task is lost)."""
    run = state.run(run_id)
    if run.get("rollups") != ROLLUPS_PENDING or not state.records_done(run):
        return False
    return bool(state.r.set(Keys.run_rollups_lock(run_id), "1", nx=True, ex=ROLLUPS_LOCK_SECONDS))


def write_backfill_rollups(hubspot: HubSpotClient, state: SyncState, settings: Settings, run_id: str, task: str,
                           batch: int = BATCH_LIMIT) -> tuple[int, RetryableError | None]:
    """Write the rollups and lifecycle properties a backfill deferred, a full batch of people per
    call, then mark the run's rollups done. Returns (people written, the error to retry after): a
    retry goes on with the people not yet written."""
    key = Keys.run_rollups(run_id)
    written = 0
    while members := sorted(m.decode() if isinstance(m, bytes) else str(m)
                            for m in state.r.srandmember(key, batch) or []):
        values = person_rollups(state, settings, members)
        error = send_pending(hubspot, state, settings, members, task, run_id, values)[1] or \
            recheck_rollups(hubspot, state, settings, values, task, run_id)
        if error:
            return written, error
        pipe = state.r.pipeline()
        pipe.srem(key, *members)
        pipe.expire(Keys.run_rollups_lock(run_id), ROLLUPS_LOCK_SECONDS)
        pipe.hincrby(Keys.run(run_id), "rollups_written", len(members))  # progress: runs.wait_for_run sees it
        pipe.execute()
        written += len(members)
    state.r.hset(Keys.run(run_id), "rollups", "done")
    state.r.delete(Keys.run_rollups_lock(run_id))
    log.info("backfill %s: rollups written for %d people", run_id, written)
    return written, None


def deal_properties(order: dict[str, Any], settings: Settings) -> dict[str, str]:
    props = order["props"]
    return {ORDER_ID_PROPERTY: order["id"], "dealname": props["hs_order_name"], "amount": props["hs_total_price"],
            "deal_currency_code": props["hs_currency_code"], "pipeline": settings.deal_pipeline,
            "dealstage": settings.deal_stage, "closedate": props.get("hs_external_created_date", "")}



"""Orders end to end: match each order to its person, map it to HubSpot order and line items, and
push them with their associations, the person's ledger and the contact rollups.

A guest order (no customer account) matches a contact by e-mail, or creates one by upserting on
e-mail. An order whose customer has not been synced yet falls back to the same e-mail match; the
customer sync later finds that contact by e-mail too, so both converge on one contact.
"""

from __future__ import annotations

import logging
from typing import Any

from sync_tasks.commerce_push import (
    StepPusher,
    associate_all,
    dead_letter_failed,
    upsert_guests,
    upsert_keyed,
)
from sync_tasks.commerce_schema import PipelineInfo, stage_for
from sync_tasks.constants import Keys
from sync_tasks.errors import RetryableError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.ledger import Ledger, LedgerEntry, rollups
from sync_tasks.lifecycle import on_recorded, subscription_of
from sync_tasks.mapping import fingerprint, normalize_email
from sync_tasks.match import CONTACTS
from sync_tasks.money import text as money_text
from sync_tasks.order_mapping import LINE_ITEM_ID_PROPERTY, ORDER_ID_PROPERTY, map_line_items, map_order
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState

log = logging.getLogger(__name__)

ORDERS = "orders"
LINE_ITEMS = "line_items"
COMPANIES = "companies"
CARTS = "carts"
DEALS = "deals"
PRODUCTS = "products"
SKU_PROPERTY = "ct_sku"
STEPS = ("guests", "products", "orders", "line_items", "associations", "deals", "ledger", "finish")


# -- match --------------------------------------------------------------------------------------------
def match_people(records: list[dict[str, Any]], state: SyncState, hubspot: HubSpotClient) -> dict[str, dict[str, Any]]:
    """record id → {"contact": HubSpot contact id or None, "email": normalised e-mail or None}."""
    out: dict[str, dict[str, Any]] = {
        r["id"]: {"contact": None, "email": normalize_email(r.get("customerEmail"))} for r in records}
    by_customer = state.lookup_ids(CONTACTS, sorted({r["customerId"] for r in records if r.get("customerId")}))
    for r in records:
        if r.get("customerId") in by_customer:
            out[r["id"]]["contact"] = by_customer[r["customerId"]]
    open_emails = sorted({p["email"] for p in out.values() if p["contact"] is None and p["email"]})
    known = state.lookup_emails(open_emails)
    missing = [e for e in open_emails if e not in known]
    if missing:
        with hubspot.prepaid(1):
            result = hubspot.batch_read(CONTACTS, missing, ["email"], id_property="email")
        found = {normalize_email(x["properties"].get("email")) or "": str(x["id"]) for x in result.results}
        state.save_emails({e: i for e, i in found.items() if e})
        known.update(found)
    for person in out.values():
        if person["contact"] is None and person["email"] in known:
            person["contact"] = known[person["email"]]
    return out


# -- map ----------------------------------------------------------------------------------------------
def plan_orders(records: list[dict[str, Any]], people: dict[str, dict[str, Any]], state: SyncState,
                settings: Settings, pipeline: PipelineInfo | None, force: bool = False) -> dict[str, Any]:
    fps = state.fingerprints(ORDERS, [r["id"] for r in records])
    companies = state.r.hmget(Keys.index("customer-company"), [r.get("customerId") or "-" for r in records])
    plan: dict[str, Any] = {"orders": [], "skipped": 0, "done": []}
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
        total = record.get("totalPrice") or {}
        plan["orders"].append({
            "id": record["id"], "version": record.get("version"), "props": props,
            "line_items": [[k, v] for k, v in items], "fingerprint": fp,
            "contact": person.get("contact"), "email": person.get("email"),
            "company": company, "customer_id": record.get("customerId"),
            "cart_id": (record.get("cart") or {}).get("id"),
            "payment_ids": [p["id"] for p in (record.get("paymentInfo") or {}).get("payments") or []],
            "ledger": LedgerEntry(order_id=record["id"], created_at=record.get("createdAt", ""),
                                  state=record.get("orderState", ""), total=money_text(total) or "0",
                                  currency=str(total.get("currencyCode", "")),
                                  refunded=props.get("ct_refunded_amount") or "0",
                                  store=str((record.get("store") or {}).get("key") or "")).__dict__,
            "subscription": subscription_of(record, settings),
        })
    return plan


# -- push ---------------------------------------------------------------------------------------------
class OrderPusher(StepPusher):
    steps = STEPS

    def __init__(self, hubspot: HubSpotClient, state: SyncState, settings: Settings, run_id: str | None,
                 task: str, mode: str = "delta") -> None:
        self.hubspot = hubspot
        self.mode = mode  # "backfill" marks lifecycle events historical
        self.state = state
        self.settings = settings
        self.run_id = run_id
        self.task = task

    def _guests(self, plan: dict[str, Any]) -> RetryableError | None:
        return upsert_guests(self.hubspot, self.state, self.task, self.run_id, plan["orders"],
                             self.progress(plan, "guests"))

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
        associate_all(self.hubspot, self.state, DEALS, LINE_ITEMS, pairs)
        associate_all(self.hubspot, self.state, DEALS, CONTACTS, [(result.ids[o["id"]], o["contact"])
                                                                 for o in plan["orders"]
                                                                 if o["contact"] and o["id"] in result.ids])
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
        associate_all(self.hubspot, self.state, ORDERS, CONTACTS, with_contact)
        associate_all(self.hubspot, self.state, ORDERS, LINE_ITEMS,
                      [(o["hs_id"], li) for o in orders for li in o.get("line_item_ids", [])])
        associate_all(self.hubspot, self.state, ORDERS, COMPANIES, [(o["hs_id"], o["company"]) for o in orders
                                                                    if o["company"]])
        associate_all(self.hubspot, self.state, ORDERS, CARTS, [(o["hs_id"], carts[o["cart_id"]]) for o in orders
                                                                if o["cart_id"] in carts])
        return None

    def _ledger(self, plan: dict[str, Any]) -> RetryableError | None:
        ledger = Ledger(self.state.r)
        people: dict[str, list[LedgerEntry]] = {}
        for order in plan["orders"]:
            if order["contact"]:
                people.setdefault(order["contact"], []).append(LedgerEntry(**order["ledger"]))
        for person, entries in people.items():
            ledger.record(person, entries)
        if people:
            self.state.r.hset(Keys.index("order-person"), mapping={o["id"]: o["contact"] for o in plan["orders"]
                                                                   if o["contact"]})
        # Rollups and lifecycle properties go to HubSpot in one batch update per chunk.
        rollup_values = {p: rollups(ledger.entries(p), self.settings.reporting_currency, self.settings.exchange_rates)
                         for p in people}
        return on_recorded(self.hubspot, self.state, self.settings,
                           {p: [e.order_id for e in es] for p, es in people.items()},
                           {o["id"]: o.get("subscription", "") for o in plan["orders"]}, self.mode, self.task,
                           self.run_id, extra=rollup_values).error

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


def deal_properties(order: dict[str, Any], settings: Settings) -> dict[str, str]:
    props = order["props"]
    return {ORDER_ID_PROPERTY: order["id"], "dealname": props["hs_order_name"], "amount": props["hs_total_price"],
            "deal_currency_code": props["hs_currency_code"], "pipeline": settings.deal_pipeline,
            "dealstage": settings.deal_stage, "closedate": props.get("hs_external_created_date", "")}



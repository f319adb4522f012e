"""End-to-end check against the sandboxes: every commercetools customer with an e-mail has exactly
one HubSpot contact, and every order exactly one HubSpot order with its line items and its contact,
carrying the values the sync should have written. Used by `make demo`, the end-to-end tests and the
chaos suite; it reads HubSpot through the sandbox's `/_sandbox/` inspection API."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from sync_tasks.changes import pick_owner
from sync_tasks.commerce_schema import PipelineInfo, stage_for
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.extract import EXPAND
from sync_tasks.mapping import map_customer, normalize_email
from sync_tasks.order_mapping import LINE_ITEM_ID_PROPERTY, ORDER_ID_PROPERTY, map_line_items, map_order
from sync_tasks.pagination import KeysetPaginator
from sync_tasks.settings import Settings, get_settings


@dataclass
class VerifyReport:
    customers: int = 0
    people: int = 0
    contacts: int = 0
    missing: list[str] = field(default_factory=list)  # customer ids without a contact
    duplicates: list[str] = field(default_factory=list)  # contact ids sharing one e-mail
    mismatched: list[str] = field(default_factory=list)  # "customer id: property"
    unlinked: list[str] = field(default_factory=list)  # customer ids whose contact lacks their company

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.mismatched or self.unlinked)


def all_customers(ct: CommercetoolsClient) -> list[dict[str, Any]]:
    return [c for page in KeysetPaginator(ct, "customers", expand=["customerGroup"]) for c in page]


def sandbox_records(hubspot_url: str, obj: str) -> list[dict[str, Any]]:
    body = requests.get(f"{hubspot_url}/_sandbox/objects/{obj}", timeout=120).json()
    records = body.get("results", body) if isinstance(body, dict) else body
    return [r for r in records if not r.get("archived")]


def verify_contacts(ct: CommercetoolsClient, hubspot_url: str, rule: str,
                    ignore: tuple[str, ...] = ("ct_last_modified_at",)) -> VerifyReport:
    customers = all_customers(ct)
    report = VerifyReport(customers=len(customers))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in customers:
        email = normalize_email(c.get("email"))
        if email:
            groups[email].append(c)
    report.people = len(groups)
    contacts = sandbox_records(hubspot_url, "contacts")
    report.contacts = len(contacts)
    company_names = {str(c["id"]): (c.get("properties", {}).get("name") or "")
                     for c in sandbox_records(hubspot_url, "companies")}
    linked: dict[str, set[str]] = defaultdict(set)  # contact id → names of its companies
    for contact_id, company_id in sandbox_associations(hubspot_url, "contacts", "companies"):
        linked[contact_id].add(company_names.get(company_id, ""))
    company_field = get_settings().company_field
    by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in contacts:
        email = normalize_email(contact.get("properties", {}).get("email"))
        if email:
            by_email[email].append(contact)
    for email, group in groups.items():
        found = by_email.get(email, [])
        if not found:
            report.missing += [c["id"] for c in group]
            continue
        if len(found) > 1:
            report.duplicates += [str(x["id"]) for x in found]
        props = found[0].get("properties", {})
        # A person with a company (on any of their accounts) is associated with one of those companies.
        names = {str(c.get(company_field) or "").strip() for c in group} - {""}
        if names and not names & linked.get(str(found[0]["id"]), set()):
            report.unlinked += [c["id"] for c in group]
        owner = pick_owner(rule, group)
        with _quiet_mapping():  # the sync already warned about these values; the check needn't repeat it
            expected = dict(map_customer(owner).properties)
        expected["ct_customer_ids"] = ";".join(sorted(c["id"] for c in group))
        for name, value in expected.items():
            if name in ignore:
                continue
            if (props.get(name) or "") != (value or ""):
                report.mismatched.append(f"{owner['id']}: {name}")
    return report


@contextlib.contextmanager
def _quiet_mapping() -> Iterator[None]:
    logger = logging.getLogger("sync_tasks.mapping")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class OrderReport:
    orders: int = 0
    hs_orders: int = 0
    line_items: int = 0  # expected: one per commercetools line item of every order
    hs_line_items: int = 0  # HubSpot line items with an order key
    missing: list[str] = field(default_factory=list)  # order ids without a HubSpot order
    duplicates: list[str] = field(default_factory=list)  # order ids with more than one HubSpot order
    mismatched: list[str] = field(default_factory=list)  # "order id: property"
    line_items_missing: list[str] = field(default_factory=list)  # line item keys
    line_item_duplicates: list[str] = field(default_factory=list)  # line item keys
    line_items_mismatched: list[str] = field(default_factory=list)  # "line item key: property"
    line_items_unlinked: list[str] = field(default_factory=list)  # keys not associated with their order
    contact_missing: list[str] = field(default_factory=list)  # order ids not linked to their person's contact
    contact_wrong: list[str] = field(default_factory=list)  # order ids linked to another contact too
    without_contact: list[str] = field(default_factory=list)  # order ids whose person has no contact (info)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.mismatched or self.line_items_missing
                    or self.line_item_duplicates or self.line_items_mismatched or self.line_items_unlinked
                    or self.contact_missing or self.contact_wrong)

    def summary(self, examples: int = 10) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, list):
                out[name] = len(value)
                if value:
                    out[f"{name}_examples"] = value[:examples]
            else:
                out[name] = value
        return out | {"ok": self.ok}


def all_orders(ct: CommercetoolsClient) -> list[dict[str, Any]]:
    """Every order, expanded as the extraction expands it (payments: refunds come from them)."""
    return [o for page in KeysetPaginator(ct, "orders", expand=EXPAND["orders"]) for o in page]


def sandbox_associations(hubspot_url: str, src: str, dst: str) -> list[tuple[str, str]]:
    body = requests.get(f"{hubspot_url}/_sandbox/associations/{src}/{dst}", timeout=120).json()
    return [(str(p["fromId"]), str(p["toId"])) for p in body.get("results", [])]


def verify_orders(ct: CommercetoolsClient, hubspot_url: str, settings: Settings | None = None,
                  pipeline: PipelineInfo | None = None, ignore: tuple[str, ...] = ()) -> OrderReport:
    """Every commercetools order has exactly one HubSpot order (by `ct_order_id`) with the values
    `map_order` gives, each of its line items exactly once (by `ct_line_item_id`, associated with the
    order) with the values `map_line_items` gives, and an association with its person's contact when
    that person has one: a registered customer's contact (`ct_customer_ids`), a guest's by e-mail.

    `pipeline`: the order pipeline the sync used (`commerce_schema.cached_pipeline`); without it the
    stage properties are not compared (stage ids differ per portal)."""
    settings = settings or get_settings()
    orders = all_orders(ct)
    report = OrderReport(orders=len(orders))
    attributes = tuple(settings.line_item_attributes)
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sandbox_records(hubspot_url, "orders"):
        key = record.get("properties", {}).get(ORDER_ID_PROPERTY)
        if key:
            by_key[str(key)].append(record)
    report.hs_orders = sum(len(v) for v in by_key.values())
    items_by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sandbox_records(hubspot_url, "line_items"):
        key = str(record.get("properties", {}).get(LINE_ITEM_ID_PROPERTY) or "")
        if key.startswith("order:"):
            items_by_key[key].append(record)
    report.hs_line_items = sum(len(v) for v in items_by_key.values())
    contacts = sandbox_records(hubspot_url, "contacts")
    contact_of_customer: dict[str, str] = {}
    contact_of_email: dict[str, str] = {}
    for contact in contacts:
        props = contact.get("properties", {})
        for cid in [props.get("ct_customer_id"), *str(props.get("ct_customer_ids") or "").split(";")]:
            if cid:
                contact_of_customer[str(cid)] = str(contact["id"])
        email = normalize_email(props.get("email"))
        if email:
            contact_of_email[email] = str(contact["id"])
    order_lines = set(sandbox_associations(hubspot_url, "orders", "line_items"))
    order_contacts: dict[str, set[str]] = defaultdict(set)
    for order_id, contact_id in sandbox_associations(hubspot_url, "orders", "contacts"):
        order_contacts[order_id].add(contact_id)
    for order in orders:
        lines = map_line_items("order", order, attributes)
        report.line_items += len(lines)
        if order.get("customerId"):
            person = contact_of_customer.get(str(order["customerId"]))
        else:
            person = contact_of_email.get(normalize_email(order.get("customerEmail")) or "")
        if person is None:
            report.without_contact.append(order["id"])
        found = by_key.get(order["id"], [])
        if not found:  # its line items are not looked for: the order is reported once
            report.missing.append(order["id"])
            continue
        if len(found) > 1:
            report.duplicates.append(order["id"])
        hs = found[0]
        label = stage_for(order, settings)
        stage = (pipeline.pipeline_id, pipeline.stages[label]) if pipeline and label in pipeline.stages else None
        skip = set(ignore) | (set() if pipeline else {"hs_pipeline", "hs_pipeline_stage"})
        report.mismatched += [f"{order['id']}: {name}" for name in
                              _differences(map_order(order, stage), hs.get("properties", {}), skip)]
        for key, expected in lines:
            items = items_by_key.get(key, [])
            if not items:
                report.line_items_missing.append(key)
                continue
            if len(items) > 1:
                report.line_item_duplicates.append(key)
            report.line_items_mismatched += [f"{key}: {name}" for name in
                                             _differences(expected, items[0].get("properties", {}), set(ignore))]
            if (str(hs["id"]), str(items[0]["id"])) not in order_lines:
                report.line_items_unlinked.append(key)
        linked = order_contacts.get(str(hs["id"]), set())
        if person is None:
            if linked:
                report.contact_wrong.append(order["id"])
        elif person not in linked:
            report.contact_missing.append(order["id"])
        elif linked != {person}:
            report.contact_wrong.append(order["id"])
    return report


def _differences(expected: dict[str, str], actual: dict[str, Any], ignore: set[str]) -> list[str]:
    """Names of the expected properties HubSpot holds otherwise (numbers compared as numbers: a
    HubSpot number property may drop trailing zeros)."""
    out = []
    for name, value in expected.items():
        if name in ignore:
            continue
        want, got = str(value or ""), str(actual.get(name) or "")
        if want != got and not _same_number(want, got):
            out.append(name)
    return out


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b)
    except (InvalidOperation, ValueError):
        return False

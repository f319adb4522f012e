"""An initial load's order history, read before a person's contact is written.

A backfill writes customers before it reads orders, so every contact with orders was written twice:
created by the customer backfill, then updated with its order rollups and lifecycle properties at
the end of the order backfill (165 of the 1,667 calls of the bench's 20,000-customer load). So a
backfill reads the orders of the people it is about to write from commercetools (registered ones
by `customerId`, guests by `customerEmail`) and puts the rollups and lifecycle properties the order
backfill will compute into that same write.

This only saves calls; it decides no value. The order backfill's end still computes every person's
values from its ledger and writes what differs from what the sync wrote (`update_by_id` with
`only_changed`): an order placed in between, or one whose e-mail is cased differently from the
account's (commercetools compares strings exactly), costs one more write, never a wrong value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypedDict

import msgspec

from sync_tasks import money
from sync_tasks.commercetools_client import CommercetoolsClient, query_in
from sync_tasks.ledger import LedgerEntry, rollups
from sync_tasks.lifecycle import contact_properties, evaluate, subscription_of
from sync_tasks.mapping import normalize_email
from sync_tasks.order_mapping import refunded_amount
from sync_tasks.settings import Settings

ORDER_EXPAND = ["paymentInfo.payments[*]"]  # refunds are read from the payments


class HistoryOrder(TypedDict, total=False):
    """What `person_properties` and `group_orders` read of an order; the rest of it (line items are
    nine tenths of its bytes) is skipped while decoding, not turned into Python objects. Values are
    `Any`: a narrow read validates nothing, the functions reading it do."""

    id: Any
    createdAt: Any
    orderState: Any
    totalPrice: Any
    store: Any
    paymentInfo: Any  # expanded payments: refund transactions
    custom: Any  # the subscription field
    origin: Any  # a recurring order's
    customerId: Any
    customerEmail: Any


class _HistoryPage(TypedDict):
    results: list[HistoryOrder]


# msgspec with the fields above: a page of 150 orders decodes in 1.8 ms instead of orjson's 12 ms
# (the customer backfill reads every person's orders; this read was a fifth of its worker time).
_decode_page = msgspec.json.Decoder(_HistoryPage).decode

# (customer ids, e-mails as commercetools may hold them) → their orders.
ReadOrders = Callable[[list[str], list[str]], list[dict[str, Any]]]
# E-mail → the person's accounts, to e-mail → the contact properties of their order history.
History = Callable[[dict[str, list[dict[str, Any]]]], dict[str, dict[str, str]]]


def ledger_entry(order: dict[str, Any]) -> LedgerEntry:
    """The ledger's view of an order (the order push records exactly this)."""
    total = order.get("totalPrice") or {}
    return LedgerEntry(order_id=order["id"], created_at=order.get("createdAt", ""),
                       state=order.get("orderState", ""), total=money.text(total) or "0",
                       currency=str(total.get("currencyCode", "")),
                       refunded=money.as_text(refunded_amount(order)) or "0",
                       store=str((order.get("store") or {}).get("key") or ""))


def person_properties(orders: list[dict[str, Any]], settings: Settings) -> dict[str, str]:
    """The contact properties the order backfill's end writes for a person with these orders (its
    whole history): the rollups and the lifecycle properties of a backfill's historical events.
    Empty without orders: such a person gets no rollups from the order sync either."""
    if not orders:
        return {}
    entries = sorted((ledger_entry(o) for o in orders), key=lambda e: (e.created_at, e.order_id))
    claims = evaluate(entries, {o["id"]: subscription_of(o, settings) for o in orders}, settings, "backfill")
    return {**rollups(entries, settings.reporting_currency, settings.exchange_rates),
            **contact_properties(claims, entries, settings)}


def reader(ct: CommercetoolsClient) -> ReadOrders:
    """Orders of these customers, and guest orders placed under these e-mails, from commercetools. (A
    registered order under the e-mail belongs to its account: the first query reads it for the
    group's accounts. One of an account outside the group is left to the order backfill's end.)"""
    def read(customer_ids: list[str], emails: list[str]) -> list[dict[str, Any]]:
        # An e-mail that cannot be quoted is left out (`query_in`): the order backfill writes its person.
        return query_in(ct, "orders", "customerId", customer_ids, ORDER_EXPAND, decode=decode_history) + \
            query_in(ct, "orders", "customerEmail", emails, ORDER_EXPAND, where=("customerId is not defined",),
                     decode=decode_history)

    return read


def decode_history(body: bytes) -> dict[str, Any]:
    """A page of orders as `HistoryOrder`s (dicts of those fields only)."""
    return dict(_decode_page(body))


def for_groups(read: ReadOrders, settings: Settings) -> History:
    """What a customer backfill's map step calls: e-mail → that person's accounts (the whole group)
    → e-mail → `person_properties` (two commercetools queries per chunk)."""
    def history(groups: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
        ids = {email: [r["id"] for r in records] for email, records in groups.items()}
        orders = read(sorted(i for group in ids.values() for i in group),
                      email_variants(r.get("email") for records in groups.values() for r in records))
        return {email: props for email, mine in group_orders(orders, ids).items()
                if (props := person_properties(mine, settings))}

    return history


def for_guests(read: ReadOrders, settings: Settings, spelt: dict[str, str | None]) -> Callable[
        [list[str]], dict[str, dict[str, str]]]:
    """What an order backfill's guest upsert calls: guests' e-mails → `person_properties` of their
    guest orders (one commercetools query). `spelt`: normalised e-mail → as an order holds it."""
    def history(emails: list[str]) -> dict[str, dict[str, str]]:
        orders = read([], email_variants([*emails, *(spelt.get(e) for e in emails)]))
        return {email: props for email, mine in group_orders(orders, {e: [] for e in emails}).items()
                if (props := person_properties(mine, settings))}

    return history


def email_variants(raw: Iterable[str | None]) -> list[str]:
    """The spellings to ask commercetools for: as stored on the accounts, trimmed, and normalised."""
    out: set[str] = set()
    for value in raw:
        if value:
            out.update({value, value.strip(), normalize_email(value) or ""})
    return sorted(v for v in out if v)


def group_orders(orders: list[dict[str, Any]], groups: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Person (normalised e-mail) → their orders: those of the person's accounts, and guest orders
    (no account) under the person's e-mail. `groups`: e-mail → account ids."""
    by_account = {cid: email for email, ids in groups.items() for cid in ids}
    out: dict[str, list[dict[str, Any]]] = {email: [] for email in groups}
    for order in orders:
        customer = order.get("customerId")
        person = by_account.get(customer) if customer else normalize_email(order.get("customerEmail"))
        if person in out:
            out[person].append(order)
    return out

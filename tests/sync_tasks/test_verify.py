"""`verify_orders` against real sandboxes: a commercetools shop and a HubSpot portal, both as server
processes over HTTP; the orders are written by the real order pusher (in this process, no broker),
then damaged by hand, and the report must name exactly what was damaged."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import redis
import requests

from sync_tasks.commerce_push import ASSOCIATION_TYPES
from sync_tasks.commerce_schema import cached_pipeline
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.mapping import normalize_email
from sync_tasks.match import CONTACTS
from sync_tasks.orders import OrderPusher, match_people, plan_orders
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState
from sync_tasks.verify import all_customers, all_orders, sandbox_records, verify_orders
from tests.sync_tasks.sandboxes import portal, settings_for

SIZE = 40


def _sync(ct_url: str, hs_url: str, r: redis.Redis, skip_customer: str) -> tuple[Settings, HubSpotClient]:
    """Contacts seeded for every e-mail group but `skip_customer`'s, then every order whose person
    has a contact (or is a guest) written by the real pusher."""
    settings, hub = portal(ct_url, hs_url, r)
    state = SyncState(r)
    groups: dict[str, list[str]] = defaultdict(list)
    for c in all_customers(CommercetoolsClient(settings)):
        if c["id"] != skip_customer and normalize_email(c.get("email")):
            groups[normalize_email(c.get("email")) or ""].append(c["id"])
    inputs = [{"properties": {"email": e, "ct_customer_id": ids[0], "ct_customer_ids": ";".join(sorted(ids))}}
              for e, ids in groups.items()]
    made = requests.post(f"{hs_url}/_sandbox/objects/contacts", json={"inputs": inputs}, timeout=60).json()
    state.save_ids(CONTACTS, {cid: str(rec["id"]) for rec, (_, ids) in zip(made["results"], groups.items(),
                                                                            strict=True) for cid in ids})
    orders = [o for o in all_orders(CommercetoolsClient(settings)) if o.get("customerId") != skip_customer]
    plan = plan_orders(orders, match_people(orders, state, hub), state, settings, cached_pipeline(r))
    assert OrderPusher(hub, state, settings, None, "test").push(plan) is None
    return settings, hub


def _by_key(hs_url: str, obj: str, prop: str) -> dict[str, dict[str, Any]]:
    return {str(x["properties"][prop]): x for x in sandbox_records(hs_url, obj) if x["properties"].get(prop)}


def test_verify_orders_passes_a_complete_sync_and_names_every_damage(sandboxes: tuple[str, str],
                                                                        redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    ct = CommercetoolsClient(settings_for(ct_url, hs_url))
    orders = all_orders(ct)
    per_customer: dict[str, list[str]] = defaultdict(list)
    for o in orders:
        if o.get("customerId"):
            per_customer[o["customerId"]].append(o["id"])
    customers = {c["id"]: normalize_email(c.get("email")) for c in all_customers(ct)}
    emails = Counter(customers.values())
    # A customer alone on its e-mail, with orders: its contact is never made (as if it failed).
    skipped = next(cid for cid in sorted(per_customer) if customers[cid] and emails[customers[cid]] == 1)
    settings, hub = _sync(ct_url, hs_url, redis_client, skipped)
    pipeline = cached_pipeline(redis_client)

    clean = verify_orders(ct, hs_url, settings, pipeline)
    assert clean.orders == len(orders) and clean.line_items == sum(len(o["lineItems"]) for o in orders)
    assert sorted(clean.missing) == sorted(per_customer[skipped]) == sorted(clean.without_contact)
    assert not (clean.duplicates or clean.mismatched or clean.line_items_missing or clean.line_item_duplicates
                or clean.line_items_mismatched or clean.line_items_unlinked or clean.contact_missing
                or clean.contact_wrong)
    assert not clean.ok  # the skipped customer's orders are missing

    hs_orders = _by_key(hs_url, "orders", "ct_order_id")
    hs_items = _by_key(hs_url, "line_items", "ct_line_item_id")
    contacts = sandbox_records(hs_url, "contacts")
    written = [o for o in orders if o["id"] in hs_orders]
    changed, deleted, other_contact, extra_link = written[0], written[1], written[2], written[3]
    item_changed = f"order:{written[4]['id']}:{written[4]['lineItems'][0]['id']}"
    item_deleted = f"order:{written[5]['id']}:{written[5]['lineItems'][0]['id']}"
    requests.patch(f"{hs_url}/_sandbox/objects/orders/{hs_orders[changed['id']]['id']}",
                   json={"properties": {"hs_total_price": "0.01", "ct_order_state": "Nonsense"}},
                   timeout=30).raise_for_status()
    requests.patch(f"{hs_url}/_sandbox/objects/line_items/{hs_items[item_changed]['id']}",
                   json={"properties": {"quantity": "999"}}, timeout=30).raise_for_status()
    auth = {"Authorization": f"Bearer {settings.hubspot_token.get_secret_value()}"}
    for obj, hs_id in (("orders", hs_orders[deleted["id"]]["id"]), ("line_items", hs_items[item_deleted]["id"])):
        requests.delete(f"{hs_url}/crm/v3/objects/{obj}/{hs_id}", headers=auth, timeout=30).raise_for_status()
    # One order linked to someone else only (its person's link lost), one linked to a second contact.
    state = SyncState(redis_client)
    own = {str(a["toId"]) for a in requests.get(f"{hs_url}/_sandbox/associations/orders/contacts",
                                                timeout=30).json()["results"]
           if str(a["fromId"]) == str(hs_orders[other_contact["id"]]["id"])}
    stranger = next(str(c["id"]) for c in contacts if str(c["id"]) not in own)
    plan = plan_orders([other_contact], {other_contact["id"]: {"contact": stranger, "email": None}}, state,
                       settings, pipeline, force=True)
    hub.associate("orders", "contacts", ASSOCIATION_TYPES[("orders", "contacts")],
                  [(str(hs_orders[extra_link["id"]]["id"]), stranger)])
    _archive_link(hs_url, auth, str(hs_orders[other_contact["id"]]["id"]), own)
    assert OrderPusher(hub, state, settings, None, "test").push(plan) is None

    damaged = verify_orders(ct, hs_url, settings, pipeline)
    assert sorted(damaged.missing) == sorted([*per_customer[skipped], deleted["id"]])
    assert sorted(damaged.mismatched) == [f"{changed['id']}: ct_order_state", f"{changed['id']}: hs_total_price"]
    assert damaged.line_items_mismatched == [f"{item_changed}: quantity"]
    assert damaged.line_items_missing == [item_deleted]
    assert damaged.contact_missing == [other_contact["id"]]
    assert damaged.contact_wrong == [extra_link["id"]]
    assert not damaged.duplicates and not damaged.line_item_duplicates and not damaged.ok
    summary = damaged.summary()
    assert summary["missing"] == len(per_customer[skipped]) + 1 and summary["ok"] is False


def _archive_link(hs_url: str, auth: dict[str, str], order_id: str, contacts: set[str]) -> None:
    """Remove an order's associations to `contacts` (v4 batch archive)."""
    body = {"inputs": [{"from": {"id": order_id}, "to": [{"id": c} for c in sorted(contacts)]}]}
    requests.post(f"{hs_url}/crm/v4/associations/orders/contacts/batch/archive", headers=auth, json=body,
                  timeout=30).raise_for_status()

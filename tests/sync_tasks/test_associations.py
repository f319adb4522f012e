"""Association batches against the real HubSpot sandbox: a partly bad batch (207) and a wholly bad
one (400, halved) both make the good pairs and refuse only the bad ones; the order sync's
`associate_all` marks only made pairs as made and puts refused ones in the rejected log and the DLQ
under the commercetools record to replay."""

from __future__ import annotations

import redis

from sync_tasks import rejected
from sync_tasks.associations import associate_pairs
from sync_tasks.commerce_push import associate_all
from sync_tasks.dlq import DlqEntry
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.state import SyncState
from sync_tasks.verify import sandbox_associations
from tests.sync_tasks.sandboxes import calls, portal

SIZE = 5
CREATE = "POST /crm/v4/associations/orders/contacts/batch/create"


def _objects(hub: HubSpotClient, n: int) -> tuple[list[str], list[str]]:
    """n orders and n contacts in the portal: (order ids, contact ids)."""
    orders = hub.batch_upsert("orders", "ct_order_id", [
        {"id": f"o-{i}", "properties": {"ct_order_id": f"o-{i}"}} for i in range(n)])
    contacts = hub.batch_upsert("contacts", "ct_customer_id", [
        {"id": f"c-{i}", "properties": {"ct_customer_id": f"c-{i}", "email": f"a{i}@example.com"}} for i in range(n)])
    order_ids = {r["properties"]["ct_order_id"]: str(r["id"]) for r in orders.results}
    contact_ids = {r["properties"]["ct_customer_id"]: str(r["id"]) for r in contacts.results}
    return [order_ids[f"o-{i}"] for i in range(n)], [contact_ids[f"c-{i}"] for i in range(n)]


def test_good_pairs_are_made_and_bad_ones_refused_whatever_the_answer(sandboxes: tuple[str, str],
                                                                     redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    _, hub = portal(ct_url, hs_url, redis_client)
    orders, contacts = _objects(hub, 4)
    send = lambda pairs: hub.associate_default("orders", "contacts", pairs)  # noqa: E731

    partly = associate_pairs(send, [(orders[0], contacts[0]), (orders[1], "999999901"), (orders[1], contacts[1])])
    assert sorted(partly.made) == sorted([(orders[0], contacts[0]), (orders[1], contacts[1])])
    assert list(partly.refused) == [(orders[1], "999999901")] and partly.refused[(orders[1], "999999901")].message

    before = calls(hs_url, "POST /crm/v4/associations/orders/contacts/batch/associate/default")
    wholly = associate_pairs(send, [(orders[2], "999999902"), (orders[3], "999999903")])
    assert wholly.made == [] and sorted(wholly.refused) == [(orders[2], "999999902"), (orders[3], "999999903")]
    assert calls(hs_url, "POST /crm/v4/associations/orders/contacts/batch/associate/default") == before + 3
    made = set(sandbox_associations(hs_url, "orders", "contacts"))
    assert made >= {(orders[0], contacts[0]), (orders[1], contacts[1])}


def test_the_order_sync_marks_only_made_pairs_and_dead_letters_the_refused(sandboxes: tuple[str, str],
                                                                          redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    _, hub = portal(ct_url, hs_url, redis_client)
    state = SyncState(redis_client)
    orders, contacts = _objects(hub, 3)
    pairs = [(orders[0], contacts[0]), (orders[1], "999999911"), (orders[2], contacts[2])]
    owners = {orders[i]: f"ct-order-{i}" for i in range(3)}

    assert associate_all(hub, state, "orders", "contacts", pairs, "test", owners) == 3
    assert state.known_associations("orders-contacts", pairs) == {pairs[0], pairs[2]}
    assert set(sandbox_associations(hs_url, "orders", "contacts")) >= {pairs[0], pairs[2]}
    [entry] = [DlqEntry.from_stream(i, f) for i, f in state.dlq_entries()]
    assert (entry.entity, entry.record_ids, entry.payload) == (
        "orders", ["ct-order-1"], {"association": ["orders", "contacts"], "pairs": [[orders[1], "999999911"]]})
    assert [e["record_ids"] for e in rejected.entries(state.r)] == [["ct-order-1"]]

    # The next push sends the refused pair again (it was not marked made), and only that one.
    before = calls(hs_url, CREATE)
    associate_all(hub, state, "orders", "contacts", pairs, "test", owners)
    assert calls(hs_url, CREATE) == before + 1

from __future__ import annotations

import redis

from sync_tasks.match import match_customers
from sync_tasks.state import SyncState
from tests.sync_tasks.fakes import FakeContacts, customer


def test_lookup_order_idmap_then_ct_id_then_email(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.save_ids("contacts", {"c1": "101"})
    hubspot = FakeContacts([
        {"id": "102", "properties": {"ct_customer_id": "c2", "email": "two@x.io"}},
        {"id": "103", "properties": {"email": "three@x.io"}},  # made by a form
    ])
    records = [customer("c1", "one@x.io"), customer("c2", "two@x.io"), customer("c3", "  THREE@x.io "),
               customer("c4", "four@x.io")]
    matches = {m.record["id"]: m for m in match_customers(records, state, hubspot)}
    assert (matches["c1"].hs_id, matches["c1"].via) == ("101", "idmap")
    assert (matches["c2"].hs_id, matches["c2"].via) == ("102", "ct_customer_id")
    assert (matches["c3"].hs_id, matches["c3"].via) == ("103", "email")
    assert matches["c4"].hs_id is None
    # reads: ct ids of the unmapped, then the normalised e-mails of what is still open
    assert hubspot.reads == [("ct_customer_id", ["c2", "c3", "c4"]), ("email", ["four@x.io", "three@x.io"])]
    # what HubSpot told us is remembered: the next time costs no read
    hubspot.reads.clear()
    again = match_customers(records[:3], state, hubspot)
    assert all(m.hs_id for m in again) and hubspot.reads == []


def test_our_email_index_matches_a_second_account_without_a_read(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.save_emails({"shared@x.io": "500"})
    hubspot = FakeContacts()
    [m] = match_customers([customer("c9", "Shared@X.io")], state, hubspot)
    assert (m.hs_id, m.via) == ("500", "email-index") and hubspot.reads == []


def test_external_id_properties_are_tried_last(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    hubspot = FakeContacts([{"id": "700", "properties": {"erp_id": "E-1"}}])
    [m] = match_customers([customer("c1", None, externalId="E-1")], state, hubspot, {"externalId": "erp_id"})
    assert (m.hs_id, m.via) == ("700", "erp_id")

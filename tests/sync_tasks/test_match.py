from __future__ import annotations

import redis

from sync_tasks.constants import Keys
from sync_tasks.mapping import load_mapping
from sync_tasks.match import DAY_SECONDS, match_customers
from sync_tasks.state import SyncState
from tests.sync_tasks.fakes import FakeContacts, customer

NOW = 1_800_000_000.0


def _hubspot() -> FakeContacts:
    return FakeContacts([
        {"id": "102", "properties": {"ct_customer_id": "c2", "email": "two@x.io"}},
        {"id": "103", "properties": {"email": "three@x.io"}},  # made by a form
    ])


def _records() -> list[dict[str, object]]:
    return [customer("c1", "one@x.io"), customer("c2", "two@x.io"), customer("c3", "  THREE@x.io "),
            customer("c4", "four@x.io")]


def test_unknown_records_go_unread_the_first_time_and_are_read_the_second(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.save_ids("contacts", {"c1": "101"})
    hubspot = _hubspot()
    first = {m.record["id"]: m for m in match_customers(_records(), state, hubspot, now=NOW)}
    assert (first["c1"].hs_id, first["c1"].via) == ("101", "idmap")
    # Nothing in Redis knew c2..c4: no read (their create is an upsert on ct_customer_id; a 409 on
    # the e-mail sends them back here), and no budget taken for one.
    assert [first[c].hs_id for c in ("c2", "c3", "c4")] == [None, None, None]
    assert hubspot.reads == [] and hubspot.prepaid_calls == []
    # Seen again (a resync after a 409, a replay): read, ct ids first, then the e-mails still open.
    again = {m.record["id"]: m for m in match_customers(_records(), state, hubspot, now=NOW + 60)}
    assert (again["c2"].hs_id, again["c2"].via) == ("102", "ct_customer_id")
    assert (again["c3"].hs_id, again["c3"].via) == ("103", "email")
    assert again["c4"].hs_id is None
    assert hubspot.reads == [("ct_customer_id", ["c2", "c3", "c4"]), ("email", ["four@x.io", "three@x.io"])]
    # what HubSpot told us is remembered: the next time costs no read
    hubspot.reads.clear()
    third = match_customers(_records()[:3], state, hubspot, now=NOW + 120)
    assert all(m.hs_id for m in third) and hubspot.reads == []


def test_a_mark_from_yesterday_still_means_seen(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    hubspot = _hubspot()
    match_customers([customer("c2", "two@x.io")], state, hubspot, now=NOW)
    assert hubspot.reads == []
    [m] = match_customers([customer("c2", "two@x.io")], state, hubspot, now=NOW + DAY_SECONDS)
    assert (m.hs_id, m.via) == ("102", "ct_customer_id")
    assert redis_client.ttl(Keys.match_tried("contacts", int(NOW // DAY_SECONDS))) > 0


def test_a_pending_create_intent_is_read_at_once(redis_client: redis.Redis) -> None:
    # An upsert of this e-mail never confirmed (a crash after HubSpot wrote, or a 409): read.
    state = SyncState(redis_client)
    state.save_create_intents("contacts", {"two@x.io": "c2"})
    hubspot = _hubspot()
    [m] = match_customers([customer("c2", "Two@x.io")], state, hubspot, now=NOW)
    assert (m.hs_id, m.via) == ("102", "ct_customer_id") and hubspot.prepaid_calls == [2]


def test_a_mapping_with_hubspot_owned_properties_always_reads(redis_client: redis.Redis) -> None:
    # An upsert landing on an existing contact would overwrite HubSpot's values; an update does not.
    mapping = load_mapping()
    owned = mapping.model_copy(update={"contact": mapping.contact.model_copy(update={"default_owner": "hubspot"})})
    state = SyncState(redis_client)
    hubspot = _hubspot()
    [m] = match_customers([customer("c3", "three@x.io")], state, hubspot, mapping=owned, now=NOW)
    assert (m.hs_id, m.via) == ("103", "email")


def test_our_email_index_matches_a_second_account_without_a_read(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.save_emails({"shared@x.io": "500"})
    hubspot = FakeContacts()
    [m] = match_customers([customer("c9", "Shared@X.io")], state, hubspot)
    assert (m.hs_id, m.via) == ("500", "email-index") and hubspot.reads == []


def test_external_id_properties_are_read_at_once_and_tried_last(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    hubspot = FakeContacts([{"id": "700", "properties": {"erp_id": "E-1"}}])
    [m] = match_customers([customer("c1", None, externalId="E-1")], state, hubspot, {"externalId": "erp_id"})
    assert (m.hs_id, m.via) == ("700", "erp_id")
    assert [prop for prop, _ in hubspot.reads] == ["ct_customer_id", "erp_id"]


def test_the_dry_run_reads_everything_and_marks_nothing(redis_client: redis.Redis) -> None:
    from sync_tasks.plan import ReadOnlyState

    hubspot = _hubspot()
    [m] = match_customers([customer("c3", "three@x.io")], ReadOnlyState(redis_client), hubspot, now=NOW,
                          unread_first=False)
    assert (m.hs_id, m.via) == ("103", "email")
    assert not redis_client.exists(Keys.match_tried("contacts", int(NOW // DAY_SECONDS)))


def test_as_dict_is_shallow_and_complete() -> None:
    from dataclasses import fields

    from sync_tasks.match import Match

    record = customer("c1", "one@x.io")
    m = Match(record=record, hs_id="101", via="email", hs_ct_id="c1", hs_members=["c1", "c9"])
    out = m.as_dict()
    assert list(out) == [f.name for f in fields(Match)]  # every field, in order: Match(**out) round-trips
    assert out["record"] is record and Match(**out) == m

from __future__ import annotations

import json

import redis

from sync_tasks.changes import pick_owner, plan_contacts
from sync_tasks.mapping import fingerprint, map_customer
from sync_tasks.match import Match
from sync_tasks.state import SyncState
from tests.sync_tasks.fakes import customer


def test_two_accounts_one_email_become_one_create(redis_client: redis.Redis) -> None:
    a = customer("a", "Same@x.io", modified="2026-01-02T00:00:00.000Z", first="Old",
                 created="2024-01-01T00:00:00.000Z")
    b = customer("b", " same@X.io", modified="2026-01-03T00:00:00.000Z", first="New",
                 created="2025-01-01T00:00:00.000Z")
    plan = plan_contacts([Match(a), Match(b)], SyncState(redis_client), "most_recently_modified")
    [create] = plan.creates
    assert create["properties"]["email"] == "same@x.io"
    assert create["properties"]["firstname"] == "New" and create["key"] == "b"
    assert create["properties"]["ct_customer_ids"] == "a;b"
    plan = plan_contacts([Match(a), Match(b)], SyncState(redis_client), "first_created")
    assert plan.creates[0]["properties"]["firstname"] == "Old"


def test_unchanged_record_is_dropped_and_changes_send_only_changed_properties(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    c = customer("a", "a@x.io", city="x")
    props = dict(map_customer(c).properties, ct_customer_ids="a")
    state.save_written("contacts", "9", props)
    state.save_fingerprints("customers", {"a": fingerprint(map_customer(c).properties)})
    state.set_members({"a@x.io": ["a"]})
    assert plan_contacts([Match(c, hs_id="9", via="idmap")], state, "most_recently_modified").skipped == 1
    changed = dict(c, firstName="Zoe", lastModifiedAt="2026-05-05T00:00:00.000Z")
    plan = plan_contacts([Match(changed, hs_id="9", via="idmap")], state, "most_recently_modified")
    [update] = plan.updates
    assert update["properties"] == {"firstname": "Zoe", "ct_last_modified_at": "2026-05-05T00:00:00.000Z"}
    forced = plan_contacts([Match(c, hs_id="9", via="idmap")], state, "most_recently_modified", force=True)
    assert forced.updates and forced.updates[0]["properties"]["email"] == "a@x.io"


def test_no_email_no_contact_and_invalid_email_is_reported(redis_client: redis.Redis) -> None:
    plan = plan_contacts([Match(customer("a", None)), Match(customer("b", "not-an-email"))],
                         SyncState(redis_client), "most_recently_modified")
    assert plan.no_email == ["a", "b"] and not plan.creates


def test_form_contact_gets_our_unique_key(redis_client: redis.Redis) -> None:
    plan = plan_contacts([Match(customer("a", "f@x.io"), hs_id="77", via="email")], SyncState(redis_client),
                         "most_recently_modified")
    assert plan.updates[0]["properties"]["ct_customer_id"] == "a"


def test_owner_rules() -> None:
    old = {"id": "1", "createdAt": "2020", "lastModifiedAt": "2026"}
    new = {"id": "2", "createdAt": "2024", "lastModifiedAt": "2025"}
    assert pick_owner("first_created", [old, new])["id"] == "1"
    assert pick_owner("most_recently_modified", [new, old])["id"] == "1"


def test_oversize_values_are_truncated_with_a_warning() -> None:
    mapped = map_customer(customer("a", "a@x.io", companyName="x" * 70_000))
    assert len(mapped.properties["company"]) == 65_536 and "truncated" in mapped.warnings[0]


def test_store_and_channel_filters_and_optional_email(redis_client: redis.Redis) -> None:
    from sync_tasks.changes import Filters
    from sync_tasks.mapping_file import read_mapping

    mapping = read_mapping()
    eu = customer("a", "a@x.io", stores=[{"key": "eu"}])
    us = customer("b", "b@x.io", stores=[{"key": "us"}])
    bare = customer("c", None, stores=[{"key": "eu"}])
    state = SyncState(redis_client)
    plan = plan_contacts([Match(eu), Match(us), Match(bare)], state, "most_recently_modified", mapping=mapping,
                         filters=Filters(stores=("eu",)))
    assert plan.filtered == ["b"] and plan.no_email == ["c"] and [c["key"] for c in plan.creates] == ["a"]
    plan = plan_contacts([Match(eu), Match(bare)], state, "most_recently_modified", mapping=mapping,
                         filters=Filters(require_email=False))
    keyed = {c["key"]: c["properties"] for c in plan.creates}
    assert set(keyed) == {"a", "c"} and "email" not in keyed["c"] and keyed["a"]["email"] == "a@x.io"
    channels = Filters(channels=("eu-web",))
    with_channel = mapping.model_copy(update={"context": mapping.context.model_copy(update={"stores": {
        "eu": mapping.context.stores["eu"].model_copy(update={"channel": "eu-web"})}})})
    plan = plan_contacts([Match(eu), Match(us)], state, "most_recently_modified", mapping=with_channel,
                         filters=channels)
    assert plan.filtered == ["b"] and plan.creates[0]["properties"]["ct_distribution_channel"] == "eu-web"


def test_consent_entries_are_planned_only_when_the_decision_changed(redis_client: redis.Redis) -> None:
    from sync_tasks.constants import Keys
    from sync_tasks.mapping_file import read_mapping

    mapping = read_mapping()
    mapping = mapping.model_copy(update={"consent": mapping.consent.model_copy(update={"enabled": True})})
    c = customer("a", "a@x.io", custom={"fields": {"newsletter": True}})
    [entry] = plan_contacts([Match(c)], SyncState(redis_client), "most_recently_modified", mapping=mapping).consent
    assert entry["record_id"] == "a" and entry["opt_in"] is True
    redis_client.hset(Keys.consent(), entry["key"], entry["fingerprint"])
    assert plan_contacts([Match(c)], SyncState(redis_client), "most_recently_modified", mapping=mapping).consent == []


def test_state_read_helpers_of_the_map_step(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.set_members({"a@x.io": ["a", "b"], "c@x.io": ["c"]})
    assert state.members(["a@x.io", "none@x.io", "c@x.io"]) == {"a@x.io": {"a", "b"}, "none@x.io": set(),
                                                                 "c@x.io": {"c"}}
    assert state.members([]) == {}
    state.save_written("contacts", "1", {"firstname": "Ann"})
    state.save_written("contacts", "1", {"lastname": "Lee"})
    state.save_written("contacts", "2", {})
    full = state.written_with_generations("contacts", ["1", "2", "3"])
    raw, gens = state.written_raw_with_generations("contacts", ["1", "2", "3"])
    assert ({k: json.loads(v) for k, v in raw.items()}, gens) == full
    assert state.written_raw_with_generations("contacts", ["1", "2", "3"], ["2"]) == ({"2": "{}"}, full[1])
    assert state.written_raw_with_generations("contacts", ["1", "3"], []) == ({}, {"1": "2", "3": "0"})
    assert state.written_raw_with_generations("contacts", []) == ({}, {})


def test_a_backfill_gives_a_contact_found_by_email_our_key_unless_it_has_one(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    c = customer("a", "a@x.io")
    state.save_written("contacts", "7", {"firstname": "Ann"})
    state.save_written("contacts", "8", {"ct_customer_id": "a"})
    for hs_id, keyed in (("7", True), ("8", False)):
        plan = plan_contacts([Match(c, hs_id=hs_id, via="email-index")], state, "most_recently_modified", force=True)
        assert ("ct_customer_id" in plan.updates[0]["properties"]) is keyed
        idmap = plan_contacts([Match(c, hs_id=hs_id, via="idmap")], state, "most_recently_modified", force=True)
        assert "ct_customer_id" not in idmap.updates[0]["properties"]


def test_a_shared_contact_keeps_a_company_its_owner_account_lacks(redis_client: redis.Redis) -> None:
    """The newest account (the owner) has no company, an older one has: the contact is associated with
    the older account's company, while its fields stay the owner's. Found by the bench's check."""
    old = customer("a", "p@x.io", modified="2026-01-02T00:00:00.000Z", companyName="Acme GmbH")
    new = customer("b", "p@x.io", modified="2026-01-03T00:00:00.000Z", first="New")
    plan = plan_contacts([Match(old), Match(new)], SyncState(redis_client), "most_recently_modified")
    [create] = plan.creates
    assert create["key"] == "b" and create["properties"]["firstname"] == "New"
    assert create["company"] and plan.companies[create["company"]]["name"] == "Acme GmbH"
    assert not create["properties"].get("company")  # the contact's fields are still the owner's

    other = customer("c", "p@x.io", modified="2026-01-01T00:00:00.000Z", companyName="Older AG")
    plan = plan_contacts([Match(old), Match(new), Match(other)], SyncState(redis_client), "most_recently_modified")
    assert plan.companies[plan.creates[0]["company"]]["name"] == "Acme GmbH"  # the next account in the rule's order
    plan = plan_contacts([Match(new)], SyncState(redis_client), "most_recently_modified")
    assert plan.creates[0]["company"] is None

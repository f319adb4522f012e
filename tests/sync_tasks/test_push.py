"""The push step's guards for one contact written by several chains: newer data wins, a diff planned
against values that changed since is planned again, and two pushes never write one contact at once.
Real Redis; HubSpot's batch update is a stand-in that applies the properties it is sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from sync_tasks.changes import Plan, plan_contacts
from sync_tasks.company_links import waiting
from sync_tasks.constants import Keys
from sync_tasks.errors import BusyError, RetryableError
from sync_tasks.hubspot_client import BatchResult
from sync_tasks.match import Match
from sync_tasks.push import push_plan
from sync_tasks.state import SyncState
from tests.sync_tasks.fakes import customer

HS_ID = "501"
EMAIL = "pat@example.com"
_X = customer("x", EMAIL, "2026-01-01T00:00:00.000Z")
_Y = customer("y", EMAIL, "2026-01-02T00:00:00.000Z")


class AppliedContacts:
    """Keeps one contact's properties as HubSpot would after each batch update."""

    def __init__(self) -> None:
        self.properties: dict[str, str] = {}
        self.updates: list[dict[str, str]] = []
        self.drop_after_write = 0  # the next n updates land, then the connection drops


    @contextmanager
    def prepaid(self, calls: int) -> Iterator[None]:
        yield

    def batch_update(self, obj: str, inputs: list[dict[str, Any]]) -> BatchResult:
        for i in inputs:
            self.properties.update(i["properties"])
            self.updates.append(dict(i["properties"]))
        if self.drop_after_write:
            self.drop_after_write -= 1
            raise RetryableError("hubspot: connection dropped")
        return BatchResult(results=[{"id": i["id"], "properties": i["properties"]} for i in inputs])


def _matches(*records: dict[str, Any]) -> list[Match]:
    return [Match(record=r, hs_id=HS_ID, via="idmap", hs_ct_id=r["id"]) for r in records]


def _existing(state: SyncState, hub: AppliedContacts, owner: dict[str, Any], other: dict[str, Any]) -> None:
    """The contact as a finished backfill left it: `owner`'s values, both accounts its members."""
    plan = plan_contacts(_matches(owner, other), state, "most_recently_modified", force=True)
    assert not push_plan(plan.as_dict(), hub, state, None, "test").left  # type: ignore[arg-type]


def _shared_contact(redis_client: redis.Redis) -> tuple[SyncState, AppliedContacts]:
    """Accounts x and y share an e-mail; their contact shows y (the newer) after a backfill."""
    state, hub = SyncState(redis_client), AppliedContacts()
    _existing(state, hub, _Y, _X)
    return state, hub


def _y_changed(state: SyncState, modified: str, first_name: str) -> Plan:
    """The plan for the contact after account y changed its first name at `modified`."""
    return plan_contacts(_matches({**_Y, "lastModifiedAt": modified, "firstName": first_name}, _X), state,
                         "most_recently_modified")


def test_a_diff_planned_before_another_push_wrote_is_planned_again_not_sent(redis_client: redis.Redis) -> None:
    """The chaos suite's stale owner: an older chain (X the newest account then) and a newer one (Y
    changed since) both planned against the same written values; the older wrote first, the newer's
    diff lacked X's fields, and the contact kept X's values. Now the newer plan is re-planned."""
    state, hub = SyncState(redis_client), AppliedContacts()
    x = customer("x", EMAIL, "2026-01-01T00:00:00.000Z", first="Xavier", lastName="Ray")
    y = customer("y", EMAIL, "2026-01-02T00:00:00.000Z", first="Yan", lastName="Zhu")
    _existing(state, hub, y, x)
    x1 = {**x, "lastModifiedAt": "2026-01-03T00:00:00.000Z", "firstName": "Xavi"}  # X becomes the owner
    y2 = {**y, "lastModifiedAt": "2026-01-04T00:00:00.000Z", "firstName": "Yannick"}  # then Y again
    older = plan_contacts(_matches(x1, y), state, "most_recently_modified")
    newer = plan_contacts(_matches(x1, y2), state, "most_recently_modified")
    assert set(newer.updates[0]["properties"]) == {"firstname", "ct_last_modified_at"}  # a diff against Y's

    first = push_plan(older.as_dict(), hub, state, None, "test")  # type: ignore[arg-type]
    assert first.error is None and hub.properties["lastname"] == "Ray"
    second = push_plan(newer.as_dict(), hub, state, None, "test")  # type: ignore[arg-type]
    assert second.error is None and sorted(second.replan) == ["x", "y"]
    assert len(hub.updates) == 2  # the stale diff was not sent

    # The re-plan (what the resync task does) sends what the contact needs to show Y again.
    again = plan_contacts(_matches(x1, y2), state, "most_recently_modified")
    assert again.updates[0]["properties"]["lastname"] == "Zhu"
    assert push_plan(again.as_dict(), hub, state, None, "test").replan == []  # type: ignore[arg-type]
    assert hub.properties["firstname"] == "Yannick" and hub.properties["lastname"] == "Zhu"


def test_older_data_is_dropped_after_newer_data_was_written(redis_client: redis.Redis) -> None:
    state, hub = _shared_contact(redis_client)
    newer = _y_changed(state, "2026-01-05T00:00:00.000Z", "New")
    older = _y_changed(state, "2026-01-04T00:00:00.000Z", "Old")
    assert push_plan(newer.as_dict(), hub, state, None, "test").error is None  # type: ignore[arg-type]
    late = push_plan(older.as_dict(), hub, state, None, "test")  # type: ignore[arg-type]
    assert late.error is None and late.replan == [] and hub.properties["firstname"] == "New"


def test_a_contact_locked_by_another_push_waits_and_its_plan_keeps_for_the_retry(
        redis_client: redis.Redis) -> None:
    state, hub = _shared_contact(redis_client)
    writes = len(hub.updates)
    plan = _y_changed(state, "2026-01-05T00:00:00.000Z", "New").as_dict()
    redis_client.set(Keys.write_lock("contacts", HS_ID), "another-plan", px=60_000)

    busy = push_plan(plan, hub, state, None, "test")  # type: ignore[arg-type]
    assert isinstance(busy.error, BusyError) and busy.error.retry_after
    assert len(hub.updates) == writes and busy.left["updates"] == plan["updates"]  # nothing sent, all kept

    redis_client.delete(Keys.write_lock("contacts", HS_ID))  # the other push finished without writing
    done = push_plan(busy.left, hub, state, None, "test")  # type: ignore[arg-type]
    assert done.error is None and hub.properties["firstname"] == "New"
    assert redis_client.get(Keys.write_lock("contacts", HS_ID)) is None  # released after the write


def test_a_redelivered_push_takes_back_its_own_lock(redis_client: redis.Redis) -> None:
    """A worker killed mid-write leaves its lock; the same plan, redelivered, must not wait for it."""
    state, hub = _shared_contact(redis_client)
    plan = _y_changed(state, "2026-01-05T00:00:00.000Z", "New").as_dict()
    redis_client.set(Keys.write_lock("contacts", HS_ID), plan["updates"][0]["token"], px=60_000)
    result = push_plan(plan, hub, state, None, "test")  # type: ignore[arg-type]
    assert result.error is None and hub.properties["firstname"] == "New"


def test_a_write_that_may_have_landed_keeps_its_lock_until_its_retry(redis_client: redis.Redis) -> None:
    """A dropped connection leaves HubSpot possibly written but `written` not updated: no other plan
    may diff against those values until this plan's retry has settled them."""
    state, hub = _shared_contact(redis_client)
    first = _y_changed(state, "2026-01-05T00:00:00.000Z", "New").as_dict()
    other = _y_changed(state, "2026-01-05T00:00:00.000Z", "New").as_dict()
    hub.drop_after_write = 1
    dropped = push_plan(first, hub, state, None, "test")  # type: ignore[arg-type]
    assert dropped.left["updates"] and not isinstance(dropped.error, BusyError)
    assert isinstance(push_plan(other, hub, state, None, "test").error, BusyError)  # type: ignore[arg-type]
    retried = push_plan(dropped.left, hub, state, None, "test")  # type: ignore[arg-type]
    assert retried.error is None and redis_client.get(Keys.write_lock("contacts", HS_ID)) is None
    assert sorted(push_plan(other, hub, state, None, "test").replan) == ["x", "y"]  # type: ignore[arg-type]


def test_written_values_merge_and_bump_their_generation(redis_client: redis.Redis) -> None:
    state = SyncState(redis_client)
    state.save_written("contacts", HS_ID, {"a": "1", "b": "ü/2"})
    state.save_written("contacts", HS_ID, {"b": "3"})
    written, gens = state.written_with_generations("contacts", [HS_ID, "missing"])
    assert written == {HS_ID: {"a": "1", "b": "3"}} and gens == {HS_ID: "2", "missing": "0"}
    state.save_written("contacts", HS_ID, {})
    assert state.written("contacts", [HS_ID]) == {HS_ID: {"a": "1", "b": "3"}}


class Upserts:
    """HubSpot's batch upsert: a new record per key, ids from 900, the trace id echoed."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    @contextmanager
    def prepaid(self, calls: int) -> Iterator[None]:
        yield

    def batch_upsert(self, obj: str, id_property: str, inputs: list[dict[str, Any]]) -> BatchResult:
        results = []
        for i in inputs:
            new = i["id"] not in self.ids
            self.ids.setdefault(i["id"], str(900 + len(self.ids)))
            results.append({"id": self.ids[i["id"]], "new": new, "properties": i["properties"],
                            "objectWriteTraceId": i["objectWriteTraceId"]})
        return BatchResult(results=results)


def _create_entry(key: str, email: str, members: list[str], version: str) -> dict[str, Any]:
    return {"email": email, "members": members, "record_ids": members, "key": key, "version": version,
            "fingerprints": {m: f"fp-{m}" for m in members}, "company": None,
            "properties": {"email": email, "firstname": key.upper()}}


def test_a_create_batch_confirms_every_record_in_one_transaction(redis_client: redis.Redis) -> None:
    """The confirmations of a batch go to Redis as one MULTI/EXEC: each record's id map, e-mail
    index, members, written values (generation 1), fingerprints and source version, its create
    intent cleared; a record upserted onto newer data than it carried is matched and mapped again."""
    state, hub = SyncState(redis_client), Upserts()
    hub.ids["c9"] = "950"  # c9's contact exists; newer data of it was claimed already
    redis_client.hset(Keys.source_version("contacts"), "950", "2026-02-01T00:00:00.000Z")
    plan = {"creates": [_create_entry("c1", "ann@example.com", ["c1", "c2"], "2026-01-01T00:00:00.000Z"),
                        _create_entry("c3", "bo@example.com", ["c3"], "2026-01-01T00:00:00.000Z"),
                        _create_entry("c9", "cy@example.com", ["c9"], "2026-01-05T00:00:00.000Z")],
            "updates": []}
    result = push_plan(plan, hub, state, "run-1", "test")  # type: ignore[arg-type]

    assert result.error is None and result.left == {} and result.resync == ["c9"]
    ann, bo = hub.ids["c1"], hub.ids["c3"]
    assert state.lookup_ids("contacts", ["c1", "c2", "c3", "c9"]) == {"c1": ann, "c2": ann, "c3": bo, "c9": "950"}
    assert state.lookup_emails(["ann@example.com", "bo@example.com"]) == {"ann@example.com": ann,
                                                                           "bo@example.com": bo}
    assert state.members(["ann@example.com", "bo@example.com"]) == {"ann@example.com": {"c1", "c2"},
                                                                    "bo@example.com": {"c3"}}
    written, gens = state.written_with_generations("contacts", [ann, bo])
    assert written[ann] == {"email": "ann@example.com", "firstname": "C1", "ct_customer_id": "c1"}
    assert gens == {ann: "1", bo: "1"}
    assert state.fingerprints("customers", ["c1", "c2", "c3"]) == {"c1": "fp-c1", "c2": "fp-c2", "c3": "fp-c3"}
    assert state.create_intents("contacts", ["ann@example.com", "bo@example.com", "cy@example.com"]) == {}
    assert redis_client.hgetall(Keys.source_version("contacts")) == {
        ann: "2026-01-01T00:00:00.000Z", bo: "2026-01-01T00:00:00.000Z", "950": "2026-02-01T00:00:00.000Z"}
    assert state.run("run-1")["created"] == 3 and state.run("run-1")["updated"] == 1


class CompanyHub(AppliedContacts):
    """HubSpot with one company deleted since the sync made it: associating to it is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.companies: dict[str, str] = {}  # key -> id
        self.deleted: set[str] = set()

    def batch_upsert(self, obj: str, id_property: str, inputs: list[dict[str, Any]]) -> BatchResult:
        results = []
        for i in inputs:
            new = i["id"] not in self.companies
            self.companies.setdefault(i["id"], str(900 + len(self.companies)))
            results.append({"id": self.companies[i["id"]], "new": new, "properties": i["properties"]})
        return BatchResult(results=results)

    def associate_default(self, a: str, b: str, pairs: list[tuple[str, str]]) -> BatchResult:
        if any(company in self.deleted for _, company in pairs):
            from sync_tasks.errors import PermanentError

            raise PermanentError("hubspot → 400: VALIDATION_ERROR No company with ID exists")
        return BatchResult()


def test_a_company_deleted_in_hubspot_is_made_again_on_the_retry_not_a_crash(redis_client: redis.Redis) -> None:
    state, hub = SyncState(redis_client), CompanyHub()
    state.save_ids("companies", {"acme": "777"})  # made by an earlier run, since deleted in HubSpot
    hub.deleted.add("777")
    plan = {"creates": [], "updates": [], "companies": {"acme": {"name": "Acme", "ct_company_key": "acme"}},
            "links": [[HS_ID, "acme"]]}
    first = push_plan(plan, hub, state, None, "test")  # type: ignore[arg-type]
    assert isinstance(first.error, RetryableError) and first.left["links"] == [[HS_ID, "acme"]]
    assert state.lookup_ids("companies", ["acme"]) == {}  # forgotten: the retry upserts it again
    again = push_plan(first.left, hub, state, None, "test")  # type: ignore[arg-type]
    assert again.error is None and state.lookup_ids("companies", ["acme"]) == {"acme": hub.companies["acme"]}


def test_a_backfills_first_pass_leaves_its_associations_to_the_runs_set(redis_client: redis.Redis) -> None:
    """The chunk is done (and counted) without an association call: its pairs wait in the run's set
    for a full batch or the run's end (company_links.py); the run is not complete before then."""
    state, hub = SyncState(redis_client), CompanyHub()
    associated: list[tuple[str, str]] = []
    hub.associate_default = lambda a, b, pairs: associated.extend(pairs) or BatchResult()  # type: ignore[method-assign]
    run_id = state.start_run("customers", "backfill")
    state.count(run_id, extracted=1)
    state.finish_extract(run_id)
    plan = {"creates": [], "updates": [], "companies": {"acme": {"name": "Acme", "ct_company_key": "acme"}},
            "links": [[HS_ID, "acme"]], "counts": {"updated": 1}}
    result = push_plan(plan, hub, state, run_id, "test", defer_links=True)  # type: ignore[arg-type]
    assert result.error is None and result.left == {} and associated == []
    assert waiting(state, run_id) == 1 and state.run(run_id)["updated"] == 1
    assert state.records_done(state.run(run_id)) and not state.run_complete(run_id)

    # A delta (no run's set to wait in) associates at once.
    push_plan(plan, hub, state, None, "test")  # type: ignore[arg-type]
    assert associated == [(HS_ID, hub.companies["acme"])]

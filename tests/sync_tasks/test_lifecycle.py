"""Lifecycle events: the pure evaluation, and fire-once against the real Redis (claims, churn pass,
crash repair, concurrent processes). HubSpot is a stand-in here; tests/e2e/test_lifecycle.py runs the
real workers against the sandboxes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import time_machine

from sync_tasks.constants import Keys
from sync_tasks.errors import RetryableError
from sync_tasks.hubspot_client import BatchResult
from sync_tasks.ledger import Ledger, LedgerEntry
from sync_tasks.lifecycle import (
    LifecycleEvent,
    LifecycleStore,
    contact_properties,
    evaluate,
    on_recorded,
    scan_churn,
    subscription_of,
)
from sync_tasks.settings import ConfigError, Settings, load_settings
from sync_tasks.state import SyncState
from tests.conftest import UNIT_DB, redis_url

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(days: float = 0.0) -> str:
    return (T0 + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def entry(order_id: str, days: float = 0.0, state: str = "Open", store: str = "eu") -> LedgerEntry:
    return LedgerEntry(order_id=order_id, created_at=at(days), state=state, total="10.00", currency="EUR", store=store)


def settings(**extra: Any) -> Settings:
    return Settings(lifecycle_repeat_every=3, lifecycle_churn_days=30, lifecycle_milestones=[2, 4], **extra)


class FakeHub:
    """HubSpot's contact batch update and custom events, recorded."""

    def __init__(self, fail_updates: int = 0) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.definitions: list[dict[str, Any]] = []
        self.fail_updates = fail_updates

    def batch_update(self, obj: str, inputs: list[dict[str, Any]]) -> BatchResult:
        if self.fail_updates:
            self.fail_updates -= 1
            raise RetryableError("hubspot: 503")
        self.updates += inputs
        return BatchResult(results=[{"id": i["id"], "properties": i["properties"]} for i in inputs])

    def get(self, path: str) -> dict[str, Any]:
        return {"results": self.definitions}

    def post(self, path: str, body: dict[str, Any], bucket: Any = None) -> dict[str, Any]:
        if path.endswith("/event-definitions"):
            self.definitions.append({"name": body["name"], "fullyQualifiedName": f"pe1_{body['name']}"})
            return self.definitions[-1]
        self.sent += body["inputs"]
        return {}

    def props(self, person: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for u in self.updates:
            if u["id"] == person:
                out.update(u["properties"])
        return out


def record(r: redis.Redis, hub: FakeHub, s: Settings, person: str, entries: list[LedgerEntry], mode: str = "delta",
           subs: dict[str, str] | None = None, now: float | None = None) -> list[str]:
    """What OrderPusher._ledger does: record, then the lifecycle hook. Returns the keys fired."""
    Ledger(r).record(person, entries)
    result = on_recorded(hub, SyncState(r), s, {person: [e.order_id for e in entries]}, subs or {}, mode,  # type: ignore[arg-type]
                         "test", None, now=now)
    assert result.error is None
    return [e.key for _, e in result.fired]


# -- pure -----------------------------------------------------------------------------------------------
def test_first_and_repeat_purchase_skip_cancelled_orders_and_ignore_arrival_order() -> None:
    s = settings()
    entries = [entry("c", 0, "Cancelled"), entry("a", 1), entry("b", 2), entry("d", 3), entry("e", 4), entry("f", 5),
               entry("g", 6)]
    events = evaluate(entries, {}, s, "delta")
    assert [(e.key, e.order_id) for e in events] == [
        ("first_purchase", "a"), ("repeat_purchase:2", "b"), ("repeat_purchase:3", "d"), ("repeat_purchase:6", "g")]
    assert evaluate(list(reversed(entries)), {}, s, "delta") == events
    assert all(not e.historical for e in events)
    assert all(e.historical for e in evaluate(entries, {}, s, "backfill"))
    assert evaluate([entry("c", 0, "Cancelled")], {}, s, "delta") == []


def test_subscription_milestones_count_each_subscription_separately() -> None:
    s = settings()
    entries = [entry(f"o{i}", i) for i in range(6)]
    subs = {"o0": "A", "o1": "B", "o2": "A", "o3": "B", "o4": "A", "o5": "A"}
    keys = [e.key for e in evaluate(entries, subs, s, "delta") if e.kind == "subscription_milestone"]
    assert keys == ["subscription_milestone:A:2", "subscription_milestone:A:4", "subscription_milestone:B:2"]


def test_subscription_is_the_custom_field_or_a_recurring_origin() -> None:
    s = settings()
    assert subscription_of({"custom": {"fields": {"subscriptionId": "sub-9"}}, "origin": "Customer"}, s) == "sub-9"
    assert subscription_of({"origin": "RecurringOrder"}, s) == "recurring"
    assert subscription_of({"origin": "Customer", "custom": {"fields": {"other": 1}}}, s) == ""
    by_plan = settings(lifecycle_subscription_field="plan")
    assert subscription_of({"custom": {"fields": {"plan": "p1"}}}, by_plan) == "p1"


def test_properties_show_the_latest_occurrence_and_the_live_flag_only_for_live_events() -> None:
    s = settings()
    claims = [LifecycleEvent("first_purchase", "first_purchase", at(0), "a", 1, historical=True),
              LifecycleEvent("repeat_purchase", "repeat_purchase:2", at(1), "b", 2, historical=True),
              LifecycleEvent("repeat_purchase", "repeat_purchase:3", at(9), "c", 3)]
    props = contact_properties(claims, [entry("a", 0), entry("b", 1), entry("c", 9)], s)
    assert props["ct_first_purchase"] == "false" and props["ct_first_purchase_historical"] == "true"
    assert props["ct_first_purchase_date"] == at(0)
    assert props["ct_repeat_purchase"] == "true" and props["ct_repeat_purchase_number"] == "3"
    assert props["ct_repeat_purchase_date"] == at(9) and props["ct_repeat_purchase_historical"] == "false"
    assert "ct_churn_risk" not in props


def test_lifecycle_names_are_settings_and_bad_ones_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(lifecycle_property_names={"churn_risk": "shop_churn"})
    assert s.lifecycle_property_names["churn_risk"] == "shop_churn"
    assert s.lifecycle_property_names["first_purchase"] == "ct_first_purchase"
    monkeypatch.setenv("LIFECYCLE_PROPERTY_NAMES", '{"first_buy": "x"}')
    with pytest.raises(ConfigError, match=r"LIFECYCLE_PROPERTY_NAMES.*first_buy"):
        load_settings()
    monkeypatch.setenv("LIFECYCLE_PROPERTY_NAMES", '{"first_purchase": "Bad Name"}')
    with pytest.raises(ConfigError, match="LIFECYCLE_PROPERTY_NAMES"):
        load_settings()
    monkeypatch.delenv("LIFECYCLE_PROPERTY_NAMES")
    monkeypatch.setenv("LIFECYCLE_CHURN_DAYS_BY_STORE", '{"eu": 0}')
    with pytest.raises(ConfigError, match="LIFECYCLE_CHURN_DAYS_BY_STORE"):
        load_settings()


# -- with Redis ---------------------------------------------------------------------------------------------
def test_each_event_fires_once_across_replays(redis_client: redis.Redis) -> None:
    s, hub = settings(), FakeHub()
    assert record(redis_client, hub, s, "101", [entry("a", 0)]) == ["first_purchase"]
    assert hub.props("101")["ct_first_purchase"] == "true"
    writes = len(hub.updates)
    assert record(redis_client, hub, s, "101", [entry("a", 0)]) == []  # replay
    assert len(hub.updates) == writes, "a replay writes nothing"
    assert record(redis_client, hub, s, "101", [entry("b", 1)]) == ["repeat_purchase:2"]
    assert record(redis_client, hub, s, "101", [entry("c", 2)]) == ["repeat_purchase:3"]
    assert record(redis_client, hub, s, "101", [entry("a", 0), entry("b", 1), entry("c", 2)]) == []
    fired = redis_client.hgetall(Keys.lifecycle_fired())
    assert fired == {"first_purchase|live": "1", "repeat_purchase|live": "2"}


def test_a_first_order_cancelled_before_sync_never_counts(redis_client: redis.Redis) -> None:
    s, hub = settings(), FakeHub()
    assert record(redis_client, hub, s, "102", [entry("x", 0, "Cancelled")]) == []
    assert hub.updates == []
    assert record(redis_client, hub, s, "102", [entry("y", 1)]) == ["first_purchase"]
    claim = LifecycleStore(redis_client).claims("102")[0]
    assert claim.order_id == "y" and claim.at == at(1)


def test_out_of_order_orders_fire_each_event_once(redis_client: redis.Redis) -> None:
    s, hub = settings(), FakeHub()
    assert record(redis_client, hub, s, "103", [entry("late", 5)]) == ["first_purchase"]
    assert record(redis_client, hub, s, "103", [entry("early", 1)]) == ["repeat_purchase:2"]
    assert [c.key for c in LifecycleStore(redis_client).claims("103")] == ["first_purchase", "repeat_purchase:2"]


def test_a_backfill_seeing_an_earlier_order_later_corrects_its_historical_claims(redis_client: redis.Redis) -> None:
    """A backfill's chunks meet a person's orders out of order: the historical first purchase (and
    the nth order of a repeat) move to the earlier order, uncounted and unsent again; live ones never."""
    s, hub, store = settings(), FakeHub(), LifecycleStore(redis_client)
    assert record(redis_client, hub, s, "106", [entry("second", 5)], mode="backfill") == ["first_purchase"]
    assert record(redis_client, hub, s, "106", [entry("first", 1)], mode="backfill") == ["repeat_purchase:2"]
    claims = {c.key: c for c in store.claims("106")}
    assert (claims["first_purchase"].order_id, claims["first_purchase"].at) == ("first", at(1))
    assert claims["repeat_purchase:2"].order_id == "second"
    assert hub.props("106")["ct_first_purchase_date"] == at(1)  # sent again with the corrected date
    assert redis_client.hgetall(Keys.lifecycle_fired()) == {"first_purchase|historical": "1",
                                                           "repeat_purchase|historical": "1"}
    assert record(redis_client, hub, s, "107", [entry("live", 5)]) == ["first_purchase"]
    record(redis_client, hub, s, "107", [entry("old", 1)], mode="backfill")
    assert {c.key: c.order_id for c in store.claims("107")}["first_purchase"] == "live"  # fired live: it stays


def test_backfill_marks_events_historical_then_live_orders_fire_live(redis_client: redis.Redis) -> None:
    s, hub = settings(), FakeHub()
    fired = record(redis_client, hub, s, "104", [entry("h1", 0), entry("h2", 1)], mode="backfill")
    assert fired == ["first_purchase", "repeat_purchase:2"]
    props = hub.props("104")
    assert props["ct_first_purchase"] == "false" and props["ct_first_purchase_historical"] == "true"
    assert props["ct_repeat_purchase"] == "false" and props["ct_repeat_purchase_date"] == at(1)
    assert record(redis_client, hub, s, "104", [entry("live", 40)]) == ["repeat_purchase:3"]
    props = hub.props("104")
    assert props["ct_repeat_purchase"] == "true" and props["ct_repeat_purchase_historical"] == "false"
    assert props["ct_first_purchase"] == "false", "the historical first purchase stays historical"


def test_a_crash_between_claim_and_write_is_repaired_by_the_retry(redis_client: redis.Redis) -> None:
    s, hub = settings(lifecycle_custom_events=True), FakeHub(fail_updates=1)
    Ledger(redis_client).record("105", [entry("a", 0)])
    first = on_recorded(hub, SyncState(redis_client), s, {"105": ["a"]}, {}, "delta", "test", None)  # type: ignore[arg-type]
    assert isinstance(first.error, RetryableError) and len(first.fired) == 1
    assert redis_client.sismember(Keys.lifecycle_pending(), "105")
    retry = on_recorded(hub, SyncState(redis_client), s, {"105": ["a"]}, {}, "delta", "test", None)  # type: ignore[arg-type]
    assert retry.error is None and retry.fired == [] and retry.sent == 1
    assert hub.props("105")["ct_first_purchase"] == "true"
    assert {o["uuid"] for o in hub.sent} == {hub.sent[0]["uuid"]}, "re-sent with the same uuid"
    assert hub.sent[0]["eventName"] == "pe1_ct_first_purchase"
    assert not redis_client.sismember(Keys.lifecycle_pending(), "105")
    assert all(c.sent for c in LifecycleStore(redis_client).claims("105"))


def test_historical_events_send_no_custom_event(redis_client: redis.Redis) -> None:
    s, hub = settings(lifecycle_custom_events=True), FakeHub()
    record(redis_client, hub, s, "106", [entry("h1", 0)], mode="backfill")
    assert hub.sent == [] and hub.props("106")["ct_first_purchase_historical"] == "true"
    record(redis_client, hub, s, "106", [entry("l1", 3)])
    assert [o["properties"]["event_key"] for o in hub.sent] == ["repeat_purchase:2"]


def test_subscription_milestone_fires_at_thresholds(redis_client: redis.Redis) -> None:
    s, hub = settings(), FakeHub()
    subs = {"s1": "sub-1", "s2": "sub-1", "x": ""}
    assert record(redis_client, hub, s, "107", [entry("s1", 0)], subs=subs) == ["first_purchase"]
    assert record(redis_client, hub, s, "107", [entry("x", 1)], subs=subs) == ["repeat_purchase:2"]
    assert record(redis_client, hub, s, "107", [entry("s2", 2)], subs=subs) == ["repeat_purchase:3",
                                                                              "subscription_milestone:sub-1:2"]
    props = hub.props("107")
    assert props["ct_subscription_milestone"] == "true" and props["ct_subscription_milestone_number"] == "2"


# -- churn --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "fires"), [(29, False), (30, True), (31, True)])
def test_churn_risk_boundaries(redis_client: redis.Redis, day: int, fires: bool) -> None:
    s, hub = settings(), FakeHub()
    with time_machine.travel(T0, tick=False):
        record(redis_client, hub, s, "201", [entry("a", 0)])
    with time_machine.travel(T0 + timedelta(days=day), tick=False):
        result = scan_churn(hub, SyncState(redis_client), s, "test")  # type: ignore[arg-type]
    assert [e.key for _, e in result.fired] == ([f"churn_risk:{at(0)}"] if fires else [])
    props = hub.props("201")
    assert props.get("ct_churn_risk") == ("true" if fires else None)
    if fires:
        assert props["ct_churn_risk_date"] == at(30) and props["ct_churn_risk_historical"] == "false"


def test_churn_fires_once_per_episode_clears_on_order_and_can_fire_again(redis_client: redis.Redis) -> None:
    s, hub = settings(), FakeHub()
    state = SyncState(redis_client)
    with time_machine.travel(T0, tick=False):
        record(redis_client, hub, s, "202", [entry("a", 0)])
    with time_machine.travel(T0 + timedelta(days=31), tick=False):
        assert len(scan_churn(hub, state, s, "test").fired) == 1  # type: ignore[arg-type]
        assert scan_churn(hub, state, s, "test").fired == []  # type: ignore[arg-type]
    with time_machine.travel(T0 + timedelta(days=40), tick=False):
        assert record(redis_client, hub, s, "202", [entry("b", 40)]) == ["repeat_purchase:2"]
        assert hub.props("202")["ct_churn_risk"] == "false", "cleared by the new order"
        assert scan_churn(hub, state, s, "test").fired == []  # type: ignore[arg-type]
    with time_machine.travel(T0 + timedelta(days=70), tick=False):
        assert [e.key for _, e in scan_churn(hub, state, s, "test").fired] == [f"churn_risk:{at(40)}"]  # type: ignore[arg-type]
    assert hub.props("202")["ct_churn_risk"] == "true"
    assert redis_client.hget(Keys.lifecycle_fired(), "churn_risk|live") == "2"


def test_churn_days_per_store_and_old_history_is_historical(redis_client: redis.Redis) -> None:
    s, hub = settings(lifecycle_churn_days_by_store={"jp": 60}), FakeHub()
    with time_machine.travel(T0, tick=False):
        record(redis_client, hub, s, "203", [entry("eu1", 0, store="eu")])
        record(redis_client, hub, s, "204", [entry("jp1", 0, store="jp")])
    with time_machine.travel(T0 + timedelta(days=45), tick=False):
        assert [p for p, _ in scan_churn(hub, SyncState(redis_client), s, "test").fired] == ["203"]  # type: ignore[arg-type]
    with time_machine.travel(T0 + timedelta(days=61), tick=False):
        assert [p for p, _ in scan_churn(hub, SyncState(redis_client), s, "test").fired] == ["204"]  # type: ignore[arg-type]
        # a backfilled order from a year ago: its churn episode began before we saw it
        record(redis_client, hub, s, "205", [entry("old", -365)], mode="backfill")
        fired = scan_churn(hub, SyncState(redis_client), s, "test").fired  # type: ignore[arg-type]
    assert [(p, e.historical) for p, e in fired] == [("205", True)]
    assert hub.props("205")["ct_churn_risk"] == "false" and hub.props("205")["ct_churn_risk_historical"] == "true"


# -- concurrency: separate processes, one Redis ---------------------------------------------------------
def _race(args: tuple[int, Any]) -> list[str]:
    n, barrier = args
    r = redis.Redis.from_url(redis_url(UNIT_DB), decode_responses=True)
    s = settings()
    entries = [entry("a", 0), entry("b", 1), entry("c", 2)]
    barrier.wait()
    won = LifecycleStore(r).claim("301", evaluate(entries, {}, s, "delta"), float(n))
    return [e.key for e in won]


def test_concurrent_processes_claim_each_event_exactly_once(redis_client: redis.Redis) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 6
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers)
        with ctx.Pool(workers) as pool:
            results = pool.map(_race, [(n, barrier) for n in range(workers)])
    won = [k for keys in results for k in keys]
    assert sorted(won) == ["first_purchase", "repeat_purchase:2", "repeat_purchase:3"]
    assert redis_client.hgetall(Keys.lifecycle_fired()) == {"first_purchase|live": "1", "repeat_purchase|live": "2"}


def test_claim_many_and_mark_sent_many_for_a_chunk_of_people(redis_client: redis.Redis) -> None:
    store = LifecycleStore(redis_client)
    s = settings()
    won = store.claim_many({"401": evaluate([entry("a", 0), entry("b", 1)], {}, s, "delta"),
                            "402": evaluate([entry("c", 0)], {}, s, "delta"), "403": []}, 1.0)
    assert {p: [e.key for e in es] for p, es in won.items()} == {
        "401": ["first_purchase", "repeat_purchase:2"], "402": ["first_purchase"]}
    assert store.claim_many({"401": evaluate([entry("a", 0)], {}, s, "delta")}, 2.0) == {"401": []}  # once
    assert redis_client.smembers(Keys.lifecycle_pending()) == {"401", "402"}
    store.mark_sent_many({"401": won["401"][:1], "402": won["402"]})
    # 402 has nothing left unsent; 401's repeat purchase is still to send
    assert redis_client.smembers(Keys.lifecycle_pending()) == {"401"}
    assert [c.sent for c in store.claims("401")] == [True, False]
    assert redis_client.hgetall(Keys.lifecycle_fired()) == {"first_purchase|live": "2", "repeat_purchase|live": "1"}

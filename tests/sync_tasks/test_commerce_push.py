from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from sync_tasks.commerce_push import StepPusher, dead_letter_failed, replay_target, update_by_id, upsert_keyed
from sync_tasks.errors import RateLimitedError, RetryableError
from sync_tasks.hubspot_client import BatchResult
from sync_tasks.state import SyncState


class FlakyHub:
    """Batch upserts that are refused for budget on chosen calls (a stand-in for HubSpot's answers)."""

    def __init__(self, refuse_calls: set[int]) -> None:
        self.refuse = refuse_calls
        self.sent: list[list[str]] = []
        self.prepaid_calls: list[int] = []

    @contextmanager
    def prepaid(self, calls: int) -> Iterator[None]:
        self.prepaid_calls.append(calls)
        yield

    def batch_upsert(self, obj: str, id_property: str, inputs: list[dict[str, Any]]) -> BatchResult:
        call = len(self.sent) + 1
        self.sent.append([i["id"] for i in inputs])
        if call in self.refuse:
            raise RateLimitedError("budget", retry_after=1.0)
        return BatchResult(results=[{"id": f"hs-{i['id']}", "new": True, "properties": {"k": i["id"]}}
                                    for i in inputs])


def _items(n: int) -> list[tuple[str, dict[str, str]]]:
    return [(f"key{i:03d}", {"k": f"key{i:03d}"}) for i in range(n)]


def test_a_refused_batch_stops_the_step_and_the_retry_sends_only_the_rest() -> None:
    hub = FlakyHub(refuse_calls={2})
    progress: dict[str, list[Any]] = {}
    first = upsert_keyed(hub, "line_items", "k", _items(250), progress)  # type: ignore[arg-type]
    assert isinstance(first.error, RetryableError)
    assert len(hub.sent) == 2 and len(progress) == 100  # the third batch was never sent
    second = upsert_keyed(hub, "line_items", "k", _items(250), progress)  # type: ignore[arg-type]
    assert second.error is None and len(second.ids) == 250 and len(second.new) == 250
    assert [len(b) for b in hub.sent] == [100, 100, 100, 50]  # nothing written twice
    assert hub.prepaid_calls == [3, 2]  # the budget for all batches is taken up front


class TwoSteps(StepPusher):
    steps = ("one", "two")

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.fail_two = True

    def _one(self, plan: dict[str, Any]) -> RetryableError | None:
        self.runs.append("one")
        return None

    def _two(self, plan: dict[str, Any]) -> RetryableError | None:
        self.runs.append("two")
        if self.fail_two:
            self.fail_two = False
            return RetryableError("later")
        return None


def test_a_retried_plan_resumes_at_the_first_step_not_done() -> None:
    pusher = TwoSteps()
    plan: dict[str, Any] = {"done": []}
    assert pusher.push(plan) is not None and plan["done"] == ["one"]
    assert pusher.push(plan) is None and plan["done"] == ["one", "two"]
    assert pusher.runs == ["one", "two", "two"]


def test_rejected_commerce_writes_are_dead_lettered_under_the_record_a_replay_re_reads(
        redis_client: redis.Redis) -> None:
    """Marked as customers, an order's entry was replayed as a customer that does not exist: found
    'gone' and deleted. Each entry names the commercetools entity and id to re-read."""
    from sync_tasks.dlq import DeadLetters
    from sync_tasks.errors import ErrorDetail
    from sync_tasks.state import SyncState

    assert replay_target("line_items", "order:o1:li1") == ("orders", "o1")
    assert replay_target("line_items", "deal:o1:li1") == ("orders", "o1")
    assert replay_target("line_items", "cart:c1:li1") == ("carts", "c1")
    assert replay_target("deals", "o2") == ("orders", "o2")
    assert replay_target("contacts", "501") == ("contacts", "501")  # no record to re-read: kept by replay
    bad = ErrorDetail(status=400, category="VALIDATION_ERROR", message="bad value")
    dead_letter_failed(SyncState(redis_client), "ctsync.orders.push", None, "line_items",
                       {"order:o1:li1": bad}, {"order:o1:li1": {"quantity": "x"}})
    [entry] = DeadLetters(redis_client).entries()
    assert (entry.entity, entry.record_ids) == ("orders", ["o1"])
    assert entry.payload["key"] == "order:o1:li1" and entry.payload["payload"] == {"quantity": "x"}


class Updates:
    """Batch updates by id (a stand-in for HubSpot's answers): what was sent, per call."""

    def __init__(self) -> None:
        self.sent: list[dict[str, dict[str, str]]] = []

    def batch_update(self, obj: str, inputs: list[dict[str, Any]]) -> BatchResult:
        self.sent.append({i["id"]: i["properties"] for i in inputs})
        return BatchResult(results=[{"id": i["id"], "objectWriteTraceId": i["objectWriteTraceId"]} for i in inputs])


def test_updates_by_id_send_only_what_changed_and_remember_it(redis_client: redis.Redis) -> None:
    state, hub = SyncState(redis_client), Updates()
    state.save_written("contacts", "1", {"a": "1", "b": "0", "c": "kept"})
    state.save_written("contacts", "2", {"a": "1", "b": "2"})  # already what it will be: not sent
    values = {str(i): {"a": "1", "b": str(i)} for i in range(1, 152)}
    assert update_by_id(hub, state, "contacts", values, "test", None) is None  # type: ignore[arg-type]
    assert [len(call) for call in hub.sent] == [100, 50] and "2" not in hub.sent[0]
    assert hub.sent[0]["1"] == {"b": "1"}
    written, gens = state.written_with_generations("contacts", ["1", "2", "151"])
    assert written == {"1": {"a": "1", "b": "1", "c": "kept"}, "2": {"a": "1", "b": "2"},
                       "151": {"a": "1", "b": "151"}}
    assert gens == {"1": "2", "2": "1", "151": "1"}
    assert update_by_id(hub, state, "contacts", values, "test", None) is None  # type: ignore[arg-type]
    assert len(hub.sent) == 2  # nothing changed since: nothing sent

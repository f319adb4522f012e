"""The dead-letter queue (real Redis), replay claims, and create intents against a real HubSpot
sandbox server (in-process thread, over HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from sandbox.common import ThreadedServer
from sandbox.hubspot.app import build_app
from sandbox.hubspot.state import Config, Sandbox
from sync_tasks.constants import Keys
from sync_tasks.dlq import DeadLetters, FailureLog, parse_since
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.limiter import RateLimiter
from sync_tasks.match import CONTACTS
from sync_tasks.push import push_plan
from sync_tasks.schema import setup_schema
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState


class FakeReplayer:
    def __init__(self, records: dict[str, dict[str, Any]], fail: bool = False) -> None:
        self.records = records
        self.fail = fail
        self.enqueued: list[tuple[list[str], dict[str, Any]]] = []
        self.pushed: list[dict[str, Any]] = []
        self.resent: list[tuple[str, list[Any]]] = []

    def fetch(self, entity: str, record_ids: list[str]) -> list[dict[str, Any]]:
        if self.fail:
            raise RuntimeError("commercetools down")
        return [self.records[i] for i in record_ids if i in self.records]

    def enqueue(self, entity: str, records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        self.enqueued.append(([r["id"] for r in records], ctx))

    def push(self, plan: dict[str, Any], ctx: dict[str, Any]) -> None:
        self.pushed.append(plan)

    def resend(self, task: str, args: list[Any]) -> None:
        self.resent.append((task, args))


def _letter(state: SyncState, ids: list[str], kind: str = "permanent", entity: str = "customers") -> str:
    return state.dead_letter("ctsync.push", ids, {"properties": {"email": "a@b.co"}},
                             {"status": 400, "category": "INVALID_EMAIL", "body": {"message": "bad"}},
                             attempts=3, first_failure=1000.0, kind=kind, entity=entity)


def test_entries_carry_everything_and_filter(redis_client: redis.Redis) -> None:
    state, dlq = SyncState(redis_client), DeadLetters(redis_client)
    first = _letter(state, ["c1", "c2"])
    _letter(state, ["c3"], kind="exhausted")
    _letter(state, [], entity="companies")
    entry = dlq.get(first)
    assert entry is not None
    assert entry.record_ids == ["c1", "c2"] and entry.payload == {"properties": {"email": "a@b.co"}}
    assert entry.error["body"] == {"message": "bad"} and entry.attempts == 3
    assert entry.first_failure == 1000.0 and entry.last_failure > time.time() - 5
    assert "payload" not in entry.summary() and "a@b.co" not in str(entry.summary())
    assert [e.record_ids for e in dlq.entries(kind="exhausted")] == [["c3"]]
    assert len(dlq.entries(entity="companies")) == 1
    assert len(dlq.entries(since=time.time() + 60)) == 0 and dlq.size() == 3


def test_failure_log_keeps_the_first_failure(redis_client: redis.Redis) -> None:
    log = FailureLog(redis_client)
    first = log.note("task-1")
    time.sleep(0.01)
    assert log.note("task-1") == first and log.first_failure("task-1") == first
    log.clear("task-1")
    assert log.first_failure("task-1") is None


def test_replaying_an_entry_twice_enqueues_it_once(redis_client: redis.Redis) -> None:
    state, dlq = SyncState(redis_client), DeadLetters(redis_client)
    entry_id = _letter(state, ["c1", "gone"], kind="exhausted")
    replayer = FakeReplayer({"c1": {"id": "c1"}})
    entry = dlq.get(entry_id)
    assert entry is not None
    report = dlq.replay([entry], replayer, state)
    again = dlq.replay([entry], replayer, state)  # the same entry, e.g. a second terminal
    assert report.replayed == [entry_id] and report.gone == ["gone"] and report.records == 1
    assert again.replayed == [] and entry_id in again.skipped
    assert [ids for ids, _ in replayer.enqueued] == [["c1"]]
    ctx = replayer.enqueued[0][1]
    assert ctx["force"] and ctx["lane"] == "live" and ctx["run_id"] == report.run_id
    run = state.run(str(report.run_id))
    assert run["extracted"] == 2 and run["skipped"] == 1 and run["extract_done"] == 1
    assert dlq.size() == 0


def test_entry_claimed_elsewhere_or_unreadable_stays(redis_client: redis.Redis) -> None:
    state, dlq = SyncState(redis_client), DeadLetters(redis_client)
    claimed = dlq.get(_letter(state, ["c1"]))
    unreadable = dlq.get(_letter(state, ["c2"]))
    assert claimed and unreadable
    redis_client.set(Keys.dlq_replaying(claimed.id), "1")
    report = dlq.replay([claimed], FakeReplayer({"c1": {"id": "c1"}}), state)
    assert claimed.id in report.skipped
    report = dlq.replay([unreadable], FakeReplayer({}, fail=True), state)
    assert "commercetools down" in report.skipped[unreadable.id]
    assert dlq.size() == 2 and not redis_client.exists(Keys.dlq_replaying(unreadable.id))


def test_company_and_backfill_entries_replay_their_plan_or_task(redis_client: redis.Redis) -> None:
    state, dlq = SyncState(redis_client), DeadLetters(redis_client)
    plan = {"companies": {"acme": {"name": "Acme"}}, "links": [["101", "acme"]]}
    state.dead_letter("ctsync.push", [], {"plan": plan}, {"status": 400}, 1, entity="companies")
    state.dead_letter("ctsync.backfill", [], {"resend_args": ["customers", None, None, "run-1"]}, {"status": 0}, 9,
                      kind="exhausted")
    replayer = FakeReplayer({})
    dlq.replay(dlq.entries(), replayer, state)
    assert replayer.pushed == [plan]
    assert replayer.resent == [("ctsync.backfill", ["customers", None, None, "run-1"])]
    assert dlq.size() == 0


def test_purge_by_id_and_all(redis_client: redis.Redis) -> None:
    state, dlq = SyncState(redis_client), DeadLetters(redis_client)
    ids = [_letter(state, [f"c{i}"]) for i in range(3)]
    assert dlq.purge([ids[0]]) == 1 and dlq.size() == 2
    assert dlq.purge() == 2 and dlq.size() == 0


def test_parse_since() -> None:
    assert abs(parse_since("2h") - (time.time() - 7200)) < 5
    assert parse_since("2026-01-01") == 1767225600.0
    with pytest.raises(ValueError):
        parse_since("yesterday")


# -- create intents against a real HubSpot sandbox -------------------------------------------------
@pytest.fixture(scope="module")
def hubspot_url() -> Iterator[str]:
    server = ThreadedServer(build_app(Sandbox(Config())))
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def hubspot(hubspot_url: str, redis_client: redis.Redis) -> HubSpotClient:
    requests.post(f"{hubspot_url}/_sandbox/reset", timeout=10).raise_for_status()
    settings = Settings(hubspot_base_url=hubspot_url, hubspot_burst_limit=10_000)  # type: ignore[arg-type]
    client = HubSpotClient(settings, RateLimiter(redis_client, settings), wait_for_budget=True)
    setup_schema(client)
    return client


def _create(key: str, first: str) -> dict[str, Any]:
    return {"creates": [{"email": "ann@example.com", "members": ["c1", "c2"], "record_ids": ["c1", "c2"],
                         "key": key, "fingerprints": {"c1": "f1", "c2": "f2"}, "company": None,
                         "properties": {"email": "ann@example.com", "firstname": first,
                                        "ct_customer_ids": "c1;c2"}}], "updates": []}


class CrashAfterWrite(SyncState):
    """The worker dies after HubSpot's write, before the id map is saved."""

    def save_ids(self, hs_object: str, mapping: Any) -> None:
        raise RuntimeError("SIGKILL")


def test_replay_after_a_crash_reuses_the_create_intent(hubspot: HubSpotClient, hubspot_url: str,
                                                       redis_client: redis.Redis) -> None:
    with pytest.raises(RuntimeError):
        push_plan(_create("c1", "Ann"), hubspot, CrashAfterWrite(redis_client), "run", "ctsync.push")
    state = SyncState(redis_client)
    assert state.create_intents(CONTACTS, ["ann@example.com"]) == {"ann@example.com": "c1"}
    # Meanwhile c2 became the account that would own a new contact: the replay plans key c2.
    result = push_plan(_create("c2", "Annie"), hubspot, state, "run", "ctsync.push")
    assert result.error is None and result.resync == []  # no 409 detour: it upserted the same record
    contacts = requests.get(f"{hubspot_url}/_sandbox/objects/contacts", timeout=10).json()["results"]
    assert len(contacts) == 1
    props = contacts[0]["properties"]
    assert props["ct_customer_id"] == "c1" and props["firstname"] == "Annie"
    assert state.lookup_ids(CONTACTS, ["c1", "c2"]) == {"c1": contacts[0]["id"], "c2": contacts[0]["id"]}
    assert state.create_intents(CONTACTS, ["ann@example.com"]) == {}


def test_replay_racing_its_original_creates_one_record(hubspot: HubSpotClient, hubspot_url: str,
                                                       redis_client: redis.Redis) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            push_plan(_create("c1", "Ann"), hubspot, SyncState(redis_client), "run", "ctsync.push")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    count = requests.get(f"{hubspot_url}/_sandbox/objects/contacts/count", timeout=10).json()
    assert count["active"] == 1


# -- the `ctsync dlq` commands ----------------------------------------------------------------------
@pytest.fixture
def cli_env(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncState]:
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.redis_conn import redis_url as current_url
    from sync_tasks.settings import get_settings
    from tests.conftest import UNIT_DB, redis_url

    monkeypatch.setenv("REDIS_URL", redis_url(UNIT_DB))
    for cache in (get_settings, current_url, get_redis):
        cache.cache_clear()
    yield SyncState(redis_client)
    for cache in (get_settings, current_url, get_redis):
        cache.cache_clear()


def test_cli_lists_shows_and_purges(cli_env: SyncState) -> None:
    import json as json_

    from typer.testing import CliRunner

    from sync_tasks.cli import app

    runner = CliRunner()
    entry_id = _letter(cli_env, ["c1"])
    _letter(cli_env, ["c2"], kind="exhausted")
    listed = runner.invoke(app, ["dlq", "list", "--json", "--kind", "exhausted"])
    assert listed.exit_code == 0, listed.output
    body = json_.loads(listed.output)
    assert body["size"] == 2 and [e["kind"] for e in body["entries"]] == ["exhausted"]
    shown = runner.invoke(app, ["dlq", "show", entry_id])
    assert shown.exit_code == 0 and json_.loads(shown.output)["payload"] == {"properties": {"email": "a@b.co"}}
    assert runner.invoke(app, ["dlq", "show", "0-1"]).exit_code == 1
    assert runner.invoke(app, ["dlq", "list", "--kind", "sometimes"]).exit_code == 2
    assert runner.invoke(app, ["dlq", "replay"]).exit_code == 2  # nothing named: refuses
    purged = runner.invoke(app, ["dlq", "purge", entry_id, "--yes"])
    assert purged.exit_code == 0 and json_.loads(purged.output) == {"purged": 1}
    assert DeadLetters(cli_env.r).size() == 1


def test_cli_replay_keeps_an_entry_it_cannot_replay(cli_env: SyncState) -> None:
    from typer.testing import CliRunner

    from sync_tasks.cli import app

    entry_id = _letter(cli_env, ["o1"], entity="orders-unknown")
    result = CliRunner().invoke(app, ["dlq", "replay", entry_id])
    assert result.exit_code == 1 and "no replay path" in result.output
    assert DeadLetters(cli_env.r).get(entry_id) is not None

"""End-to-end fixtures: both sandboxes as server processes, the real Redis, and two real Celery
worker processes, started once per session; state is reset before every test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.process import free_port
from tests.conftest import E2E_DB, redis_url

E2E_SIZE = 300
CT_PORT, HUBSPOT_PORT = free_port(), free_port()
FLEET_ENV = {
    "REDIS_URL": redis_url(E2E_DB),
    "CT_API_URL": f"http://127.0.0.1:{CT_PORT}",
    "CT_AUTH_URL": f"http://127.0.0.1:{CT_PORT}",
    "HUBSPOT_BASE_URL": f"http://127.0.0.1:{HUBSPOT_PORT}",
    "SYNC_INTERVAL": "3600",
    "EXTRACT_OVERLAP_SECONDS": "2",
    "EXTRACT_PAGE_SIZE": "50",
    # Small, so every backfill here pauses its paging and goes on in further tasks (`extract.paced`).
    "BACKFILL_MAX_CHAINS": "4",
}
# Set before any test module imports the Celery app: its configuration is read once, at import.
os.environ.update(FLEET_ENV)

from sync_tasks.localfleet import LocalFleet  # noqa: E402 - after the environment is set


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    log_dir = Path("test-artifacts/e2e-logs")
    fleet = LocalFleet(
        redis_url=redis_url(E2E_DB), ct_size=E2E_SIZE, log_dir=log_dir, ct_port=CT_PORT, hubspot_port=HUBSPOT_PORT,
        hubspot_args=["--search-lag", "0.5"], extra_env=FLEET_ENV,
    )
    fleet.start_sandboxes()
    fleet.flush_redis()
    fleet.apply_env()
    fleet.start_worker("w1", concurrency=2)
    fleet.start_worker("w2", concurrency=2)
    try:
        fleet.wait_for_workers(2)
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def shop(fleet: LocalFleet) -> LocalFleet:
    """A freshly seeded commercetools sandbox, an empty HubSpot sandbox with our schema, empty Redis."""
    return reset_shop(fleet)


def reset_shop(fleet: LocalFleet) -> LocalFleet:
    from sync_tasks.commerce_schema import setup_all
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.settings import get_settings

    assert fleet.ct and fleet.hubspot
    _purge_queues()
    fleet.flush_redis()
    reset = requests.post(f"{fleet.ct.url}/_sandbox/reset", params={"size": E2E_SIZE, "seed": 42}, timeout=120)
    reset.raise_for_status()
    requests.post(f"{fleet.hubspot.url}/_sandbox/reset", timeout=30).raise_for_status()
    settings = get_settings()
    hubspot = HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)
    setup_all(hubspot, settings, get_redis())
    requests.post(f"{fleet.hubspot.url}/_sandbox/requests/reset", timeout=30)
    requests.post(f"{fleet.ct.url}/_sandbox/requests/reset", timeout=30)
    return fleet


def _purge_queues() -> None:
    from workers import app

    app.control.purge()


def hubspot_requests(fleet: LocalFleet, since: float = 0.0, endpoint: str | None = None) -> list[dict[str, Any]]:
    assert fleet.hubspot
    params: dict[str, Any] = {"limit": 100000, "since": since}
    if endpoint:
        params["endpoint"] = endpoint
    return list(requests.get(f"{fleet.hubspot.url}/_sandbox/requests", params=params, timeout=30).json()["entries"])


def write_calls(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["method"] != "GET" and "/batch/read" not in e["endpoint"]
            and "/search" not in e["endpoint"]]


def wait_until(predicate: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


# -- helpers the end-to-end tests share -------------------------------------------------------------
def ct_client() -> Any:
    from sync_tasks.commercetools_client import CommercetoolsClient
    from sync_tasks.settings import get_settings

    return CommercetoolsClient(get_settings())


def backfill(entity: str = "customers") -> dict[str, Any]:
    """A backfill sent to the workers, as an operator sends it, then waited for."""
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.runs import send_backfill, wait_for_run
    from sync_tasks.state import SyncState

    state = SyncState(get_redis())
    run_id = state.start_run(entity, "backfill")
    send_backfill(entity, None, None, run_id)
    return wait_for_run(state, run_id, timeout=300)


def delta(entity: str = "customers") -> dict[str, Any]:
    """One delta extraction run here with the real enqueue (the chains run on the workers), waited for."""
    from sync_tasks.extract import run_extract
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.runs import wait_for_run
    from sync_tasks.settings import get_settings
    from sync_tasks.state import SyncState
    from sync_tasks.tasks import enqueue_chunk

    result = run_extract(entity, ct_client(), get_redis(), get_settings(), enqueue_chunk)
    run = wait_for_run(SyncState(get_redis()), result.run_id, timeout=120)
    return dict(run, run_id=result.run_id, watermark=result.watermark_after)

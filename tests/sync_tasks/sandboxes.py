"""The real sandboxes for the in-process tests of tests/sync_tasks (no broker): a commercetools shop
and a HubSpot portal as servers on loopback (`sandboxes` in conftest.py starts one pair per module,
of the module's SIZE), the settings and client that point at them, and the portal's call counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
import requests

from sandbox.process import SandboxProcess
from sync_tasks.commerce_schema import setup_all
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.limiter import RateLimiter
from sync_tasks.settings import Settings, get_settings

CONTACT_UPDATES = "POST /crm/v3/objects/contacts/batch/update"


@contextmanager
def sandbox_pair(size: int) -> Iterator[tuple[str, str]]:
    """(commercetools URL, HubSpot URL): a seeded shop of `size` customers and an empty portal."""
    ct = SandboxProcess("sandbox.commercetools", ["--size", str(size)]).start()
    hs = SandboxProcess("sandbox.hubspot", ["--search-lag", "0"]).start()
    try:
        yield ct.url, hs.url
    finally:
        ct.stop()
        hs.stop()


def settings_for(ct_url: str, hs_url: str) -> Settings:
    return get_settings().model_copy(update={"ct_api_url": ct_url, "ct_auth_url": ct_url, "hubspot_base_url": hs_url})


def portal(ct_url: str, hs_url: str, r: redis.Redis) -> tuple[Settings, HubSpotClient]:
    """Settings for the pair and a HubSpot client on the fleet's budget, with the commerce schema set up."""
    settings = settings_for(ct_url, hs_url)
    hub = HubSpotClient(settings, RateLimiter(r, settings), wait_for_budget=True)
    setup_all(hub, settings, r)
    return settings, hub


def calls(hs_url: str, endpoint: str) -> int:
    """How many calls the portal has answered on `endpoint` ("METHOD /path")."""
    summary = requests.get(f"{hs_url}/_sandbox/requests", params={"limit": 0}, timeout=10).json()
    return sum(summary["by_endpoint"].get(endpoint, {}).values())

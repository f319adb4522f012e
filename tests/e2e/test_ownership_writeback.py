"""Ownership, conflicts, write-back and the rejected-update log end to end: real worker processes,
real Redis, both sandboxes over HTTP. HubSpot edits are made as a person would (the sandbox's
PATCH /_sandbox/objects, history source CRM_UI); commercetools changes through its update API.

The workers read the mapping from MAPPING_FILE (shared with test_mapping_sync, which may have set it
first); a test here swaps in a variant with shared and HubSpot-owned properties and puts the default
back afterwards."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sync_tasks.mapping_file import DEFAULT_MAPPING, MappingFile, parse_mapping

_FALLBACK = Path(tempfile.gettempdir()) / f"ctsync-e2e-mapping-{os.getpid()}.toml"
if "MAPPING_FILE" not in os.environ:  # before the fleet starts: its workers inherit it
    _FALLBACK.write_text(DEFAULT_MAPPING.read_text())
    os.environ["MAPPING_FILE"] = str(_FALLBACK)

from sync_tasks import conflicts, rejected  # noqa: E402
from sync_tasks.commercetools_client import CommercetoolsClient  # noqa: E402
from sync_tasks.constants import Keys  # noqa: E402
from sync_tasks.hubspot_client import HubSpotClient  # noqa: E402
from sync_tasks.limiter import RateLimiter  # noqa: E402
from sync_tasks.localfleet import LocalFleet  # noqa: E402
from sync_tasks.mapping import normalize_email  # noqa: E402
from sync_tasks.redis_conn import get_redis  # noqa: E402
from sync_tasks.runs import wait_for_run  # noqa: E402
from sync_tasks.settings import get_settings  # noqa: E402
from sync_tasks.state import SyncState  # noqa: E402
from sync_tasks.tasks import enqueue_chunk, fetch_customers, writeback_poll  # noqa: E402
from sync_tasks.writeback import poll  # noqa: E402
from tests.e2e.conftest import hubspot_requests, wait_until, write_calls  # noqa: E402

VARIANT = DEFAULT_MAPPING.read_text().replace(
    'firstname = "firstName"', 'firstname = { source = "firstName", owner = "shared", policy = "hubspot_wins" }'
).replace(
    'lastname = "lastName"', 'lastname = { source = "lastName", owner = "shared", policy = "most_recent" }'
).replace(
    'phone = { transform = "address", part = "phone" }',
    'phone = { transform = "address", part = "phone", owner = "hubspot", write_back = true }'
).replace(
    'ct_newsletter = { transform = "boolean",',
    'ct_newsletter = { owner = "hubspot", write_back = true, transform = "boolean",')


@pytest.fixture
def variant(shop: LocalFleet) -> Iterator[MappingFile]:
    """The ownership variant in the workers' mapping file; the default comes back afterwards."""
    path = Path(os.environ["MAPPING_FILE"])

    def write(text: str) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    write(VARIANT)
    yield parse_mapping(VARIANT)
    write(DEFAULT_MAPPING.read_text())


def _ct(session: requests.Session | None = None) -> CommercetoolsClient:
    return CommercetoolsClient(get_settings(), session)


def _hubspot() -> HubSpotClient:
    settings = get_settings()
    return HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)


def _pick(want_custom: bool, count: int, exclude: set[str] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """Customers with a unique e-mail and a default address with a phone; with or without a custom type."""
    results = _ct().query("customers", limit=500)["results"]
    emails = [normalize_email(c.get("email")) for c in results]
    out = []
    for customer, email in zip(results, emails, strict=True):
        address = next((a for a in customer.get("addresses") or [] if a.get("id") == customer.get(
            "defaultShippingAddressId")), None)
        if (email and emails.count(email) == 1 and address and address.get("phone") and customer["id"] not in exclude
                and isinstance(customer.get("custom"), dict) == want_custom and customer.get("firstName")
                and customer.get("lastName")):
            out.append(customer)
    assert len(out) >= count
    return out[:count]


def _sync(ids: list[str]) -> dict[str, Any]:
    """A delta of exactly these customers through the fleet's match → map → push chain."""
    state = SyncState(get_redis())
    run_id = state.start_run("customers", "delta")
    records = fetch_customers(ids)
    state.count(run_id, extracted=len(records))
    state.finish_extract(run_id)
    enqueue_chunk(records, {"entity": "customers", "run_id": run_id, "mode": "delta", "lane": "live", "force": False})
    return wait_for_run(state, run_id, timeout=60)


def _contact(fleet: LocalFleet, ct_id: str) -> dict[str, Any]:
    hs_id = SyncState(get_redis()).lookup_ids("contacts", [ct_id])[ct_id]
    assert fleet.hubspot
    body = requests.get(f"{fleet.hubspot.url}/_sandbox/objects/contacts/{hs_id}", timeout=30).json()
    return dict(body, id=hs_id)


def _edit_in_hubspot(fleet: LocalFleet, ct_id: str, props: dict[str, str]) -> None:
    assert fleet.hubspot
    hs_id = SyncState(get_redis()).lookup_ids("contacts", [ct_id])[ct_id]
    requests.patch(f"{fleet.hubspot.url}/_sandbox/objects/contacts/{hs_id}", json={"properties": props},
                   timeout=30).raise_for_status()


def _change_in_ct(ct_id: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    ct = _ct()
    return ct.update("customers", ct_id, int(ct.get("customers", ct_id)["version"]), actions)


SEARCH_LAG = 1.0  # the session's HubSpot sandbox indexes writes for search after 0.5 s


def _poll_via_fleet() -> None:
    """Send the beat's write-back task to the workers and wait until it has finished."""
    r = get_redis()
    before = r.get(Keys.writeback_watermark())
    writeback_poll.apply_async()
    wait_until(lambda: r.get(Keys.writeback_watermark()) not in (None, before), timeout=60)


def test_shared_policies_decide_hubspot_edits_and_record_conflicts_once(shop: LocalFleet,
                                                                         variant: MappingFile) -> None:
    fleet_obj = shop
    a, b = _pick(want_custom=True, count=2)
    assert _sync([a["id"], b["id"]])["created"] == 2
    # A: both sides change both names; commercetools last.
    _edit_in_hubspot(fleet_obj, a["id"], {"firstname": "HS-First", "lastname": "HS-Last"})
    time.sleep(0.01)
    _change_in_ct(a["id"], [{"action": "setFirstName", "firstName": "CT-First"},
                            {"action": "setLastName", "lastName": "CT-Last"}])
    # B: HubSpot edits the last name; commercetools changes only the first name (later).
    _edit_in_hubspot(fleet_obj, b["id"], {"lastname": "HS-Last-B"})
    time.sleep(0.01)
    _change_in_ct(b["id"], [{"action": "setFirstName", "firstName": "CT-First-B"}])

    since = time.time()
    assert _sync([a["id"], b["id"]])["updated"] == 2
    # The policies cost one batch read of both contacts, with history, for the chunk.
    reads = [e for e in hubspot_requests(fleet_obj, since=since, endpoint="batch/read")
             if isinstance(e.get("body"), dict) and "propertiesWithHistory" in e["body"]]
    contact_a, contact_b = _contact(fleet_obj, a["id"]), _contact(fleet_obj, b["id"])
    assert len(reads) == 1
    assert {i["id"] for i in reads[0]["body"]["inputs"]} == {contact_a["id"], contact_b["id"]}
    assert contact_a["properties"]["firstname"] == "HS-First"  # hubspot_wins kept the edit
    assert contact_a["properties"]["lastname"] == "CT-Last"  # most_recent: commercetools changed later
    assert contact_b["properties"]["lastname"] == "HS-Last-B"  # most_recent: only HubSpot changed it
    assert contact_b["properties"]["firstname"] == "CT-First-B"  # no HubSpot edit: the change goes through

    found = {(c["hs_id"], c["property"]): c for c in conflicts.entries(get_redis())}
    assert set(found) == {(contact_a["id"], "firstname"), (contact_a["id"], "lastname"),
                          (contact_b["id"], "lastname")}
    assert {k: found[(contact_a["id"], "firstname")][k] for k in ("hubspot_value", "commercetools_value", "rule",
                                                                  "outcome", "hubspot_source")} == {
        "hubspot_value": "HS-First", "commercetools_value": "CT-First", "rule": "shared:hubspot_wins",
        "outcome": "kept", "hubspot_source": "CRM_UI"}
    assert (found[(contact_a["id"], "lastname")]["outcome"], found[(contact_a["id"], "lastname")]["rule"]) == (
        "overwritten", "shared:most_recent")
    assert found[(contact_b["id"], "lastname")]["outcome"] == "kept"
    assert found[(contact_a["id"], "firstname")]["record_ids"] == [a["id"]]

    # Another change in commercetools: the kept edit stays kept, and is not recorded a second time.
    _change_in_ct(a["id"], [{"action": "setCompanyName", "companyName": "Ownership Test GmbH"}])
    assert _sync([a["id"]])["updated"] == 1
    assert _contact(fleet_obj, a["id"])["properties"]["firstname"] == "HS-First"
    assert len(conflicts.entries(get_redis())) == 3

    from typer.testing import CliRunner

    from sync_tasks.cli import app

    masked = CliRunner().invoke(app, ["conflicts", "list", "--json"])
    assert masked.exit_code == 0 and "HS-First" not in masked.stdout and "<redacted>" in masked.stdout
    shown = CliRunner().invoke(app, ["conflicts", "list", "--json", "--show-pii"])
    assert [json.loads(line)["hubspot_value"] for line in shown.stdout.splitlines()].count("HS-First") == 1


def test_write_back_reaches_commercetools_rejections_are_logged_and_nothing_echoes(shop: LocalFleet,
                                                                                    variant: MappingFile) -> None:
    [a] = _pick(want_custom=True, count=1)
    [c] = _pick(want_custom=False, count=1)  # no custom type: commercetools refuses setCustomField
    others = _pick(want_custom=True, count=6, exclude={a["id"]})[1:]
    ids = [a["id"], c["id"], *[o["id"] for o in others]]
    assert _sync(ids)["created"] == len(ids)
    newsletter = "false" if (a["custom"]["fields"].get("newsletter") is True) else "true"
    _edit_in_hubspot(shop, a["id"], {"phone": "+49 30 1234567", "ct_newsletter": newsletter})
    _edit_in_hubspot(shop, c["id"], {"ct_newsletter": "true"})
    time.sleep(SEARCH_LAG)

    _poll_via_fleet()
    ct = _ct()
    after = ct.get("customers", a["id"])
    address = next(x for x in after["addresses"] if x["id"] == after["defaultShippingAddressId"])
    assert address["phone"] == "+49 30 1234567"
    assert after["custom"]["fields"]["newsletter"] is (newsletter == "true")
    versions = {i: int(ct.get("customers", i)["version"]) for i in ids}
    assert versions[c["id"]] == c["version"]  # refused: unchanged

    [entry] = rejected.entries(get_redis())
    assert (entry["api"], entry["status"], entry["record_ids"], entry["task"]) == (
        "commercetools", 400, [c["id"]], "ctsync.writeback.poll")
    assert entry["category"] and entry["message"]
    assert entry["payload"]["actions"] == [{"action": "setCustomField", "name": "newsletter", "value": True}]
    assert entry["error"]["body"]["errors"]  # commercetools' own error response

    from typer.testing import CliRunner

    from sync_tasks.cli import app

    listed = CliRunner().invoke(app, ["rejected", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["id"] == entry["id"]
    shown = CliRunner().invoke(app, ["rejected", "show", entry["id"]])
    assert json.loads(shown.stdout)["payload"]["properties"] == {"ct_newsletter": "<redacted>"}
    exported = CliRunner().invoke(app, ["rejected", "export", "--since", "1h", "--format", "jsonl", "--show-pii"])
    assert [json.loads(line)["payload"]["properties"] for line in exported.stdout.splitlines()] == [
        {"ct_newsletter": "true"}]

    # Several cycles of delta sync and write-back poll: no write in either direction.
    since = time.time()
    for _ in range(3):
        run = _sync(ids)
        assert run["skipped"] == len(ids) and run["updated"] == run["created"] == 0
        _poll_via_fleet()
    assert write_calls(hubspot_requests(shop, since=since)) == []
    assert {i: int(ct.get("customers", i)["version"]) for i in ids} == versions
    assert len(rejected.entries(get_redis())) == 1
    contact = _contact(shop, a["id"])["properties"]
    assert (contact["phone"], contact["ct_newsletter"]) == ("+49 30 1234567", newsletter)

    # A later commercetools change of another field syncs, and leaves the HubSpot-owned values alone.
    _change_in_ct(a["id"], [{"action": "setCompanyName", "companyName": "After Write-back AG"}])
    assert _sync([a["id"]])["updated"] == 1
    contact = _contact(shop, a["id"])["properties"]
    assert (contact["company"], contact["phone"]) == ("After Write-back AG", "+49 30 1234567")


class RacingSession(requests.Session):
    """A real session that lets a concurrent commercetools change land just before our first update
    of `customer_id` (so it meets a 409 ConcurrentModification), and notes the statuses it got."""

    def __init__(self, customer_id: str) -> None:
        super().__init__()
        self.customer_id = customer_id
        self.update_statuses: list[int] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        is_update = method == "POST" and str(url).endswith(f"/customers/{self.customer_id}")
        if is_update and not self.update_statuses:
            _change_in_ct(self.customer_id, [{"action": "setLastName", "lastName": "Concurrent"}])
        response = super().request(method, url, *args, **kwargs)
        if is_update:
            self.update_statuses.append(response.status_code)
        return response


def test_a_write_back_meeting_a_concurrent_change_gets_409_then_succeeds_on_the_current_version(
        shop: LocalFleet, variant: MappingFile) -> None:
    [a] = _pick(want_custom=True, count=1)
    assert _sync([a["id"]])["created"] == 1
    _edit_in_hubspot(shop, a["id"], {"phone": "+44 20 7946 0000"})
    time.sleep(SEARCH_LAG)
    session = RacingSession(a["id"])
    result = poll(_hubspot(), _ct(session), SyncState(get_redis()), variant, "test", lag_seconds=120, max_pages=5)
    assert result.written_back == 1 and result.rejected == 0
    assert session.update_statuses == [409, 200]
    after = _ct().get("customers", a["id"])
    address = next(x for x in after["addresses"] if x["id"] == after["defaultShippingAddressId"])
    assert (after["lastName"], address["phone"]) == ("Concurrent", "+44 20 7946 0000")  # both changes kept
    assert get_redis().hget(Keys.writeback_versions(), a["id"]) == str(after["version"])

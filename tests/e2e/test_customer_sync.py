"""The pipeline end to end: real Redis, two real worker processes, both sandboxes over HTTP."""

from __future__ import annotations

import time
from typing import Any

import requests

from sync_tasks.constants import Keys
from sync_tasks.extract import run_extract
from sync_tasks.localfleet import LocalFleet
from sync_tasks.mapping import normalize_email
from sync_tasks.redis_conn import get_redis
from sync_tasks.runs import wait_for_run
from sync_tasks.settings import get_settings
from sync_tasks.state import SyncState
from sync_tasks.tasks import enqueue_chunk
from sync_tasks.verify import all_customers, sandbox_records, verify_contacts
from tests.e2e.conftest import backfill as _backfill
from tests.e2e.conftest import ct_client as _ct
from tests.e2e.conftest import delta as _delta
from tests.e2e.conftest import hubspot_requests, write_calls


def _state() -> SyncState:
    return SyncState(get_redis())


def _verify(fleet: LocalFleet) -> None:
    assert fleet.hubspot
    report = verify_contacts(_ct(), fleet.hubspot.url, get_settings().shared_fields_rule)
    assert report.ok, (report.missing[:5], report.duplicates[:5], report.mismatched[:5])
    assert report.contacts == report.people


def _touch(fleet: LocalFleet, body: dict[str, Any]) -> dict[str, Any]:
    assert fleet.ct
    response = requests.post(f"{fleet.ct.url}/_sandbox/customers/touch", json=body, timeout=60)
    response.raise_for_status()
    return dict(response.json())


def test_initial_sync_creates_one_contact_per_person(shop: LocalFleet) -> None:
    run = _backfill()
    assert run["failed"] == 0 and run["extracted"] >= 300
    _verify(shop)


def test_delta_pushes_only_changed_customers_and_properties(shop: LocalFleet) -> None:
    _backfill()
    _delta()  # the first delta sets the watermark; nothing to write
    touched = _touch(shop, {"count": 5, "action": "setFirstName"})
    since = time.time()
    run = _delta()
    assert run["updated"] == 5, run
    updates = [e for e in write_calls(hubspot_requests(shop, since))]
    assert updates and all(e["endpoint"].endswith("/contacts/batch/update") for e in updates)
    sent = [i for e in updates for i in e["body"]["inputs"]]
    assert len(sent) == 5 and len(touched.get("ids", sent)) == 5
    for item in sent:
        assert set(item["properties"]) <= {"firstname", "ct_last_modified_at"}
    _verify(shop)


def test_nothing_changed_means_zero_hubspot_writes(shop: LocalFleet) -> None:
    _backfill()
    _delta()
    since = time.time()
    run = _delta()
    assert run["created"] == run["updated"] == 0
    assert write_calls(hubspot_requests(shop, since)) == []


def test_email_change_updates_the_contact_without_a_duplicate(shop: LocalFleet) -> None:
    _backfill()
    _delta()
    ct = _ct()
    customers = all_customers(ct)
    emails = [normalize_email(c.get("email")) for c in customers]
    target = next(c for c, e in zip(customers, emails, strict=True) if e and emails.count(e) == 1)
    old_hs = _state().lookup_ids("contacts", [target["id"]])[target["id"]]
    ct.update("customers", target["id"], target["version"],
              [{"action": "changeEmail", "email": "Moved.Person@Example.org"}])
    _delta()
    assert shop.hubspot
    contacts = sandbox_records(shop.hubspot.url, "contacts")
    moved = [c for c in contacts if c["properties"].get("email") == "moved.person@example.org"]
    assert [str(c["id"]) for c in moved] == [old_hs]
    _verify(shop)


def test_two_customers_sharing_an_email_make_one_contact(shop: LocalFleet) -> None:
    _backfill()
    customers = all_customers(_ct())
    by_email: dict[str, list[str]] = {}
    for c in customers:
        if e := normalize_email(c.get("email")):
            by_email.setdefault(e, []).append(c["id"])
    shared = {e: ids for e, ids in by_email.items() if len(ids) > 1}
    assert shared, "the seeded shop must have the same e-mail in two stores"
    assert shop.hubspot
    contacts = sandbox_records(shop.hubspot.url, "contacts")
    for email, ids in shared.items():
        found = [c for c in contacts if c["properties"].get("email") == email]
        assert len(found) == 1
        assert found[0]["properties"]["ct_customer_ids"] == ";".join(sorted(ids))
    _verify(shop)


def test_pre_existing_contact_with_the_same_email_is_matched(shop: LocalFleet) -> None:
    customers = all_customers(_ct())
    target = next(c for c in customers if normalize_email(c.get("email")))
    email = normalize_email(target["email"])
    assert shop.hubspot
    made = requests.post(f"{shop.hubspot.url}/_sandbox/objects/contacts",
                         json={"properties": {"email": email, "firstname": "From a form"}}, timeout=30).json()
    _backfill()
    found = [c for c in sandbox_records(shop.hubspot.url, "contacts") if c["properties"].get("email") == email]
    assert [str(c["id"]) for c in found] == [str(made["id"])]
    _verify(shop)


def test_replaying_the_same_chain_twice_creates_no_duplicate(shop: LocalFleet) -> None:
    records = all_customers(_ct())[:40]
    state = _state()
    run_id = state.start_run("customers", "replay")
    ctx = {"entity": "customers", "run_id": run_id, "mode": "backfill", "lane": "backfill", "force": True}
    enqueue_chunk(records, ctx)
    enqueue_chunk(records, ctx)  # the same message twice, racing on two workers
    state.count(run_id, extracted=2 * len(records))
    state.finish_extract(run_id)
    wait_for_run(state, run_id, timeout=120)
    assert shop.hubspot
    contacts = sandbox_records(shop.hubspot.url, "contacts")
    emails = [c["properties"].get("email") for c in contacts]
    assert len(emails) == len(set(emails))
    expected = {normalize_email(r.get("email")) for r in records} - {None}
    assert expected <= set(emails)


def test_records_changed_while_paging_are_not_skipped(shop: LocalFleet) -> None:
    _backfill()
    _delta()
    r = get_redis()
    wm_before = r.get(Keys.watermark("customers"))
    ct = _ct()
    customers = all_customers(ct)
    # Customers early in (lastModifiedAt, id) order change while the extraction pages through them.
    early = sorted(customers, key=lambda c: (c["lastModifiedAt"], c["id"]))[:3]
    r.set(Keys.watermark("customers"), "2000-01-01T00:00:00.000Z")  # re-read the whole shop, in pages of 50
    seen: list[str] = []
    changed: dict[str, str] = {}

    def enqueue(records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        seen.extend(f"{x['id']}@{x['version']}" for x in records)
        if not changed:
            for c in early:
                new = ct.update("customers", c["id"], c["version"], [{"action": "setFirstName", "firstName": "Moved"}])
                changed[c["id"]] = f"{c['id']}@{new['version']}"
        enqueue_chunk(records, ctx)

    result = run_extract("customers", ct, r, get_settings(), enqueue)
    wait_for_run(_state(), result.run_id, timeout=120)
    for key in changed.values():
        assert key in seen  # read again, at its new version, later in the same run
    newest = max(c["lastModifiedAt"] for c in all_customers(ct))
    assert result.watermark_after == newest == r.get(Keys.watermark("customers"))
    assert wm_before is not None and newest > wm_before
    _verify(shop)


def test_customers_with_a_company_are_associated_to_it(shop: LocalFleet) -> None:
    _backfill()
    assert shop.hubspot
    companies = {str(c["id"]): c for c in sandbox_records(shop.hubspot.url, "companies")}
    links = requests.get(f"{shop.hubspot.url}/_sandbox/associations/contacts/companies", timeout=30).json()
    contact_to_company: dict[str, str] = {}
    for pair in links["results"]:
        assert str(pair["fromId"]) not in contact_to_company, "a contact is linked to one company"
        contact_to_company[str(pair["fromId"])] = str(pair["toId"])
    ids = _state().lookup_ids("contacts", [c["id"] for c in all_customers(_ct())])
    with_company = [c for c in all_customers(_ct()) if (c.get("companyName") or "").strip()]
    assert with_company, "the seeded shop has B2B customers"
    checked = 0
    for customer in with_company:
        contact = ids[customer["id"]]
        company = companies[contact_to_company[contact]]
        owner_names = {(x.get("companyName") or "").strip() for x in all_customers(_ct())
                       if x["email"] and normalize_email(x["email"]) == normalize_email(customer["email"])}
        assert company["properties"]["name"] in owner_names
        checked += 1
    assert checked == len(with_company)
    # one company per name, never duplicated
    names = [c["properties"]["ct_company_key"] for c in companies.values()]
    assert len(names) == len(set(names))


def test_setup_twice_changes_nothing(shop: LocalFleet) -> None:
    from sync_tasks.commerce_schema import setup_all
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter

    settings = get_settings()
    assert shop.hubspot
    pipelines_before = requests.get(f"{shop.hubspot.url}/crm/v3/pipelines/orders", timeout=30,
                                    headers={"Authorization": f"Bearer {settings.hubspot_token.get_secret_value()}"})
    report = setup_all(HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True), settings,
                       get_redis())
    assert report.created == [] and report.created_groups == [] and len(report.existing) >= 9
    pipelines_after = requests.get(f"{shop.hubspot.url}/crm/v3/pipelines/orders", timeout=30,
                                   headers={"Authorization": f"Bearer {settings.hubspot_token.get_secret_value()}"})
    assert pipelines_after.json() == pipelines_before.json()

"""The mapping file end to end: setup on an empty HubSpot, a mapping change provisioned and filled,
consent round trips through communication preferences, and the dry-run plan equal to what the next
sync writes. Real Redis, real worker processes, both sandboxes over HTTP.

The workers read the mapping from MAPPING_FILE, set here before the session's fleet starts; it holds
the default mapping except while a test of this module swaps in a variant (workers re-read a
changed file)."""

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

from sync_tasks.mapping_file import DEFAULT_MAPPING

MAPPING = Path(tempfile.gettempdir()) / f"ctsync-e2e-mapping-{os.getpid()}.toml"
MAPPING.write_text(DEFAULT_MAPPING.read_text())
os.environ["MAPPING_FILE"] = str(MAPPING)  # before the fleet starts: its workers inherit it

from sync_tasks.commercetools_client import CommercetoolsClient  # noqa: E402
from sync_tasks.extract import run_extract  # noqa: E402
from sync_tasks.hubspot_client import HubSpotClient  # noqa: E402
from sync_tasks.limiter import RateLimiter  # noqa: E402
from sync_tasks.localfleet import LocalFleet  # noqa: E402
from sync_tasks.mapping import map_customer, normalize_email  # noqa: E402
from sync_tasks.redis_conn import get_redis  # noqa: E402
from sync_tasks.runs import send_backfill, wait_for_run  # noqa: E402
from sync_tasks.schema import SchemaConflict, setup_schema, sync_refusal  # noqa: E402
from sync_tasks.settings import get_settings  # noqa: E402
from sync_tasks.state import SyncState  # noqa: E402
from sync_tasks.tasks import enqueue_chunk  # noqa: E402
from sync_tasks.verify import all_customers, sandbox_records, verify_contacts  # noqa: E402
from tests.e2e.conftest import hubspot_requests, wait_until, write_calls  # noqa: E402


@pytest.fixture
def variant() -> Iterator[Any]:
    """Swap a mapping variant in (workers pick it up); the default comes back afterwards."""
    def write(text: str) -> None:
        tmp = MAPPING.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, MAPPING)

    yield write
    write(DEFAULT_MAPPING.read_text())


def _hubspot() -> HubSpotClient:
    settings = get_settings()
    return HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)


def _ct() -> CommercetoolsClient:
    return CommercetoolsClient(get_settings())


def _backfill() -> dict[str, Any]:
    state = SyncState(get_redis())
    run_id = state.start_run("customers", "backfill")
    send_backfill("customers", None, None, run_id)
    return wait_for_run(state, run_id, timeout=240)


def _delta() -> dict[str, Any]:
    result = run_extract("customers", _ct(), get_redis(), get_settings(), enqueue_chunk)
    return dict(wait_for_run(SyncState(get_redis()), result.run_id, timeout=120), run_id=result.run_id)


def _props(fleet: LocalFleet, obj: str) -> dict[str, dict[str, Any]]:
    assert fleet.hubspot
    body = requests.get(f"{fleet.hubspot.url}/crm/v3/properties/{obj}", timeout=30,
                        headers={"Authorization": f"Bearer {get_settings().hubspot_token.get_secret_value()}"})
    return {p["name"]: p for p in body.json()["results"]}


def test_setup_on_an_empty_hubspot_creates_what_the_mapping_needs_once(shop: LocalFleet) -> None:
    assert shop.hubspot
    requests.post(f"{shop.hubspot.url}/_sandbox/reset", timeout=30).raise_for_status()
    report = setup_schema(_hubspot())
    assert report.created_groups == ["contacts.commercetools", "companies.commercetools"]
    assert {"contacts.ct_customer_id", "contacts.ct_stores", "contacts.ct_newsletter",
            "contacts.ct_lifetime_budget", "companies.ct_company_key"} <= set(report.created)
    props = _props(shop, "contacts")
    assert props["ct_customer_id"]["hasUniqueValue"] is True
    assert (props["ct_stores"]["type"], props["ct_stores"]["fieldType"]) == ("enumeration", "checkbox")
    assert [o["value"] for o in props["ct_stores"]["options"]] == ["eu", "us", "uk", "jp"]
    assert (props["ct_newsletter"]["type"], props["ct_lifetime_budget"]["type"]) == ("bool", "number")
    assert (props["ct_newsletter_opt_in_date"]["type"], props["ct_date_of_birth"]["type"]) == ("datetime", "date")
    again = setup_schema(_hubspot())
    assert again.created == again.created_groups == again.updated == [] and again.conflicts == []
    assert sync_refusal(_hubspot(), get_redis()) is None

    requests.post(f"{shop.hubspot.url}/_sandbox/reset", timeout=30).raise_for_status()
    _hubspot().create_property_group("contacts", {"name": "commercetools", "label": "commercetools"})
    _hubspot().create_property("contacts", {"name": "ct_lifetime_budget", "label": "x", "type": "string",
                                            "fieldType": "text", "groupName": "commercetools"})
    with pytest.raises(SchemaConflict, match=r"contacts\.ct_lifetime_budget: type is 'string', the mapping needs "
                                             "'number'"):
        setup_schema(_hubspot())


def test_a_mapping_change_is_provisioned_then_filled_by_the_next_sync(shop: LocalFleet, variant: Any) -> None:
    _backfill()
    text = DEFAULT_MAPPING.read_text().replace("[contact.properties]\n", (
        '[contact.properties]\nct_sync_source = { transform = "constant", value = "commercetools" }\n'
        'ct_vat_id = { source = "vatId", label = "VAT id" }\n'))
    variant(text)
    refusal = sync_refusal(_hubspot(), get_redis())
    assert refusal and "contacts.ct_sync_source" in refusal and "contacts.ct_vat_id" in refusal
    report = setup_schema(_hubspot())
    assert report.created == ["contacts.ct_sync_source", "contacts.ct_vat_id"]
    assert sync_refusal(_hubspot(), get_redis()) is None
    run = _backfill()
    assert run["failed"] == 0
    assert shop.hubspot
    contacts = sandbox_records(shop.hubspot.url, "contacts")
    assert contacts and all(c["properties"].get("ct_sync_source") == "commercetools" for c in contacts)
    vat = {normalize_email(c.get("email")): c["vatId"] for c in all_customers(_ct()) if c.get("vatId")}
    assert vat
    by_email = {c["properties"]["email"]: c["properties"] for c in contacts}
    assert sum(1 for e, v in vat.items() if by_email[e].get("ct_vat_id") == v) >= len(vat) - 2  # shared e-mails
    report = verify_contacts(_ct(), shop.hubspot.url, get_settings().shared_fields_rule)
    assert report.ok, report.mismatched[:5]


CONSENT_ON = DEFAULT_MAPPING.read_text().replace("[consent]\nenabled = false", "[consent]\nenabled = true")


def _sync_one(customer_id: str) -> None:
    """One delta chain for one customer, through the workers."""
    state = SyncState(get_redis())
    record = _ct().get("customers", customer_id)
    run_id = state.start_run("customers", "consent-test")
    state.count(run_id, extracted=1)
    state.finish_extract(run_id)
    enqueue_chunk([record], {"entity": "customers", "run_id": run_id, "mode": "delta", "lane": "live",
                             "force": False})
    wait_for_run(state, run_id, timeout=60)


def _status(fleet: LocalFleet, email: str) -> tuple[str, int]:
    assert fleet.hubspot
    body = requests.get(f"{fleet.hubspot.url}/_sandbox/consent", timeout=30).json()
    mine = [h for h in body["history"] if h["subscriberIdString"] == email and h["subscriptionId"] == 101]
    return (mine[-1]["status"] if mine else "NOT_SPECIFIED"), len(mine)


def _set_fields(customer_id: str, **fields: Any) -> None:
    ct = _ct()
    current = ct.get("customers", customer_id)
    ct.update("customers", customer_id, current["version"],
              [{"action": "setCustomField", "name": k, "value": v} for k, v in fields.items()])


def _iso(offset: float = 0.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + offset))


def test_consent_opt_in_opt_out_and_re_opt_in_round_trips(shop: LocalFleet, variant: Any) -> None:
    variant(CONSENT_ON)
    customers = all_customers(_ct())
    emails = [normalize_email(c.get("email")) for c in customers]
    target = next(c for c, e in zip(customers, emails, strict=True)
                  if e and emails.count(e) == 1 and c.get("custom"))
    email = normalize_email(target["email"])
    assert email

    _set_fields(target["id"], newsletter=True, newsletterOptInDate=_iso(-3600))
    _sync_one(target["id"])
    assert wait_until(lambda: _status(shop, email)[0] == "SUBSCRIBED", timeout=30)
    assert shop.hubspot
    history = requests.get(f"{shop.hubspot.url}/_sandbox/consent", timeout=30).json()["history"]
    assert history[-1]["legalBasis"] == "CONSENT_WITH_NOTICE" and history[-1]["legalBasisExplanation"]

    _set_fields(target["id"], newsletter=False)
    _sync_one(target["id"])
    assert wait_until(lambda: _status(shop, email)[0] == "UNSUBSCRIBED", timeout=30)
    writes = _status(shop, email)[1]

    # An opt-in older than HubSpot's opt-out never re-subscribes.
    _set_fields(target["id"], newsletter=True, newsletterOptInDate=_iso(-86400))
    _sync_one(target["id"])
    time.sleep(1.5)  # consent runs after the run's counters: give it time to (not) happen
    assert _status(shop, email) == ("UNSUBSCRIBED", writes)

    # A newer opt-in does (the mapping allows it).
    time.sleep(1.0)
    _set_fields(target["id"], newsletter=True, newsletterOptInDate=_iso(5))
    _sync_one(target["id"])
    assert wait_until(lambda: _status(shop, email)[0] == "SUBSCRIBED", timeout=30)

    # Without permission in the mapping, even a newer opt-in leaves HubSpot's opt-out alone.
    _set_fields(target["id"], newsletter=False)
    _sync_one(target["id"])
    assert wait_until(lambda: _status(shop, email)[0] == "UNSUBSCRIBED", timeout=30)
    variant(CONSENT_ON.replace("resubscribe_if_newer = true", "resubscribe_if_newer = false"))
    writes = _status(shop, email)[1]
    time.sleep(1.0)
    _set_fields(target["id"], newsletter=True, newsletterOptInDate=_iso(5))
    _sync_one(target["id"])
    time.sleep(1.5)
    assert _status(shop, email) == ("UNSUBSCRIBED", writes)


def test_the_plan_equals_what_the_next_sync_writes(shop: LocalFleet) -> None:
    from typer.testing import CliRunner

    from sync_tasks.cli import app

    _backfill()
    _delta()
    assert shop.ct
    touched = requests.post(f"{shop.ct.url}/_sandbox/customers/touch",
                            json={"count": 5, "action": "setFirstName"}, timeout=60).json()
    before_plan = time.time()
    runner = CliRunner()
    out = runner.invoke(app, ["plan", "customers", "--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output.strip().splitlines()[-1])
    assert write_calls(hubspot_requests(shop, before_plan)) == []  # the plan wrote nothing
    assert plan["totals"]["update"] == 5 and plan["totals"]["create"] == 0
    assert plan["totals"]["unchanged"] + 5 + plan["totals"]["no_email"] == len(all_customers(_ct()))
    planned = {r["hs_id"]: {p: c["new"] for p, c in r["changes"].items()}
               for r in plan["records"] if r["action"] == "update"}
    assert all(c["old"] != c["new"] for r in plan["records"] for c in r["changes"].values())

    since = time.time()
    run = _delta()
    assert run["updated"] == 5
    sent: dict[str, dict[str, str]] = {}
    for call in write_calls(hubspot_requests(shop, since)):
        assert call["endpoint"].endswith("/contacts/batch/update")
        for item in call["body"]["inputs"]:
            sent[str(item["id"])] = item["properties"]
    assert sent == planned
    assert len(touched.get("ids", planned)) == 5

    # `mapping show` prints what the sync maps; `backfill --confirm` asks first and stops on "no".
    customer = all_customers(_ct())[0]
    show = runner.invoke(app, ["mapping", "show", customer["id"], "--json"])
    assert show.exit_code == 0 and json.loads(show.output)["properties"] == map_customer(customer).properties
    runs_before = SyncState(get_redis()).recent_runs("customers", 100)
    refused = runner.invoke(app, ["backfill", "customers", "--confirm", "--no-wait"], input="n\n")
    assert refused.exit_code == 1 and "update=" in refused.output
    assert SyncState(get_redis()).recent_runs("customers", 100) == runs_before

"""`verify_contacts` against real sandboxes: contacts written by the real map and push (in this
process, no broker) pass; a person whose company association is removed in HubSpot is named."""

from __future__ import annotations

import redis

from sync_tasks.changes import plan_contacts
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.match import match_customers
from sync_tasks.push import push_plan
from sync_tasks.state import SyncState
from sync_tasks.verify import all_customers, sandbox_associations, verify_contacts
from tests.sync_tasks.sandboxes import portal

SIZE = 60


def test_a_person_without_their_company_is_named(sandboxes: tuple[str, str], redis_client: redis.Redis) -> None:
    ct_url, hs_url = sandboxes
    settings, hub = portal(ct_url, hs_url, redis_client)
    ct = CommercetoolsClient(settings)
    state = SyncState(redis_client)
    plan = plan_contacts(match_customers(all_customers(ct), state, hub), state, settings.shared_fields_rule,
                         force=True)
    assert not push_plan(plan.as_dict(), hub, state, None, "test").left

    report = verify_contacts(ct, hs_url, settings.shared_fields_rule)
    assert report.ok and report.unlinked == []
    links = sandbox_associations(hs_url, "contacts", "companies")
    assert links, "the seeded shop has B2B customers"

    contact, company = links[0]
    hub.post("/crm/v4/associations/contacts/companies/batch/archive",
             {"inputs": [{"from": {"id": contact}, "to": [{"id": company}]}]})
    members = [cid for cid, hs_id in state.lookup_ids("contacts", [c["id"] for c in all_customers(ct)]).items()
               if hs_id == contact]
    report = verify_contacts(ct, hs_url, settings.shared_fields_rule)
    assert sorted(report.unlinked) == sorted(members) and not report.ok

"""The map step: matched customers → a write plan for HubSpot.

Customers sharing an e-mail become one contact. `SHARED_FIELDS_RULE` picks which of them supplies
the shared fields (name, address, …): `most_recently_modified` (default: the account changed last
wins) or `first_created` (the oldest account wins). Every account's id is kept in
`ct_customer_ids`. A batch never holds the same key twice.

A group is always planned whole: accounts of the e-mail that are not in this chunk (known from
Redis or from the contact's `ct_customer_ids`) are read from commercetools, so two chains touching
the same contact at once compute the same values, and the contact never shows a partial group.

Delta mode drops records whose fingerprint equals the last pushed one and sends only the
properties that changed since the sync last wrote them; backfill mode (`force`) sends everything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks.mapping import changed, fingerprint, map_company, map_customer, normalize_email
from sync_tasks.match import CONTACTS, CT_ID_PROPERTY, MEMBERS_PROPERTY, Match
from sync_tasks.state import SyncState

ENTITY = "customers"

FetchCustomers = Callable[[list[str]], list[dict[str, Any]]]


@dataclass
class Plan:
    """JSON-serialisable: it travels from the map task to the push task."""

    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    companies: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: int = 0
    no_email: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"creates": self.creates, "updates": self.updates, "companies": self.companies,
                "skipped": self.skipped, "no_email": self.no_email, "rejected": self.rejected}


def pick_owner(rule: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The customer whose values a shared contact shows, by the configured rule."""
    if rule == "first_created":
        return min(candidates, key=lambda c: (c.get("createdAt") or "", c["id"]))
    return max(candidates, key=lambda c: (c.get("lastModifiedAt") or "", c["id"]))


def _complete_groups(groups: dict[str, list[Match]], known: dict[str, set[str]],
                     fetch: FetchCustomers | None) -> dict[str, list[dict[str, Any]]]:
    """Each e-mail's full set of accounts: the chunk's records plus the others, read fresh."""
    records = {email: [m.record for m in group] for email, group in groups.items()}
    missing = {i for email, group in groups.items()
               for i in known.get(email, set()) - {m.record["id"] for m in group}}
    if not missing or fetch is None:
        return records
    for other in fetch(sorted(missing)):
        email = normalize_email(other.get("email"))
        if email in records and other["id"] in known.get(email, set()):
            records[email].append(other)  # accounts whose e-mail moved away have left the group
    return records


def plan_contacts(matches: list[Match], state: SyncState, rule: str, force: bool = False,
                  fetch: FetchCustomers | None = None) -> Plan:
    plan = Plan()
    groups: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        email = normalize_email(m.record.get("email"))
        if email is None:
            plan.no_email.append(m.record["id"])  # "no email, no contact"
            continue
        groups[email].append(m)

    emails = sorted(groups)
    stored_members = state.members(emails)
    known = {e: stored_members.get(e, set()) | {i for m in groups[e] for i in m.hs_members or []} for e in emails}
    full = _complete_groups(groups, known, fetch)
    ids = [r["id"] for rs in full.values() for r in rs]
    fps = state.fingerprints(ENTITY, ids)
    mapped = {r["id"]: map_customer(r) for rs in full.values() for r in rs}
    new_fps = {i: fingerprint(mp.properties) for i, mp in mapped.items()}
    hs_ids = sorted({m.hs_id for group in groups.values() for m in group if m.hs_id})
    written = state.written(CONTACTS, hs_ids)

    for email, group in groups.items():
        members = sorted({r["id"] for r in full[email]})
        hs_id = next((m.hs_id for m in group if m.hs_id), None)
        unchanged = all(fps.get(i) == new_fps[i] for i in members) and set(members) == stored_members.get(email)
        if unchanged and hs_id and not force:
            plan.skipped += len(group)
            continue
        owner = pick_owner(rule, full[email])
        props = dict(mapped[owner["id"]].properties)
        props[MEMBERS_PROPERTY] = ";".join(members)
        for record in full[email]:
            for prop, reason in mapped[record["id"]].rejected.items():
                plan.rejected.append({"record_id": record["id"], "property": prop, "reason": reason})
        company = map_company(owner)
        if company:
            plan.companies[company["ct_company_key"]] = company
        entry: dict[str, Any] = {
            "email": email, "members": members, "record_ids": [m.record["id"] for m in group],
            "fingerprints": {i: new_fps[i] for i in members},
            "company": company["ct_company_key"] if company else None,
        }
        if hs_id is None:
            props["email"] = email
            entry.update(key=owner["id"], properties=props)
            plan.creates.append(entry)
            continue
        has_key = any(m.hs_ct_id for m in group if m.hs_id == hs_id) or written.get(hs_id, {}).get(CT_ID_PROPERTY)
        if not has_key and any(m.via in ("email", "email-index") for m in group):
            # A contact made outside the sync (a form, say): give it our unique key.
            props[CT_ID_PROPERTY] = owner["id"]
        to_send = props if force else changed(props, written.get(hs_id, {}))
        if not to_send:
            state.save_fingerprints(ENTITY, entry["fingerprints"])
            state.set_members({email: members})
            plan.skipped += len(group)
            continue
        entry.update(hs_id=hs_id, properties=to_send)
        plan.updates.append(entry)
    return plan

"""The map step: matched customers → a write plan for HubSpot.

Customers sharing an e-mail become one contact. `SHARED_FIELDS_RULE` picks which of them supplies
the shared fields (name, address, …): `most_recently_modified` (default: the account changed last
wins) or `first_created` (the oldest account wins). Every account's id is kept in
`ct_customer_ids`. A batch never holds the same key twice.

Delta mode drops records whose fingerprint equals the last pushed one and sends only the
properties that changed since the sync last wrote them; backfill mode (`force`) sends everything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sync_tasks.mapping import changed, fingerprint, map_company, map_customer, normalize_email
from sync_tasks.match import CONTACTS, CT_ID_PROPERTY, Match
from sync_tasks.state import SyncState

ENTITY = "customers"


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


def _owner_sort_key(rule: str, candidate: dict[str, Any]) -> tuple[str, str]:
    if rule == "first_created":
        # Oldest first: invert by sorting ascending and taking the first.
        return (candidate.get("createdAt") or "", candidate["id"])
    return (candidate.get("lastModifiedAt") or "", candidate["id"])


def pick_owner(rule: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The customer whose values a shared contact shows, by the configured rule."""
    if rule == "first_created":
        return min(candidates, key=lambda c: _owner_sort_key(rule, c))
    return max(candidates, key=lambda c: _owner_sort_key(rule, c))


def _owner_summary(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], "createdAt": record.get("createdAt"),
            "lastModifiedAt": record.get("lastModifiedAt")}


def plan_contacts(matches: list[Match], state: SyncState, rule: str, force: bool = False) -> Plan:
    plan = Plan()
    groups: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        email = normalize_email(m.record.get("email"))
        if email is None:
            plan.no_email.append(m.record["id"])  # "no email, no contact"
            continue
        groups[email].append(m)

    emails = sorted(groups)
    owners = state.owners(emails)
    members = state.members(emails)
    ids = [m.record["id"] for group in groups.values() for m in group]
    fps = state.fingerprints(ENTITY, ids)
    mapped = {m.record["id"]: map_customer(m.record) for group in groups.values() for m in group}
    new_fps = {i: fingerprint(mp.properties) for i, mp in mapped.items()}
    hs_ids = sorted({m.hs_id for group in groups.values() for m in group if m.hs_id})
    written = state.written(CONTACTS, hs_ids)

    for email, group in groups.items():
        group_ids = [m.record["id"] for m in group]
        hs_id = next((m.hs_id for m in group if m.hs_id), None)
        all_members = members.get(email, set()) | set(group_ids)
        unchanged = all(fps.get(i) == new_fps[i] for i in group_ids) and all_members == members.get(email)
        if unchanged and hs_id and not force:
            plan.skipped += len(group)
            continue
        candidates = [m.record for m in group]
        stored_owner = owners.get(email)
        if stored_owner and stored_owner["id"] not in group_ids:
            candidates.append(stored_owner)
        owner = pick_owner(rule, candidates)
        owner_in_group = owner["id"] in group_ids
        props: dict[str, str] = dict(mapped[owner["id"]].properties) if owner_in_group else {}
        props["ct_customer_ids"] = ";".join(sorted(all_members))
        for rid in group_ids:
            for prop, reason in mapped[rid].rejected.items():
                plan.rejected.append({"record_id": rid, "property": prop, "reason": reason})
        company = map_company(owner) if owner_in_group else None
        if company:
            plan.companies[company["ct_company_key"]] = company
        entry: dict[str, Any] = {
            "email": email, "members": sorted(all_members), "record_ids": group_ids,
            "fingerprints": {i: new_fps[i] for i in group_ids},
            "owner": _owner_summary(owner), "company": company["ct_company_key"] if company else None,
        }
        if hs_id is None:
            props["email"] = email
            entry.update(key=owner["id"] if owner_in_group else group_ids[0], properties=props)
            plan.creates.append(entry)
            continue
        if not any(m.hs_ct_id for m in group if m.hs_id == hs_id) and not written.get(hs_id, {}).get(
                CT_ID_PROPERTY) and any(m.via in ("email", "email-index") for m in group):
            # A contact made outside the sync (a form, say): give it our unique key.
            props[CT_ID_PROPERTY] = owner["id"]
        to_send = props if force else changed(props, written.get(hs_id, {}))
        if not to_send:
            state.save_fingerprints(ENTITY, entry["fingerprints"])
            plan.skipped += len(group)
            continue
        entry.update(hs_id=hs_id, properties=to_send, full=props)
        plan.updates.append(entry)
    return plan

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

The properties come from the mapping file (`mapping.map_customer`). `Filters` limit what syncs: store
keys, distribution channels, and "no email, no contact" (on by default; off, a customer without an
e-mail becomes a contact keyed by `ct_customer_id` alone). Consent entries are planned for people
whose opt-in decision changed since the sync last applied it (see consent.py).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks import conflicts, consent, ownership
from sync_tasks.mapping import (
    fingerprint,
    load_mapping,
    map_company,
    map_customer,
    normalize_email,
    store_context,
)
from sync_tasks.mapping_file import MappingFile
from sync_tasks.match import CONTACTS, CT_ID_PROPERTY, MEMBERS_PROPERTY, Match
from sync_tasks.order_history import History
from sync_tasks.state import SyncState
from sync_tasks.writeback import own_versions

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
    filtered: list[str] = field(default_factory=list)  # outside the store / channel filters
    consent: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"creates": self.creates, "updates": self.updates, "companies": self.companies,
                "skipped": self.skipped, "no_email": self.no_email, "rejected": self.rejected,
                "filtered": self.filtered, "consent": self.consent}


@dataclass(frozen=True)
class Filters:
    """What syncs: `SYNC_STORES`, `SYNC_CHANNELS` (empty: all) and `REQUIRE_EMAIL`."""

    stores: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    require_email: bool = True

    @classmethod
    def from_settings(cls, settings: Any) -> Filters:
        return cls(tuple(settings.sync_stores), tuple(settings.sync_channels), bool(settings.require_email))

    def passes(self, record: dict[str, Any], mapping: MappingFile) -> bool:
        if self.stores:
            keys = {s.get("key") for s in record.get("stores") or [] if isinstance(s, dict)}
            if isinstance(record.get("store"), dict):
                keys.add(record["store"].get("key"))
            if not keys & set(self.stores):
                return False
        if self.channels:
            return store_context(record, "channel", mapping.context) in self.channels
        return True


def group_key(record: dict[str, Any], filters: Filters) -> str | None:
    """The e-mail a customer's contact is keyed by; without one, `ct:<id>` when e-mail is optional."""
    email = normalize_email(record.get("email"))
    if email is None and not filters.require_email:
        return f"ct:{record['id']}"
    return email


def ranked(rule: str, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A shared e-mail's accounts in the configured rule's order, the one whose values the contact
    shows first."""
    if rule == "first_created":
        return sorted(candidates, key=lambda c: (c.get("createdAt") or "", c["id"]))
    return sorted(candidates, key=lambda c: (c.get("lastModifiedAt") or "", c["id"]), reverse=True)


def pick_owner(rule: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The customer whose values a shared contact shows, by the configured rule."""
    if len(candidates) == 1:
        return candidates[0]  # the common case: one account per e-mail
    return ranked(rule, candidates)[0]


def pick_company(rule: str, candidates: list[dict[str, Any]], mapping: MappingFile) -> dict[str, str] | None:
    """The company a shared contact is associated with: the first in the rule's order (`ranked`) of
    its accounts' companies. The owner's when it has one; a person's company is not lost because the
    account that supplies the contact's fields (say, a newer one in another store) has none."""
    if len(candidates) == 1:
        return map_company(candidates[0], mapping)
    return next((c for c in (map_company(r, mapping) for r in ranked(rule, candidates)) if c), None)


def _complete_groups(groups: dict[str, list[Match]], known: dict[str, set[str]],
                     fetch: FetchCustomers | None, keep: Callable[[dict[str, Any]], bool] = lambda r: True
                     ) -> dict[str, list[dict[str, Any]]]:
    """Each e-mail's full set of accounts: the chunk's records plus the others, read fresh."""
    records = {email: [m.record for m in group] for email, group in groups.items()}
    missing = {i for email, group in groups.items()
               for i in known.get(email, set()) - {m.record["id"] for m in group}}
    if not missing or fetch is None:
        return records
    for other in fetch(sorted(missing)):
        email = normalize_email(other.get("email"))
        if email in records and other["id"] in known.get(email, set()) and keep(other):
            records[email].append(other)  # accounts whose e-mail moved away have left the group
    return records


def plan_contacts(matches: list[Match], state: SyncState, rule: str, force: bool = False,
                  fetch: FetchCustomers | None = None, mapping: MappingFile | None = None,
                  filters: Filters | None = None, reader: conflicts.Poster | None = None,
                  conflict_reads: str = "shared", task: str = "", history: History | None = None) -> Plan:
    """`reader` (HubSpot) lets the ownership policies see HubSpot's current values: one batch read for
    the chunk's updates when the mapping has shared properties (docs/ownership.md); without it
    (`ctsync plan`), no HubSpot edit is detected or recorded. `history` (a backfill's) adds each
    person's order rollups and lifecycle properties to the write (sync_tasks/order_history.py)."""
    mapping = mapping or load_mapping()
    filters = filters or Filters()
    plan = Plan()
    groups: dict[str, list[Match]] = defaultdict(list)
    filtering = bool(filters.stores or filters.channels)  # else every record passes
    for m in matches:
        if filtering and not filters.passes(m.record, mapping):
            plan.filtered.append(m.record["id"])
            continue
        email = group_key(m.record, filters)
        if email is None:
            plan.no_email.append(m.record["id"])  # "no email, no contact"
            continue
        groups[email].append(m)

    emails = sorted(groups)
    stored_members = state.members(emails)
    known = {e: stored_members.get(e, set()) | {i for m in groups[e] for i in m.hs_members or []} for e in emails}
    full = _complete_groups(groups, known, fetch, lambda r: filters.passes(r, mapping))
    ids = [r["id"] for rs in full.values() for r in rs]
    mapped = {r["id"]: map_customer(r, mapping) for rs in full.values() for r in rs}
    new_fps = {i: fingerprint(mp.properties) for i, mp in mapped.items()}
    group_hs = {e: next((m.hs_id for m in g if m.hs_id), None) for e, g in groups.items()}
    hs_ids = sorted({m.hs_id for group in groups.values() for m in group if m.hs_id})
    # What we last wrote, parsed only where it is used: every update outside a backfill (the diff),
    # updates that see HubSpot's values (the policies), and contacts matched by e-mail (their key).
    sees_hubspot = reader is not None and bool(ownership.needs_read(mapping.contact, conflict_reads == "always"))
    values_for = None if not force or sees_hubspot else sorted(
        {h for e, g in groups.items() if (h := group_hs[e]) and any(m.via in ("email", "email-index") for m in g)})
    raw_written, generations = state.written_raw_with_generations(CONTACTS, hs_ids, values_for)
    parsed: dict[str, dict[str, str]] = {}

    def written(hs_id: str) -> dict[str, str]:
        if hs_id not in parsed:
            raw = raw_written.get(hs_id)
            parsed[hs_id] = json.loads(raw) if raw else {}
        return parsed[hs_id]

    # Stored fingerprints and the echo guard only tell unchanged groups apart: a backfill (`force`)
    # plans every group, so it reads neither.
    fps = state.fingerprints(ENTITY, ids) if not force else {}
    # Customers at exactly the version our write-back produced: their change is our own (no echo).
    own = own_versions(state.r, ids) if not force else {}
    echo = {r["id"] for rs in full.values() for r in rs if own.get(r["id"]) == str(r.get("version"))}

    def unchanged_group(email: str) -> bool:
        members = {r["id"] for r in full[email]}
        return all(fps.get(i) == new_fps[i] or i in echo for i in members) and members == stored_members.get(email)

    # HubSpot's current values, for the contacts this chunk will update (one batch read at most).
    to_update = sorted({h for e in groups if force or not unchanged_group(e) for h in [group_hs[e]] if h})
    view = conflicts.hubspot_view(reader, mapping.contact, to_update, conflict_reads == "always")

    orders = history({e: full[e] for e in emails}) if history is not None else {}
    consent_on = mapping.consent.enabled  # consent.intent plans nothing otherwise
    for email, group in groups.items():
        members = sorted({r["id"] for r in full[email]})
        hs_id = group_hs[email]
        person = consent.intent(email, full[email], mapping.consent) if consent_on and "@" in email else None
        if person is not None:
            plan.consent.append(person)
        if not force and hs_id and unchanged_group(email):
            state.save_fingerprints(ENTITY, {i: new_fps[i] for i in members if i in echo})
            plan.skipped += len(group)
            continue
        owner = pick_owner(rule, full[email])
        props = dict(mapped[owner["id"]].properties)
        props[MEMBERS_PROPERTY] = ";".join(members)
        for record in full[email]:
            for prop, reason in mapped[record["id"]].rejected.items():
                plan.rejected.append({"record_id": record["id"], "property": prop, "reason": reason})
        company = pick_company(rule, full[email], mapping)
        company_id = company[mapping.company.id_property] if company else None
        if company and company_id:
            plan.companies[company_id] = company
        entry: dict[str, Any] = {
            "email": email, "members": members, "record_ids": [m.record["id"] for m in group],
            "fingerprints": {i: new_fps[i] for i in members},
            "company": company_id,
            # The data's version: a push never overwrites newer data with this (see push.py).
            "version": max(str(r.get("lastModifiedAt") or "") for r in full[email]),
        }
        if hs_id is None:
            if "@" in email:
                props["email"] = email
            entry.update(key=owner["id"], properties={**props, **orders.get(email, {})})
            plan.creates.append(entry)
            continue
        if any(m.via in ("email", "email-index") for m in group) and not (
                any(m.hs_ct_id for m in group if m.hs_id == hs_id) or written(hs_id).get(CT_ID_PROPERTY)):
            # A contact made outside the sync (a form, say): give it our unique key.
            props[CT_ID_PROPERTY] = owner["id"]
        seen = view.get(hs_id) if view is not None else None
        # A backfill without HubSpot's values sends every property: what was written does not count.
        settled = ownership.settle(mapping.contact, props, written(hs_id) if seen or not force else {},
                                   seen, owner.get("lastModifiedAt"), force)
        if settled.conflicts:
            conflicts.record_all(state.r, hs_id, entry["record_ids"], settled.conflicts, task)
        to_send = {**settled.send, **orders.get(email, {})} if settled.send else settled.send
        if not to_send:
            state.save_fingerprints(ENTITY, entry["fingerprints"])
            state.set_members({email: members})
            plan.skipped += len(group)
            continue
        # The diff holds while `written` stays at this generation; the token names this plan's write
        # lock (push.py serialises the pushes of one contact and re-plans a diff that went stale).
        entry.update(hs_id=hs_id, properties=to_send, base=generations.get(hs_id, "0"), token=uuid.uuid4().hex,
                     # Accounts joining a contact by e-mail: a backfill writes these at its end (joins.py).
                     joins=any(m.via in ("email", "email-index") for m in group))
        plan.updates.append(entry)
    plan.consent = consent.pending(state.r, plan.consent)
    return plan

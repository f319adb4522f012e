"""The match step: resolve each commercetools customer to a HubSpot contact id, or to a create.

Order of lookup: the Redis id map (commercetools id, then our e-mail index), then a batch read by
the unique property `ct_customer_id`, then one by e-mail (trimmed, lower-cased), then the optional
external-id properties. The Search API never decides whether a record exists: it lags and is capped.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Any, Protocol

from sync_tasks.hubspot_client import BatchResult
from sync_tasks.mapping import normalize_email
from sync_tasks.state import SyncState

CONTACTS = "contacts"
CT_ID_PROPERTY = "ct_customer_id"
MEMBERS_PROPERTY = "ct_customer_ids"
READ_PROPERTIES = ["email", CT_ID_PROPERTY, MEMBERS_PROPERTY]


class Reader(Protocol):
    def batch_read(self, obj: str, ids: list[str], properties: list[str],
                   id_property: str | None = None) -> BatchResult: ...

    def prepaid(self, calls: int) -> AbstractContextManager[None]: ...


@dataclass
class Match:
    record: dict[str, Any]
    hs_id: str | None = None
    via: str | None = None  # idmap | email-index | ct_customer_id | email | <external property>
    hs_ct_id: str | None = None  # the contact's ct_customer_id, when HubSpot told us
    hs_members: list[str] | None = None  # the contact's ct_customer_ids, when HubSpot told us

    def as_dict(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies the whole record, and this is hot.
        return {f.name: getattr(self, f.name) for f in fields(self)}


def match_customers(records: list[dict[str, Any]], state: SyncState, hubspot: Reader,
                    external_ids: dict[str, str] | None = None) -> list[Match]:
    matches = [Match(record=r) for r in records]

    def open_() -> list[Match]:
        return [m for m in matches if m.hs_id is None]

    known = state.lookup_ids(CONTACTS, [m.record["id"] for m in matches])
    for m in matches:
        if m.record["id"] in known:
            m.hs_id, m.via = known[m.record["id"]], "idmap"

    emails = {m.record["id"]: normalize_email(m.record.get("email")) for m in matches}
    by_email = state.lookup_emails(sorted({e for m in open_() if (e := emails[m.record["id"]])}))
    for m in open_():
        email = emails[m.record["id"]]
        if email and email in by_email:
            m.hs_id, m.via = by_email[email], "email-index"

    if not open_():
        return matches
    # Budget for every read this chunk may need, taken at once: a refusal half-way would repeat reads.
    reads = 2 + sum(1 for f in (external_ids or {}) if any(m.record.get(f) for m in open_()))
    with hubspot.prepaid(reads):
        _read_hubspot(matches, emails, state, hubspot, external_ids or {})
    return matches


def _read_hubspot(matches: list[Match], emails: dict[str, str | None], state: SyncState, hubspot: Reader,
                  external_ids: dict[str, str]) -> None:
    def open_() -> list[Match]:
        return [m for m in matches if m.hs_id is None]

    found: dict[str, str] = {}  # ct id -> hs id, learnt from HubSpot
    found_emails: dict[str, str] = {}
    pending = open_()
    if pending:
        result = hubspot.batch_read(CONTACTS, [m.record["id"] for m in pending], READ_PROPERTIES,
                                    id_property=CT_ID_PROPERTY)
        hits = {str(r["properties"].get(CT_ID_PROPERTY)): r for r in result.results}
        for m in pending:
            hit = hits.get(m.record["id"])
            if hit:
                m.hs_id, m.via, m.hs_ct_id = str(hit["id"]), CT_ID_PROPERTY, m.record["id"]
                m.hs_members = _members(hit)
                found[m.record["id"]] = m.hs_id

    pending = [m for m in open_() if emails[m.record["id"]]]
    if pending:
        wanted = sorted({emails[m.record["id"]] or "" for m in pending})
        result = hubspot.batch_read(CONTACTS, wanted, READ_PROPERTIES, id_property="email")
        hits = {normalize_email(r["properties"].get("email")) or "": r for r in result.results}
        for m in pending:
            hit = hits.get(emails[m.record["id"]] or "")
            if hit:
                m.hs_id, m.via = str(hit["id"]), "email"
                m.hs_ct_id = hit["properties"].get(CT_ID_PROPERTY) or None
                m.hs_members = _members(hit)
                found[m.record["id"]] = m.hs_id
                found_emails[emails[m.record["id"]] or ""] = m.hs_id

    for ct_field, hs_property in external_ids.items():
        pending = [m for m in open_() if m.record.get(ct_field)]
        if not pending:
            continue
        values = sorted({str(m.record[ct_field]) for m in pending})
        result = hubspot.batch_read(CONTACTS, values, [*READ_PROPERTIES, hs_property], id_property=hs_property)
        hits = {str(r["properties"].get(hs_property)): r for r in result.results}
        for m in pending:
            hit = hits.get(str(m.record[ct_field]))
            if hit:
                m.hs_id, m.via = str(hit["id"]), hs_property
                m.hs_ct_id = hit["properties"].get(CT_ID_PROPERTY) or None
                m.hs_members = _members(hit)
                found[m.record["id"]] = m.hs_id

    # Existing HubSpot records are facts: remember them now, so the next chunk needs no read.
    state.save_ids(CONTACTS, found)
    state.save_emails(found_emails)


def _members(hit: dict[str, Any]) -> list[str]:
    raw = hit["properties"].get(MEMBERS_PROPERTY) or ""
    return [i for i in str(raw).split(";") if i]

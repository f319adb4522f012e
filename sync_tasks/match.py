"""The match step: resolve each commercetools customer to a HubSpot contact id, or to a create.

Order of lookup: the Redis id map (commercetools id, then our e-mail index), then a batch read by
the unique property `ct_customer_id`, then one by e-mail (trimmed, lower-cased), then the optional
external-id properties. The Search API never decides whether a record exists: it lags and is capped.

The HubSpot reads are skipped for a record Redis has never heard of, the first time the match sees
it (a backfill into a new portal: two reads per chunk that cannot find anything). That is safe
because a create is a batch upsert on the unique `ct_customer_id`: a contact already holding the
key is updated, never duplicated, and an e-mail owned by another contact (a form's, or another
account's) is refused with a 409 that sends the records back through match and map (`resync`).
The second time, the record is read as before. Records are always read when:
* they were sent on unread before (within a day), or an upsert of their e-mail never confirmed
  (a create intent is pending: a crash between HubSpot's write and Redis, or a 409);
* an external-id property is configured and the record has a value for it (another system's
  contact carries no key of ours and need not share the e-mail);
* the `[contact]` mapping has properties that are not commercetools-owned: an upsert landing on an
  existing contact (Redis lost its id map) would overwrite them, where an update honours ownership;
* the state is not the sync's own (`ctsync plan` reads through a read-only one: no marker is kept,
  and the dry run must show what HubSpot holds).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sync_tasks.constants import Keys
from sync_tasks.hubspot_client import BatchResult
from sync_tasks.mapping import load_mapping, normalize_email
from sync_tasks.mapping_file import MappingFile
from sync_tasks.state import SyncState

CONTACTS = "contacts"
CT_ID_PROPERTY = "ct_customer_id"
MEMBERS_PROPERTY = "ct_customer_ids"
READ_PROPERTIES = ["email", CT_ID_PROPERTY, MEMBERS_PROPERTY]
DAY_SECONDS = 86_400
TRIED_TTL_SECONDS = 2 * DAY_SECONDS  # a marker lives through the next day's bucket


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
        # Shallow on purpose: dataclasses.asdict deep-copies the whole record, and this is hot (so the
        # fields are spelt out too; test_match checks they are all here).
        return {"record": self.record, "hs_id": self.hs_id, "via": self.via, "hs_ct_id": self.hs_ct_id,
                "hs_members": self.hs_members}


def match_customers(records: list[dict[str, Any]], state: SyncState, hubspot: Reader,
                    external_ids: dict[str, str] | None = None, mapping: MappingFile | None = None,
                    now: float | None = None, unread_first: bool = True) -> list[Match]:
    """`unread_first`: skip the reads as the module docstring says. The dry run (`ctsync plan`) turns
    it off: it keeps no marker and must show what HubSpot holds."""
    matches = [Match(record=r) for r in records]

    def open_() -> list[Match]:
        return [m for m in matches if m.hs_id is None]

    known = state.lookup_ids(CONTACTS, [m.record["id"] for m in matches])
    for m in matches:
        if m.record["id"] in known:
            m.hs_id, m.via = known[m.record["id"]], "idmap"

    # Only the records the id map left open need their e-mail (after a backfill: none of them).
    emails = {m.record["id"]: normalize_email(m.record.get("email")) for m in open_()}
    by_email = state.lookup_emails(sorted({e for m in open_() if (e := emails[m.record["id"]])}))
    for m in open_():
        email = emails[m.record["id"]]
        if email and email in by_email:
            m.hs_id, m.via = by_email[email], "email-index"

    to_read = _worth_reading(open_(), emails, state, external_ids or {}, mapping, now) if unread_first else open_()
    if not to_read:
        return matches
    # Budget for every read this chunk may need, taken at once: a refusal half-way would repeat reads.
    reads = 2 + sum(1 for f in (external_ids or {}) if any(m.record.get(f) for m in to_read))
    with hubspot.prepaid(reads):
        _read_hubspot(to_read, emails, state, hubspot, external_ids or {})
    return matches


def _worth_reading(pending: list[Match], emails: dict[str, str | None], state: SyncState,
                   external_ids: dict[str, str], mapping: MappingFile | None, now: float | None) -> list[Match]:
    """The unmatched records HubSpot's reads could resolve (module docstring); marks the others
    as sent on unread, so their next pass reads."""
    if not pending:
        return []
    section = (mapping or load_mapping()).contact
    if any(section.owner_of(name) != "commercetools" for name in section.properties):
        return pending
    must = {id(m) for m in pending if any(m.record.get(f) for f in external_ids)}
    keys = {m.record["id"]: emails[m.record["id"]] or f"ct:{m.record['id']}" for m in pending}
    intents = state.create_intents(CONTACTS, sorted(set(keys.values())))
    must |= {id(m) for m in pending if keys[m.record["id"]] in intents}
    fresh = [m for m in pending if id(m) not in must]
    if fresh:
        day = int((time.time() if now is None else now) // DAY_SECONDS)
        today, yesterday = Keys.match_tried(CONTACTS, day), Keys.match_tried(CONTACTS, day - 1)
        pipe = state.r.pipeline(transaction=False)
        for m in fresh:
            pipe.hsetnx(today, m.record["id"], 1)
        pipe.expire(today, TRIED_TTL_SECONDS)
        pipe.hmget(yesterday, [m.record["id"] for m in fresh])
        *first, _, before = pipe.execute()
        # HSETNX answers 0 when the record was marked today already; yesterday's bucket counts too.
        must |= {id(m) for m, new, old in zip(fresh, first, before, strict=True) if not new or old}
    return [m for m in pending if id(m) in must]


def _read_hubspot(matches: list[Match], emails: dict[str, str | None], state: SyncState, hubspot: Reader,
                  external_ids: dict[str, str]) -> None:
    """Batch reads for `matches` (all unmatched): by `ct_customer_id`, by e-mail, by external ids."""
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

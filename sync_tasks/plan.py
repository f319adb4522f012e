"""`ctsync plan customers`: the field-level diff the next sync would apply, computed by the sync's own
match and map steps against live commercetools and HubSpot data — and nothing written anywhere
(HubSpot, commercetools or the sync's Redis state).

Per record: create, update or unchanged, and old → new per property, where "new" is what the sync
would send and "old" is HubSpot's current value. Properties the sync would send unchanged (equal to
HubSpot's value) are not listed. Consent: the subscription statuses the sync would set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sync_tasks import consent
from sync_tasks.changes import Filters, plan_contacts
from sync_tasks.commercetools_client import CommercetoolsClient, query_in
from sync_tasks.constants import BATCH_LIMIT
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.mapping_file import MappingFile
from sync_tasks.match import CONTACTS, match_customers
from sync_tasks.pagination import KeysetPaginator
from sync_tasks.settings import Settings
from sync_tasks.state import SyncState


class ReadOnlyState(SyncState):
    """The sync's state for reading; every write is dropped (a plan changes nothing)."""

    def save_ids(self, hs_object: str, mapping: Mapping[str, str]) -> None:
        pass

    def save_emails(self, mapping: Mapping[str, str]) -> None:
        pass

    def set_members(self, groups: Mapping[str, Iterable[str]]) -> None:
        pass

    def save_fingerprints(self, entity: str, fps: Mapping[str, str]) -> None:
        pass

    def save_written(self, hs_object: str, hs_id: str, properties: Mapping[str, str]) -> None:
        pass

    def count(self, run_id: str | None, **deltas: int) -> None:
        pass


@dataclass
class RecordDiff:
    action: str  # create | update | unchanged
    record_ids: list[str]
    hs_id: str | None = None
    changes: dict[str, dict[str, str]] = field(default_factory=dict)  # property -> {old, new}


@dataclass
class PlanReport:
    records: list[RecordDiff] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    no_email: list[str] = field(default_factory=list)
    filtered: list[str] = field(default_factory=list)
    consent: list[dict[str, Any]] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "unchanged": 0}
        for r in self.records:
            out[r.action] += len(r.record_ids)
        out.update(properties=sum(len(r.changes) for r in self.records), rejected=len(self.rejected),
                   no_email=len(self.no_email), filtered=len(self.filtered),
                   consent_writes=sum(1 for c in self.consent if c["new"]))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"totals": self.totals, "records": [asdict(r) for r in self.records], "rejected": self.rejected,
                "no_email": self.no_email, "filtered": self.filtered, "consent": self.consent}


def read_customers(ct: CommercetoolsClient, ids: list[str] | None = None, limit: int | None = None,
                   store: str | None = None) -> list[dict[str, Any]]:
    """Customers by id, or the first `limit` in (lastModifiedAt, id) order (all when no limit)."""
    if ids:
        return query_in(ct, "customers", "id", ids, expand=["customerGroup"])
    filters = [f'stores(key="{store}")'] if store else []
    records: list[dict[str, Any]] = []
    for page in KeysetPaginator(ct, "customers", filters=filters, page_size=min(500, limit or 500),
                                expand=["customerGroup"]):
        records += page
        if limit is not None and len(records) >= limit:
            return records[:limit]
    return records


def _current(hubspot: HubSpotClient, hs_ids: list[str], props: set[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(hs_ids), BATCH_LIMIT):
        result = hubspot.batch_read(CONTACTS, hs_ids[i:i + BATCH_LIMIT], sorted(props))
        out.update({str(r["id"]): {k: v or "" for k, v in (r.get("properties") or {}).items()}
                    for r in result.results})
    return out


def diff(properties: dict[str, str], old: dict[str, str]) -> dict[str, dict[str, str]]:
    return {k: {"old": old.get(k) or "", "new": v or ""} for k, v in sorted(properties.items())
            if (old.get(k) or "") != (v or "")}


def plan_customers(records: list[dict[str, Any]], ct: CommercetoolsClient, hubspot: HubSpotClient,
                   state: SyncState, settings: Settings, mapping: MappingFile, force: bool = False,
                   with_consent: bool = True) -> PlanReport:
    """What the sync would do to these customers, chunk by chunk as the pipeline does."""
    ro = ReadOnlyState(state.r)
    report = PlanReport()
    filters = Filters.from_settings(settings)

    def fetch(ids: list[str]) -> list[dict[str, Any]]:
        return read_customers(ct, ids=ids)

    for i in range(0, len(records), settings.chunk_size):
        chunk = records[i:i + settings.chunk_size]
        matches = match_customers(chunk, ro, hubspot, settings.external_id_properties, unread_first=False)
        plan = plan_contacts(matches, ro, settings.shared_fields_rule, force=force, fetch=fetch, mapping=mapping,
                             filters=filters)
        entries = plan.creates + plan.updates
        hs_ids = sorted({e["hs_id"] for e in plan.updates})
        current = _current(hubspot, hs_ids, {p for e in plan.updates for p in e["properties"]})
        planned: set[str] = set()
        for entry in entries:
            planned.update(entry["record_ids"])
            hs_id = entry.get("hs_id")
            changes = diff(entry["properties"], current.get(hs_id, {}) if hs_id else {})
            action = "create" if hs_id is None else ("update" if changes else "unchanged")
            report.records.append(RecordDiff(action, entry["record_ids"], hs_id, changes))
        report.no_email += plan.no_email
        report.filtered += plan.filtered
        report.rejected += plan.rejected
        left = [r["id"] for r in chunk if r["id"] not in planned and r["id"] not in plan.no_email
                and r["id"] not in plan.filtered]
        if left:
            report.records.append(RecordDiff("unchanged", left))
        if with_consent:
            report.consent += consent_preview(plan.consent, hubspot, mapping)
    return report


def consent_preview(entries: list[dict[str, Any]], hubspot: HubSpotClient, mapping: MappingFile
                    ) -> list[dict[str, Any]]:
    """The subscription statuses the sync would set (reads one status list per person)."""
    out = []
    for entry in entries:
        current = consent.current_statuses(hubspot, entry["email"])
        for decision in consent.decide(entry, current, mapping.consent):
            sub = decision.subscription.subscription_id
            out.append({"record_id": entry["record_id"], "subscription": sub,
                        "old": str((current.get(sub) or {}).get("status") or consent.NOT_SPECIFIED),
                        "new": decision.state or "", "reason": decision.reason})
    return out

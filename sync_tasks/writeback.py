"""Write-back: HubSpot-owned properties with `write_back = true`, edited in HubSpot (a phone corrected
by sales, consent changed by marketing), written to the commercetools customers as update actions.

A beat task polls the Search API for contacts by `lastmodifieddate`:
- Search lags writes, so each poll starts `WRITEBACK_SEARCH_LAG` seconds before where the last one
  ended; contacts seen twice cost nothing (a value already in commercetools is not written again).
- Search stops at 10,000 results per query: before paging reaches it, the query starts again from
  the last `lastmodifieddate` seen (keyset restart) instead of paging on.
- Search has its own 5/s budget (the limiter's SEARCH bucket); a poll reads at most
  `WRITEBACK_MAX_PAGES` pages and the next poll continues from there.

No echo either way. HubSpot → commercetools: a value equal to what the sync last wrote to HubSpot
(`SyncState.written`) is the sync's own write, never an edit. commercetools → HubSpot: the version
each write-back produced is kept (`ctsync:writeback:versions`); the next delta that sees a customer
at exactly that version recognises its own write and sends nothing (changes.py). Updates carry the
version read; a 409 ConcurrentModification re-reads the customer and rebuilds the actions on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sync_tasks import rejected
from sync_tasks.commercetools_client import Queryable, query_in
from sync_tasks.constants import Keys
from sync_tasks.errors import ErrorDetail, PermanentError
from sync_tasks.limiter import Bucket
from sync_tasks.mapping import evaluate
from sync_tasks.mapping_file import MappingFile, PropertySpec
from sync_tasks.match import CONTACTS, CT_ID_PROPERTY, MEMBERS_PROPERTY
from sync_tasks.ownership import WriteBackError, same, writeback_actions
from sync_tasks.state import SyncState
from sync_tasks.transforms import Rejected

log = logging.getLogger(__name__)

MODIFIED = "lastmodifieddate"
PAGE_SIZE = 100
SEARCH_CAP = 10_000  # HubSpot returns no result past this offset of one query
LOCK_SECONDS = 300


class Searcher(Protocol):
    def post(self, path: str, body: Any, bucket: Bucket = Bucket.BURST) -> Any: ...


class Commerce(Queryable, Protocol):
    def update(self, resource: str, resource_id: str, version: int, actions: list[dict[str, Any]],
               max_conflicts: int = 3, rebuild: Any = None) -> dict[str, Any]: ...


@dataclass
class PollResult:
    pages: int = 0
    contacts: int = 0
    written_back: int = 0  # customers updated
    unchanged: int = 0  # HubSpot changes commercetools already held
    rejected: int = 0
    complete: bool = True
    locked: bool = False
    watermark: int = 0


def writeback_properties(mapping: MappingFile) -> dict[str, PropertySpec]:
    return {name: spec for name, spec in mapping.contact.properties.items() if spec.write_back}


def own_versions(r: Any, ct_ids: list[str]) -> dict[str, str]:
    """commercetools id → the version our last write-back produced (for the echo guard)."""
    if not ct_ids:
        return {}
    values = r.hmget(Keys.writeback_versions(), ct_ids)
    return {i: str(v) for i, v in zip(ct_ids, values, strict=True) if v}


def _now_ms(r: Any) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def search_page(hubspot: Searcher, since_ms: int, after: int, properties: list[str]) -> dict[str, Any]:
    body = {"filterGroups": [{"filters": [{"propertyName": MODIFIED, "operator": "GTE", "value": str(since_ms)}]}],
            "sorts": [{"propertyName": MODIFIED, "direction": "ASCENDING"}],
            "properties": properties, "limit": PAGE_SIZE, "after": str(after)}
    return dict(hubspot.post(f"/crm/v3/objects/{CONTACTS}/search", body, bucket=Bucket.SEARCH) or {})


def poll(hubspot: Searcher, ct: Commerce, state: SyncState, mapping: MappingFile, task: str,
         lag_seconds: float, max_pages: int) -> PollResult:
    """One write-back pass over the contacts modified since the watermark."""
    props = writeback_properties(mapping)
    out = PollResult()
    if not props:
        return out
    r = state.r
    if not r.set(Keys.writeback_lock(), "1", nx=True, ex=LOCK_SECONDS):
        out.locked = True
        return out
    try:
        started = _now_ms(r)
        stored = r.get(Keys.writeback_watermark())
        since = int(stored) if stored else started - int(lag_seconds * 1000)
        names = sorted({*props, CT_ID_PROPERTY, MEMBERS_PROPERTY, MODIFIED})
        after, last_ts = 0, since
        while True:
            if out.pages >= max_pages:
                out.complete = False
                break
            page = search_page(hubspot, since, after, names)
            out.pages += 1
            results = list(page.get("results") or [])
            out.contacts += len(results)
            _apply_page(results, props, ct, state, mapping, task, out)
            stamps = [ms for res in results if (ms := _ms((res.get("properties") or {}).get(MODIFIED)))]
            last_ts = max([last_ts, *stamps])
            nxt = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not nxt:
                break
            after = int(nxt)
            if after + PAGE_SIZE > SEARCH_CAP:
                # Keyset restart: the same query from the last timestamp seen, before the cap refuses.
                if last_ts <= since:
                    log.error("write-back: over %d contacts share lastmodifieddate %d; moving past it",
                              SEARCH_CAP, since)
                    last_ts = since + 1
                since, after = last_ts, 0
        # Complete: start the next poll a search lag before this one began (edits not yet indexed);
        # cut short: continue from the last timestamp read.
        out.watermark = started - int(lag_seconds * 1000) if out.complete else last_ts
        r.set(Keys.writeback_watermark(), out.watermark)
        return out
    finally:
        r.delete(Keys.writeback_lock())


def _ms(value: Any) -> int | None:
    from sync_tasks.ownership import parse_instant

    parsed = parse_instant(value)
    return int(parsed.timestamp() * 1000) if parsed else None


def _members(props: dict[str, Any]) -> list[str]:
    ids = [i for i in str(props.get(MEMBERS_PROPERTY) or "").split(";") if i]
    own = str(props.get(CT_ID_PROPERTY) or "")
    return ids or ([own] if own else [])


def _apply_page(results: list[dict[str, Any]], props: dict[str, PropertySpec], ct: Commerce, state: SyncState,
                mapping: MappingFile, task: str, out: PollResult) -> None:
    written = state.written(CONTACTS, [str(res["id"]) for res in results])
    # Contact → its HubSpot edits: values other than the sync's own last write (or last write-back).
    edits: dict[str, dict[str, str]] = {}
    members: dict[str, list[str]] = {}
    for res in results:
        hs_id, values = str(res["id"]), res.get("properties") or {}
        ids = _members(values)
        if not ids:
            continue  # not a contact the sync made or matched
        changed = {name: str(values.get(name) or "") for name in props
                   if not same(values.get(name), written.get(hs_id, {}).get(name))}
        if changed:
            edits[hs_id], members[hs_id] = changed, ids
    if not edits:
        return
    customers = _fetch(ct, sorted({i for ids in members.values() for i in ids}))
    for hs_id, changed in edits.items():
        for ct_id in members[hs_id]:
            customer = customers.get(ct_id)
            if customer is not None:  # else deleted in commercetools meanwhile
                _write_back(ct, state, mapping, props, customer, changed, hs_id, task, out)
        # Handled (written, already there, or rejected and logged): not an edit any more. A transient
        # error raised above instead, and the poll is retried from the same watermark.
        state.save_written(CONTACTS, hs_id, changed)


def _fetch(ct: Commerce, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {str(c["id"]): c for c in query_in(ct, "customers", "id", ids)}


def _actions(mapping: MappingFile, props: dict[str, PropertySpec], customer: dict[str, Any],
             changed: dict[str, str]) -> list[dict[str, Any]]:
    """Actions for the HubSpot values `customer` does not hold yet (none: it holds them all)."""
    actions: list[dict[str, Any]] = []
    for name, value in sorted(changed.items()):
        spec = props[name]
        try:
            current, _ = evaluate(spec, customer, mapping.context)
        except Rejected:
            current = None
        if not same(current, value):
            actions += writeback_actions(spec, value, customer)
    return actions


def _write_back(ct: Commerce, state: SyncState, mapping: MappingFile, props: dict[str, PropertySpec],
                customer: dict[str, Any], changed: dict[str, str], hs_id: str, task: str, out: PollResult) -> None:
    """Write one customer; a rejection is logged (rejected-update log); transient errors propagate."""
    ct_id = str(customer["id"])
    payload: dict[str, Any] = {"hs_id": hs_id, "id": ct_id, "version": customer.get("version"),
                               "properties": changed}
    try:
        actions = _actions(mapping, props, customer, changed)
        if not actions:
            out.unchanged += 1
            return
        payload["actions"] = actions
        updated = ct.update("customers", ct_id, int(customer["version"]), actions,
                            rebuild=lambda current: _actions(mapping, props, current, changed))
    except WriteBackError as exc:
        detail = ErrorDetail(status=0, category="WRITE_BACK_UNSUPPORTED", message=str(exc))
        rejected.record(state.r, "ctsync", task, [ct_id], payload, detail)
        out.rejected += 1
        return
    except PermanentError as exc:
        detail = exc.detail or ErrorDetail(status=0, message=str(exc))
        rejected.record(state.r, "commercetools", task, [ct_id], payload, detail)
        out.rejected += 1
        return
    state.r.hset(Keys.writeback_versions(), ct_id, str(updated["version"]))
    out.written_back += 1
    log.info("write-back: contact %s → customer %s version %s (%s)", hs_id, ct_id, updated.get("version"),
             ", ".join(sorted(changed)))

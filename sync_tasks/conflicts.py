"""HubSpot edits met by the sync: reading HubSpot's current values before an update, and the conflict
log (a Redis stream) of every edit the sync overwrote or kept, with both values and the rule applied.

One batch read per chunk, only for the contacts an update touches and only for the properties a
policy needs (`ownership.needs_read`), with their property history (when and by what each was set). A conflict
is recorded once per contact, property and pair of values, not again on every later sync.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from sync_tasks.constants import Keys
from sync_tasks.errors import json_dumps
from sync_tasks.mapping_file import ObjectSection
from sync_tasks.ownership import Conflict, HubSpotValue, needs_read

log = logging.getLogger(__name__)

CONTACTS = "contacts"
BATCH_LIMIT = 100  # a chunk holds ≤100 records, so ≤100 contacts
DAY_MS = 24 * 3600 * 1000


class Poster(Protocol):
    def post(self, path: str, body: Any) -> Any: ...


def read_hubspot(reader: Poster, hs_ids: Sequence[str], properties: Sequence[str],
                 with_history: Sequence[str]) -> dict[str, dict[str, HubSpotValue]]:
    """Contact id → property → its current HubSpot value (and, for `with_history`, when it was set
    and by what). Contacts HubSpot no longer has are absent. One call for ≤100 ids."""
    if not hs_ids or not properties:
        return {}
    body: dict[str, Any] = {"inputs": [{"id": i} for i in hs_ids], "properties": sorted(set(properties))}
    if with_history:
        body["propertiesWithHistory"] = sorted(set(with_history))
    answer = reader.post(f"/crm/v3/objects/{CONTACTS}/batch/read", body) or {}
    out: dict[str, dict[str, HubSpotValue]] = {}
    for result in answer.get("results") or []:
        values = result.get("properties") or {}
        history = result.get("propertiesWithHistory") or {}
        view: dict[str, HubSpotValue] = {}
        for name in properties:
            entries = [e for e in history.get(name) or [] if isinstance(e, dict)]
            latest = max(entries, key=lambda e: str(e.get("timestamp") or ""), default=None)
            view[name] = HubSpotValue(str(values.get(name) or ""),
                                      str(latest["timestamp"]) if latest else None,
                                      str(latest.get("sourceType")) if latest else None)
        out[str(result["id"])] = view
    return out


def _trim_id(r: Any, retention_days: float) -> str:
    """The stream id below which entries are older than the retention (by Redis' clock)."""
    seconds, micros = r.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return str(max(0, now_ms - int(retention_days * DAY_MS)))


def record(r: Any, hs_id: str, record_ids: list[str], conflict: Conflict, retention_days: float,
           task: str = "") -> str | None:
    """Add one conflict to the log, unless this same disagreement was already recorded."""
    digest = hashlib.blake2b(json_dumps([conflict.hubspot_value, conflict.commercetools_value,
                                         conflict.outcome]).encode(), digest_size=8).hexdigest()
    seen_key = f"{hs_id}|{conflict.prop}"
    if r.hget(Keys.conflict_seen(), seen_key) == digest:
        return None
    entry = {
        "at": f"{time.time():.3f}", "hs_id": hs_id, "record_ids": json_dumps(record_ids), "task": task,
        "property": conflict.prop, "hubspot_value": conflict.hubspot_value,
        "commercetools_value": conflict.commercetools_value, "last_written": conflict.last_written or "",
        "rule": conflict.rule, "outcome": conflict.outcome,
        "hubspot_modified_at": conflict.hubspot_modified_at or "",
        "commercetools_modified_at": conflict.commercetools_modified_at or "",
        "hubspot_source": conflict.hubspot_source or "",
    }
    entry_id = str(r.xadd(Keys.conflicts(), entry, minid=_trim_id(r, retention_days), approximate=False))
    r.hset(Keys.conflict_seen(), seen_key, digest)
    # Ids and the rule only: the values may be PII (`ctsync conflicts list --show-pii` shows them).
    log.info("conflict on contact %s (records %s): %s %s by rule %s", hs_id, record_ids, conflict.prop,
             conflict.outcome, conflict.rule)
    return entry_id


def entries(r: Any, since: float | None = None, count: int | None = None) -> list[dict[str, Any]]:
    """Conflicts, oldest first, from `since` (epoch seconds) on."""
    start = f"{int(since * 1000)}-0" if since else "-"
    out = []
    for entry_id, fields in r.xrange(Keys.conflicts(), min=start, count=count):
        item: dict[str, Any] = {"id": entry_id, **fields}
        item["record_ids"] = _json_list(fields.get("record_ids"))
        out.append(item)
    return out


def _json_list(raw: Any) -> list[str]:
    import json

    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def hubspot_view(reader: Poster | None, section: ObjectSection, hs_ids: list[str],
                 always: bool) -> dict[str, dict[str, HubSpotValue]] | None:
    """HubSpot's values of the properties the policies need, for contacts about to be updated; None
    when nothing needs reading (no reader, no such property, no update)."""
    wanted = needs_read(section, always)
    if reader is None or not wanted or not hs_ids:
        return None
    # History for each (same call): most_recent needs its time, and every conflict records when and by
    # what (CRM_UI, WORKFLOW, …) HubSpot's value was set.
    return read_hubspot(reader, hs_ids[:BATCH_LIMIT], wanted, wanted)


def record_all(r: Any, hs_id: str, record_ids: list[str], found: list[Conflict], task: str = "") -> None:
    if not found:
        return
    from sync_tasks.settings import get_settings

    days = get_settings().conflicts_retention_days
    for conflict in found:
        record(r, hs_id, record_ids, conflict, days, task)

"""The rejected-update log: every write HubSpot or commercetools refused (a validation error, a
conflict, a missing property, …), with the request payload, the error response (status, category,
message, correlationId, body), the record ids, the task and the time.

It is a Redis stream (`ctsync:rejected`) trimmed by age (`REJECTED_RETENTION_DAYS`) on every add. It
is distinct from the DLQ: a rejection is logged here whether or not the work is also dead-lettered.
Payloads hold PII (e-mails, names, phones): they are stored, but logs never print them and the CLI
shows them only with `--show-pii` (`redact`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from sync_tasks.constants import Keys
from sync_tasks.errors import ErrorDetail, json_dumps

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
REDACTED = "<redacted>"
# Values under these keys are ids, codes or structure, never personal data.
SAFE_KEYS = frozenset({
    "id", "hs_id", "key", "record_ids", "ct_customer_id", "ct_customer_ids", "hs_object_id", "action",
    "addressId", "version", "object", "objectWriteTraceId", "idProperty", "status", "category",
    "subCategory", "correlationId", "policyName", "task", "api", "entity", "at", "property", "rule",
    "outcome", "hubspot_modified_at", "commercetools_modified_at", "hubspot_source", "code", "resource",
    "ct_company_key", "ct_order_id", "ct_cart_id", "ct_line_item_id", "currentVersion", "propertyName",
    "correlation_id", "last_failure",
})
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_DIGITS = re.compile(r"\+?\d[\d ()/-]{6,}\d")


def _retention_days() -> float:
    from sync_tasks.settings import get_settings

    return float(get_settings().rejected_retention_days)


def trim_id(r: Any, retention_days: float) -> str:
    """Stream ids below this are older than the retention, by Redis' clock."""
    seconds, micros = r.time()
    return str(max(0, int(seconds) * 1000 + int(micros) // 1000 - int(retention_days * DAY_MS)))


def record(r: Any, api: str, task: str, record_ids: list[str], payload: Any, detail: ErrorDetail,
           entity: str = "customers", retention_days: float | None = None) -> str:
    """Log one rejected write; returns its stream id. Older entries than the retention go."""
    days = retention_days if retention_days is not None else _retention_days()
    error = detail.as_record()
    entry = {
        "at": f"{time.time():.3f}", "api": api, "task": task, "entity": entity,
        "record_ids": json_dumps(record_ids), "payload": json_dumps(payload),
        "status": str(detail.status), "category": detail.category, "message": detail.message,
        "correlation_id": detail.correlation_id, "error": json_dumps(error),
    }
    entry_id = str(r.xadd(Keys.rejected(), entry, minid=trim_id(r, days), approximate=False))
    # Ids, category and correlation id only: the message and payload may quote the values.
    log.warning("%s rejected a write of %s %s (task %s): %s %s, correlationId %s; `ctsync rejected show %s`",
                api, entity, record_ids, task, detail.status, detail.category, detail.correlation_id, entry_id)
    return entry_id


def trim(r: Any, retention_days: float | None = None) -> int:
    """Drop entries older than the retention now (also done on every add); returns how many."""
    days = retention_days if retention_days is not None else _retention_days()
    return int(r.xtrim(Keys.rejected(), minid=trim_id(r, days), approximate=False))


def _decode(entry_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry_id, **fields}
    for name in ("record_ids", "payload", "error"):
        try:
            out[name] = json.loads(fields.get(name) or "null")
        except ValueError:
            out[name] = fields.get(name)
    out["status"] = int(fields.get("status") or 0)
    return out


def entries(r: Any, since: float | None = None, count: int | None = None) -> list[dict[str, Any]]:
    """Rejections, oldest first, from `since` (epoch seconds) on."""
    start = f"{int(since * 1000)}-0" if since else "-"
    return [_decode(i, f) for i, f in r.xrange(Keys.rejected(), min=start, count=count)]


def get(r: Any, entry_id: str) -> dict[str, Any] | None:
    found = r.xrange(Keys.rejected(), min=entry_id, max=entry_id)
    return _decode(*found[0]) if found else None


def export(r: Any, since: float | None = None, page: int = 500) -> Iterator[dict[str, Any]]:
    """Every entry from `since` on, read in pages (the stream may be long)."""
    start = f"{int(since * 1000)}-0" if since else "-"
    while True:
        batch = r.xrange(Keys.rejected(), min=start, count=page)
        for entry_id, fields in batch:
            yield _decode(entry_id, fields)
        if len(batch) < page:
            return
        start = "(" + batch[-1][0]


def redact_text(text: str) -> str:
    return _DIGITS.sub(REDACTED, _EMAIL.sub(REDACTED, text))


def redact(value: Any, key: str | None = None) -> Any:
    """A copy with personal values masked: strings under keys other than SAFE_KEYS, and e-mails and
    phone-like numbers inside messages."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key in SAFE_KEYS:
            return value
        if key in ("message", "error_message"):
            return redact_text(value)
        return REDACTED if value else value
    return value

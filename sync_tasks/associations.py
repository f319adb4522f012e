"""An association batch and HubSpot's answer to it: the pairs made, and the pairs refused with why.

HubSpot answers a batch holding some bad inputs (an object deleted in HubSpot since we wrote it)
with a 207 and per-input errors, or refuses the whole batch with a 400; which one the v4 association
endpoints do is not documented (the sandbox answers a 207 when some inputs are good, a 400 when
none is). Both come out the same here: a refused batch is halved until each bad pair is alone, so
the good pairs of the batch are made and only the bad ones are refused (about 2·log2(n) more calls
per bad pair, for an event that should be rare). The callers record what was refused in the
rejected log and the DLQ (`record_refused`); nothing is marked made that HubSpot did not make.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks import rejected
from sync_tasks.errors import ErrorDetail, PermanentError
from sync_tasks.hubspot_client import BatchResult
from sync_tasks.state import SyncState

log = logging.getLogger(__name__)

Pair = tuple[str, str]
Send = Callable[[list[Pair]], BatchResult]


@dataclass
class Associated:
    made: list[Pair] = field(default_factory=list)
    refused: dict[Pair, ErrorDetail] = field(default_factory=dict)


def associate_pairs(send: Send, pairs: list[Pair]) -> Associated:
    """Send `pairs` (one batch's worth) through `send`; RetryableError propagates to the caller."""
    out = Associated()
    _send(send, sorted(set(pairs)), out)
    return out


def _send(send: Send, pairs: list[Pair], out: Associated) -> None:
    if not pairs:
        return
    try:
        result = send(pairs)
    except PermanentError as exc:
        if len(pairs) > 1:
            half = len(pairs) // 2
            _send(send, pairs[:half], out)
            _send(send, pairs[half:], out)
            return
        out.refused[pairs[0]] = exc.detail or ErrorDetail(status=400, category="VALIDATION_ERROR", message=str(exc))
        return
    if not result.errors:
        out.made += pairs
        return
    confirmed = {_pair_of(r) for r in result.results}
    detail = ErrorDetail(status=result.status, category=str(result.errors[0].get("category") or ""),
                         message="; ".join(str(e.get("message") or "") for e in result.errors)[:2000])
    for pair in pairs:
        if pair in confirmed:
            out.made.append(pair)
        else:
            out.refused[pair] = detail


def _pair_of(result: dict[str, Any]) -> Pair:
    """A result's pair: `{from: {id}, to: {id}}` (associate/default) or `{fromObjectId, toObjectId}`
    (batch/create)."""
    if "from" in result:
        return str((result.get("from") or {}).get("id")), str((result.get("to") or {}).get("id"))
    return str(result.get("fromObjectId")), str(result.get("toObjectId"))


def record_refused(state: SyncState, task: str, what: str, record_ids: list[str], payload: Any,
                   detail: ErrorDetail, entity: str = "customers") -> None:
    """A refused association (`what`, for the log) in the rejected log and the DLQ, under the
    commercetools records whose replay sends it again."""
    log.warning("hubspot refused associating %s (records %s): %s %s", what, record_ids, detail.category,
                rejected.redact_text(detail.message[:200]))
    state.dead_letter(task, record_ids, payload, detail.as_record(), attempts=1, entity=entity)
    rejected.record(state.r, "hubspot", task, record_ids, payload, detail, entity=entity)

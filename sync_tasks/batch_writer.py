"""Writes one HubSpot batch so that only the bad inputs fail.

Every input carries an objectWriteTraceId. When HubSpot answers 207, per-input errors are read by
trace id. When it rejects the whole batch for one bad input (it does so when trace ids are not
honoured), the batch is split in halves until the bad input stands alone. Whether HubSpot gives
per-input 207s on upsert and update is unverified, so both paths are handled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks.errors import (
    Action,
    ConflictError,
    ErrorDetail,
    PermanentError,
    RetryableError,
    action_for_category,
)
from sync_tasks.hubspot_client import BatchResult

Input = dict[str, Any]
Call = Callable[[list[Input]], BatchResult]


@dataclass
class Outcome:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # trace id -> HubSpot result
    conflicts: dict[str, str] = field(default_factory=dict)  # trace id -> existing HubSpot id
    failed: dict[str, ErrorDetail] = field(default_factory=dict)  # trace id -> error (permanent)
    retry: list[str] = field(default_factory=list)  # trace ids to try again later
    retry_error: RetryableError | None = None
    calls: int = 0


def write(call: Call, inputs: list[Input], result_trace: Callable[[dict[str, Any]], str | None],
          outcome: Outcome | None = None) -> Outcome:
    """Send `inputs` through `call`; sort every input into results, conflicts, failed or retry.

    `result_trace` maps a result back to its input's trace id when the result carries none.
    """
    out = outcome or Outcome()
    if not inputs:
        return out
    traces = [i["objectWriteTraceId"] for i in inputs]
    try:
        out.calls += 1
        res = call(inputs)
    except RetryableError as exc:
        out.retry.extend(traces)
        out.retry_error = exc
        return out
    except (ConflictError, PermanentError) as exc:
        if len(inputs) > 1:
            mid = len(inputs) // 2
            write(call, inputs[:mid], result_trace, out)
            write(call, inputs[mid:], result_trace, out)
            return out
        detail = exc.detail or ErrorDetail(status=0, message=str(exc))
        existing = exc.existing_id if isinstance(exc, ConflictError) else None
        if existing:
            out.conflicts[traces[0]] = existing
        else:
            out.failed[traces[0]] = detail
        return out

    seen: set[str] = set()
    for result in res.results:
        # The echoed trace id when HubSpot sends one; else the caller's mapping (an upsert that
        # updated an existing record echoes only the properties it was sent).
        trace = result.get("objectWriteTraceId") or result_trace(result)
        if trace is not None and trace in traces:
            out.results[trace] = result
            seen.add(trace)
    unattributed: list[Input] = []
    for err in res.errors:
        err_traces = [t for t in (err.get("context") or {}).get("objectWriteTraceId", []) if t in traces]
        detail = ErrorDetail(status=res.status, category=str(err.get("category", "")),
                             message=str(err.get("message", "")), body=err)
        if not err_traces:
            continue
        action = action_for_category(detail.category)
        for trace in err_traces:
            seen.add(trace)
            if action is Action.CONFLICT:
                existing = ConflictError("", detail).existing_id
                if existing:
                    out.conflicts[trace] = existing
                else:
                    out.failed[trace] = detail
            elif action in (Action.RETRY, Action.RATE_LIMITED):
                out.retry.append(trace)
            else:
                out.failed[trace] = detail
    unattributed = [i for i in inputs if i["objectWriteTraceId"] not in seen]
    if unattributed:
        if res.errors and len(unattributed) < len(inputs):
            # Errors we could not tie to an input: split what is left to find them.
            if len(unattributed) > 1:
                mid = len(unattributed) // 2
                write(call, unattributed[:mid], result_trace, out)
                write(call, unattributed[mid:], result_trace, out)
            else:
                write(call, unattributed, result_trace, out)
        else:
            # COMPLETE with missing results is a silent failure: never count it as written.
            out.retry.extend(i["objectWriteTraceId"] for i in unattributed)
            out.retry_error = RetryableError("hubspot: batch answered without results for some inputs")
    return out

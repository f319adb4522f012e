"""Structured logs: one JSON line per event.

Every line inside a task carries the task's id, name and entity (set by `workers.bootstrap` when the
task starts); log calls add `record_ids` and `correlation_id` as extras. E-mail addresses are masked
in every line unless LOG_PII is set: the sync logs ids, and this catches the ones that slip through
(an error message quoting a value, say).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
MASK = "<email>"

# The running task's identity, for every line it logs: {"task_id", "task", "entity"}.
task_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("ctsync_task", default=None)


def mask_emails(value: Any) -> Any:
    """`value` with every e-mail address replaced, walking into lists and dicts."""
    if isinstance(value, str):
        return EMAIL_RE.sub(MASK, value)
    if isinstance(value, dict):
        return {k: mask_emails(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_emails(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, pii: bool = False) -> None:
        super().__init__()
        self.pii = pii

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update(task_context.get() or {})
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        text = json.dumps(event, default=str)
        return text if self.pii else EMAIL_RE.sub(MASK, text)


def configure(json_lines: bool = True, level: int = logging.INFO, pii: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(pii) if json_lines
                         else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

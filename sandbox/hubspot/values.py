"""Property value validation and normalisation (everything HubSpot stores is a string), plus the
timestamp helpers the rest of the sandbox uses."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_STRING = 65_536
EMAIL_RE = re.compile(r"^[^@\s;]+@[^@\s;]+\.[^@\s;]+$")
EMAIL_PROPS = frozenset({"email", "hs_additional_emails"})


def as_int(raw: Any, name: str) -> int:
    """An integer request parameter, or a ValueError the caller turns into a 400."""
    try:
        return int(str(raw))
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_datetime_ms(raw: str) -> int | None:
    """ISO 8601 (with Z or an offset; a bare date counts as midnight UTC) or epoch ms, else None."""
    text = raw.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


class ValueIssue(Exception):
    """One invalid property value: becomes an `errors[]` entry of a 400 VALIDATION_ERROR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def issue_detail(name: str, code: str, message: str) -> dict[str, Any]:
    return {"message": message, "code": code, "context": {"propertyName": [name]}}


def _as_text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def normalize(prop: dict[str, Any], raw: Any, current: str | None) -> str:
    """The stored string for `raw` written to `prop`, or ValueIssue. "" (or null) clears."""
    name = prop["name"]
    text = _as_text(raw)
    if len(text) > MAX_STRING:
        raise ValueIssue("INVALID_LONG_STRING",
                         f"{name} value is {len(text)} characters long; the maximum is {MAX_STRING}")
    if text == "":
        return ""
    kind = prop["type"]
    if name in EMAIL_PROPS:
        return _emails(name, text)
    if kind == "number":
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise ValueIssue("INVALID_INTEGER", f"{text!r} was not a valid number.")
        return text.strip()
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueIssue("INVALID_BOOLEAN", f"{text!r} was not a valid boolean.")
        return lowered
    if kind == "enumeration":
        return _enumeration(prop, text, current)
    if kind == "date":
        return _date(text)
    if kind == "datetime":
        ms = parse_datetime_ms(text)
        if ms is None:
            raise ValueIssue("INVALID_DATETIME", f"{text!r} is not a valid datetime (ISO 8601 or epoch ms).")
        return iso(ms)
    return text


def _emails(name: str, text: str) -> str:
    parts = [p.strip().lower() for p in text.split(";") if p.strip()] if name != "email" else [text.strip().lower()]
    for part in parts:
        if not EMAIL_RE.match(part):
            raise ValueIssue("INVALID_EMAIL", f"Email address {part} is invalid")
    return ";".join(dict.fromkeys(parts))


def _enumeration(prop: dict[str, Any], text: str, current: str | None) -> str:
    allowed = {o["value"] for o in prop.get("options", [])}
    multi = prop["fieldType"] == "checkbox"
    if prop["fieldType"] == "booleancheckbox":
        text = text.lower() if text.lower() in ("true", "false") else text
    append = multi and text.startswith(";")
    parts = [p for p in text.split(";") if p != ""] if multi else [text]
    for part in parts:
        if part not in allowed:
            raise ValueIssue("INVALID_OPTION",
                             f"{part} was not one of the allowed options: {sorted(allowed)}")
    if append and current:
        parts = [*current.split(";"), *parts]
    return ";".join(dict.fromkeys(parts))


def _date(text: str) -> str:
    stripped = text.strip()
    if re.fullmatch(r"-?\d+", stripped):
        ms = int(stripped)
        if ms % 86_400_000 != 0:
            raise ValueIssue("INVALID_DATE", f"{text} is not at midnight UTC; date values must be.")
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
    try:
        return date.fromisoformat(stripped).isoformat()
    except ValueError:
        raise ValueIssue("INVALID_DATE", f"{text!r} is not a valid date (YYYY-MM-DD or epoch ms at "
                                         "midnight UTC).") from None


def comparable(prop: dict[str, Any] | None, value: str) -> Any:
    """A sort/compare key for search: numbers and dates numerically, strings case-insensitively."""
    kind = prop["type"] if prop else "string"
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value.lower()
    if kind in ("datetime", "date"):
        ms = parse_datetime_ms(value)
        return ms if ms is not None else value
    return value.lower()

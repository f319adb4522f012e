"""The mapping file's transforms: small pure functions from a commercetools value to the string HubSpot
stores. None means "no value" (the property is cleared); `Rejected` means the value is invalid and is
left out of the write, with the reason recorded.

Every function takes odd input without raising: missing fields, wrong types, unicode, oversize
strings, zero-decimal currencies, high-precision money and unknown locales (see tests/sync_tasks/
test_transforms.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_STRING = 65_536
EMAIL_RE = re.compile(r"^[^@\s;]+@[^@\s;]+\.[^@\s;]+$")
_PATH_PART = re.compile(r"^([^\[\]]+)(\[\*\])?$")
_CANONICAL_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class Rejected(Exception):
    """A value that cannot be written: the property is left out and the reason recorded."""


# -- paths --------------------------------------------------------------------------------------
def compile_path(path: str) -> tuple[tuple[str, bool], ...] | None:
    """`a.b[*].c` → ((a, False), (b, True), (c, False)); None when a part is malformed."""
    parts: list[tuple[str, bool]] = []
    for part in path.split("."):
        m = _PATH_PART.match(part)
        if not m:
            return None
        parts.append((m.group(1), bool(m.group(2))))
    return tuple(parts)


_COMPILED_PATHS: dict[str, tuple[tuple[str, bool], ...] | None] = {}


def get_path(resource: Any, path: str) -> Any:
    """`a.b.c` into nested dicts; `stores[*].key` collects over a list. Missing → None."""
    try:
        parts = _COMPILED_PATHS[path]
    except KeyError:
        parts = _COMPILED_PATHS[path] = compile_path(path)
    return walk(resource, parts)


def walk(resource: Any, parts: tuple[tuple[str, bool], ...] | None) -> Any:
    """`get_path` with the path already compiled (the mapping evaluates the same paths per record)."""
    if parts is None:
        return None
    value = resource
    for i, (key, star) in enumerate(parts):
        if star:
            return _walk_many(value, parts[i:])
        # Plain dict look-ups until the first `[*]`: the common case, without building lists.
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return [] if any(s for _, s in parts) else None  # a `[*]` path always gives a list
    return value


def _walk_many(resource: Any, parts: tuple[tuple[str, bool], ...]) -> list[Any]:
    values: list[Any] = [resource]
    for key, star in parts:
        nxt: list[Any] = []
        for value in values:
            child = value.get(key) if isinstance(value, dict) else None
            if star:
                nxt.extend(child if isinstance(child, list) else [])
            elif child is not None:
                nxt.append(child)
        values = nxt
    return values


def text(value: Any) -> str | None:
    """Any scalar as trimmed text; None for None, containers and empty strings."""
    if value.__class__ is str:  # the common case first: this runs for most properties of every record
        return value.strip() or None
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    out = str(value).strip()
    return out or None


# -- addresses ----------------------------------------------------------------------------------
ADDRESS_PARTS = ("street", "city", "zip", "state", "country", "phone", "first_name", "last_name", "name",
                 "email", "company")


def default_address(resource: dict[str, Any], kind: str = "shipping") -> dict[str, Any]:
    """A customer's default shipping (or billing) address, else the other default, else the first.
    Orders and carts carry `shippingAddress` / `billingAddress` directly."""
    direct = resource.get(f"{kind}Address")
    if isinstance(direct, dict):
        return direct
    addresses = [a for a in resource.get("addresses") or [] if isinstance(a, dict)]
    other = "billing" if kind == "shipping" else "shipping"
    for wanted in (resource.get(f"default{kind.title()}AddressId"), resource.get(f"default{other.title()}AddressId")):
        for address in addresses:
            if wanted and address.get("id") == wanted:
                return address
    return addresses[0] if addresses else {}


def _street(address: dict[str, Any]) -> str | None:
    line = " ".join(t for t in (text(address.get("streetName")), text(address.get("streetNumber"))) if t)
    extra = text(address.get("additionalStreetInfo"))
    return ", ".join(t for t in (line, extra) if t) or None


def _field(key: str) -> Callable[[dict[str, Any]], str | None]:
    def get(address: dict[str, Any]) -> str | None:
        value = address.get(key)
        return (value.strip() or None) if value.__class__ is str else text(value)
    return get


_ADDRESS_GETTERS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "street": _street,
    "name": lambda a: concat([a.get("firstName"), a.get("lastName")], " "),
    "state": lambda a: text(a.get("state")) or text(a.get("region")),
    "phone": lambda a: text(a.get("phone")) or text(a.get("mobile")),
    **{part: _field(key) for part, key in (("zip", "postalCode"), ("first_name", "firstName"),
                                           ("last_name", "lastName"), ("city", "city"), ("country", "country"),
                                           ("email", "email"), ("company", "company"))},
}


def address_getter(part: str) -> Callable[[dict[str, Any]], str | None]:
    """`address_part` for one part, dispatched once (the mapping reads the same parts per record)."""
    return _ADDRESS_GETTERS.get(part) or _field(part)


def address_part(address: dict[str, Any], part: str) -> str | None:
    return address_getter(part)(address)


# -- customer group, locale, stores ---------------------------------------------------------------
def customer_group(resource: dict[str, Any], use: str = "key") -> str | None:
    """The group's key or name; needs `expand=customerGroup` for either (the id is the fallback)."""
    group = resource.get("customerGroup")
    if not isinstance(group, dict):
        return None
    raw = group.get("obj")
    obj: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if use == "name":
        name = obj.get("name")
        return localized(name, None) if isinstance(name, dict) else text(name) or text(obj.get("key"))
    return text(obj.get("key")) or text(group.get("key")) or text(group.get("id"))


def language(locale: Any, options: Iterable[str]) -> str | None:
    """A commercetools locale (`de-DE`, `zh-CN`, `en`) → one of HubSpot's hs_language options: the
    whole tag lower-cased when it is an option, else its language. Unknown → Rejected."""
    tag = text(locale)
    if tag is None:
        return None
    allowed = options if isinstance(options, frozenset | set) else set(options)
    full = tag.replace("_", "-").lower()
    for candidate in (full, full.split("-")[0]):
        if candidate in allowed:
            return candidate
    raise Rejected(f"locale {tag!r} matches no hs_language option")


def localized(value: Any, locale: str | None, fallbacks: Iterable[str] = ("en",)) -> str | None:
    """A LocalizedString picked by locale, then its language, then the fallbacks, then the first
    language in sorted order (stable). A plain string passes through."""
    if not isinstance(value, dict):
        return text(value)
    present = {str(k): v for k, v in value.items() if text(v)}
    if not present:
        return None
    lower = {k.lower(): k for k in present}
    wanted: list[str] = []
    if locale:
        wanted += [locale, locale.split("-")[0]]
    for fallback in fallbacks:
        wanted += [fallback, fallback.split("-")[0]]
    for key in wanted:
        hit = lower.get(key.lower())
        if hit is not None:
            return text(present[hit])
    # a language whose region variant is present (`en` wanted, `en-GB` there)
    for key in wanted:
        for k in sorted(present):
            if k.lower().split("-")[0] == key.lower().split("-")[0]:
                return text(present[k])
    return text(present[sorted(present)[0]])


def multi(values: Any, options: Iterable[str] | None = None) -> tuple[str | None, list[str]]:
    """A list into HubSpot's `;`-separated multi-value form, sorted and de-duplicated. Values not
    among `options` (when given) are returned separately so the caller can record them."""
    items = values if isinstance(values, list) else [values]
    clean = sorted({t for v in items if (t := text(v)) and ";" not in t})
    if options is None:
        return (";".join(clean) or None), []
    allowed = set(options)
    return (";".join(v for v in clean if v in allowed) or None), [v for v in clean if v not in allowed]


# -- custom field types -------------------------------------------------------------------------
def enum_key(value: Any) -> str | None:
    """An Enum / LocalizedEnum custom field (`{key, label}`) or a bare key → the key."""
    if isinstance(value, dict):
        return text(value.get("key"))
    return text(value)


def boolean(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return None
    lowered = str(value).strip().lower()
    if lowered in ("true", "yes", "1"):
        return "true"
    if lowered in ("false", "no", "0"):
        return "false"
    raise Rejected(f"{str(value)[:40]!r} is not a boolean")


def _parse_instant(value: Any) -> dt.datetime | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(f"{raw[:40]!r} is not an ISO date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def date(value: Any) -> str | None:
    """A Date or DateTime → `YYYY-MM-DD` (HubSpot date properties hold midnight UTC)."""
    parsed = _parse_instant(value)
    return parsed.astimezone(dt.UTC).date().isoformat() if parsed else None


def datetime(value: Any) -> str | None:
    """A DateTime → ISO 8601 UTC with milliseconds."""
    if value.__class__ is str and _CANONICAL_INSTANT.fullmatch(value):
        # Already in the output form (commercetools' own timestamps): validate, no reformatting.
        _parse_instant(value)
        return value
    parsed = _parse_instant(value)
    if parsed is None:
        return None
    utc = parsed.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def money_amount(value: Any) -> Decimal | None:
    """commercetools Money → exact decimal: centAmount / 10**fractionDigits, or preciseAmount for
    highPrecision money. Never a float."""
    if not isinstance(value, dict) or (value.get("centAmount") is None and value.get("preciseAmount") is None):
        return None
    try:
        digits = int(value.get("fractionDigits", 2))
        if value.get("type") == "highPrecision" and value.get("preciseAmount") is not None:
            return Decimal(int(value["preciseAmount"])).scaleb(-digits)
        return Decimal(int(value["centAmount"])).scaleb(-digits)
    except (TypeError, ValueError, InvalidOperation):
        raise Rejected("money without a whole centAmount/preciseAmount and fractionDigits") from None


def decimal_text(value: Decimal | None) -> str | None:
    """Plain decimal notation (HubSpot number properties take no exponent); trailing zeros kept
    only as far as the currency's digits need them."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value, "f")


def money(value: Any) -> str | None:
    return decimal_text(money_amount(value))


def money_currency(value: Any) -> str | None:
    return text(value.get("currencyCode")) if isinstance(value, dict) else None


def number(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise Rejected(f"{str(value)[:40]!r} is not a number") from None
    if not parsed.is_finite():
        raise Rejected(f"{value!r} is not a finite number")
    return format(parsed, "f")


def concat(values: Iterable[Any], separator: str = " ") -> str | None:
    parts = [t for v in values if (t := text(v))]
    return separator.join(parts) or None


def email(value: Any) -> str | None:
    """Trimmed and lower-cased; Rejected when it is not an e-mail address."""
    raw = text(value)
    if raw is None:
        return None
    lowered = raw.lower()
    if not EMAIL_RE.match(lowered):
        raise Rejected("not a valid email address")
    return lowered


def clip(value: str, limit: int = MAX_STRING) -> tuple[str, bool]:
    """HubSpot keeps at most 65,536 characters per string value."""
    return (value[:limit], True) if len(value) > limit else (value, False)

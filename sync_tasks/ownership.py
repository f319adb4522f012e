"""Ownership policies: per property, whose value wins when HubSpot and commercetools disagree.

The mapping file gives each property an owner (`commercetools`, `hubspot` or `shared`, defaulting to
the section's `default_owner`) and shared ones a policy (`commercetools_wins`, `hubspot_wins`,
`most_recent`, `fill_if_empty`). A HubSpot value that differs from the one the sync last wrote is a
HubSpot edit (a person or a workflow); `settle` decides, per property, what an update sends and which
edits it overwrote or kept. It is pure: reading HubSpot and recording conflicts live in conflicts.py.

Write-back targets (HubSpot-owned properties written to commercetools) are derived here from the
property's source: a custom field, a settable top-level field or a part of the default address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync_tasks.mapping_file import ObjectSection, PropertySpec

# Top-level Customer fields with a plain set action (customerNumber can be set once only; the e-mail
# keys the contact): field -> (action, value key).
TOP_LEVEL_ACTIONS: dict[str, str] = {
    "firstName": "setFirstName", "lastName": "setLastName", "middleName": "setMiddleName",
    "title": "setTitle", "salutation": "setSalutation", "companyName": "setCompanyName",
    "vatId": "setVatId", "dateOfBirth": "setDateOfBirth", "externalId": "setExternalId", "locale": "setLocale",
}
# Address parts written through changeAddress: part -> Address field.
ADDRESS_FIELDS: dict[str, str] = {
    "city": "city", "zip": "postalCode", "state": "state", "country": "country", "phone": "phone",
    "first_name": "firstName", "last_name": "lastName", "email": "email", "company": "company",
}
CUSTOM_PREFIX = "custom.fields."
CUSTOM_TRANSFORMS = ("path", "boolean", "date", "datetime", "number", "enum")
TOP_LEVEL_TRANSFORMS = ("path", "date", "language")

OVERWRITTEN = "overwritten"
KEPT = "kept"


class WriteBackError(Exception):
    """A HubSpot value cannot become a commercetools update action; the message names the field."""


# -- write-back targets -----------------------------------------------------------------------------
def writeback_problem(spec: PropertySpec) -> str | None:
    """Why `spec` cannot be written back to commercetools, or None when it can."""
    source = spec.source or ""
    if spec.transform == "address":
        if spec.part not in ADDRESS_FIELDS:
            return f"address part {spec.part!r} cannot be written back (one of {', '.join(ADDRESS_FIELDS)})"
        return None
    if source.startswith(CUSTOM_PREFIX) and "." not in source[len(CUSTOM_PREFIX):]:
        if spec.transform not in CUSTOM_TRANSFORMS:
            return f"transform {spec.transform!r} cannot be written back (one of {', '.join(CUSTOM_TRANSFORMS)})"
        return None
    if source in TOP_LEVEL_ACTIONS:
        if spec.transform not in TOP_LEVEL_TRANSFORMS:
            return f"transform {spec.transform!r} cannot be written back to {source}"
        return None
    return (f"source {source or '(none)'!r} has no commercetools update action (custom.fields.<name>, "
            f"{', '.join(TOP_LEVEL_ACTIONS)} or an address part)")


def _custom_value(spec: PropertySpec, value: str) -> Any:
    if spec.transform == "boolean":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise WriteBackError(f"{value[:40]!r} is not a boolean")
        return lowered == "true"
    if spec.transform == "number":
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise WriteBackError(f"{value[:40]!r} is not a number") from None
        return int(number) if number == number.to_integral_value() else float(number)
    if spec.transform == "datetime":
        parsed = parse_instant(value)
        if parsed is None:
            raise WriteBackError(f"{value[:40]!r} is not a datetime")
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"
    return value


def writeback_actions(spec: PropertySpec, value: str, customer: dict[str, Any]) -> list[dict[str, Any]]:
    """The update actions that make `customer` hold HubSpot's `value` for this property. Built from
    the customer as just read, so a re-read after a 409 rebuilds them on the current state."""
    source = spec.source or ""
    empty = not value.strip()
    if spec.transform == "address":
        from sync_tasks.transforms import default_address

        address = default_address(customer, spec.address)
        if not address.get("id"):
            raise WriteBackError(f"customer {customer.get('id')} has no {spec.address} address for {spec.part}")
        changed = {k: v for k, v in address.items() if k != "id"}
        key = ADDRESS_FIELDS[spec.part or ""]
        if empty:
            changed.pop(key, None)
            if key == "phone":
                changed.pop("mobile", None)  # the mapping reads phone, else mobile: clear both
        else:
            changed[key] = value
        return [{"action": "changeAddress", "addressId": address["id"], "address": changed}]
    if source.startswith(CUSTOM_PREFIX):
        name = source[len(CUSTOM_PREFIX):]
        # Sent even without a custom type on the customer: commercetools' refusal is the authority,
        # and it lands in the rejected-update log with its response.
        action: dict[str, Any] = {"action": "setCustomField", "name": name}
        if not empty:
            action["value"] = _custom_value(spec, value)
        return [action]
    name = TOP_LEVEL_ACTIONS[source]
    return [{"action": name, source: None if empty else value}]


# -- comparing values -------------------------------------------------------------------------------
def parse_instant(value: Any) -> dt.datetime | None:
    """ISO 8601 or epoch milliseconds (HubSpot sends both) → aware UTC datetime."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _norm(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return text.lower() if text.lower() in ("true", "false") else text


def same(a: Any, b: Any) -> bool:
    """Equal as HubSpot stores them: '' and missing alike, numbers by value, instants by time."""
    x, y = _norm(a), _norm(b)
    if x == y:
        return True
    if not x or not y:
        return False
    try:
        return Decimal(x) == Decimal(y)
    except InvalidOperation:
        pass
    if x[4:5] == "-" or y[4:5] == "-":  # an ISO instant against another, or against epoch ms
        px, py = parse_instant(x), parse_instant(y)
        return px is not None and px == py
    return False


# -- deciding -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubSpotValue:
    """A contact property as HubSpot holds it now; `modified_at` from its property history."""

    value: str
    modified_at: str | None = None
    source_type: str | None = None


@dataclass
class Conflict:
    prop: str
    hubspot_value: str
    commercetools_value: str
    last_written: str | None
    rule: str  # owner, or shared:<policy>
    outcome: str  # overwritten | kept
    hubspot_modified_at: str | None = None
    commercetools_modified_at: str | None = None
    hubspot_source: str | None = None


@dataclass
class Settled:
    send: dict[str, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def needs_read(section: ObjectSection, always: bool) -> list[str]:
    """The properties whose HubSpot value an update must see first: shared ones (their policy needs
    it) and, with `always`, commercetools-owned ones too (to record overwritten edits)."""
    return sorted(name for name in section.properties
                  if section.owner_of(name) == "shared" or (always and section.owner_of(name) == "commercetools"))


def _newer(ct_modified: str | None, hs_modified: str | None) -> bool:
    """commercetools changed after HubSpot's edit? Unknown HubSpot time: commercetools wins."""
    ct, hs = parse_instant(ct_modified), parse_instant(hs_modified)
    if hs is None:
        return True
    return ct is not None and ct > hs


def settle(section: ObjectSection, props: dict[str, str], written: dict[str, str],
           hubspot: dict[str, HubSpotValue] | None, ct_modified: str | None, force: bool = False,
           create: bool = False) -> Settled:
    """What an update of one contact sends, given the mapped commercetools values `props`, what the
    sync last wrote (`written`) and, when read, HubSpot's current values.

    HubSpot-owned properties go only into creates. Without HubSpot's value a property is sent when it
    differs from what was last written (or always, with `force`). With it, a HubSpot value other than
    the last written one is a HubSpot edit, and the owner / policy decides."""
    out = Settled()
    if create:
        out.send = dict(props)  # every property, HubSpot-owned ones as their initial value
        return out
    owners, hubspot_owned = _owners(section)
    if not hubspot:
        # Nothing read from HubSpot (the common case): no policy to apply, no conflict to find.
        if force:
            out.send = {name: new for name, new in props.items() if name not in hubspot_owned} if hubspot_owned \
                else dict(props)
        else:
            out.send = {name: new for name, new in props.items()
                        if name not in hubspot_owned and not same(new, written.get(name))}
        return out
    for name, new in props.items():
        owner = owners.get(name, "commercetools")
        if owner == "hubspot":
            continue
        last = written.get(name)
        seen = hubspot.get(name)
        if seen is None:
            if force or not same(new, last):
                out.send[name] = new
            continue
        rule = f"shared:{section.policy_of(name)}" if owner == "shared" else owner
        decision = _decide(rule, new, last, seen, ct_modified)
        if decision == "send":
            out.send[name] = new
        edited = not same(seen.value, last or "")
        if edited and not same(seen.value, new):
            out.conflicts.append(Conflict(
                name, seen.value, new, last, rule, OVERWRITTEN if decision == "send" else KEPT,
                seen.modified_at, ct_modified, seen.source_type))
    return out


# Each section's owner per property and its HubSpot-owned properties, computed once (sections are
# immutable; the section is kept beside its entry so an id is never reused while the entry lives).
_OWNERS: dict[int, tuple[ObjectSection, tuple[dict[str, str], frozenset[str]]]] = {}


def _owners(section: ObjectSection) -> tuple[dict[str, str], frozenset[str]]:
    hit = _OWNERS.get(id(section))
    if hit is not None and hit[0] is section:
        return hit[1]
    if len(_OWNERS) > 256:
        _OWNERS.clear()
    owners: dict[str, str] = {name: section.owner_of(name) for name in section.properties}
    entry = owners, frozenset(name for name, owner in owners.items() if owner == "hubspot")
    _OWNERS[id(section)] = (section, entry)
    return entry


def _decide(rule: str, new: str, last: str | None, seen: HubSpotValue, ct_modified: str | None) -> str:
    """'send' or 'keep' for one property whose HubSpot value is known."""
    hs = seen.value
    if same(hs, new):
        return "keep"  # HubSpot already shows it
    edited = not same(hs, last or "")
    if rule in ("commercetools", "shared:commercetools_wins"):
        return "send"
    if rule == "shared:fill_if_empty":
        return "send" if not hs.strip() else "keep"
    if not edited:
        return "send"  # HubSpot still holds our last write: the commercetools change goes through
    if rule == "shared:hubspot_wins":
        return "keep"
    # most_recent: only HubSpot changed this value since our last write → HubSpot's is the newer one;
    # both changed → the later of the customer's lastModifiedAt and the property's HubSpot timestamp.
    if same(new, last):
        return "keep"
    return "send" if _newer(ct_modified, seen.modified_at) else "keep"

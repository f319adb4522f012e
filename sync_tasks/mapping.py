"""Turns commercetools customers into HubSpot contact and company properties.

The basic fields live here; the configurable mapping file builds on these transforms. Values are
strings, as HubSpot stores them. Values beyond HubSpot's limits are truncated (with a warning naming
the record); invalid values are left out and reported, and the rest of the record still syncs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_STRING = 65_536
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: Any) -> str | None:
    """Trimmed and lower-cased; None when it is not an email."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if EMAIL_RE.match(email) else None


def company_key(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    key = " ".join(name.split()).lower()
    return key[:200] or None


@dataclass
class Mapped:
    """One record's HubSpot properties, with what was truncated or left out."""

    properties: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # property -> reason


def _default_address(customer: dict[str, Any]) -> dict[str, Any]:
    addresses = customer.get("addresses") or []
    wanted = customer.get("defaultShippingAddressId") or customer.get("defaultBillingAddressId")
    for address in addresses:
        if wanted and address.get("id") == wanted:
            return dict(address)
    return dict(addresses[0]) if addresses else {}


def _street(address: dict[str, Any]) -> str:
    parts = [address.get("streetName"), address.get("streetNumber")]
    line = " ".join(str(p).strip() for p in parts if p)
    extra = address.get("additionalStreetInfo")
    return f"{line}, {extra}".strip(", ") if extra else line


def map_customer(customer: dict[str, Any]) -> Mapped:
    """commercetools Customer → HubSpot contact properties (all strings; '' clears a value)."""
    address = _default_address(customer)
    stores = customer.get("stores") or []
    group = customer.get("customerGroup") or {}
    group_obj = group.get("obj") or {}
    raw = {
        "firstname": customer.get("firstName"),
        "lastname": customer.get("lastName"),
        "phone": address.get("phone") or address.get("mobile"),
        "address": _street(address),
        "city": address.get("city"),
        "zip": address.get("postalCode"),
        "state": address.get("state") or address.get("region"),
        "country": address.get("country"),
        "company": customer.get("companyName"),
        "ct_customer_number": customer.get("customerNumber"),
        "ct_external_id": customer.get("externalId"),
        "ct_locale": customer.get("locale"),
        "ct_stores": ";".join(sorted(str(s.get("key")) for s in stores if s.get("key"))),
        "ct_customer_group": group_obj.get("key") or group.get("key") or group.get("id"),
        "ct_last_modified_at": customer.get("lastModifiedAt"),
    }
    mapped = Mapped(properties={})
    email = normalize_email(customer.get("email"))
    if email:
        mapped.properties["email"] = email
    elif customer.get("email"):
        mapped.rejected["email"] = "not a valid email address"
    for name, value in raw.items():
        text = "" if value is None else str(value).strip()
        if len(text) > MAX_STRING:
            mapped.warnings.append(f"customer {customer.get('id')}: {name} truncated from "
                                   f"{len(text)} to {MAX_STRING} characters")
            text = text[:MAX_STRING]
        mapped.properties[name] = text
    for warning in mapped.warnings:
        log.warning(warning)
    return mapped


def map_company(customer: dict[str, Any]) -> dict[str, str] | None:
    key = company_key(customer.get("companyName"))
    if not key:
        return None
    name = str(customer["companyName"]).strip()[:MAX_STRING]
    return {"name": name, "ct_company_key": key}


def fingerprint(properties: dict[str, str]) -> str:
    raw = json.dumps(properties, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def changed(new: dict[str, str], old: dict[str, str]) -> dict[str, str]:
    """Properties whose value differs from what the sync last wrote ('' and missing are equal)."""
    return {k: v for k, v in new.items() if (old.get(k) or "") != (v or "")}

"""Turns commercetools resources into HubSpot properties, as the mapping file declares.

`map_object(section, resource, context)` applies one section of the mapping file (contact, company,
order, cart, line item) to one resource; `map_customer` / `map_company` are the customer sync's
uses of it. Values are strings, as HubSpot stores them ('' clears a value). Values beyond HubSpot's
limits are truncated, with a warning naming the record; invalid values are left out and recorded in
`Mapped.rejected`, and the rest of the record still syncs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_tasks import transforms as tf
from sync_tasks.mapping_file import (
    DEFAULT_MAPPING,
    ContextSpec,
    MappingFile,
    ObjectSection,
    PropertySpec,
    read_mapping,
)
from sync_tasks.settings import Settings

log = logging.getLogger(__name__)

MAX_STRING = tf.MAX_STRING
EMAIL_RE = tf.EMAIL_RE
HS_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "ja", "zh-cn")


def normalize_email(value: Any) -> str | None:
    """Trimmed and lower-cased; None when it is not an email."""
    try:
        return tf.email(value)
    except tf.Rejected:
        return None


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


# -- the mapping in use ---------------------------------------------------------------------------
_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], MappingFile]] = {}


def mapping_path(settings: Settings | None = None) -> Path:
    path = getattr(settings, "mapping_file", None) if settings is not None else None
    return Path(path) if path else DEFAULT_MAPPING


def load_mapping(settings: Settings | None = None) -> MappingFile:
    """The mapping file `MAPPING_FILE` names (else the default), validated; re-read when the file
    changes, so a worker picks up an edited mapping without a restart."""
    if settings is None:
        from sync_tasks.settings import get_settings

        settings = get_settings()
    path = mapping_path(settings)
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    key = str(path.resolve())
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
    mapping = read_mapping(path)
    with _lock:
        _cache[key] = (stamp, mapping)
    return mapping


# -- evaluation ----------------------------------------------------------------------------------
def _store_key(resource: dict[str, Any]) -> str | None:
    store = resource.get("store")
    if isinstance(store, dict) and tf.text(store.get("key")):
        return tf.text(store.get("key"))
    keys = sorted(k for s in resource.get("stores") or [] if isinstance(s, dict) and (k := tf.text(s.get("key"))))
    return keys[0] if keys else None


def store_context(resource: dict[str, Any], part: str, context: ContextSpec) -> str | None:
    """Store key, currency, distribution channel or locale of a customer, order or cart."""
    store = _store_key(resource)
    if part == "store":
        return store
    if part == "locale":
        return tf.text(resource.get("locale"))
    spec = context.stores.get(store or "")
    if part == "currency":
        own = tf.money_currency(resource.get("totalPrice"))
        return own or (spec.currency if spec else None)
    channel = resource.get("distributionChannel")
    if isinstance(channel, dict):
        raw = channel.get("obj")
        obj: dict[str, Any] = raw if isinstance(raw, dict) else {}
        found = tf.text(obj.get("key")) or tf.text(channel.get("key"))
        if found:
            return found
    return spec.channel if spec else None


def evaluate(spec: PropertySpec, resource: dict[str, Any], context: ContextSpec) -> tuple[str | None, str | None]:
    """(value, partial-rejection note). Raises tf.Rejected when the whole value is invalid."""
    t = spec.transform
    raw = tf.get_path(resource, spec.source) if spec.source else None
    locale = tf.text(resource.get("locale"))
    if t == "path":
        if isinstance(raw, list):
            return tf.multi(raw)[0], None
        return (tf.localized(raw, locale, context.fallback_locales) if isinstance(raw, dict) else tf.text(raw)), None
    if t == "address":
        return tf.address_part(tf.default_address(resource, spec.address), spec.part or ""), None
    if t == "customer_group":
        return tf.customer_group(resource, spec.part or "key"), None
    if t == "language":
        return tf.language(raw, spec.options or HS_LANGUAGES), None
    if t == "localized":
        return tf.localized(raw, locale, context.fallback_locales), None
    if t == "multi":
        value, unknown = tf.multi(raw, spec.options)
        return value, (f"values {unknown} are not among the property's options" if unknown else None)
    if t == "enum":
        return tf.enum_key(raw), None
    if t == "boolean":
        return tf.boolean(raw), None
    if t == "date":
        return tf.date(raw), None
    if t == "datetime":
        return tf.datetime(raw), None
    if t == "money":
        return tf.money(raw), None
    if t == "money_currency":
        return tf.money_currency(raw), None
    if t == "number":
        return tf.number(raw), None
    if t == "constant":
        return spec.value, None
    if t == "concat":
        return tf.concat([tf.get_path(resource, s) for s in spec.sources or []], spec.separator), None
    if t == "email":
        return tf.email(raw), None
    if t == "company_key":
        return company_key(raw), None
    return store_context(resource, spec.part or "", context), None


def _check_type(spec: PropertySpec, value: str) -> str:
    """What HubSpot would refuse, refused here: the rest of the record still goes through."""
    kind = spec.hs_type
    if kind == "number":
        return tf.number(value) or ""
    if kind == "bool":
        return tf.boolean(value) or ""
    if kind == "date":
        return tf.date(value) or ""
    if kind == "datetime":
        return tf.datetime(value) or ""
    if kind == "enumeration" and spec.options and spec.transform != "multi" and value not in spec.options:
        raise tf.Rejected(f"{value[:60]!r} is not one of the options {spec.options}")
    return value


def map_object(section: ObjectSection, resource: dict[str, Any], context: ContextSpec | None = None,
               kind: str = "record") -> Mapped:
    """Apply one section of the mapping file to one commercetools resource."""
    context = context or ContextSpec()
    record = f"{kind} {resource.get('id')}"
    mapped = Mapped(properties={})
    for name, spec in section.properties.items():
        try:
            value, note = evaluate(spec, resource, context)
            if value is not None:
                value = _check_type(spec, value)
        except tf.Rejected as exc:
            mapped.rejected[name] = str(exc)
            continue
        if note:
            mapped.rejected[name] = note
        if value is None and spec.transform == "email":
            continue  # never clear an e-mail: it is the contact's key
        text = value or ""
        text, cut = tf.clip(text)
        if cut:
            mapped.warnings.append(f"{record}: {name} truncated to {MAX_STRING} characters")
        mapped.properties[name] = text
    for warning in mapped.warnings:
        log.warning(warning)
    return mapped


def map_customer(customer: dict[str, Any], mapping: MappingFile | None = None) -> Mapped:
    """commercetools Customer → HubSpot contact properties (the `[contact]` section); the e-mail is
    validated here and written by the sync itself (it keys the contact)."""
    mapping = mapping or load_mapping()
    mapped = map_object(mapping.contact, customer, mapping.context, "customer")
    email = normalize_email(customer.get("email"))
    if email:
        mapped.properties["email"] = email
    elif customer.get("email"):
        mapped.rejected["email"] = "not a valid email address"
    return mapped


def map_company(customer: dict[str, Any], mapping: MappingFile | None = None) -> dict[str, str] | None:
    """The `[company]` section for a customer; None when it yields no company key."""
    mapping = mapping or load_mapping()
    section = mapping.company
    props = map_object(section, customer, mapping.context, "customer").properties
    if not props.get(section.id_property):
        return None
    return props


def fingerprint(properties: dict[str, str]) -> str:
    raw = json.dumps(properties, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def changed(new: dict[str, str], old: dict[str, str]) -> dict[str, str]:
    """Properties whose value differs from what the sync last wrote ('' and missing are equal)."""
    return {k: v for k, v in new.items() if (old.get(k) or "") != (v or "")}

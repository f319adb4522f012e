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
from collections.abc import Callable
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
    return _store_part(resource, part, context, _store_key(resource) if part != "locale" else None)


def _store_part(resource: dict[str, Any], part: str, context: ContextSpec, store: str | None) -> str | None:
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


class _Resource:
    """One resource under evaluation, with what several properties need computed once."""

    __slots__ = ("_addresses", "_has_store", "_store", "context", "data", "locale")

    def __init__(self, data: dict[str, Any], context: ContextSpec) -> None:
        self.data = data
        self.context = context
        self.locale = tf.text(data.get("locale"))
        self._store: str | None = None
        self._has_store = False
        self._addresses: dict[str, dict[str, Any]] = {}

    def address(self, kind: str) -> dict[str, Any]:
        """The default address of `kind`, looked up once for all its parts."""
        found = self._addresses.get(kind)
        if found is None:
            found = self._addresses[kind] = tf.default_address(self.data, kind)
        return found

    @property
    def store(self) -> str | None:
        if not self._has_store:
            self._store, self._has_store = _store_key(self.data), True
        return self._store


Result = tuple[str | None, str | None]
Value = Callable[[_Resource], Any]  # str | None, or a Result when the property can note a partial rejection
Evaluator = tuple[Value, bool]  # (function, returns a Result)


def _getter(parts: tuple[tuple[str, bool], ...] | None) -> Callable[[Any], Any]:
    """`tf.walk` for one compiled path, unrolled for the short `[*]`-free paths most properties use."""
    walk = tf.walk
    if parts is None or len(parts) > 3 or any(star for _, star in parts):
        return lambda d: walk(d, parts)
    keys = [k for k, _ in parts]
    if len(keys) == 1:
        k1 = keys[0]
        return lambda d: d.get(k1) if isinstance(d, dict) else None
    if len(keys) == 2:
        k1, k2 = keys

        def two(d: Any) -> Any:
            v = d.get(k1) if isinstance(d, dict) else None
            return v.get(k2) if isinstance(v, dict) else None
        return two
    k1, k2, k3 = keys

    def three(d: Any) -> Any:
        v = d.get(k1) if isinstance(d, dict) else None
        v = v.get(k2) if isinstance(v, dict) else None
        return v.get(k3) if isinstance(v, dict) else None
    return three


def _path_value(raw: Any, r: _Resource) -> str | None:
    if raw.__class__ is str:
        return raw.strip() or None
    if isinstance(raw, list):
        return tf.multi(raw)[0]
    return tf.localized(raw, r.locale, r.context.fallback_locales) if isinstance(raw, dict) else tf.text(raw)


# Transforms of the source path's value alone.
_SIMPLE: dict[str, Callable[[Any], str | None]] = {
    "enum": tf.enum_key, "boolean": tf.boolean, "date": tf.date, "datetime": tf.datetime, "money": tf.money,
    "money_currency": tf.money_currency, "number": tf.number, "email": tf.email, "company_key": company_key}


def _compile(spec: PropertySpec) -> Evaluator:
    """The property's evaluation as one closure: the transform is dispatched and the source path
    parsed once per mapping, not once per property of every record (this is the sync's hot loop).
    Only `multi` can note a partial rejection; the others return the value alone (no tuple per call)."""
    t = spec.transform
    get = _getter(tf.compile_path(spec.source) if spec.source else None)
    part = spec.part or ""
    if t == "path":
        def path(r: _Resource) -> str | None:
            raw = get(r.data)
            if raw.__class__ is str:
                return raw.strip() or None
            return _path_value(raw, r)
        return path, False
    if t == "address":
        kind, address_part = spec.address, tf.address_getter(part)
        return (lambda r: address_part(r.address(kind))), False
    if t == "customer_group":
        use = spec.part or "key"
        return (lambda r: tf.customer_group(r.data, use)), False
    if t == "language":
        options = frozenset(spec.options or HS_LANGUAGES)
        return (lambda r: tf.language(get(r.data), options)), False
    if t == "localized":
        return (lambda r: tf.localized(get(r.data), r.locale, r.context.fallback_locales)), False
    if t == "multi":
        allowed = spec.options

        def multi(r: _Resource) -> Result:
            value, unknown = tf.multi(get(r.data), allowed)
            return value, (f"values {unknown} are not among the property's options" if unknown else None)
        return multi, True
    if t == "constant":
        constant = spec.value
        return (lambda r: constant), False
    if t == "concat":
        sources = [_getter(tf.compile_path(s)) for s in spec.sources or []]
        separator = spec.separator
        return (lambda r: tf.concat([g(r.data) for g in sources], separator)), False
    if t in _SIMPLE:
        fn = _SIMPLE[t]
        return (lambda r: fn(get(r.data))), False
    if part == "locale":
        return (lambda r: r.locale), False
    if part == "store":
        return (lambda r: r.store), False
    return (lambda r: _store_part(r.data, part, r.context, r.store)), False


def evaluate(spec: PropertySpec, resource: dict[str, Any], context: ContextSpec) -> tuple[str | None, str | None]:
    """(value, partial-rejection note). Raises tf.Rejected when the whole value is invalid."""
    fn, noted = _compiled_spec(spec)
    out = fn(_Resource(resource, context))
    return out if noted else (out, None)


# What a transform's output already is: its HubSpot type check would only parse it again.
_TYPED_OUTPUT = {("number", "number"), ("money", "number"), ("boolean", "bool"), ("date", "date"),
                 ("datetime", "datetime")}


def _checker(spec: PropertySpec) -> Callable[[str], str] | None:
    """What HubSpot would refuse, refused here: the rest of the record still goes through."""
    kind = spec.hs_type
    if (spec.transform, kind) in _TYPED_OUTPUT:
        return None
    if kind == "number":
        return lambda v: tf.number(v) or ""
    if kind == "bool":
        return lambda v: tf.boolean(v) or ""
    if kind == "date":
        return lambda v: tf.date(v) or ""
    if kind == "datetime":
        return lambda v: tf.datetime(v) or ""
    if kind == "enumeration" and spec.options and spec.transform != "multi":
        options, allowed = spec.options, frozenset(spec.options)

        def enumeration(value: str) -> str:
            if value not in allowed:
                raise tf.Rejected(f"{value[:60]!r} is not one of the options {options}")
            return value
        return enumeration
    return None


def _check_type(spec: PropertySpec, value: str) -> str:
    check = _checker(spec)
    return check(value) if check else value


# A section compiled to one function: (resource, its data, kind, properties, rejected, warnings) → None,
# filling the three collections in the section's property order.
SectionMapper = Callable[[_Resource, dict[str, Any], str, dict[str, str], dict[str, str], list[str]], None]

# Compiled per spec / section object (mapping files are immutable and cached by load_mapping); the
# object itself is kept beside its compilation so an id is never reused while the entry lives.
_SPECS: dict[int, tuple[PropertySpec, Evaluator]] = {}
_SECTIONS: dict[int, tuple[ObjectSection, SectionMapper]] = {}
_MAX_COMPILED = 256  # sections; a worker reloading edited mapping files must not grow without bound


def _compiled_spec(spec: PropertySpec) -> Evaluator:
    hit = _SPECS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    if len(_SPECS) > _MAX_COMPILED * 64:
        _SPECS.clear()
    fn = _compile(spec)
    _SPECS[id(spec)] = (spec, fn)
    return fn


def _compiled(section: ObjectSection) -> SectionMapper:
    hit = _SECTIONS.get(id(section))
    if hit is not None and hit[0] is section:
        return hit[1]
    if len(_SECTIONS) > _MAX_COMPILED:
        _SECTIONS.clear()
    mapper = _generate(section)
    _SECTIONS[id(section)] = (section, mapper)
    return mapper


def _truncated(kind: str, resource: dict[str, Any], name: str) -> str:
    return f"{kind} {resource.get('id')}: {name} truncated to {MAX_STRING} characters"


def _generate(section: ObjectSection) -> SectionMapper:
    """The section's properties as one straight-line function, generated once per mapping: a loop
    over per-property closures costs a call, a tuple and several branches per property of every
    record, and this is the sync's hot loop. Plain source paths (no `[*]`) are looked up inline;
    everything else calls the property's closure (`_compile`). Same semantics as `evaluate` plus the
    type check, the truncation and 'None clears the value' (e-mails are never cleared)."""
    ns: dict[str, Any] = {"Rejected": tf.Rejected, "MAX_STRING": MAX_STRING, "_path_value": _path_value,
                          "_truncated": _truncated}
    lines = ["def run(r, data, kind, properties, rejected, warnings):", "    note = None"]
    kinds: list[str] = []
    for i, (name, spec) in enumerate(section.properties.items()):
        fn, noted = _compiled_spec(spec)
        check = _checker(spec)
        ns[f"n{i}"] = name
        parts = tf.compile_path(spec.source) if spec.source else None
        body: list[str] = []
        if parts is not None and not any(star for _, star in parts) and (
                spec.transform == "path" or spec.transform in _SIMPLE):
            keys = [key for key, _ in parts]
            body.append(f"v = data.get({keys[0]!r}) if isinstance(data, dict) else None")
            body += [f"v = v.get({key!r}) if isinstance(v, dict) else None" for key in keys[1:]]
            if spec.transform == "path":
                body.append("value = (v.strip() or None) if v.__class__ is str else _path_value(v, r)")
            else:
                ns[f"f{i}"] = _SIMPLE[spec.transform]
                body.append(f"value = f{i}(v)")
        elif spec.transform == "address":
            # Each kind's default address is found once per record, before the first property.
            # Generated names are indexes; mapping-file text only ever enters the code repr()'d.
            if spec.address not in kinds:
                kinds.append(spec.address)
                lines.insert(2, f"    a{len(kinds) - 1} = r.address({spec.address!r})")
            ns[f"g{i}"] = tf.address_getter(spec.part or "")
            body.append(f"value = g{i}(a{kinds.index(spec.address)})")
        elif spec.transform == "store_context" and spec.part in ("locale", "store"):
            body.append(f"value = r.{spec.part}")
        else:
            ns[f"e{i}"] = fn
            body.append(f"value, note = e{i}(r)" if noted else f"value = e{i}(r)")
        if check is not None:
            ns[f"c{i}"] = check
            body.append(f"if value is not None: value = c{i}(value)")
        lines.append("    try:")
        lines += [f"        {line}" for line in body]
        lines += ["    except Rejected as exc:", f"        rejected[n{i}] = str(exc)", "    else:"]
        if noted:
            lines.append(f"        if note: rejected[n{i}] = note")
        lines += ["        if value is None:",
                  f"            properties[n{i}] = ''" if spec.transform != "email" else "            pass",
                  "        else:",
                  "            if len(value) > MAX_STRING:",
                  "                value = value[:MAX_STRING]",
                  f"                warnings.append(_truncated(kind, data, n{i}))",
                  f"            properties[n{i}] = value"]
    exec(compile("\n".join(lines), f"<mapping section {section.object}>", "exec"), ns)
    run: SectionMapper = ns["run"]
    return run


def map_object(section: ObjectSection, resource: dict[str, Any], context: ContextSpec | None = None,
               kind: str = "record") -> Mapped:
    """Apply one section of the mapping file to one commercetools resource."""
    properties: dict[str, str] = {}
    rejected: dict[str, str] = {}
    warnings: list[str] = []
    _compiled(section)(_Resource(resource, context or _NO_CONTEXT), resource, kind, properties, rejected, warnings)
    for warning in warnings:
        log.warning(warning)
    return Mapped(properties, warnings, rejected)


_NO_CONTEXT = ContextSpec()


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


# json.dumps with options builds an encoder per call; one per process gives the same text.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def fingerprint(properties: dict[str, str]) -> str:
    raw = _FINGERPRINT_JSON.encode(properties)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def changed(new: dict[str, str], old: dict[str, str]) -> dict[str, str]:
    """Properties whose value differs from what the sync last wrote ('' and missing are equal)."""
    return {k: v for k, v in new.items() if (old.get(k) or "") != (v or "")}

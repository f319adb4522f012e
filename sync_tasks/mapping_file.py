"""The mapping file: a TOML declaration, per HubSpot object, of target property → commercetools source
and transform, plus the context (stores, locales) and consent rules. Validated with pydantic; an
error names the file, the line and the field.

The default (`sync_tasks/mapping.default.toml`) fits the bundled sandbox shop; `MAPPING_FILE` points
at another. See docs/mapping.md for the format.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_MAPPING = Path(__file__).with_name("mapping.default.toml")

Transform = Literal[
    "path", "address", "customer_group", "language", "localized", "multi", "enum", "boolean", "date",
    "datetime", "money", "money_currency", "number", "constant", "concat", "email", "store_context",
    "company_key",
]
# Who owns a property's value (docs/ownership.md); shared properties carry a policy.
Owner = Literal["commercetools", "hubspot", "shared"]
Policy = Literal["commercetools_wins", "hubspot_wins", "most_recent", "fill_if_empty"]
HubSpotType = Literal["string", "number", "bool", "enumeration", "date", "datetime"]
LegalBasis = Literal["CONSENT_WITH_NOTICE", "LEGITIMATE_INTEREST_CLIENT", "LEGITIMATE_INTEREST_OTHER",
                     "LEGITIMATE_INTEREST_PQL", "NON_GDPR", "PERFORMANCE_OF_CONTRACT", "PROCESS_AND_STORE"]

# HubSpot's valid type → fieldType pairs (Properties API).
FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "phonenumber", "html", "file"}),
    "number": frozenset({"number"}),
    "bool": frozenset({"booleancheckbox"}),
    "enumeration": frozenset({"booleancheckbox", "checkbox", "radio", "select"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
}
# What a transform writes, when the property does not say: (type, fieldType).
TRANSFORM_TYPES: dict[str, tuple[str, str]] = {
    "boolean": ("bool", "booleancheckbox"), "date": ("date", "date"), "datetime": ("datetime", "date"),
    "money": ("number", "number"), "number": ("number", "number"), "language": ("enumeration", "select"),
}
ADDRESS_PARTS = ("street", "city", "zip", "state", "country", "phone", "first_name", "last_name", "name", "email",
                 "company")
STORE_PARTS = ("store", "currency", "channel", "locale")
NEEDS_SOURCE = {"path", "localized", "multi", "enum", "boolean", "date", "datetime", "money", "money_currency",
                "number", "email", "company_key", "language"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class MappingError(Exception):
    """The mapping file is missing, not TOML, or invalid; the message names the line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PropertySpec(_Strict):
    """One HubSpot property: where its value comes from and, for `ctsync setup`, what it is."""

    transform: Transform = "path"
    source: str | None = None  # path into the resource: `a.b`, `stores[*].key`, `custom.fields.x`
    sources: list[str] | None = None  # concat
    value: str | None = None  # constant
    part: str | None = None  # address part, store-context part, customer group `key`/`name`
    address: Literal["shipping", "billing"] = "shipping"
    separator: str = " "
    # The HubSpot property definition (derived from the transform when not given).
    type: HubSpotType | None = None
    field_type: str | None = None
    options: list[str] | None = None
    label: str | None = None
    unique: bool = False
    hubspot_defined: bool | None = None  # None: `hs_*` and HubSpot's default properties
    # Ownership: None takes the section's default_owner / default_policy.
    owner: Owner | None = None
    policy: Policy | None = None
    write_back: bool = False  # HubSpot-owned: HubSpot edits go to commercetools as update actions

    @model_validator(mode="after")
    def _complete(self) -> PropertySpec:
        t = self.transform
        if self.policy is not None and self.owner not in (None, "shared"):
            raise ValueError(f"policy applies to shared properties only (owner is {self.owner!r})")
        if self.write_back:
            from sync_tasks.ownership import writeback_problem

            if self.owner not in (None, "hubspot"):
                raise ValueError(f"write_back needs owner = 'hubspot' (owner is {self.owner!r})")
            if problem := writeback_problem(self):
                raise ValueError(f"write_back: {problem}")
        if t in NEEDS_SOURCE and not self.source:
            raise ValueError(f"transform {t!r} needs `source`")
        if t == "constant" and self.value is None:
            raise ValueError("transform 'constant' needs `value`")
        if t == "concat" and not self.sources:
            raise ValueError("transform 'concat' needs `sources` (a list of paths)")
        if t == "address" and self.part not in ADDRESS_PARTS:
            raise ValueError(f"transform 'address' needs `part`, one of {', '.join(ADDRESS_PARTS)}")
        if t == "store_context" and self.part not in STORE_PARTS:
            raise ValueError(f"transform 'store_context' needs `part`, one of {', '.join(STORE_PARTS)}")
        if t == "customer_group" and self.part not in (None, "key", "name"):
            raise ValueError("transform 'customer_group' takes `part` 'key' or 'name'")
        kind = self.hs_type
        if self.field_type is not None and self.field_type not in FIELD_TYPES[kind]:
            raise ValueError(f"field_type {self.field_type!r} does not go with type {kind!r} "
                             f"(allowed: {', '.join(sorted(FIELD_TYPES[kind]))})")
        if kind == "enumeration" and not self.options and t != "language":
            raise ValueError("an enumeration needs `options`")
        return self

    @property
    def hs_type(self) -> str:
        if self.type:
            return self.type
        if self.transform in ("enum", "multi") and self.options:
            return "enumeration"
        return TRANSFORM_TYPES.get(self.transform, ("string", "text"))[0]

    @property
    def hs_field_type(self) -> str:
        if self.field_type:
            return self.field_type
        kind = self.hs_type
        if kind == "enumeration":
            return "checkbox" if self.transform == "multi" else "select"
        if self.transform == "address" and self.part == "phone":
            return "phonenumber"
        return {"number": "number", "bool": "booleancheckbox", "date": "date", "datetime": "date"}.get(kind, "text")


class ObjectSection(_Strict):
    """One HubSpot object: its type name, its unique key property, and its properties."""

    object: str
    id_property: str
    id_source: str = "id"
    # Per-entity ownership defaults: a property without `owner` / `policy` takes these.
    default_owner: Owner = "commercetools"
    default_policy: Policy = "commercetools_wins"
    properties: dict[str, PropertySpec] = Field(default_factory=dict)

    def owner_of(self, name: str) -> Owner:
        spec = self.properties.get(name)
        return (spec.owner if spec and spec.owner else None) or self.default_owner

    def policy_of(self, name: str) -> Policy:
        spec = self.properties.get(name)
        return (spec.policy if spec and spec.policy else None) or self.default_policy

    @model_validator(mode="after")
    def _write_back_owner(self) -> ObjectSection:
        for name, spec in self.properties.items():
            if spec.write_back and self.owner_of(name) != "hubspot":
                raise ValueError(f"property {name!r}: write_back needs owner = 'hubspot' "
                                 f"(it is {self.owner_of(name)!r}; set owner or default_owner)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _plain_paths(cls, data: Any) -> Any:
        # `firstname = "firstName"` is short for `firstname = { source = "firstName" }`.
        if isinstance(data, dict) and isinstance(data.get("properties"), dict):
            data = dict(data)
            data["properties"] = {k: {"source": v} if isinstance(v, str) else v
                                  for k, v in data["properties"].items()}
        return data

    @field_validator("properties")
    @classmethod
    def _names(cls, props: dict[str, PropertySpec]) -> dict[str, PropertySpec]:
        for name in props:
            if not _NAME.match(name):
                raise ValueError(f"property name {name!r}: use lower-case letters, digits and _")
        return props


class StoreContext(_Strict):
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    channel: str | None = None  # distribution channel key, for per-channel filters and routing


class ContextSpec(_Strict):
    fallback_locales: list[str] = Field(default_factory=lambda: ["en"])
    stores: dict[str, StoreContext] = Field(default_factory=dict)


class Subscription(_Strict):
    subscription_id: str = Field(pattern=r"^\d+$")
    legal_basis: LegalBasis = "CONSENT_WITH_NOTICE"
    explanation: str = Field(min_length=1)


class ConsentSpec(_Strict):
    """commercetools opt-in fields → HubSpot communication preferences (v4)."""

    enabled: bool = False
    opt_in: str | None = None  # path to the Boolean custom field
    opt_in_date: str | None = None  # path to the DateTime of the opt-in
    # Re-subscribe someone HubSpot shows as opted out when the commercetools opt-in is newer than
    # that opt-out. Off: an opt-out in HubSpot is never overridden.
    resubscribe_if_newer: bool = False
    subscriptions: list[Subscription] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> ConsentSpec:
        if self.enabled and not (self.opt_in and self.subscriptions):
            raise ValueError("consent.enabled needs `opt_in` and at least one [[consent.subscriptions]]")
        if self.resubscribe_if_newer and not self.opt_in_date:
            raise ValueError("resubscribe_if_newer needs `opt_in_date`: without it no opt-in is provably newer")
        return self


SECTIONS = ("contact", "company", "order", "cart", "line_item")


class MappingFile(_Strict):
    version: Literal[1] = 1
    context: ContextSpec = Field(default_factory=ContextSpec)
    consent: ConsentSpec = Field(default_factory=ConsentSpec)
    contact: ObjectSection
    company: ObjectSection
    order: ObjectSection
    cart: ObjectSection
    line_item: ObjectSection

    def sections(self) -> dict[str, ObjectSection]:
        return {name: getattr(self, name) for name in SECTIONS}

    @model_validator(mode="after")
    def _write_back_contacts_only(self) -> MappingFile:
        for name in SECTIONS[1:]:
            if any(spec.write_back for spec in getattr(self, name).properties.values()):
                raise ValueError(f"[{name}]: write_back is supported on [contact] properties only")
        return self


# -- reading -------------------------------------------------------------------------------------
def read_mapping(path: Path | None = None) -> MappingFile:
    """Parse and validate one mapping file, or raise MappingError naming the line and the field."""
    path = path or DEFAULT_MAPPING
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"mapping file {path}: cannot read it ({exc.strerror})") from None
    return parse_mapping(raw, str(path))


def parse_mapping(raw: str, name: str = "<mapping>") -> MappingFile:
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping file {name}: not valid TOML: {exc}") from None
    try:
        return MappingFile.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(raw)
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            where = _line_of(lines, loc)
            field = ".".join(loc) or "(top level)"
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"line {where}: {field}: {msg}" if where else f"{field}: {msg}")
        raise MappingError(f"mapping file {name}: " + "; ".join(problems)) from None


def mapping_digest(mapping: MappingFile) -> str:
    """Changes when the mapping changes: keys cached schema checks and fingerprints."""
    return hashlib.blake2b(mapping.model_dump_json().encode(), digest_size=8).hexdigest()


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"']+)\s*=\s*(.*)$")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


def _dotted(key: str) -> list[str]:
    return [p.strip().strip("\"'") for p in key.split(".")]


def key_lines(raw: str) -> dict[tuple[str, ...], int]:
    """Dotted key → line number, from a light scan of the TOML text (tomllib keeps no positions)."""
    out: dict[tuple[str, ...], int] = {}
    prefix: list[str] = []
    counters: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            prefix = _dotted(header.group(1))
            if line.strip().startswith("[["):  # array of tables: index the entries
                key = tuple(prefix)
                index = counters.get(key, -1) + 1
                counters[key] = index
                prefix = [*prefix, str(index)]
            out.setdefault(tuple(prefix), number)
            continue
        m = _KEY.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        path = (*prefix, *_dotted(m.group(1)))
        out.setdefault(path, number)
        rest = m.group(2)
        if rest.lstrip().startswith("{"):
            for inner in _INLINE_KEY.findall(rest):
                out.setdefault((*path, inner), number)
    return out


def _line_of(lines: dict[tuple[str, ...], int], loc: list[str]) -> int | None:
    """The line of the longest prefix of `loc` the scan found."""
    for end in range(len(loc), 0, -1):
        hit = lines.get(tuple(loc[:end]))
        if hit is not None:
            return hit
    return None

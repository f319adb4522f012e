"""HubSpot schema provisioning (`ctsync setup`): the property group and every property the mapping
file needs — types, fieldTypes, enumeration options and the unique id properties — derived from the
mapping. It creates what is missing, adds missing options to our own enumerations, leaves what exists,
and reports an existing property of an incompatible type (or a HubSpot property the portal lacks) as
an error before any sync runs. Running it twice changes nothing. The sync refuses to start while a
property the mapping needs is missing (`missing_properties`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync_tasks.errors import ConflictError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.mapping_file import MappingFile, ObjectSection, PropertySpec

GROUP = {"name": "commercetools", "label": "commercetools", "displayOrder": -1}
DESCRIPTION = "Written by ctsync from commercetools."

# HubSpot's own properties the default mapping writes (besides every `hs_*` one): never created by us.
HUBSPOT_DEFINED: dict[str, frozenset[str]] = {
    "contacts": frozenset({"email", "firstname", "lastname", "phone", "mobilephone", "address", "city", "zip",
                           "state", "country", "company", "jobtitle", "website", "date_of_birth",
                           "lifecyclestage", "total_revenue"}),
    "companies": frozenset({"name", "domain", "address", "city", "zip", "state", "country", "phone", "industry",
                            "website", "description", "numberofemployees", "annualrevenue"}),
    "line_items": frozenset({"name", "price", "quantity", "amount", "discount", "description"}),
    "products": frozenset({"name", "price", "description"}),
}
# Written by the sync itself, not by the mapping (the e-mail group's account ids).
SYSTEM_PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "contacts": [{"name": "ct_customer_ids", "label": "commercetools customer ids (all accounts)", "type": "string",
                  "fieldType": "textarea", "groupName": GROUP["name"], "hasUniqueValue": False,
                  "description": DESCRIPTION}],
}
CUSTOMER_SECTIONS = ("contact", "company")


def _prop(name: str, label: str, type_: str = "string", field_type: str = "text",
          unique: bool = False) -> dict[str, Any]:
    return {"name": name, "label": label, "type": type_, "fieldType": field_type,
            "groupName": GROUP["name"], "hasUniqueValue": unique, "description": DESCRIPTION}


def is_hubspot_defined(obj: str, name: str, spec: PropertySpec | None = None) -> bool:
    if spec is not None and spec.hubspot_defined is not None:
        return spec.hubspot_defined
    return name.startswith("hs_") or name in HUBSPOT_DEFINED.get(obj, frozenset())


def section_properties(section: ObjectSection) -> list[dict[str, Any]]:
    """The property definitions one mapping section needs; HubSpot-defined ones are marked
    `hubspotDefined` (checked, never created)."""
    obj = section.object
    out: list[dict[str, Any]] = []
    if section.id_property not in section.properties:
        out.append(_prop(section.id_property, f"commercetools {obj} key", unique=True))
    for name, spec in section.properties.items():
        prop = _prop(name, spec.label or name.replace("_", " "), spec.hs_type, spec.hs_field_type,
                     unique=spec.unique or name == section.id_property)
        if spec.options and spec.hs_type == "enumeration":
            prop["options"] = [{"label": o, "value": o, "displayOrder": i, "hidden": False}
                               for i, o in enumerate(spec.options)]
        if is_hubspot_defined(obj, name, spec):
            prop["hubspotDefined"] = True
            prop["typeChecked"] = spec.type is not None or spec.transform in ("boolean", "money", "number", "date",
                                                                               "datetime")
        out.append(prop)
    return out


def schema_from_mapping(mapping: MappingFile, sections: tuple[str, ...] = CUSTOMER_SECTIONS
                        ) -> dict[str, list[dict[str, Any]]]:
    wanted: dict[str, list[dict[str, Any]]] = {}
    for name in sections:
        section: ObjectSection = getattr(mapping, name)
        props = wanted.setdefault(section.object, [])
        props += section_properties(section) + SYSTEM_PROPERTIES.get(section.object, [])
    return wanted


def _current(mapping: MappingFile | None) -> MappingFile:
    if mapping is not None:
        return mapping
    from sync_tasks.mapping import load_mapping

    return load_mapping()


# Kept for callers that read the customer sync's schema directly.
def customer_properties(mapping: MappingFile | None = None) -> dict[str, list[dict[str, Any]]]:
    return schema_from_mapping(_current(mapping))


class SchemaConflict(Exception):
    """An existing HubSpot property is incompatible with what the sync writes."""


@dataclass
class SetupReport:
    created_groups: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # our enumerations given missing options
    conflicts: list[str] = field(default_factory=list)


def _problems(have: dict[str, Any], prop: dict[str, Any]) -> list[str]:
    problems = []
    if (not prop.get("hubspotDefined") or prop.get("typeChecked")) and have.get("type") != prop["type"]:
        problems.append(f"type is {have.get('type')!r}, the mapping needs {prop['type']!r}")
    if not prop.get("hubspotDefined") and bool(have.get("hasUniqueValue")) != prop["hasUniqueValue"]:
        problems.append(f"hasUniqueValue is {bool(have.get('hasUniqueValue'))}, the sync needs "
                        f"{prop['hasUniqueValue']} (it cannot be changed: archive and recreate it)")
    if prop.get("hubspotDefined") and prop.get("options"):
        missing = [o["value"] for o in prop["options"]
                   if o["value"] not in {x.get("value") for x in have.get("options") or []}]
        if missing:
            problems.append(f"options {missing} are missing from this HubSpot property")
    return problems


def _definition(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k not in ("hubspotDefined", "typeChecked")}


def setup_schema(hubspot: HubSpotClient, properties: dict[str, list[dict[str, Any]]] | None = None,
                 mapping: MappingFile | None = None) -> SetupReport:
    """Create what `properties` (default: derived from the mapping file) needs and is missing."""
    report = SetupReport()
    wanted = properties or schema_from_mapping(_current(mapping))
    for obj, props in wanted.items():
        groups = {g["name"] for g in hubspot.property_groups(obj)}
        if GROUP["name"] not in groups and any(not p.get("hubspotDefined") for p in props):
            try:
                hubspot.create_property_group(obj, GROUP)
                report.created_groups.append(f"{obj}.{GROUP['name']}")
            except ConflictError:
                pass  # created concurrently
        existing = {p["name"]: p for p in hubspot.properties(obj)}
        seen: set[str] = set()
        for prop in props:
            label = f"{obj}.{prop['name']}"
            if prop["name"] in seen:
                continue
            seen.add(prop["name"])
            have = existing.get(prop["name"])
            if have is None:
                if prop.get("hubspotDefined"):
                    report.conflicts.append(f"{label}: HubSpot property missing from this portal; the mapping "
                                            "writes it (remove it from the mapping, or set hubspot_defined = false "
                                            "to create it)")
                    continue
                try:
                    hubspot.create_property(obj, _definition(prop))
                    report.created.append(label)
                except ConflictError:
                    report.existing.append(label)
                continue
            problems = _problems(have, prop)
            if problems:
                report.conflicts.append(f"{label}: " + "; ".join(problems))
                continue
            if not prop.get("hubspotDefined") and prop.get("options"):
                known = {o.get("value") for o in have.get("options") or []}
                extra = [o for o in prop["options"] if o["value"] not in known]
                if extra:
                    options = list(have.get("options") or []) + extra
                    hubspot.request("PATCH", f"/crm/v3/properties/{obj}/{prop['name']}", json={"options": options})
                    report.updated.append(label)
                    continue
            report.existing.append(label)
    if report.conflicts:
        raise SchemaConflict("HubSpot properties incompatible with the mapping:\n  " + "\n  ".join(report.conflicts))
    return report


def missing_properties(hubspot: HubSpotClient, mapping: MappingFile | None = None,
                       sections: tuple[str, ...] = CUSTOMER_SECTIONS) -> list[str]:
    """Properties the mapping needs that HubSpot lacks: the sync refuses to start without them."""
    missing = []
    for obj, props in schema_from_mapping(_current(mapping), sections).items():
        have = {p["name"]: p for p in hubspot.properties(obj)}
        for p in props:
            current = have.get(p["name"])
            if current is None:
                missing.append(f"{obj}.{p['name']}")
            elif not p.get("hubspotDefined") and p.get("options"):
                known = {o.get("value") for o in current.get("options") or []}
                missing += [f"{obj}.{p['name']} option {o['value']!r}" for o in p["options"] if o["value"] not in known]
    return missing


SCHEMA_OK_TTL_SECONDS = 300


def sync_refusal(hubspot: HubSpotClient, r: Any, mapping: MappingFile | None = None) -> str | None:
    """Why the customer sync must not start (properties the mapping needs that HubSpot lacks), or
    None. A positive check is remembered for a few minutes per mapping version."""
    from sync_tasks.constants import Keys
    from sync_tasks.mapping_file import mapping_digest

    mapping = _current(mapping)
    key = Keys.schema_ok(mapping_digest(mapping))
    if r.get(key):
        return None
    missing = missing_properties(hubspot, mapping)
    if missing:
        return ("the mapping needs HubSpot properties that setup has not created: " + ", ".join(missing)
                + "; run `ctsync setup`")
    r.set(key, "1", ex=SCHEMA_OK_TTL_SECONDS)
    return None

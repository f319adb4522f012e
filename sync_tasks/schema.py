"""HubSpot schema provisioning (`ctsync setup`): the property group and every property the sync
writes. It creates what is missing, leaves what exists, and reports an existing property of an
incompatible type as an error before any sync runs. Running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync_tasks.errors import ConflictError
from sync_tasks.hubspot_client import HubSpotClient

GROUP = {"name": "commercetools", "label": "commercetools", "displayOrder": -1}


def _prop(name: str, label: str, type_: str = "string", field_type: str = "text",
          unique: bool = False) -> dict[str, Any]:
    return {"name": name, "label": label, "type": type_, "fieldType": field_type,
            "groupName": GROUP["name"], "hasUniqueValue": unique,
            "description": "Written by ctsync from commercetools."}


PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "contacts": [
        _prop("ct_customer_id", "commercetools customer id", unique=True),
        _prop("ct_customer_ids", "commercetools customer ids (all accounts)", field_type="textarea"),
        _prop("ct_customer_number", "commercetools customer number"),
        _prop("ct_external_id", "commercetools external id"),
        _prop("ct_locale", "commercetools locale"),
        _prop("ct_stores", "commercetools stores"),
        _prop("ct_customer_group", "commercetools customer group"),
        _prop("ct_last_modified_at", "commercetools last modified", "datetime", "date"),
    ],
    "companies": [
        _prop("ct_company_key", "commercetools company key", unique=True),
    ],
}


class SchemaConflict(Exception):
    """An existing HubSpot property is incompatible with what the sync writes."""


@dataclass
class SetupReport:
    created_groups: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def setup_schema(hubspot: HubSpotClient, properties: dict[str, list[dict[str, Any]]] | None = None) -> SetupReport:
    report = SetupReport()
    wanted = properties or PROPERTIES
    for obj, props in wanted.items():
        groups = {g["name"] for g in hubspot.property_groups(obj)}
        if GROUP["name"] not in groups:
            try:
                hubspot.create_property_group(obj, GROUP)
                report.created_groups.append(f"{obj}.{GROUP['name']}")
            except ConflictError:
                pass  # created concurrently
        existing = {p["name"]: p for p in hubspot.properties(obj)}
        for prop in props:
            label = f"{obj}.{prop['name']}"
            have = existing.get(prop["name"])
            if have is None:
                try:
                    hubspot.create_property(obj, prop)
                    report.created.append(label)
                except ConflictError:
                    report.existing.append(label)
                continue
            problems = []
            if have.get("type") != prop["type"]:
                problems.append(f"type is {have.get('type')!r}, the sync needs {prop['type']!r}")
            if bool(have.get("hasUniqueValue")) != prop["hasUniqueValue"]:
                problems.append(f"hasUniqueValue is {bool(have.get('hasUniqueValue'))}, the sync needs "
                                f"{prop['hasUniqueValue']} (it cannot be changed: archive and recreate it)")
            if problems:
                report.conflicts.append(f"{label}: " + "; ".join(problems))
            else:
                report.existing.append(label)
    if report.conflicts:
        raise SchemaConflict("HubSpot properties incompatible with the sync:\n  " + "\n  ".join(report.conflicts))
    return report


def missing_properties(hubspot: HubSpotClient) -> list[str]:
    """Properties the sync needs that setup has not created: the sync refuses to start without them."""
    missing = []
    for obj, props in PROPERTIES.items():
        have = {p["name"] for p in hubspot.properties(obj)}
        missing += [f"{obj}.{p['name']}" for p in props if p["name"] not in have]
    return missing

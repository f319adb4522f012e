"""Property schemas per object: the default properties a fresh portal has, property groups, and the
Properties API's definition rules (type/fieldType pairs, options, unique-value limits)."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, conflict, not_found, validation
from .objecttypes import OBJECT_TYPES, ObjectType
from .values import iso, now_ms

FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "file", "html", "phonenumber", "calculation_equation"}),
    "number": frozenset({"number", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "enumeration": frozenset({"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
}
MAX_UNIQUE = 10
LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                    "customer", "evangelist", "other")
# Properties whose options are the pipelines / stages of the object (kept in step by pipelines.py).
PIPELINE_PROPS = {"deals": ("pipeline", "dealstage"), "orders": ("hs_pipeline", "hs_pipeline_stage")}

_GROUPS = {"contacts": "contactinformation", "companies": "companyinformation", "deals": "dealinformation",
           "products": "productinformation", "line_items": "lineiteminformation",
           "orders": "orderinformation", "carts": "cartinformation"}

Spec = tuple[str, str, str]  # name, type, fieldType


def _opts(values: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    return [{"label": v.replace("_", " ").title(), "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(values)]


def _addr(prefix: str) -> list[Spec]:
    return [(f"{prefix}_{part}", "string", "text")
            for part in ("street", "city", "state", "postal_code", "country")]


_TEXT = ("string", "text")
_NUM = ("number", "number")
_DT = ("datetime", "date")


def _specs(names: tuple[str, ...], kind: tuple[str, str]) -> list[Spec]:
    return [(n, *kind) for n in names]


_WRITABLE: dict[str, list[Spec]] = {
    "contacts": [
        *_specs(("email", "firstname", "lastname", "address", "city", "zip", "state", "country", "company",
                 "jobtitle", "website", "date_of_birth"), _TEXT),
        ("phone", "string", "phonenumber"), ("mobilephone", "string", "phonenumber"),
        ("hs_additional_emails", "string", "textarea"),
        ("hs_language", "enumeration", "select"), ("lifecyclestage", "enumeration", "radio"),
        ("hs_legal_basis", "enumeration", "checkbox"), ("hs_lead_status", "enumeration", "select"),
        ("total_revenue", "number", "number"),
    ],
    "companies": [
        *_specs(("name", "domain", "address", "city", "zip", "state", "country", "industry", "website",
                 "description"), _TEXT),
        ("phone", "string", "phonenumber"), *_specs(("numberofemployees", "annualrevenue"), _NUM),
    ],
    "deals": [
        *_specs(("dealname", "description", "deal_currency_code"), _TEXT),
        ("pipeline", "enumeration", "select"), ("dealstage", "enumeration", "select"),
        ("amount", "number", "number"), ("closedate", "datetime", "date"),
        ("dealtype", "enumeration", "radio"),
    ],
    "products": [
        *_specs(("name", "hs_sku", "hs_url", "hs_images", "hs_folder_id"), _TEXT),
        ("description", "string", "textarea"), *_specs(("price", "hs_cost_of_goods_sold"), _NUM),
        ("hs_product_type", "enumeration", "select"),
    ],
    "line_items": [
        *_specs(("name", "hs_sku", "hs_product_id", "hs_tax_rate_group_id", "hs_line_item_currency_code",
                 "hs_url", "hs_images", "hs_external_id"), _TEXT),
        ("description", "string", "textarea"),
        *_specs(("price", "quantity", "amount", "hs_discount_percentage", "discount",
                 "hs_position_on_quote"), _NUM),
    ],
    "orders": [
        *_specs(("hs_order_name", "hs_currency_code", "hs_source_store", "hs_discount_codes",
                 "hs_payment_status", "hs_fulfillment_status", "hs_external_order_id", "hs_external_order_url",
                 "hs_external_order_status", "hs_shipping_status_url", "hs_shipping_tracking_number",
                 "hs_shipping_method", "hs_tags", "hs_external_cart_id", "hs_external_checkout_id",
                 "hs_payment_processing_method", "hs_billing_address_firstname",
                 "hs_billing_address_lastname", "hs_billing_address_email", "hs_billing_address_phone",
                 "hs_shipping_address_name", "hs_shipping_address_phone"), _TEXT),
        *_addr("hs_shipping_address"), *_addr("hs_billing_address"),
        ("hs_pipeline", "enumeration", "select"), ("hs_pipeline_stage", "enumeration", "select"),
        *_specs(("hs_total_price", "hs_subtotal_price", "hs_tax", "hs_shipping_cost", "hs_order_discount",
                 "hs_exchange_rate"), _NUM),
        *_specs(("hs_external_created_date", "hs_processed_date"), _DT),
    ],
    "carts": [
        *_specs(("hs_cart_name", "hs_external_cart_id", "hs_external_status", "hs_cart_url", "hs_currency_code",
                 "hs_source_store", "hs_tags"), _TEXT),
        *_specs(("hs_total_price", "hs_subtotal_price", "hs_cart_discount", "hs_tax", "hs_shipping_cost"),
                _NUM),
    ],
}
_OPTIONS: dict[tuple[str, str], list[str]] = {
    ("contacts", "hs_language"): ["en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "ja", "zh-cn"],
    ("contacts", "lifecyclestage"): list(LIFECYCLE_STAGES),
    ("contacts", "hs_legal_basis"): ["Legitimate interest – prospect/lead", "Legitimate interest – existing customer",
                                     "Legitimate interest - other", "Performance of a contract",
                                     "Freely given consent from contact", "Not applicable"],
    ("contacts", "hs_lead_status"): ["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                                     "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"],
    ("deals", "dealtype"): ["newbusiness", "existingbusiness"],
    ("products", "hs_product_type"): ["inventory", "non_inventory", "service"],
}
_READ_ONLY_EXTRA: dict[str, list[Spec]] = {
    "contacts": [("hs_marketable_status", "enumeration", "booleancheckbox"),
                 ("hs_merged_object_ids", "string", "text"), ("hs_email_optout", "bool", "booleancheckbox")],
    "companies": [("hs_merged_object_ids", "string", "text")],
    "orders": [("hs_homecurrency_amount", "number", "number")],
}


def prop_def(name: str, kind: str, field_type: str, group: str, options: list[dict[str, Any]] | None = None,
             read_only: bool = False, unique: bool = False, hubspot_defined: bool = True,
             label: str | None = None, description: str = "", display_order: int = -1) -> dict[str, Any]:
    stamp = iso(now_ms())
    return {"name": name, "label": label or name.replace("hs_", "").replace("_", " ").title(),
            "type": kind, "fieldType": field_type, "description": description, "groupName": group,
            "options": options or [], "displayOrder": display_order, "calculated": False,
            "externalOptions": False, "hasUniqueValue": unique, "hidden": False,
            "hubspotDefined": hubspot_defined, "formField": not read_only,
            "modificationMetadata": {"archivable": not hubspot_defined, "readOnlyDefinition": hubspot_defined,
                                     "readOnlyValue": read_only},
            "createdAt": stamp, "updatedAt": stamp, "archived": False}


def default_schema(ot: ObjectType) -> dict[str, dict[str, Any]]:
    group = _GROUPS[ot.name]
    props: dict[str, dict[str, Any]] = {}
    for name, kind, field_type in _WRITABLE[ot.name]:
        options = _opts(_OPTIONS.get((ot.name, name), []))
        props[name] = prop_def(name, kind, field_type, group, options)
    for name, kind, field_type in _READ_ONLY_EXTRA.get(ot.name, []):
        bool_options = _opts(["true", "false"]) if kind == "enumeration" else None
        props[name] = prop_def(name, kind, field_type, group, bool_options, read_only=True)
    props["hs_object_id"] = prop_def("hs_object_id", "number", "number", group, read_only=True,
                                     label="Record ID")
    for name in (ot.created_prop, ot.modified_prop):
        props[name] = prop_def(name, "datetime", "date", group, read_only=True)
    return props


def default_groups(ot: ObjectType) -> dict[str, dict[str, Any]]:
    name = _GROUPS[ot.name]
    return {name: {"name": name, "label": f"{ot.label} information", "displayOrder": 0, "archived": False}}


class PropertyRegistry:
    """Property definitions and groups of every object type, keyed by plural object name."""

    def __init__(self) -> None:
        self.props: dict[str, dict[str, dict[str, Any]]] = {}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {}
        self.reset()

    def reset(self) -> None:
        self.props = {ot.name: default_schema(ot) for ot in OBJECT_TYPES}
        self.groups = {ot.name: default_groups(ot) for ot in OBJECT_TYPES}

    def get(self, ot: ObjectType, name: str) -> dict[str, Any] | None:
        return self.props[ot.name].get(name)

    def require(self, ot: ObjectType, name: str) -> dict[str, Any]:
        prop = self.get(ot, name)
        if prop is None:
            raise not_found(f"Unable to find property {name} for object type {ot.type_id}",
                            {"propertyName": [name]})
        return prop

    def unique_names(self, ot: ObjectType) -> list[str]:
        return [n for n, p in self.props[ot.name].items() if p["hasUniqueValue"]]

    def set_options(self, ot: ObjectType, name: str, values: list[tuple[str, str]]) -> None:
        prop = self.props[ot.name][name]
        prop["options"] = [{"label": label, "value": value, "displayOrder": i, "hidden": False}
                           for i, (value, label) in enumerate(values)]

    def _check_definition(self, ot: ObjectType, body: dict[str, Any], creating: bool) -> None:
        if creating:
            missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
            if missing:
                raise validation(f"Missing required field(s): {', '.join(missing)}",
                                 {"missingFields": missing})
        kind, field_type = body.get("type"), body.get("fieldType")
        if kind not in FIELD_TYPES:
            raise validation(f"Invalid type {kind!r}; must be one of {sorted(FIELD_TYPES)}")
        if field_type not in FIELD_TYPES[kind]:
            raise validation(f"Invalid fieldType {field_type!r} for type {kind!r}; allowed: "
                             f"{sorted(FIELD_TYPES[kind])}", {"fieldType": [str(field_type)]})
        if kind == "enumeration" and field_type != "calculation_equation":
            options = body.get("options")
            if not isinstance(options, list) or not options:
                raise validation("Enumeration properties require at least one option")
            for option in options:
                if not isinstance(option, dict) or not option.get("label") or "value" not in option:
                    raise validation("Every option needs a label and a value")
        group = body.get("groupName")
        if group is not None and group not in self.groups[ot.name]:
            raise validation(f"Property group {group!r} does not exist", {"groupName": [str(group)]})

    def create(self, ot: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
        self._check_definition(ot, body, creating=True)
        name = str(body["name"])
        if not name.replace("_", "").isalnum() or name != name.lower() or not name[0].isalpha():
            raise validation(f"Invalid property name {name!r}: use lower-case letters, digits and _")
        if name in self.props[ot.name]:
            raise conflict(f"Property named '{name}' already exists.", {"propertyName": [name]})
        unique = bool(body.get("hasUniqueValue", False))
        if unique and len(self.unique_names(ot)) >= MAX_UNIQUE:
            raise validation(f"Object type {ot.type_id} already has {MAX_UNIQUE} properties with unique "
                             "values, the maximum", {"propertyName": [name]})
        options = [{"label": o["label"], "value": str(o["value"]), "displayOrder": o.get("displayOrder", i),
                    "hidden": bool(o.get("hidden", False))} for i, o in enumerate(body.get("options") or [])]
        prop = prop_def(name, body["type"], body["fieldType"], body["groupName"], options,
                        read_only=body["fieldType"] == "calculation_equation", unique=unique,
                        hubspot_defined=False, label=body["label"], description=body.get("description", ""),
                        display_order=int(body.get("displayOrder", -1)))
        prop["hidden"] = bool(body.get("hidden", False))
        prop["formField"] = bool(body.get("formField", False))
        self.props[ot.name][name] = prop
        return prop

    def update(self, ot: ObjectType, name: str, body: dict[str, Any]) -> dict[str, Any]:
        prop = self.require(ot, name)
        if "hasUniqueValue" in body and bool(body["hasUniqueValue"]) != prop["hasUniqueValue"]:
            raise validation("hasUniqueValue cannot be changed after a property is created",
                             {"propertyName": [name]})
        if prop["hubspotDefined"] and any(k in body for k in ("type", "fieldType", "name")):
            raise validation(f"{name} is a HubSpot-defined property; its definition is read-only")
        merged = {**prop, **{k: v for k, v in body.items() if k != "name"}}
        self._check_definition(ot, merged, creating=False)
        for key in ("label", "description", "groupName", "type", "fieldType", "displayOrder", "hidden",
                    "formField"):
            if key in body:
                prop[key] = body[key]
        if "options" in body:
            prop["options"] = [{"label": o["label"], "value": str(o["value"]),
                                "displayOrder": o.get("displayOrder", i), "hidden": bool(o.get("hidden"))}
                               for i, o in enumerate(body["options"])]
        prop["updatedAt"] = iso(now_ms())
        return prop

    def archive(self, ot: ObjectType, name: str) -> None:
        prop = self.require(ot, name)
        if prop["hubspotDefined"]:
            raise validation(f"{name} is a HubSpot-defined property and cannot be archived")
        del self.props[ot.name][name]

    def create_group(self, ot: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
        name, label = body.get("name"), body.get("label")
        if not name or not label:
            raise validation("A property group needs a name and a label")
        if name in self.groups[ot.name]:
            raise conflict(f"Property group named '{name}' already exists.")
        group = {"name": name, "label": label, "displayOrder": int(body.get("displayOrder", -1)),
                 "archived": False}
        self.groups[ot.name][name] = group
        return group

    def get_group(self, ot: ObjectType, name: str) -> dict[str, Any]:
        group = self.groups[ot.name].get(name)
        if group is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Property group {name} does not exist")
        return group

    def snapshot(self) -> dict[str, Any]:
        return {"props": copy.deepcopy(self.props), "groups": copy.deepcopy(self.groups)}

    def restore(self, data: dict[str, Any]) -> None:
        self.props = data["props"]
        self.groups = data["groups"]

"""The CRM object types the sync uses, and how a path segment (plural, singular or `0-N`) names one."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import validation


@dataclass(frozen=True)
class ObjectType:
    type_id: str
    name: str  # plural, as in /crm/v3/objects/contacts
    singular: str
    label: str  # "Contact": used in messages
    created_prop: str
    modified_prop: str
    default_props: tuple[str, ...]  # returned when a read asks for no properties

    @property
    def upper(self) -> str:
        return self.singular.upper()


# Created/modified property names differ per object in HubSpot; these follow its default responses.
OBJECT_TYPES: tuple[ObjectType, ...] = (
    ObjectType("0-1", "contacts", "contact", "Contact", "createdate", "lastmodifieddate",
               ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")),
    ObjectType("0-2", "companies", "company", "Company", "createdate", "hs_lastmodifieddate",
               ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")),
    ObjectType("0-3", "deals", "deal", "Deal", "createdate", "hs_lastmodifieddate",
               ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
                "hs_object_id", "pipeline")),
    ObjectType("0-7", "products", "product", "Product", "createdate", "hs_lastmodifieddate",
               ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price")),
    ObjectType("0-8", "line_items", "line_item", "Line item", "createdate", "hs_lastmodifieddate",
               ("amount", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_product_id", "name",
                "price", "quantity")),
    ObjectType("0-123", "orders", "order", "Order", "hs_createdate", "hs_lastmodifieddate",
               ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")),
    ObjectType("0-142", "carts", "cart", "Cart", "hs_createdate", "hs_lastmodifieddate",
               ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")),
)

_ALIASES: dict[str, ObjectType] = {}
for _ot in OBJECT_TYPES:
    for _alias in (_ot.type_id, _ot.name, _ot.singular, _ot.name.replace("_", ""), _ot.singular.replace("_", "")):
        _ALIASES[_alias] = _ot
BY_NAME: dict[str, ObjectType] = {ot.name: ot for ot in OBJECT_TYPES}


def lookup(segment: str) -> ObjectType | None:
    return _ALIASES.get(segment.lower())


def resolve(segment: str) -> ObjectType:
    found = lookup(segment)
    if found is None:
        raise validation(f"Unable to infer object type from: {segment}")
    return found

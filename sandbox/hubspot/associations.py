"""Associations v4: the HUBSPOT_DEFINED type ids per object pair (reference sheet §5.5), and the
links themselves, stored in both directions so reads from either side cost one dict lookup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ApiError, validation
from .objecttypes import ObjectType


@dataclass(frozen=True)
class AssocType:
    from_type: str
    to_type: str
    type_id: int
    label: str | None
    reverse_id: int
    default: bool  # the one "associate/default" uses


# (from, to, id, reverse id, label, default). Ids marked "invented" have no public source (see README).
_PAIRS: list[tuple[str, str, int, int, str | None, bool]] = [
    ("orders", "contacts", 507, 508, None, True),
    ("orders", "line_items", 513, 514, None, True),
    ("orders", "carts", 593, 592, None, True),
    ("orders", "deals", 512, 511, None, True),
    ("orders", "companies", 934, 935, None, True),  # 935 (reverse) invented
    ("orders", "companies", 509, 510, "Primary", False),  # 510 (reverse) invented
    ("carts", "contacts", 586, 587, None, True),
    ("carts", "line_items", 590, 591, None, True),
    ("carts", "deals", 1347, 1346, None, True),
    ("deals", "line_items", 19, 20, None, True),
    ("contacts", "companies", 279, 280, None, True),
    ("contacts", "companies", 1, 2, "Primary", False),
    ("deals", "contacts", 3, 4, None, True),
    ("deals", "companies", 341, 342, None, True),
    ("deals", "companies", 5, 6, "Primary", False),
]


def _build() -> dict[tuple[str, str], list[AssocType]]:
    table: dict[tuple[str, str], list[AssocType]] = {}
    for src, dst, fwd, rev, label, default in _PAIRS:
        table.setdefault((src, dst), []).append(AssocType(src, dst, fwd, label, rev, default))
        table.setdefault((dst, src), []).append(AssocType(dst, src, rev, label, fwd, default))
    return table


TYPES = _build()
PARENTS = frozenset({"orders", "carts", "deals"})  # a line item may belong to one of these, once

Links = dict[tuple[str, str], dict[str, dict[str, set[int]]]]


def types_for(src: ObjectType, dst: ObjectType) -> list[AssocType]:
    return TYPES.get((src.name, dst.name), [])


def check_type(src: ObjectType, dst: ObjectType, type_id: Any, category: Any = "HUBSPOT_DEFINED") -> AssocType:
    if category not in ("HUBSPOT_DEFINED", None):
        raise validation(f"associationCategory {category!r} is not valid here; only HUBSPOT_DEFINED types exist")
    for at in types_for(src, dst):
        if str(at.type_id) == str(type_id):
            return at
    raise validation(f"associationTypeId {type_id} is not valid for {src.singular} to {dst.singular} "
                     f"associations; valid ids: {[t.type_id for t in types_for(src, dst)]}",
                     {"associationTypeId": [str(type_id)]})


def default_type(src: ObjectType, dst: ObjectType) -> AssocType:
    for at in types_for(src, dst):
        if at.default:
            return at
    raise validation(f"{src.name} cannot be associated with {dst.name}")


def type_json(at: AssocType) -> dict[str, Any]:
    return {"category": "HUBSPOT_DEFINED", "typeId": at.type_id, "label": at.label}


class AssociationStore:
    def __init__(self) -> None:
        self.links: Links = {}

    def targets(self, ot: ObjectType, obj_id: str, to: ObjectType) -> dict[str, set[int]]:
        return self.links.get((ot.name, obj_id), {}).get(to.name, {})

    def _parent_of(self, line_item_id: str) -> tuple[str, str] | None:
        for parent_type, ids in self.links.get(("line_items", line_item_id), {}).items():
            if parent_type in PARENTS and ids:
                return parent_type, next(iter(ids))
        return None

    def add(self, src: ObjectType, src_id: str, dst: ObjectType, dst_id: str, at: AssocType) -> None:
        """Add one association (and its reverse). Re-adding an existing one changes nothing."""
        for a_type, a_id, b_type, b_id in ((src.name, src_id, dst.name, dst_id), (dst.name, dst_id, src.name, src_id)):
            if a_type == "line_items" and b_type in PARENTS:
                parent = self._parent_of(a_id)
                if parent is not None and parent != (b_type, b_id):
                    raise ApiError(400, "VALIDATION_ERROR",
                                   f"Line item {a_id} is already associated with {parent[0][:-1]} {parent[1]}; "
                                   "a line item can belong to only one object",
                                   {"lineItemId": [a_id], "existingParentId": [parent[1]]})
        self.links.setdefault((src.name, src_id), {}).setdefault(dst.name, {}).setdefault(dst_id, set()).add(
            at.type_id)
        self.links.setdefault((dst.name, dst_id), {}).setdefault(src.name, {}).setdefault(src_id, set()).add(
            at.reverse_id)

    def remove(self, src: ObjectType, src_id: str, dst: ObjectType, dst_id: str) -> None:
        self.links.get((src.name, src_id), {}).get(dst.name, {}).pop(dst_id, None)
        self.links.get((dst.name, dst_id), {}).get(src.name, {}).pop(src_id, None)

    def drop_object(self, ot: ObjectType, obj_id: str) -> None:
        for other, ids in self.links.pop((ot.name, obj_id), {}).items():
            for other_id in ids:
                self.links.get((other, other_id), {}).get(ot.name, {}).pop(obj_id, None)

    def move(self, ot: ObjectType, old_id: str, new_id: str) -> None:
        """Re-point every association of `old_id` to `new_id` (contacts/companies merge)."""
        for other, ids in self.links.pop((ot.name, old_id), {}).items():
            for other_id, type_ids in ids.items():
                mine = self.links.setdefault((ot.name, new_id), {}).setdefault(other, {})
                mine.setdefault(other_id, set()).update(type_ids)
                theirs = self.links.get((other, other_id), {}).get(ot.name, {})
                reverse = theirs.pop(old_id, set())
                theirs.setdefault(new_id, set()).update(reverse)

    def pairs(self, src: ObjectType, dst: ObjectType) -> list[dict[str, Any]]:
        out = []
        for (type_name, obj_id), sides in self.links.items():
            if type_name == src.name:
                for dst_id, type_ids in sides.get(dst.name, {}).items():
                    out.append({"fromId": obj_id, "toId": dst_id, "typeIds": sorted(type_ids)})
        return out

    def to_json(self) -> list[list[Any]]:
        return [[t, i, other, oid, sorted(ids)] for (t, i), sides in self.links.items()
                for other, targets in sides.items() for oid, ids in targets.items()]

    def load(self, rows: list[list[Any]]) -> None:
        self.links = {}
        for t, i, other, oid, ids in rows:
            self.links.setdefault((t, i), {}).setdefault(other, {})[oid] = set(ids)

"""POST /crm/v3/objects/{type}/search over the *indexed* snapshots of records, so results lag writes
by the configured index lag, as HubSpot's search does. Archived records never match."""

from __future__ import annotations

import time
from typing import Any

from .crm import Crm
from .errors import validation
from .objecttypes import ObjectType
from .values import as_int, comparable, iso

MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
MAX_LIMIT, MAX_RESULTS, MAX_BODY = 200, 10_000, 3_000
OPERATORS = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "IN",
                       "NOT_IN", "BETWEEN", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"})
QUERY_PROPS = {"contacts": ("email", "firstname", "lastname", "phone", "company"),
               "companies": ("name", "domain", "website", "phone")}


def _check(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise validation(f"Too many filterGroups: at most {MAX_GROUPS} are allowed")
    total = 0
    out = []
    for group in groups:
        filters = (group or {}).get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise validation(f"Too many filters in a filterGroup: at most {MAX_FILTERS_PER_GROUP} are allowed")
        total += len(filters)
        for flt in filters:
            op = flt.get("operator")
            if op not in OPERATORS:
                raise validation(f"Unsupported operator {op!r}", {"operator": [str(op)]})
            if not flt.get("propertyName"):
                raise validation("Every filter needs a propertyName")
            if op == "BETWEEN" and ("value" not in flt or "highValue" not in flt):
                raise validation("BETWEEN needs value and highValue")
            if op in ("IN", "NOT_IN") and not isinstance(flt.get("values"), list):
                raise validation(f"{op} needs values[]")
        out.append(filters)
    if total > MAX_FILTERS:
        raise validation(f"Too many filters: at most {MAX_FILTERS} in total are allowed")
    return out


def _matches(crm: Crm, ot: ObjectType, props: dict[str, str], flt: dict[str, Any]) -> bool:
    name, op = flt["propertyName"], flt["operator"]
    value = props.get(name)
    if op == "HAS_PROPERTY":
        return bool(value)
    if op == "NOT_HAS_PROPERTY":
        return not value
    if op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and not value:
        return True
    if not value:
        return False
    prop = crm.registry.get(ot, name)

    def key(raw: Any) -> Any:
        return comparable(prop, str(raw).lower() if isinstance(raw, bool) else str(raw))

    have = key(value)
    try:
        if op == "EQ":
            return bool(have == key(flt.get("value")))
        if op == "NEQ":
            return bool(have != key(flt.get("value")))
        if op in ("IN", "NOT_IN"):
            found = have in {key(v) for v in flt["values"]}
            return found if op == "IN" else not found
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(flt.get("value", "")).lower().strip("*")
            found = token in value.lower()
            return found if op == "CONTAINS_TOKEN" else not found
        other = key(flt.get("value"))
        if op == "LT":
            return bool(have < other)
        if op == "LTE":
            return bool(have <= other)
        if op == "GT":
            return bool(have > other)
        if op == "GTE":
            return bool(have >= other)
        if op == "BETWEEN":
            return bool(other <= have <= key(flt.get("highValue")))
    except TypeError:  # e.g. comparing a number with a non-numeric string
        return False
    return False


def search(crm: Crm, ot: ObjectType, body: Any, raw_size: int) -> dict[str, Any]:
    if raw_size > MAX_BODY:
        raise validation(f"Search request body is {raw_size} characters; the limit is {MAX_BODY}")
    if not isinstance(body, dict):
        raise validation("The search body must be a JSON object")
    groups = _check(body)
    try:
        limit = as_int(body.get("limit", 10), "limit")
        after = as_int(body.get("after") or 0, "after")
    except ValueError as exc:
        raise validation(str(exc)) from None
    if not 0 < limit <= MAX_LIMIT:
        raise validation(f"limit must be between 1 and {MAX_LIMIT}", {"limit": [str(limit)]})
    if after >= MAX_RESULTS:
        raise validation(f"Search results are limited to {MAX_RESULTS}: paging past that is not allowed",
                         {"after": [str(after)]})
    query = str(body.get("query") or "").lower()
    now = time.monotonic()
    hits: list[tuple[str, dict[str, str]]] = []
    for record in crm.store(ot).records.values():
        if record.archived:
            continue
        view = record.indexed_view(now)
        if view is None:
            continue
        if groups and not any(all(_matches(crm, ot, view, f) for f in g) for g in groups):
            continue
        if query and not any(query in view.get(p, "").lower() for p in QUERY_PROPS.get(ot.name, ("hs_object_id",))):
            continue
        hits.append((record.id, view))
    hits.sort(key=lambda h: int(h[0]))
    for sort in reversed(body.get("sorts") or []):
        name = sort if isinstance(sort, str) else sort.get("propertyName")
        descending = isinstance(sort, dict) and str(sort.get("direction", "")).upper() == "DESCENDING"
        if isinstance(name, str) and name.startswith("-"):
            name, descending = name[1:], True
        prop = crm.registry.get(ot, str(name))
        present = [h for h in hits if h[1].get(str(name))]
        absent = [h for h in hits if not h[1].get(str(name))]
        try:
            present.sort(key=lambda h: comparable(prop, h[1][str(name)]), reverse=descending)
        except TypeError:
            present.sort(key=lambda h: str(h[1][str(name)]), reverse=descending)
        hits = present + absent
    props = [str(p) for p in body.get("properties") or []] or None
    page = hits[after:min(after + limit, MAX_RESULTS)]
    results = []
    for record_id, view in page:
        record = crm.store(ot).records[record_id]
        names = props if props is not None else list(ot.default_props)
        if props is not None:
            names = [*names, "hs_object_id", ot.created_prop, ot.modified_prop]
        results.append({"id": record_id, "properties": {n: view.get(n) for n in dict.fromkeys(names)},
                        "createdAt": iso(record.created_ms), "updatedAt": view.get(ot.modified_prop)
                        or iso(record.updated_ms), "archived": False})
    out: dict[str, Any] = {"total": len(hits), "results": results}
    if after + limit < len(hits):
        out["paging"] = {"next": {"after": str(after + limit), "link": None}}
    return out

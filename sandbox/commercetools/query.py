"""Query API: parameters (where/sort/limit/offset/withTotal/expand), a small planner that walks a
sorted index from the bounds the predicates imply, sorting, paging and reference expansion.

The planner is what lets the sandbox hold a 100k-customer shop and still answer a delta query in time
proportional to the delta: `lastModifiedAt >= T` (and the keyset form
`lastModifiedAt > T or (lastModifiedAt = T and id > X)`, whose hull is `lastModifiedAt >= T`) become
a start position in the (lastModifiedAt, id) index found by bisection.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import malformed
from .predicates import And, Compare, Evaluator, In, Node, Or, PredicateError, compile_node, parse
from .store import LOOKUP_INDEXES, Collection, Resource, Store

MAX_LIMIT = 500
MAX_OFFSET = 10_000
TOTAL_CAP_WITH_WHERE = 10_000  # release note 2020-10-12: total is capped when a where is used
INDEXED = ("lastModifiedAt", "createdAt", "id")
_TOP = "\U0010ffff"


@dataclass
class QueryParams:
    where: list[Node] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (dotted path, descending)
    limit: int = 20
    offset: int = 0
    with_total: bool = True
    expand: list[list[str]] = field(default_factory=list)


@dataclass
class QueryStats:
    index: str
    examined: int
    returned: int
    elapsed_ms: float


def _int_param(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise malformed(name, f"'{raw}' is not an integer.") from exc
    if value < 0 or value > maximum:
        raise malformed(name, f"must be between 0 and {maximum}, got {value}.")
    return value


def parse_params(single: Mapping[str, str], multi: Callable[[str], list[str]],
                 variables: Mapping[str, Sequence[str]]) -> QueryParams:
    params = QueryParams()
    params.limit = _int_param(single, "limit", 20, MAX_LIMIT)
    params.offset = _int_param(single, "offset", 0, MAX_OFFSET)
    with_total = single.get("withTotal", "true").lower()
    if with_total not in ("true", "false"):
        raise malformed("withTotal", f"'{with_total}' is not a boolean.")
    params.with_total = with_total == "true"
    for text in multi("where"):
        try:
            params.where.append(parse(text, variables))
        except PredicateError as exc:
            raise malformed("where", str(exc)) from exc
    for text in multi("sort"):
        parts = text.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise malformed("sort", f"'{text}' is not a valid sort expression (expected 'field asc|desc').")
        params.sort.append((parts[0], len(parts) == 2 and parts[1].lower() == "desc"))
    for text in multi("expand"):
        segments = [s.strip() for s in text.split(".")]
        if not text.strip() or any(not s for s in segments):
            raise malformed("expand", f"'{text}' is not a valid reference expansion path.")
        params.expand.append(segments)
    return params


# --- planning -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    lo: str | None = None  # None = unbounded
    hi: str | None = None


UNBOUNDED = Interval()


def bounds(node: Node, name: str) -> Interval:
    """The hull of the values of top-level `name` that can satisfy `node` (may be too wide, never too
    narrow: the full predicate still filters every record walked)."""
    if isinstance(node, Compare) and node.field == name and isinstance(node.value, str):
        v = node.value
        if node.op == "=":
            return Interval(v, v)
        if node.op in (">", ">="):
            return Interval(v, None)
        if node.op in ("<", "<="):
            return Interval(None, v)
        return UNBOUNDED
    if isinstance(node, In) and node.field == name and not node.negated and node.values \
            and all(isinstance(v, str) for v in node.values):
        values = [str(v) for v in node.values]
        return Interval(min(values), max(values))
    if isinstance(node, And):
        result = UNBOUNDED
        for item in node.items:
            b = bounds(item, name)
            lo = result.lo if b.lo is None else b.lo if result.lo is None else max(result.lo, b.lo)
            hi = result.hi if b.hi is None else b.hi if result.hi is None else min(result.hi, b.hi)
            result = Interval(lo, hi)
        return result
    if isinstance(node, Or):
        parts = [bounds(item, name) for item in node.items]
        lo = None if any(p.lo is None for p in parts) else min(str(p.lo) for p in parts)
        hi = None if any(p.hi is None for p in parts) else max(str(p.hi) for p in parts)
        return Interval(lo, hi)
    return UNBOUNDED


def points(node: Node, name: str) -> set[str] | None:
    """The exact values of top-level `name` that can satisfy `node` (`id = "x"`, `id in (...)`), or
    None when they are not a finite list: commercetools resolves such a query by key, whatever the
    hull of random ids spans (a few ids of a 100,000-record shop must not walk the whole index)."""
    if isinstance(node, Compare) and node.field == name and node.op == "=" and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, In) and node.field == name and not node.negated and node.values \
            and all(isinstance(v, str) for v in node.values):
        return {str(v) for v in node.values}
    if isinstance(node, And):
        found = [p for item in node.items if (p := points(item, name)) is not None]
        return set.intersection(*found) if found else None
    if isinstance(node, Or):
        parts = [points(item, name) for item in node.items]
        return None if any(p is None for p in parts) else set().union(*[p for p in parts if p is not None])
    return None


def _range(col: Collection, index: str, iv: Interval) -> tuple[int, int]:
    if index == "id":
        keys: list[Any] = col.ids
        lo = 0 if iv.lo is None else bisect.bisect_left(keys, iv.lo)
        hi = len(keys) if iv.hi is None else bisect.bisect_right(keys, iv.hi)
    else:
        keys = col.pairs[index]
        lo = 0 if iv.lo is None else bisect.bisect_left(keys, (iv.lo,))
        hi = len(keys) if iv.hi is None else bisect.bisect_right(keys, (iv.hi, _TOP))
    return lo, max(lo, hi)


def _sort_matches(index: str, sort: list[tuple[str, bool]]) -> bool | None:
    """None if walking `index` does not give the requested order, else whether to walk it backwards."""
    if not sort:
        return False
    desc = sort[0][1]
    if any(d != desc for _, d in sort):
        return None
    names = [p for p, _ in sort]
    if index == "id":
        return desc if names == ["id"] else None
    return desc if names in ([index], [index, "id"]) else None


def _value_at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _sort_key(path: str) -> Callable[[Resource], tuple[Any, ...]]:
    def key(res: Resource) -> tuple[Any, ...]:
        value = _value_at(res, path)
        if value is None:
            return (1, 0, "")
        if isinstance(value, bool):
            return (0, 1, int(value))
        if isinstance(value, int | float):
            return (0, 2, value)
        if isinstance(value, str):
            return (0, 3, value)
        return (0, 4, json.dumps(value, sort_keys=True))

    return key


def run_query(col: Collection, params: QueryParams, extra: Sequence[Node] = ()) -> tuple[list[Resource],
                                                                                       int | None, QueryStats]:
    """Plan, walk, filter, sort and page; returns (page, total or None, stats)."""
    started = time.perf_counter()
    nodes = [*params.where, *extra]
    node: Node | None = None if not nodes else nodes[0] if len(nodes) == 1 else And(tuple(nodes))
    predicate: Evaluator | None = compile_node(node) if node is not None else None

    # Pick the index whose bounded range is narrowest; on equal width prefer the one in sort order.
    best: tuple[int, int, str, int, int] | None = None
    for index in INDEXED:
        iv = bounds(node, index) if node is not None else UNBOUNDED
        lo, hi = _range(col, index, iv)
        matches = 0 if _sort_matches(index, params.sort) is not None else 1
        candidate = (hi - lo, matches, index, lo, hi)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    assert best is not None
    _, _, index, lo, hi = best
    keyed = points(node, "id") if node is not None else None
    for name in LOOKUP_INDEXES:  # `customerId in (...)`: only the records holding those values
        values = points(node, name) if node is not None and keyed is None else None
        if values is not None:
            keyed = {i for v in values for i in col.lookups[name].get(v, ())}
    if keyed is not None and len(keyed) < hi - lo:
        index = "id"  # a lookup by id: only those records are walked, in id order
    reverse = _sort_matches(index, params.sort)
    ids: Iterable[str]
    if index == "id" and keyed is not None and len(keyed) < hi - lo:
        found = sorted(i for i in keyed if i in col.records)
        ids = reversed(found) if reverse else found
    elif index == "id":
        keys = col.ids[lo:hi]
        ids = reversed(keys) if reverse else keys
    else:
        pairs = col.pairs[index][lo:hi]
        ids = (p[1] for p in (reversed(pairs) if reverse else pairs))

    wanted = params.offset + params.limit
    records = col.records
    matched: list[Resource] = []
    total = 0
    examined = 0
    in_order = reverse is not None
    for rid in ids:
        res = records[rid]
        examined += 1
        if predicate is not None and not predicate(res):
            continue
        total += 1
        if not in_order or len(matched) < wanted:
            matched.append(res)
            if in_order and not params.with_total and len(matched) >= wanted:
                break  # index order is the requested order: the page is complete
    col.examined += examined
    if not in_order:
        for path, desc in reversed(params.sort):
            matched.sort(key=_sort_key(path), reverse=desc)
    page = matched[params.offset:wanted]
    out_total: int | None = None
    if params.with_total:
        out_total = min(total, TOTAL_CAP_WITH_WHERE) if params.where else total
    stats = QueryStats(index, examined, len(page), (time.perf_counter() - started) * 1000)
    return page, out_total, stats


# --- reference expansion --------------------------------------------------------------------------

def expand(obj: Any, segments: list[str], store: Store) -> Any:
    """Copy `obj` along the path and put the referenced resource into the reference's `obj`; stored
    resources are never touched."""
    if not segments:
        if isinstance(obj, dict) and "typeId" in obj and ("id" in obj or "key" in obj):
            target = store.resolve(obj)
            if target is not None:
                return {**obj, "obj": target}
        return obj
    seg = segments[0]
    star = seg.endswith("[*]")
    name = seg[:-3] if star else seg
    if not isinstance(obj, dict) or name not in obj:
        return obj
    child = obj[name]
    if isinstance(child, list):
        new_child: Any = [expand(c, segments[1:], store) for c in child]
    elif isinstance(child, dict):
        new_child = expand(child, segments[1:], store)
    else:
        return obj
    return {**obj, name: new_child}


def expand_all(res: Resource, paths: list[list[str]], store: Store) -> Resource:
    for segments in paths:
        res = expand(res, segments, store)
    return res


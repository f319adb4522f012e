"""In-memory resources with the sorted indexes commercetools keeps (by id, by lastModifiedAt, by
createdAt), a per-resource message sequence, and a clock that never goes backwards.

Resources are plain JSON-ready dicts and are never mutated once stored: an update stores a new dict
(copy-on-write), so a message can keep a reference to the resource as it was (`CustomerCreated.customer`).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Resource = dict[str, Any]

# Indexes whose sort key is (value, id): ties on the timestamp are broken by id, as the keyset
# pagination `lastModifiedAt > T or (lastModifiedAt = T and id > X)` expects.
PAIR_INDEXES = ("lastModifiedAt", "createdAt")
# Exact-value lookups (value -> ids), so `customerId in (...)` on orders reads only those orders, as
# commercetools does; without them a sync's query by customer would walk a 100k-customer shop's orders.
LOOKUP_INDEXES = ("customerId", "customerEmail")


def format_ms(epoch_ms: int) -> str:
    """Epoch milliseconds to the API's timestamp format (UTC, millisecond precision, 'Z')."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000 + 0.5)


class Clock:
    """Wall-clock milliseconds that never go backwards, so a changed record always sorts after every
    record already in the lastModifiedAt index (what makes keyset delta polling safe)."""

    def __init__(self) -> None:
        self.last_ms = 0

    def now_ms(self, after_ms: int = 0) -> int:
        now = max(int(time.time() * 1000), self.last_ms, after_ms + 1)
        self.last_ms = now
        return now


@dataclass
class Collection:
    """One resource type: records by id, keys, and sorted indexes maintained with bisect."""

    type_id: str
    key_field: str | None = "key"
    records: dict[str, Resource] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    pairs: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {name: [] for name in PAIR_INDEXES})
    lookups: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: {name: {} for name in LOOKUP_INDEXES})
    examined: int = 0  # records the planner looked at, for /_sandbox/stats

    def _look_up(self, res: Resource, add: bool) -> None:
        for name in LOOKUP_INDEXES:
            value = res.get(name)
            if not isinstance(value, str):
                continue
            ids = self.lookups[name].setdefault(value, set())
            if add:
                ids.add(res["id"])
            else:
                ids.discard(res["id"])
                if not ids:
                    del self.lookups[name][value]

    def __len__(self) -> int:
        return len(self.records)

    def get(self, resource_id: str) -> Resource | None:
        return self.records.get(resource_id)

    def get_by_key(self, key: str) -> Resource | None:
        resource_id = self.by_key.get(key)
        return self.records.get(resource_id) if resource_id else None

    def load(self, resources: list[Resource]) -> None:
        """Bulk load (seeding): append everything, sort each index once."""
        for res in resources:
            self.records[res["id"]] = res
            key = res.get(self.key_field) if self.key_field else None
            if key:
                self.by_key[key] = res["id"]
        self.ids = sorted(self.records)
        for name in PAIR_INDEXES:
            self.pairs[name] = sorted((r[name], r["id"]) for r in self.records.values())
        self.lookups = {name: {} for name in LOOKUP_INDEXES}
        for res in self.records.values():
            self._look_up(res, add=True)

    def put(self, res: Resource) -> None:
        """Insert or replace a record, keeping every index sorted (O(log n) search + a memmove)."""
        rid = res["id"]
        old = self.records.get(rid)
        if old is None:
            bisect.insort(self.ids, rid)
        else:
            self._look_up(old, add=False)
        self._look_up(res, add=True)
        for name in PAIR_INDEXES:
            index = self.pairs[name]
            if old is not None:
                if old[name] == res[name]:
                    continue
                pos = bisect.bisect_left(index, (old[name], rid))
                if pos < len(index) and index[pos] == (old[name], rid):
                    del index[pos]
            bisect.insort(index, (res[name], rid))
        if self.key_field:
            if old is not None and old.get(self.key_field) and old.get(self.key_field) != res.get(self.key_field):
                self.by_key.pop(old[self.key_field], None)
            if res.get(self.key_field):
                self.by_key[res[self.key_field]] = rid
        self.records[rid] = res

    def delete(self, rid: str) -> Resource | None:
        old = self.records.pop(rid, None)
        if old is None:
            return None
        self._look_up(old, add=False)
        pos = bisect.bisect_left(self.ids, rid)
        if pos < len(self.ids) and self.ids[pos] == rid:
            del self.ids[pos]
        for name in PAIR_INDEXES:
            index = self.pairs[name]
            pos = bisect.bisect_left(index, (old[name], rid))
            if pos < len(index) and index[pos] == (old[name], rid):
                del index[pos]
        if self.key_field and old.get(self.key_field):
            self.by_key.pop(old[self.key_field], None)
        return old

    def all(self) -> Iterator[Resource]:
        return iter(self.records.values())


RESOURCE_PATHS = {
    "customers": "customer",
    "orders": "order",
    "carts": "cart",
    "payments": "payment",
    "messages": "message",
    "customer-groups": "customer-group",
    "stores": "store",
}


class Store:
    """Every collection of one project plus the per-resource message sequence numbers."""

    def __init__(self) -> None:
        self.collections: dict[str, Collection] = {
            "customers": Collection("customer"),
            "orders": Collection("order", key_field="orderNumber"),
            "carts": Collection("cart"),
            "payments": Collection("payment"),
            "messages": Collection("message", key_field=None),
            "customer-groups": Collection("customer-group"),
            "stores": Collection("store"),
        }
        # resource id -> last message sequenceNumber emitted for it (consecutive per resource)
        self.sequence: dict[str, int] = {}
        self.clock = Clock()
        # sku -> (product, {currency: (variant, price)}): the seeded catalog, for addLineItem by SKU
        self.catalog: dict[str, tuple[dict[str, Any], dict[str, tuple[dict[str, Any], dict[str, Any]]]]] = {}

    def by_type_id(self, type_id: str) -> Collection | None:
        for col in self.collections.values():
            if col.type_id == type_id:
                return col
        return None

    def resolve(self, ref: dict[str, Any]) -> Resource | None:
        col = self.by_type_id(str(ref.get("typeId")))
        if col is None:
            return None
        if "id" in ref:
            return col.get(str(ref["id"]))
        if "key" in ref:
            return col.get_by_key(str(ref["key"]))
        return None

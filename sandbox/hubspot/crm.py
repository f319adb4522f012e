"""CRM object operations behind the /crm/v3/objects routes: validation, unique-value conflicts,
property history, batch semantics (all-or-nothing vs. per-input 207), reads and merges.

Everything here is synchronous and runs on the event loop thread, so a batch is applied atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .associations import AssociationStore, check_type
from .errors import ApiError, conflict, not_found, property_errors, validation
from .objecttypes import BY_NAME, OBJECT_TYPES, ObjectType, lookup
from .properties import PropertyRegistry
from .store import EMAIL_INDEX, ObjectStore, Record, index_of, unique_values
from .values import ValueIssue, iso, issue_detail, normalize, now_ms

MAX_BATCH = 100
Source = tuple[str, str]  # (sourceType, sourceId) written into property history


@dataclass
class Plan:
    """One validated batch input, ready to apply."""

    record: Record | None  # None: create
    changes: dict[str, str]
    trace_id: str | None = None
    new: bool = False
    written: list[str] = field(default_factory=list)  # property names to echo in the result
    associations: list[tuple[ObjectType, str, Any]] = field(default_factory=list)


def _id_list(values: Any) -> list[str]:
    return [str(v) for v in values] if isinstance(values, list) else []


class Crm:
    def __init__(self, registry: PropertyRegistry, associations: AssociationStore,
                 lag: Callable[[], float]) -> None:
        self.registry = registry
        self.associations = associations
        self.lag = lag
        self.stores: dict[str, ObjectStore] = {}
        self.next_id = 1001
        self.last_ms = 0
        self.reset()

    def reset(self) -> None:
        self.stores = {ot.name: ObjectStore(ot) for ot in OBJECT_TYPES}
        self.next_id = 1001
        for ot in OBJECT_TYPES:
            for name in self.registry.unique_names(ot):
                self.stores[ot.name].ensure_index(name)

    def store(self, ot: ObjectType) -> ObjectStore:
        return self.stores[ot.name]

    def tick(self) -> int:
        """A write timestamp, strictly increasing so history order is unambiguous."""
        self.last_ms = max(now_ms(), self.last_ms + 1)
        return self.last_ms

    # ---- validation ----------------------------------------------------------------------------

    def check_props(self, ot: ObjectType, raw: Any, record: Record | None,
                    allow_read_only: bool = False) -> dict[str, str]:
        """Validated, normalised changes for `record` (None when creating). Raises a 400."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise validation("properties must be an object of property names to values")
        changes: dict[str, str] = {}
        details: list[dict[str, Any]] = []
        system = {"hs_object_id", ot.created_prop, ot.modified_prop}
        for name, value in raw.items():
            prop = self.registry.get(ot, name)
            if prop is None:
                details.append(issue_detail(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop["modificationMetadata"]["readOnlyValue"] and (not allow_read_only or name in system):
                details.append(issue_detail(name, "READ_ONLY_VALUE",
                                            f"{name} is a read only property; its value cannot be set."))
                continue
            current = record.props.get(name) if record else None
            try:
                changes[name] = normalize(prop, value, current)
            except ValueIssue as issue:
                details.append(issue_detail(name, issue.code, issue.message))
        if details:
            raise property_errors(details)
        if record is not None:
            self._forward_only(ot, record, changes)
            changes = {k: v for k, v in changes.items() if record.props.get(k, "") != v}
        return changes

    def _forward_only(self, ot: ObjectType, record: Record, changes: dict[str, str]) -> None:
        """lifecyclestage only moves forward: a backward set is dropped silently (clear first to go back)."""
        new, current = changes.get("lifecyclestage"), record.props.get("lifecyclestage")
        if ot.name != "contacts" or not new or not current:
            return
        order = [o["value"] for o in self.registry.require(ot, "lifecyclestage")["options"]]
        if new in order and current in order and order.index(new) < order.index(current):
            del changes["lifecyclestage"]

    def _check_unique(self, ot: ObjectType, record_id: str | None, changes: dict[str, str],
                      claims: dict[tuple[str, str], int], slot: int) -> None:
        store = self.store(ot)
        for name, value in changes.items():
            index = index_of(ot, name)
            if index not in store.unique:
                continue
            for key in unique_values(index, value):
                owner = store.owner(name, key)
                if owner is not None and owner != record_id:
                    raise self._conflict(ot, name, key, owner)
                claimant = claims.get((index, key))
                if claimant is not None and claimant != slot:
                    raise conflict(f"Duplicate value {key!r} for unique property {name} within this batch",
                                   {"propertyName": [name]})
                claims[(index, key)] = slot

    def _conflict(self, ot: ObjectType, name: str, key: str, owner: str) -> ApiError:
        if index_of(ot, name) == EMAIL_INDEX:
            return conflict(f"Contact already exists. Existing ID: {owner}")
        return conflict(f"{ot.label} already exists. Existing ID: {owner}. A {ot.singular} with the value "
                        f"\"{key}\" for the unique property \"{name}\" already exists.",
                        {"propertyName": [name], "existingId": [owner]})

    def check_id_property(self, ot: ObjectType, id_property: str | None, action: str,
                          allow_email: bool = True) -> str | None:
        if not id_property or (id_property == "hs_object_id" and action == "read"):
            return None
        prop = self.registry.get(ot, id_property)
        unique = prop is not None and prop["hasUniqueValue"]
        if id_property == "email" and ot.name == "contacts" and allow_email:
            unique = True
        if not unique:
            raise validation(f"Unable to perform {action} by non-unique {ot.type_id} property {id_property}",
                             {"idProperty": [id_property]})
        return id_property

    def find(self, ot: ObjectType, key: str, id_property: str | None, archived: bool = False) -> Record | None:
        store = self.store(ot)
        record = store.find(id_property, key) if id_property else store.resolve(key)
        if record is None or record.archived != archived:
            return None
        return record

    # ---- writes --------------------------------------------------------------------------------

    def apply(self, ot: ObjectType, plan: Plan, source: Source, ts: int) -> Record:
        store = self.store(ot)
        record = plan.record
        if record is None:
            record_id = str(self.next_id)
            self.next_id += 1
            stamp = iso(ts)
            record = Record(record_id, {"hs_object_id": record_id, ot.created_prop: stamp,
                                        ot.modified_prop: stamp}, ts, ts)
            store.records[record_id] = record
            plan.record = record
        else:
            store.unindex(record, list(plan.changes))
        for name, value in plan.changes.items():
            if value == "":
                record.props.pop(name, None)
            else:
                record.props[name] = value
            record.history.setdefault(name, []).append(
                {"value": value, "timestamp": ts, "sourceType": source[0], "sourceId": source[1]})
        if plan.changes and not plan.new:
            record.updated_ms = ts
            record.props[ot.modified_prop] = iso(ts)
        store.reindex(record, list(plan.changes))
        record.push_version(self.lag())
        for dst, dst_id, at in plan.associations:
            self.associations.add(ot, record.id, dst, dst_id, at)
        return record

    def _plan_create(self, ot: ObjectType, item: dict[str, Any], claims: dict[tuple[str, str], int],
                     slot: int) -> Plan:
        changes = self.check_props(ot, item.get("properties"), None)
        changes = {k: v for k, v in changes.items() if v != ""}
        self._check_unique(ot, None, changes, claims, slot)
        plan = Plan(None, changes, new=True, written=list(changes))
        for assoc in item.get("associations") or []:
            plan.associations.append(self._plan_association(ot, assoc))
        return plan

    def _plan_association(self, ot: ObjectType, assoc: Any) -> tuple[ObjectType, str, Any]:
        to_id = str((assoc.get("to") or {}).get("id", "")) if isinstance(assoc, dict) else ""
        types = assoc.get("types") if isinstance(assoc, dict) else None
        if not to_id or not types:
            raise validation("Each association needs to.id and types[]")
        first = types[0]
        for dst in OBJECT_TYPES:
            try:
                at = check_type(ot, dst, first.get("associationTypeId"), first.get("associationCategory"))
            except ApiError:
                continue
            if self.find(dst, to_id, None) is None:
                raise not_found(f"No {dst.singular} with ID {to_id} exists", {"toObjectId": [to_id]})
            return dst, to_id, at
        raise validation(f"associationTypeId {first.get('associationTypeId')} is not valid from {ot.singular}")

    def _plan_update(self, ot: ObjectType, item: dict[str, Any], id_property: str | None,
                     claims: dict[tuple[str, str], int], slot: int) -> Plan:
        key = str(item.get("id", ""))
        record = self.find(ot, key, id_property)
        if record is None:
            raise not_found(f"Could not find {ot.singular} with {id_property or 'id'} {key}", {"ids": [key]})
        changes = self.check_props(ot, item.get("properties"), record)
        self._check_unique(ot, record.id, changes, claims, slot)
        return Plan(record, changes, written=list(item.get("properties") or {}))

    def _plan_upsert(self, ot: ObjectType, item: dict[str, Any], claims: dict[tuple[str, str], int],
                     slot: int) -> Plan:
        id_property = self.check_id_property(ot, item.get("idProperty") or "hs_object_id", "update/upsert")
        key = str(item.get("id", ""))
        if not key:
            raise validation("Every upsert input needs an id (the idProperty value)")
        assert id_property is not None
        record = self.find(ot, key, id_property)
        props = dict(item.get("properties") or {})
        if record is not None:
            plan = self._plan_update(ot, {"id": record.id, "properties": props}, None, claims, slot)
            return plan
        props[id_property] = key
        plan = self._plan_create(ot, {"properties": props}, claims, slot)
        return plan

    def _duplicates(self, ot: ObjectType, inputs: list[dict[str, Any]], default_id_property: str | None) -> None:
        seen: set[str] = set()
        dupes: list[str] = []
        for item in inputs:
            key = str(item.get("id", ""))
            if (item.get("idProperty") or default_id_property) == "email":
                key = key.strip().lower()
            if key in seen and key not in dupes:
                dupes.append(key)
            seen.add(key)
        if dupes:
            raise validation(f"Duplicate IDs found in batch input: [{', '.join(dupes)}]. IDs must be unique",
                             {"ids": dupes})

    def batch_write(self, ot: ObjectType, kind: str, body: Any,
                    source: Source) -> tuple[list[Plan], list[dict[str, Any]]]:
        """Validate every input first; then either fail the whole batch (first error) or, when every
        input carries an objectWriteTraceId, write the good ones and report the bad ones (207)."""
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise validation("inputs must be a list of objects")
        if len(inputs) > MAX_BATCH:
            raise validation(f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH}",
                             {"inputs": [str(len(inputs))]})
        top_id_property = body.get("idProperty")
        if kind == "update":
            for item in inputs:
                self.check_id_property(ot, item.get("idProperty") or top_id_property, "update/upsert",
                                       allow_email=False)
            self._duplicates(ot, inputs, top_id_property)
        elif kind == "upsert":
            for item in inputs:
                self.check_id_property(ot, item.get("idProperty") or "hs_object_id", "update/upsert")
            self._duplicates(ot, inputs, None)
        traced = bool(inputs) and all(item.get("objectWriteTraceId") for item in inputs)
        claims: dict[tuple[str, str], int] = {}
        plans: list[Plan] = []
        errors: list[dict[str, Any]] = []
        for slot, item in enumerate(inputs):
            try:
                if kind == "create":
                    plan = self._plan_create(ot, item, claims, slot)
                elif kind == "update":
                    plan = self._plan_update(ot, item, item.get("idProperty") or top_id_property, claims, slot)
                else:
                    plan = self._plan_upsert(ot, item, claims, slot)
            except ApiError as exc:
                if not traced:
                    raise
                errors.append(exc.batch_error(str(item["objectWriteTraceId"])))
                continue
            plan.trace_id = item.get("objectWriteTraceId")
            plans.append(plan)
        ts = self.tick()
        for plan in plans:
            self.apply(ot, plan, source, ts)
        return plans, errors

    def update_one(self, ot: ObjectType, key: str, id_property: str | None, props: Any,
                   source: Source) -> Record:
        """Single PATCH: unlike batch/update, email works as idProperty here."""
        id_property = self.check_id_property(ot, id_property, "update/upsert")
        plan = self._plan_update(ot, {"id": key, "properties": props}, id_property, {}, 0)
        return self.apply(ot, plan, source, self.tick())

    def archive(self, ot: ObjectType, key: str) -> None:
        record = self.find(ot, key, None)
        if record is None:
            return
        store = self.store(ot)
        store.unindex(record)
        record.archived = True
        record.archived_ms = self.tick()
        record.push_version(0.0)  # archived records leave search at once
        self.associations.drop_object(ot, record.id)

    # ---- reads ---------------------------------------------------------------------------------

    def result(self, ot: ObjectType, record: Record, props: list[str] | None = None,
               history: list[str] | None = None, extra: list[str] | None = None) -> dict[str, Any]:
        if props is None:
            names = list(ot.default_props)
        else:
            names = [n for n in props if self.registry.get(ot, n) is not None]
            names += ["hs_object_id", ot.created_prop, ot.modified_prop]
        for name in extra or []:
            names.append(name)
        out: dict[str, Any] = {
            "id": record.id,
            "properties": {n: record.props.get(n) for n in dict.fromkeys(names)},
            "createdAt": iso(record.created_ms), "updatedAt": iso(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived and record.archived_ms:
            out["archivedAt"] = iso(record.archived_ms)
        if history:
            out["propertiesWithHistory"] = {n: self.history(ot, record, n) for n in history
                                            if self.registry.get(ot, n) is not None}
        return out

    def history(self, ot: ObjectType, record: Record, name: str) -> list[dict[str, Any]]:
        entries = record.history.get(name)
        if not entries:
            value = record.props.get(name)
            if value is None:
                return []
            entries = [{"value": value, "timestamp": record.updated_ms if name == ot.modified_prop
                        else record.created_ms, "sourceType": "CALCULATED", "sourceId": "system"}]
        return [{**e, "timestamp": iso(e["timestamp"])} for e in reversed(entries)]

    def batch_read(self, ot: ObjectType, body: Any, archived: bool) -> tuple[list[dict[str, Any]], list[str]]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise validation("inputs must be a list of {id} objects")
        inputs = body["inputs"]
        if len(inputs) > MAX_BATCH:
            raise validation(f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH}")
        id_property = self.check_id_property(ot, body.get("idProperty"), "read")
        self._duplicates(ot, [{"id": (i or {}).get("id")} for i in inputs], id_property)
        props = _id_list(body.get("properties")) or None
        history = _id_list(body.get("propertiesWithHistory")) or None
        results, missing = [], []
        for item in inputs:
            key = str((item or {}).get("id", ""))
            record = self.find(ot, key, id_property, archived)
            if record is None:
                missing.append(key)
            else:
                results.append(self.result(ot, record, props, history))
        return results, missing

    # ---- merge ---------------------------------------------------------------------------------

    def merge(self, ot: ObjectType, primary_id: str, other_id: str, source: Source) -> Record:
        """HubSpot's new merge: a NEW record (new id) replaces both; both old ids resolve to it."""
        store = self.store(ot)
        primary, other = self.find(ot, primary_id, None), self.find(ot, other_id, None)
        if primary is None or other is None:
            missing = primary_id if primary is None else other_id
            raise not_found(f"Could not find {ot.singular} with id {missing}", {"ids": [missing]})
        if primary.id == other.id:
            raise validation("Cannot merge a record with itself")
        ts = self.tick()
        props: dict[str, str] = {}
        for source_record in (other, primary):  # primary applied last: its values win
            props.update({k: v for k, v in source_record.props.items() if v})
        merged_ids = [primary.id, other.id]
        for rec in (primary, other):
            merged_ids += [i for i in rec.props.get("hs_merged_object_ids", "").split(";") if i]
        if ot.name == "contacts":
            extra: list[str] = []
            for rec in (primary, other):
                extra += [e for e in rec.props.get("hs_additional_emails", "").split(";") if e]
            if other.props.get("email"):
                extra.append(other.props["email"])
            primary_email = props.get("email")
            emails = [e for e in dict.fromkeys(extra) if e != primary_email]
            if emails:
                props["hs_additional_emails"] = ";".join(emails)
        for rec in (primary, other):
            store.unindex(rec)
            del store.records[rec.id]
        new_id = str(self.next_id)
        self.next_id += 1
        props.update({"hs_object_id": new_id, "hs_merged_object_ids": ";".join(dict.fromkeys(merged_ids)),
                      ot.modified_prop: iso(ts)})
        props[ot.created_prop] = iso(min(primary.created_ms, other.created_ms))
        history: dict[str, list[dict[str, Any]]] = {}
        for rec in (other, primary):
            for name, entries in rec.history.items():
                history.setdefault(name, []).extend(entries)
        for entries in history.values():
            entries.sort(key=lambda e: e["timestamp"])
        for name in ("hs_merged_object_ids", "hs_additional_emails"):
            if name in props:
                history.setdefault(name, []).append({"value": props[name], "timestamp": ts,
                                                     "sourceType": "MERGE", "sourceId": source[1]})
        record = Record(new_id, props, min(primary.created_ms, other.created_ms), ts, history=history)
        store.records[new_id] = record
        for old in (primary.id, other.id):
            store.aliases[old] = new_id
            self.associations.move(ot, old, new_id)
        store.reindex(record)
        record.push_version(self.lag())
        return record

    # ---- sandbox-only --------------------------------------------------------------------------

    def seed(self, ot: ObjectType, props: Any, source: Source, indexed_now: bool) -> Record:
        changes = self.check_props(ot, props, None, allow_read_only=True)
        changes = {k: v for k, v in changes.items() if v != ""}
        self._check_unique(ot, None, changes, {}, 0)
        record = self.apply(ot, Plan(None, changes, new=True), source, self.tick())
        if indexed_now:
            record.versions = [(0.0, dict(record.props))]
        return record

    def edit(self, ot: ObjectType, key: str, props: Any, source: Source) -> Record:
        record = self.find(ot, key, None)
        if record is None:
            raise not_found(f"Could not find {ot.singular} {key}")
        changes = self.check_props(ot, props, record, allow_read_only=True)
        self._check_unique(ot, record.id, changes, {}, 0)
        return self.apply(ot, Plan(record, changes), source, self.tick())

    def to_json(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "stores": {n: s.to_json() for n, s in self.stores.items()}}

    def load(self, data: dict[str, Any]) -> None:
        self.next_id = data["next_id"]
        for name, store_data in data["stores"].items():
            ot = BY_NAME[name]
            self.stores[name].load(store_data, self.registry.unique_names(ot))


def object_type_or_none(segment: str) -> ObjectType | None:
    return lookup(segment)

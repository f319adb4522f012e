"""Records of one object type, with dict indexes for every unique value (emails, hasUniqueValue
properties) so lookups cost the same at 100,000 records as at 1,000, and per-record "indexed
snapshots" that the search endpoint reads, so search lags writes as HubSpot's index does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .objecttypes import ObjectType

EMAIL_INDEX = "email"  # contacts: `email` and `hs_additional_emails` share one case-insensitive index

HistoryEntry = dict[str, Any]  # {value, timestamp (ms), sourceType, sourceId}


@dataclass
class Record:
    id: str
    props: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    # (monotonic time it becomes visible to search, properties then, or None = not searchable)
    versions: list[tuple[float, dict[str, str] | None]] = field(default_factory=list)

    def indexed_view(self, now: float) -> dict[str, str] | None:
        """The properties search sees at `now`: the newest snapshot whose lag has passed."""
        seen: dict[str, str] | None = None
        for visible_at, snapshot in self.versions:
            if visible_at > now:
                break
            seen = snapshot
        return seen

    def push_version(self, lag: float) -> None:
        now = time.monotonic()
        snapshot = None if self.archived else dict(self.props)
        # Keep the newest already-visible snapshot plus every pending one; drop older ones.
        keep_from = 0
        for i, (visible_at, _) in enumerate(self.versions):
            if visible_at <= now:
                keep_from = i
        self.versions = [*self.versions[keep_from:], (now + lag, snapshot)]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "props": self.props, "created_ms": self.created_ms,
                "updated_ms": self.updated_ms, "archived": self.archived, "archived_ms": self.archived_ms,
                "history": self.history}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        record = cls(data["id"], data["props"], data["created_ms"], data["updated_ms"], data["archived"],
                     data.get("archived_ms"), data["history"])
        record.versions = [(0.0, None if record.archived else dict(record.props))]
        return record


def unique_values(index: str, value: str) -> list[str]:
    """The index keys a stored value claims (emails: each ';'-separated address, lower-cased)."""
    if not value:
        return []
    if index == EMAIL_INDEX:
        return [v.strip().lower() for v in value.split(";") if v.strip()]
    return [value]


def index_of(ot: ObjectType, prop: str) -> str:
    if ot.name == "contacts" and prop in ("email", "hs_additional_emails"):
        return EMAIL_INDEX
    return prop


class ObjectStore:
    """All records of one object type. Archived records stay (restorable) but release unique values."""

    def __init__(self, ot: ObjectType) -> None:
        self.ot = ot
        self.records: dict[str, Record] = {}
        self.aliases: dict[str, str] = {}  # merged-away id -> the id that replaced it
        self.unique: dict[str, dict[str, str]] = {}  # index name -> value -> record id
        if ot.name == "contacts":
            self.unique[EMAIL_INDEX] = {}

    def resolve(self, record_id: str) -> Record | None:
        seen = 0
        while record_id in self.aliases and seen < 1000:
            record_id = self.aliases[record_id]
            seen += 1
        return self.records.get(record_id)

    def ensure_index(self, prop: str) -> None:
        name = index_of(self.ot, prop)
        if name in self.unique:
            return
        index: dict[str, str] = {}
        for record in self.records.values():
            if not record.archived:
                for key in unique_values(name, record.props.get(prop, "")):
                    index.setdefault(key, record.id)
        self.unique[name] = index

    def find(self, prop: str, value: str) -> Record | None:
        name = index_of(self.ot, prop)
        index = self.unique.get(name)
        if index is None:
            return None
        key = value.strip().lower() if name == EMAIL_INDEX else value
        record_id = index.get(key)
        return self.records.get(record_id) if record_id else None

    def owner(self, prop: str, key: str) -> str | None:
        index = self.unique.get(index_of(self.ot, prop))
        return index.get(key) if index is not None else None

    def unindex(self, record: Record, props: list[str] | None = None) -> None:
        for prop in props if props is not None else list(record.props):
            index = self.unique.get(index_of(self.ot, prop))
            if index is None:
                continue
            for key in unique_values(index_of(self.ot, prop), record.props.get(prop, "")):
                if index.get(key) == record.id:
                    del index[key]

    def reindex(self, record: Record, props: list[str] | None = None) -> None:
        if record.archived:
            return
        for prop in props if props is not None else list(record.props):
            index = self.unique.get(index_of(self.ot, prop))
            if index is None:
                continue
            for key in unique_values(index_of(self.ot, prop), record.props.get(prop, "")):
                index[key] = record.id

    def to_json(self) -> dict[str, Any]:
        return {"records": [r.to_json() for r in self.records.values()], "aliases": self.aliases}

    def load(self, data: dict[str, Any], unique_props: list[str]) -> None:
        self.records = {r["id"]: Record.from_json(r) for r in data["records"]}
        self.aliases = data["aliases"]
        self.unique = {}
        if self.ot.name == "contacts":
            self.unique[EMAIL_INDEX] = {}
            for record in self.records.values():
                self.reindex(record, ["email", "hs_additional_emails"])
        for prop in unique_props:
            self.ensure_index(prop)

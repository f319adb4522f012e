"""Custom behavioural events: definitions (`pe{portalId}_{name}`) and sends, de-duplicated by
`uuid` per event type (the first one wins), kept for inspection."""

from __future__ import annotations

import re
import uuid
from typing import Any

from .errors import conflict, validation
from .values import iso, now_ms, parse_datetime_ms

MAX_BATCH = 500
PRIMARY_OBJECTS = frozenset({"CONTACT", "COMPANY", "DEAL", "TICKET"})


class Events:
    def __init__(self, portal_id: int) -> None:
        self.portal_id = portal_id
        self.definitions: dict[str, dict[str, Any]] = {}  # fullyQualifiedName -> definition
        self.sent: list[dict[str, Any]] = []
        self.seen: dict[str, set[str]] = {}  # fullyQualifiedName -> uuids
        self.duplicates_rejected = 0

    def reset(self) -> None:
        self.definitions.clear()
        self.sent.clear()
        self.seen.clear()
        self.duplicates_rejected = 0

    def define(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("label") or not body.get("name"):
            raise validation("An event definition needs a label and a name")
        name = str(body["name"])
        if len(name) > 50 or not re.fullmatch(r"[a-z0-9_]+", name):
            raise validation("Event names are at most 50 characters of lower-case letters, digits and _")
        primary = str(body.get("primaryObject") or "CONTACT").upper()
        if primary not in PRIMARY_OBJECTS:
            raise validation(f"primaryObject {primary} is not supported for custom events",
                             {"primaryObject": [primary]})
        fqn = f"pe{self.portal_id}_{name}"
        if fqn in self.definitions:
            raise conflict(f"An event definition named {name} already exists", {"name": [name]})
        props = []
        for raw in body.get("propertyDefinitions") or []:
            if not isinstance(raw, dict) or not raw.get("name") or not raw.get("type"):
                raise validation("Every propertyDefinition needs a name and a type")
            props.append({"name": raw["name"], "label": raw.get("label", raw["name"]), "type": raw["type"],
                          "options": raw.get("options", []), "description": raw.get("description", "")})
        definition = {"id": str(uuid.uuid4().int % 10**8), "labels": {"singular": body["label"], "plural": None},
                      "name": name, "fullyQualifiedName": fqn, "description": body.get("description", ""),
                      "primaryObject": primary, "objectTypeId": {"CONTACT": "0-1", "COMPANY": "0-2", "DEAL": "0-3",
                                                                 "TICKET": "0-5"}[primary],
                      "properties": props, "associations": [], "archived": False,
                      "createdAt": iso(now_ms())}
        self.definitions[fqn] = definition
        return definition

    def _definition(self, event_name: str) -> dict[str, Any]:
        found = self.definitions.get(event_name) or self.definitions.get(f"pe{self.portal_id}_{event_name}")
        if found is None:
            raise validation(f"Event {event_name!r} does not exist: define it first", {"eventName": [event_name]})
        return found

    def _check(self, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(body, dict) or not body.get("eventName"):
            raise validation("eventName is required")
        definition = self._definition(str(body["eventName"]))
        if not any(body.get(k) for k in ("objectId", "email", "utk")):
            raise validation("One of objectId, email or utk is required")
        occurred = body.get("occurredAt")
        occurred_ms = now_ms() if occurred is None else parse_datetime_ms(str(occurred))
        if occurred_ms is None:
            raise validation(f"occurredAt {occurred!r} is not a valid timestamp")
        props = body.get("properties") or {}
        known = {p["name"] for p in definition["properties"]}
        unknown = [k for k in props if k not in known]
        if unknown:
            raise validation(f"Unknown event properties: {unknown}", {"propertyName": unknown})
        if len(props) > 50:
            raise validation("At most 50 properties per event occurrence")
        occurrence = {"eventName": definition["fullyQualifiedName"], "objectId": body.get("objectId"),
                      "email": body.get("email"), "utk": body.get("utk"), "occurredAt": iso(occurred_ms),
                      "properties": props, "uuid": str(body.get("uuid") or uuid.uuid4()),
                      "receivedAt": iso(now_ms())}
        return definition, occurrence

    def send(self, body: Any) -> None:
        definition, occurrence = self._check(body)
        if not self._store(definition, occurrence):
            raise conflict(f"An event with uuid {occurrence['uuid']} was already sent for "
                           f"{definition['fullyQualifiedName']}; duplicates are rejected",
                           {"uuid": [occurrence["uuid"]]})

    def send_batch(self, body: Any) -> list[str]:
        """Validate all (a bad one fails the batch), store all new ones; returns rejected duplicate uuids."""
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise validation("inputs must be a list")
        if len(inputs) > MAX_BATCH:
            raise validation(f"At most {MAX_BATCH} events per batch")
        checked = [self._check(item) for item in inputs]
        return [occ["uuid"] for definition, occ in checked if not self._store(definition, occ)]

    def _store(self, definition: dict[str, Any], occurrence: dict[str, Any]) -> bool:
        seen = self.seen.setdefault(definition["fullyQualifiedName"], set())
        if occurrence["uuid"] in seen:
            self.duplicates_rejected += 1
            return False
        seen.add(occurrence["uuid"])
        self.sent.append(occurrence)
        return True

    def to_json(self) -> dict[str, Any]:
        return {"definitions": self.definitions, "sent": self.sent}

    def load(self, data: dict[str, Any]) -> None:
        self.definitions = data["definitions"]
        self.sent = data["sent"]
        self.seen = {}
        for occ in self.sent:
            self.seen.setdefault(occ["eventName"], set()).add(occ["uuid"])



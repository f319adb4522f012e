"""HubSpot custom events (`/events/v3/send`): definitions and idempotent sends.

Every occurrence carries a deterministic uuid (uuid5 of what it is about), and HubSpot rejects a
uuid it has seen for the event type within a year: replays, retries and duplicated messages never
land twice. A batch answered 409 for duplicates has stored the new ones, so 409 counts as sent.
"""

from __future__ import annotations

import uuid
from typing import Any

from sync_tasks.errors import ConflictError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.limiter import Bucket

NAMESPACE = uuid.UUID("6f1c1f0e-3c43-4c7e-9a57-7c1d0b1e5c2a")  # ctsync's uuid5 namespace: never change it
BATCH = 500


def event_uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def ensure_definition(hubspot: HubSpotClient, name: str, label: str, properties: list[str]) -> str:
    """Create the event definition when missing; return its fully qualified name."""
    existing = hubspot.get("/events/v3/event-definitions").get("results", [])
    for definition in existing:
        if definition.get("name") == name:
            return str(definition.get("fullyQualifiedName") or name)
    body = {"label": label, "name": name, "primaryObject": "CONTACT",
            "propertyDefinitions": [{"name": p, "label": p, "type": "string"} for p in properties]}
    try:
        created = hubspot.post("/events/v3/event-definitions", body)
    except ConflictError:
        return ensure_definition(hubspot, name, label, properties)
    return str(created.get("fullyQualifiedName") or name)


def send(hubspot: HubSpotClient, occurrences: list[dict[str, Any]]) -> int:
    """Send occurrences ({eventName, objectId|email, occurredAt, properties, uuid}) in batches."""
    for i in range(0, len(occurrences), BATCH):
        part = occurrences[i:i + BATCH]
        try:
            hubspot.post("/events/v3/send/batch", {"inputs": part}, bucket=Bucket.NONE)
        except ConflictError:
            pass  # duplicates refused by uuid: they were sent before
    return len(occurrences)

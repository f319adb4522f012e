"""Message emission: the Message base shape (RAML `Message.raml`) with a per-resource consecutive
`sequenceNumber` and the resource's new version as `resourceVersion`."""

from __future__ import annotations

import uuid
from typing import Any

from .store import Resource, Store

CLIENT = {"clientId": "ctsync-sandbox", "isPlatformClient": False}


def user_provided_identifiers(type_id: str, res: Resource) -> dict[str, Any] | None:
    """`resourceUserProvidedIdentifiers`: the human keys of the resource, when it has any."""
    ids: dict[str, Any] = {}
    if res.get("key"):
        ids["key"] = res["key"]
    if type_id == "order" and res.get("orderNumber"):
        ids["orderNumber"] = res["orderNumber"]
    if type_id == "customer" and res.get("customerNumber"):
        ids["customerNumber"] = res["customerNumber"]
    return ids or None


def build_message(message_id: str, created_at: str, type_id: str, res: Resource, sequence: int,
                  resource_version: int, message_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": message_id,
        "version": 1,
        "sequenceNumber": sequence,
        "resource": {"typeId": type_id, "id": res["id"]},
        "resourceVersion": resource_version,
        "type": message_type,
    }
    identifiers = user_provided_identifiers(type_id, res)
    if identifiers:
        msg["resourceUserProvidedIdentifiers"] = identifiers
    msg.update(payload)
    msg["createdAt"] = created_at
    msg["lastModifiedAt"] = created_at
    msg["lastModifiedBy"] = CLIENT
    msg["createdBy"] = CLIENT
    return msg


def emit(store: Store, type_id: str, res: Resource, message_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Record one message for a change that has just produced `res` (its new version)."""
    sequence = store.sequence.get(res["id"], 0) + 1
    store.sequence[res["id"]] = sequence
    msg = build_message(str(uuid.uuid4()), res["lastModifiedAt"], type_id, res, sequence, res["version"],
                        message_type, payload)
    store.collections["messages"].put(msg)
    return msg

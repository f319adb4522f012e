"""Pipelines API for deals and orders. Stage ids are generated (they differ per portal in HubSpot),
and the pipeline / stage properties' options are kept in step so record writes are validated."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .errors import ApiError, validation
from .objecttypes import BY_NAME, ObjectType
from .properties import PIPELINE_PROPS, PropertyRegistry
from .values import iso, now_ms

_DEAL_STAGES = [("appointmentscheduled", "Appointment Scheduled", "false"),
                ("qualifiedtobuy", "Qualified To Buy", "false"),
                ("presentationscheduled", "Presentation Scheduled", "false"),
                ("decisionmakerboughtin", "Decision Maker Bought-In", "false"),
                ("contractsent", "Contract Sent", "false"), ("closedwon", "Closed Won", "true"),
                ("closedlost", "Closed Lost", "true")]
_ORDER_STAGES = [("Open", "OPEN"), ("Paid", "OPEN"), ("Processed", "OPEN"), ("Shipped", "CLOSED"),
                 ("Cancelled", "CLOSED"), ("Refunded", "CLOSED")]


def _stage(stage_id: str, label: str, order: int, metadata: dict[str, Any]) -> dict[str, Any]:
    stamp = iso(now_ms())
    return {"id": stage_id, "label": label, "displayOrder": order, "metadata": metadata,
            "createdAt": stamp, "updatedAt": stamp, "archived": False,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}


def _pipeline(pipeline_id: str, label: str, stages: list[dict[str, Any]], order: int = 0) -> dict[str, Any]:
    stamp = iso(now_ms())
    return {"id": pipeline_id, "label": label, "displayOrder": order, "stages": stages, "createdAt": stamp,
            "updatedAt": stamp, "archived": False}


class Pipelines:
    def __init__(self, registry: PropertyRegistry, portal_id: int) -> None:
        self.registry = registry
        self.portal_id = portal_id
        self.by_type: dict[str, list[dict[str, Any]]] = {}
        self.reset()

    def reset(self) -> None:
        deals = _pipeline("default", "Sales Pipeline", [
            _stage(sid, label, i, {"isClosed": closed, "probability": "1.0" if sid == "closedwon" else
                                   "0.0" if sid == "closedlost" else "0.2"})
            for i, (sid, label, closed) in enumerate(_DEAL_STAGES)])
        # Order pipeline/stage ids look random and differ per portal, but stay stable across resets.
        orders = _pipeline(self._uid("pipeline"), "Orders Pipeline", [
            _stage(self._uid(label), label, i, {"state": state}) for i, (label, state) in enumerate(_ORDER_STAGES)])
        self.by_type = {"deals": [deals], "orders": [orders]}
        self.sync_options()

    def _uid(self, name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hubspot-sandbox/{self.portal_id}/orders/{name}"))

    def sync_options(self) -> None:
        for type_name, (pipe_prop, stage_prop) in PIPELINE_PROPS.items():
            ot = BY_NAME[type_name]
            pipes = self.by_type[type_name]
            self.registry.set_options(ot, pipe_prop, [(p["id"], p["label"]) for p in pipes])
            self.registry.set_options(ot, stage_prop, [(s["id"], s["label"]) for p in pipes for s in p["stages"]])

    def _list(self, ot: ObjectType) -> list[dict[str, Any]]:
        if ot.name not in self.by_type:
            raise validation(f"Pipelines are not supported for object type {ot.name}")
        return self.by_type[ot.name]

    def all(self, ot: ObjectType) -> list[dict[str, Any]]:
        return self._list(ot)

    def get(self, ot: ObjectType, pipeline_id: str) -> dict[str, Any]:
        for pipe in self._list(ot):
            if pipe["id"] == pipeline_id:
                return pipe
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Pipeline {pipeline_id} does not exist")

    def create(self, ot: ObjectType, body: Any) -> dict[str, Any]:
        pipes = self._list(ot)
        if not isinstance(body, dict) or not body.get("label") or not isinstance(body.get("stages"), list) \
                or not body["stages"]:
            raise validation("A pipeline needs a label and at least one stage")
        if any(p["label"] == body["label"] for p in pipes):
            raise ApiError(409, "CONFLICT", f"A pipeline labelled {body['label']!r} already exists")
        stages = []
        for i, raw in enumerate(body["stages"]):
            if not isinstance(raw, dict) or not raw.get("label"):
                raise validation("Every stage needs a label")
            metadata = dict(raw.get("metadata") or {})
            if ot.name == "orders" and metadata.get("state") not in ("OPEN", "CLOSED"):
                raise validation("Order pipeline stages need metadata.state OPEN or CLOSED",
                                 {"stage": [str(raw["label"])]})
            if ot.name == "deals":
                metadata.setdefault("isClosed", "false")
                metadata.setdefault("probability", "0.5")
            stages.append(_stage(str(uuid.uuid4().int % 10**9), raw["label"], int(raw.get("displayOrder", i)),
                                 metadata))
        pipe = _pipeline(str(uuid.uuid4().int % 10**9), body["label"], stages,
                         int(body.get("displayOrder", len(pipes))))
        pipes.append(pipe)
        self.sync_options()
        return pipe

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.by_type)

    def restore(self, data: dict[str, Any]) -> None:
        self.by_type = data
        self.sync_options()

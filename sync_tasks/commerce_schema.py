"""HubSpot schema for commerce: the properties orders, carts, line items (and contact rollups) need,
and the order pipeline whose stages orderState/paymentState map to. Part of `ctsync setup`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sync_tasks.constants import Keys
from sync_tasks.errors import ConflictError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.lifecycle import property_specs as lifecycle_property_specs
from sync_tasks.order_mapping import CART_ID_PROPERTY, LINE_ITEM_ID_PROPERTY, ORDER_ID_PROPERTY
from sync_tasks.schema import GROUP, SetupReport, setup_schema
from sync_tasks.settings import Settings


def _prop(name: str, label: str, type_: str = "string", field_type: str = "text", unique: bool = False
          ) -> dict[str, Any]:
    return {"name": name, "label": label, "type": type_, "fieldType": field_type, "groupName": GROUP["name"],
            "hasUniqueValue": unique, "description": "Written by ctsync from commercetools."}


def commerce_properties(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    optional: dict[str, list[dict[str, Any]]] = {}
    if settings.orders_as_deals:
        optional["deals"] = [_prop(ORDER_ID_PROPERTY, "commercetools order id", unique=True)]
    if settings.products_by_sku:
        optional["products"] = [_prop("ct_sku", "commercetools SKU", unique=True)]
    return optional | {
        "orders": [
            _prop(ORDER_ID_PROPERTY, "commercetools order id", unique=True),
            _prop("ct_order_state", "commercetools order state"),
            _prop("ct_payment_state", "commercetools payment state"),
            _prop("ct_shipment_state", "commercetools shipment state"),
            _prop("ct_completed_at", "commercetools completed at"),
            _prop("ct_locale", "commercetools locale"),
            _prop("ct_refunded_amount", "refunded amount", "number", "number"),
            _prop("ct_return_state", "return state"),
            _prop("ct_last_event_type", "last commercetools event"),
            _prop("ct_last_event_at", "last commercetools event at", "datetime", "date"),
        ],
        "line_items": [
            _prop(LINE_ITEM_ID_PROPERTY, "commercetools line item key", unique=True),
            _prop("ct_tax_amount", "tax amount", "number", "number"),
            _prop("ct_tax_rate", "tax rate"),
            *[_prop(f"ct_attr_{a}", f"attribute {a}") for a in settings.line_item_attributes],
        ],
        "carts": [
            _prop(CART_ID_PROPERTY, "commercetools cart id", unique=True),
            _prop("ct_cart_state", "commercetools cart state"),
            _prop("ct_abandoned", "abandoned", "bool", "booleancheckbox"),
            _prop("ct_last_modified_at", "commercetools last modified"),
        ],
        "contacts": [
            _prop("ct_order_count", "commercetools orders", "number", "number"),
            _prop("ct_first_order_date", "first order date", "datetime", "date"),
            _prop("ct_last_order_date", "last order date", "datetime", "date"),
            _prop("ct_revenue_by_currency", "revenue by currency"),
            _prop("ct_total_revenue", f"revenue in {settings.reporting_currency}", "number", "number"),
            _prop("ct_last_payment_state", "last payment state"),
            _prop("ct_last_event_type", "last commercetools event"),
            _prop("ct_last_event_at", "last commercetools event at", "datetime", "date"),
            *[_prop(name, label, t, f) for name, label, t, f in lifecycle_property_specs(settings)],
        ],
    }


def stage_labels(settings: Settings) -> list[str]:
    labels = [settings.order_default_stage]
    for rule in settings.order_stage_rules:
        label = rule.split("->", 1)[1].strip()
        if label not in labels:
            labels.append(label)
    return labels


@dataclass
class PipelineInfo:
    pipeline_id: str
    stages: dict[str, str]  # label -> stage id


def ensure_order_pipeline(hubspot: HubSpotClient, settings: Settings) -> PipelineInfo:
    """Find or create the order pipeline; stage ids differ per portal, so we look them up by label."""
    wanted = stage_labels(settings)
    pipes = hubspot.get("/crm/v3/pipelines/orders").get("results", [])
    pipe = next((p for p in pipes if p.get("label") == settings.order_pipeline_label), None)
    if pipe is None:
        stages = [{"label": label, "displayOrder": i,
                   "metadata": {"state": "CLOSED" if label in settings.order_closed_stages else "OPEN"}}
                  for i, label in enumerate(wanted)]
        try:
            pipe = hubspot.post("/crm/v3/pipelines/orders", {"label": settings.order_pipeline_label,
                                                             "displayOrder": 0, "stages": stages})
        except ConflictError:
            pipes = hubspot.get("/crm/v3/pipelines/orders").get("results", [])
            pipe = next(p for p in pipes if p.get("label") == settings.order_pipeline_label)
    assert pipe is not None
    stages_by_label = {s["label"]: str(s["id"]) for s in pipe.get("stages", [])}
    missing = [label for label in wanted if label not in stages_by_label]
    if missing:
        raise RuntimeError(f"order pipeline {settings.order_pipeline_label!r} lacks stages {missing}; "
                           "add them in HubSpot or change ORDER_STAGE_RULES")
    return PipelineInfo(str(pipe["id"]), stages_by_label)


def setup_commerce(hubspot: HubSpotClient, settings: Settings, r: Any) -> tuple[SetupReport, PipelineInfo]:
    report = setup_schema(hubspot, commerce_properties(settings))
    info = ensure_order_pipeline(hubspot, settings)
    r.set(Keys.order_pipeline(), json.dumps({"pipeline_id": info.pipeline_id, "stages": info.stages}))
    return report, info


def cached_pipeline(r: Any) -> PipelineInfo | None:
    raw = r.get(Keys.order_pipeline())
    if not raw:
        return None
    data = json.loads(raw)
    return PipelineInfo(data["pipeline_id"], data["stages"])


def stage_for(order: dict[str, Any], settings: Settings) -> str:
    """The stage label of an order by the configured rules (first match wins)."""
    for rule in settings.order_stage_rules:
        condition, _, label = rule.partition("->")
        field, _, value = condition.partition("=")
        if str(order.get(field.strip())) == value.strip():
            return label.strip()
    return settings.order_default_stage


def setup_all(hubspot: HubSpotClient, settings: Settings, r: Any) -> SetupReport:
    """Everything `ctsync setup` provisions: contact/company properties, commerce properties, the
    order pipeline. Idempotent."""
    report = setup_schema(hubspot)
    commerce, _ = setup_commerce(hubspot, settings, r)
    report.created_groups += commerce.created_groups
    report.created += commerce.created
    report.existing += commerce.existing
    return report

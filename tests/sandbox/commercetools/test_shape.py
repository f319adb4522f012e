"""Responses have the field names and JSON types of the official commercetools examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import EXAMPLES, Api

# Free-form values whose type legitimately varies (attribute values, custom fields).
FREE_FORM = {"value", "fields"}
# Fields of each example that every resource of that kind has (the rest are optional in the API).
REQUIRED = {
    "customer": ["id", "version", "createdAt", "lastModifiedAt", "email", "addresses", "shippingAddressIds",
                 "billingAddressIds", "isEmailVerified", "stores", "authenticationMode", "customerGroupAssignments"],
    "order": ["type", "id", "version", "createdAt", "lastModifiedAt", "totalPrice", "orderState", "syncInfo",
              "returnInfo", "refusedGifts", "taxMode", "inventoryMode", "taxRoundingMode", "lineItems",
              "customLineItems", "discountCodes", "origin", "shipping", "shippingMode"],
    "cart": ["type", "id", "version", "createdAt", "lastModifiedAt", "lineItems", "cartState", "totalPrice",
             "shippingMode", "shipping", "customLineItems", "discountCodes", "directDiscounts", "inventoryMode",
             "taxMode", "priceRoundingMode", "taxRoundingMode", "taxCalculationMode", "refusedGifts", "origin",
             "itemShippingAddresses"],
    "payment": ["id", "version", "amountPlanned", "paymentMethodInfo", "paymentStatus", "transactions",
                "interfaceInteractions", "createdAt", "lastModifiedAt"],
    "message": ["id", "version", "sequenceNumber", "resource", "resourceVersion", "type", "createdAt",
                "lastModifiedAt"],
    "store": ["id", "version", "key", "languages", "countries", "distributionChannels", "supplyChannels",
              "productSelections", "createdAt", "lastModifiedAt"],
    "customer-group": ["id", "version", "name", "createdAt", "lastModifiedAt"],
}
EXAMPLE_FILES = {"customer": "customers", "order": "orders", "cart": "carts", "payment": "payments",
                 "message": "messages", "store": "stores", "customer-group": None}


def json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(v)]


def compare(ours: Any, example: Any, path: str, problems: list[str]) -> None:
    if json_type(ours) != json_type(example):
        problems.append(f"{path}: {json_type(ours)} != example {json_type(example)}")
        return
    if isinstance(ours, dict):
        for key in ours.keys() & example.keys():
            if key not in FREE_FORM:
                compare(ours[key], example[key], f"{path}.{key}", problems)
    elif isinstance(ours, list) and example:
        for i, item in enumerate(ours):
            compare(item, example[min(i, len(example) - 1)] if path.endswith("attributes") else example[0],
                    f"{path}[{i}]", problems)


@pytest.mark.parametrize("kind", list(REQUIRED))
def test_shapes_match_examples(api: Api, kind: str) -> None:
    example = json.loads((EXAMPLES / f"{kind}.example.json").read_text())
    path = "/customer-groups" if kind == "customer-group" else f"/{kind}s"
    page = api.ok(path, {"limit": 200})
    listing = EXAMPLE_FILES[kind]
    if listing:
        paged_example = json.loads((EXAMPLES / f"{listing}.example.json").read_text())
        assert list(page) == list(paged_example)
        compare({k: v for k, v in page.items() if k != "results"},
                {k: v for k, v in paged_example.items() if k != "results"}, "page", [])
    assert page["results"]
    problems: list[str] = []
    for res in page["results"]:
        for field in REQUIRED[kind]:
            if field not in res:
                problems.append(f"{res['id']}: missing {field}")
        compare(res, example, kind, problems)
    assert not problems, problems[:20]


def test_error_shape_matches_example(api: Api) -> None:
    example = json.loads((EXAMPLES / "ErrorResponse.json").read_text())
    body = api.get("/customers", {"where": "???"}).json()
    problems: list[str] = []
    compare(body, example, "error", problems)
    assert not problems and set(body) == set(example)

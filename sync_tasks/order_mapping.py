"""commercetools orders, carts and their line items → HubSpot order, cart and line item properties.

Pure functions. Line items are keyed by parent: the same commercetools line on a cart and on its
order must be two HubSpot line items, because a HubSpot line item belongs to exactly one parent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sync_tasks import money
from sync_tasks.mapping import MAX_STRING

ORDER_ID_PROPERTY = "ct_order_id"
CART_ID_PROPERTY = "ct_cart_id"
LINE_ITEM_ID_PROPERTY = "ct_line_item_id"

REFUND_TYPES = ("Refund", "Chargeback")


def _clip(value: Any) -> str:
    text = "" if value is None else str(value)
    return text[:MAX_STRING]


def localized(value: Any, locale: str | None) -> str:
    """A LocalizedString picked by locale, then its language, then English, then any."""
    if not isinstance(value, dict):
        return _clip(value)
    for key in (locale, (locale or "").split("-")[0], "en", "en-US", "en-GB"):
        if key and value.get(key):
            return _clip(value[key])
    return _clip(next(iter(value.values()), ""))


def _street(address: dict[str, Any]) -> str:
    return " ".join(str(p).strip() for p in (address.get("streetName"), address.get("streetNumber")) if p)


def _address(prefix: str, address: dict[str, Any] | None) -> dict[str, str]:
    a = address or {}
    return {
        f"{prefix}_street": _clip(_street(a)),
        f"{prefix}_city": _clip(a.get("city")),
        f"{prefix}_state": _clip(a.get("state") or a.get("region")),
        f"{prefix}_postal_code": _clip(a.get("postalCode")),
        f"{prefix}_country": _clip(a.get("country")),
    }


def _payments(order: dict[str, Any]) -> list[dict[str, Any]]:
    refs = (order.get("paymentInfo") or {}).get("payments") or []
    return [r["obj"] for r in refs if isinstance(r, dict) and r.get("obj")]


def refunded_amount(order: dict[str, Any]) -> Decimal:
    """Successful Refund and Chargeback transactions of the order's payments (expanded)."""
    total = Decimal(0)
    for payment in _payments(order):
        for tx in payment.get("transactions") or []:
            if tx.get("type") in REFUND_TYPES and tx.get("state") == "Success":
                total += money.to_decimal(tx.get("amount")) or Decimal(0)
    return total


def return_state(order: dict[str, Any]) -> str:
    """The states of the order's returns, e.g. 'Returned/Refunded'; '' without returns."""
    states = sorted({f"{i.get('shipmentState', '')}/{i.get('paymentState', '')}"
                     for info in order.get("returnInfo") or [] for i in info.get("items") or []})
    return ";".join(states)


def line_discount(item: dict[str, Any]) -> Decimal:
    off = Decimal(0)
    for part in item.get("discountedPricePerQuantity") or []:
        qty = int(part.get("quantity", 0))
        for included in (part.get("discountedPrice") or {}).get("includedDiscounts") or []:
            off += (money.to_decimal(included.get("discountedAmount")) or Decimal(0)) * qty
    return off


def order_discount(order: dict[str, Any]) -> Decimal:
    on_total = money.to_decimal((order.get("discountOnTotalPrice") or {}).get("discountedAmount")) or Decimal(0)
    return on_total + sum((line_discount(i) for i in order.get("lineItems") or []), Decimal(0))


def map_order(order: dict[str, Any], stage: tuple[str, str] | None) -> dict[str, str]:
    """Order → HubSpot order properties. `stage` is (pipeline id, stage id) when known."""
    total = order.get("totalPrice")
    taxed = order.get("taxedPrice") or {}
    shipping = (order.get("shippingInfo") or {}).get("price")
    net = money.to_decimal(taxed.get("totalNet"))
    ship = money.to_decimal(shipping) or Decimal(0)
    subtotal = (net - ship) if net is not None else money.to_decimal(total)
    codes = [str(((c.get("discountCode") or {}).get("obj") or {}).get("code") or (c.get("discountCode") or {}).get("id")
                 or "") for c in order.get("discountCodes") or []]
    props = {
        ORDER_ID_PROPERTY: order["id"],
        "hs_order_name": _clip(order.get("orderNumber") or order["id"]),
        "hs_external_order_id": _clip(order.get("orderNumber") or order["id"]),
        "hs_currency_code": money.currency(total),
        "hs_source_store": _clip((order.get("store") or {}).get("key")),
        "hs_total_price": money.text(total),
        "hs_subtotal_price": money.as_text(subtotal),
        "hs_tax": money.text(taxed.get("totalTax")),
        "hs_shipping_cost": money.as_text(ship),
        "hs_order_discount": money.as_text(order_discount(order)),
        "hs_discount_codes": _clip(";".join(c for c in codes if c)),
        "hs_payment_status": _clip(order.get("paymentState")),
        "hs_fulfillment_status": _clip(order.get("shipmentState")),
        "hs_external_created_date": _clip(order.get("createdAt")),
        "ct_order_state": _clip(order.get("orderState")),
        "ct_payment_state": _clip(order.get("paymentState")),
        "ct_shipment_state": _clip(order.get("shipmentState")),
        "ct_completed_at": _clip(order.get("completedAt")),
        "ct_locale": _clip(order.get("locale")),
        "ct_refunded_amount": money.as_text(refunded_amount(order)),
        "ct_return_state": return_state(order),
        **_address("hs_shipping_address", order.get("shippingAddress")),
        **_address("hs_billing_address", order.get("billingAddress")),
    }
    if order.get("cart"):
        props["hs_external_cart_id"] = _clip(order["cart"].get("id"))
    if stage:
        props["hs_pipeline"], props["hs_pipeline_stage"] = stage
    return props


def line_item_key(parent: str, parent_id: str, item_id: str) -> str:
    return f"{parent}:{parent_id}:{item_id}"


def map_line_items(parent: str, resource: dict[str, Any],
                   attributes: tuple[str, ...] = ()) -> list[tuple[str, dict[str, str]]]:
    """(unique key, properties) for each line item of an order, cart or deal."""
    locale = resource.get("locale")
    out = []
    for item in resource.get("lineItems") or []:
        variant = item.get("variant") or {}
        qty = int(item.get("quantity", 0))
        taxed = item.get("taxedPrice") or {}
        props = {
            LINE_ITEM_ID_PROPERTY: line_item_key(parent, resource["id"], item["id"]),
            "name": localized(item.get("name"), locale) or _clip(variant.get("sku")),
            "hs_sku": _clip(variant.get("sku")),
            "quantity": str(qty),
            "price": money.text((item.get("price") or {}).get("value")),
            "amount": money.text(item.get("totalPrice")),
            "discount": money.as_text(line_discount(item)),
            "hs_line_item_currency_code": money.currency(item.get("totalPrice")),
            "ct_tax_amount": money.text(taxed.get("totalTax")),
            "ct_tax_rate": _clip((item.get("taxRate") or {}).get("amount")),
        }
        values = {a["name"]: a.get("value") for a in variant.get("attributes") or [] if "name" in a}
        for name in attributes:
            value = values.get(name)
            props[f"ct_attr_{name}"] = localized(value, locale) if isinstance(value, dict) else _clip(value)
        out.append((props[LINE_ITEM_ID_PROPERTY], props))
    return out


def map_cart(cart: dict[str, Any], status: str, recovery_url: str) -> dict[str, str]:
    total = cart.get("totalPrice")
    return {
        CART_ID_PROPERTY: cart["id"],
        "hs_cart_name": _clip(f"Cart {cart['id'][:8]}"),
        "hs_external_cart_id": cart["id"],
        "hs_external_status": status,
        "hs_cart_url": _clip(recovery_url),
        "hs_total_price": money.text(total),
        "hs_currency_code": money.currency(total),
        "hs_source_store": _clip((cart.get("store") or {}).get("key")),
        "ct_cart_state": _clip(cart.get("cartState")),
        "ct_abandoned": "true" if status == "abandoned" else "false",
        "ct_last_modified_at": _clip(cart.get("lastModifiedAt")),
    }

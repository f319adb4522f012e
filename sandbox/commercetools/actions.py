"""Creates, update actions and deletes, with the version check, the lastModifiedAt/version bump and
the messages commercetools emits for each change.

Every change works on a deep copy and stores it only if all actions succeed (an update request is
atomic), then re-indexes it: stored records are never mutated in place (see store.py).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from . import messages
from .errors import (
    ApiError,
    concurrent_modification,
    duplicate_field,
    invalid_input,
    invalid_operation,
    not_found,
    required_field,
)
from .seed import FRACTION, TAX
from .store import Resource, Store, format_ms, parse_ms

MAX_ACTIONS = 500
ORDER_STATES = ("Open", "Confirmed", "Complete", "Cancelled")
PAYMENT_STATES = ("BalanceDue", "Failed", "Pending", "CreditOwed", "Paid")
SHIPMENT_STATES = ("Shipped", "Delivered", "Ready", "Pending", "Delayed", "Partial", "Backorder", "Canceled")
TRANSACTION_TYPES = ("Authorization", "CancelAuthorization", "Charge", "Refund", "Chargeback")
TRANSACTION_STATES = ("Initial", "Pending", "Success", "Failure")
CLIENT = messages.CLIENT

Emitted = list[tuple[str, dict[str, Any]]]
Handler = Callable[["Mutator", Resource, dict[str, Any]], Emitted]


def _need(action: dict[str, Any], name: str) -> Any:
    if action.get(name) is None:
        raise required_field(name)
    return action[name]


def _enum(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise invalid_input(f"Value '{value}' is not valid for field '{field}'. Allowed: {', '.join(allowed)}.")
    return str(value)


def _set_opt(res: Resource, field: str, value: Any) -> None:
    if value is None or value == "":
        res.pop(field, None)
    else:
        res[field] = value


def normalize_money(value: Any, field: str = "money") -> dict[str, Any]:
    if not isinstance(value, dict) or "currencyCode" not in value or "centAmount" not in value:
        raise invalid_input(f"'{field}' must be a Money object with currencyCode and centAmount.")
    currency = str(value["currencyCode"])
    if not isinstance(value["centAmount"], int) or isinstance(value["centAmount"], bool):
        raise invalid_input(f"'{field}.centAmount' must be an integer.")
    if value.get("type") == "highPrecision":
        return {"type": "highPrecision", "currencyCode": currency, "centAmount": value["centAmount"],
                "fractionDigits": int(value.get("fractionDigits", FRACTION.get(currency, 2) + 2)),
                "preciseAmount": int(value.get("preciseAmount", value["centAmount"]))}
    return {"type": "centPrecision", "currencyCode": currency, "centAmount": value["centAmount"],
            "fractionDigits": FRACTION.get(currency, 2)}


class Mutator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._emails: dict[str, set[str]] | None = None  # lowercased email -> customer ids

    # --- helpers ----------------------------------------------------------------------------------
    def _now(self, after: str | None = None) -> str:
        return format_ms(self.store.clock.now_ms(parse_ms(after) if after else 0))

    def _address_id(self) -> str:
        return uuid.uuid4().hex[:8]

    def emails(self) -> dict[str, set[str]]:
        if self._emails is None:
            index: dict[str, set[str]] = {}
            for c in self.store.collections["customers"].all():
                index.setdefault(c["email"].lower(), set()).add(c["id"])
            self._emails = index
        return self._emails

    def _check_email(self, email: str, stores: list[dict[str, Any]], self_id: str | None) -> None:
        """Emails are unique case-insensitively per store scope; a global customer (no stores)
        conflicts with everyone."""
        keys = {s.get("key") for s in stores}
        for other_id in self.emails().get(email.lower(), ()):
            if other_id == self_id:
                continue
            other = self.store.collections["customers"].get(other_id)
            if other is None:
                continue
            other_keys = {s.get("key") for s in other["stores"]}
            if not keys or not other_keys or keys & other_keys:
                raise duplicate_field("email", email, other_id)

    def _index_email(self, old: Resource | None, new: Resource | None) -> None:
        if self._emails is None:
            return
        if old is not None:
            self._emails.get(old["email"].lower(), set()).discard(old["id"])
        if new is not None:
            self._emails.setdefault(new["email"].lower(), set()).add(new["id"])

    def _store_ref(self, value: Any) -> dict[str, Any]:
        key = value.get("key") if isinstance(value, dict) else None
        if key is None and isinstance(value, dict) and value.get("id"):
            found = self.store.collections["stores"].get(str(value["id"]))
            key = found["key"] if found else None
        if not key or self.store.collections["stores"].get_by_key(str(key)) is None:
            raise invalid_input(f"The referenced store '{value}' does not exist.")
        return {"typeId": "store", "key": key}

    def _group_ref(self, value: Any) -> dict[str, Any]:
        groups = self.store.collections["customer-groups"]
        group = None
        if isinstance(value, dict):
            group = groups.get(str(value.get("id"))) if value.get("id") else groups.get_by_key(str(value.get("key")))
        if group is None:
            raise ApiError(400, f"The referenced object of type 'customer-group' '{value}' was not found.",
                           [{"code": "ReferencedResourceNotFound", "typeId": "customer-group",
                             "message": f"The referenced object of type 'customer-group' '{value}' was not found."}])
        return {"typeId": "customer-group", "id": group["id"]}

    def _custom(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not isinstance(value.get("type"), dict):
            raise invalid_input("'custom' needs a 'type' resource identifier.")
        type_ref = value["type"]
        ref = {"typeId": "type", "id": str(type_ref.get("id") or f"type-{type_ref.get('key')}")}
        fields = value.get("fields") or {}
        if not isinstance(fields, dict):
            raise invalid_input("'custom.fields' must be an object.")
        return {"type": ref, "fields": dict(fields)}

    def _address(self, value: Any, keep_id: str | None = None) -> dict[str, Any]:
        if not isinstance(value, dict) or not value.get("country"):
            raise required_field("address.country")
        addr = {k: v for k, v in value.items() if v is not None}
        addr["id"] = keep_id or addr.get("id") or self._address_id()
        return addr

    # --- customers --------------------------------------------------------------------------------
    def create_customer(self, draft: dict[str, Any]) -> Resource:
        email = draft.get("email")
        if not isinstance(email, str) or not email.strip():
            raise required_field("email")
        stores = [self._store_ref(s) for s in draft.get("stores") or []]
        self._check_email(email, stores, None)
        now = self._now()
        res: Resource = {"id": str(uuid.uuid4()), "version": 1, "createdAt": now, "lastModifiedAt": now,
                         "lastModifiedBy": CLIENT, "createdBy": CLIENT}
        for field in ("key", "customerNumber", "externalId"):
            if draft.get(field):
                res[field] = draft[field]
        res["email"] = email
        for field in ("firstName", "lastName", "middleName", "title", "salutation", "dateOfBirth",
                      "companyName", "vatId", "locale"):
            if draft.get(field) is not None:
                res[field] = draft[field]
        auth = draft.get("authenticationMode", "Password")
        if auth == "Password":
            if not draft.get("password"):
                raise required_field("password")
            res["password"] = "****" + uuid.uuid4().hex[:3] + "="
        addresses = [self._address(a) for a in draft.get("addresses") or []]
        res["addresses"] = addresses

        def pick(index_field: str) -> str | None:
            idx = draft.get(index_field)
            return addresses[idx]["id"] if isinstance(idx, int) and 0 <= idx < len(addresses) else None

        shipping, billing = pick("defaultShippingAddress"), pick("defaultBillingAddress")
        if shipping:
            res["defaultShippingAddressId"] = shipping
        if billing:
            res["defaultBillingAddressId"] = billing
        res["shippingAddressIds"] = [shipping] if shipping else []
        res["billingAddressIds"] = [billing] if billing else []
        res["isEmailVerified"] = bool(draft.get("isEmailVerified", False))
        if draft.get("customerGroup"):
            res["customerGroup"] = self._group_ref(draft["customerGroup"])
            res["customerGroupAssignments"] = [{"customerGroup": res["customerGroup"]}]
        else:
            res["customerGroupAssignments"] = []
        if draft.get("custom"):
            res["custom"] = self._custom(draft["custom"])
        res["stores"] = stores
        res["authenticationMode"] = auth
        key = res.get("key")
        if key and self.store.collections["customers"].get_by_key(key):
            raise duplicate_field("key", key)
        self.store.collections["customers"].put(res)
        self._index_email(None, res)
        messages.emit(self.store, "customer", res, "CustomerCreated", {"customer": res})
        return res

    def _customer_actions(self) -> dict[str, Handler]:
        def simple(field: str, message: str | None) -> Handler:
            def handler(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
                value = action.get(field)
                _set_opt(res, field, value)
                return [(message, {field: value} if value is not None else {})] if message else []
            return handler

        def change_email(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            email = _need(action, "email")
            if not isinstance(email, str) or not email.strip():
                raise required_field("email")
            m._check_email(email, res["stores"], res["id"])
            old = res["email"]
            res["email"] = email
            res["isEmailVerified"] = False
            return [("CustomerEmailChanged", {"email": email, "oldEmail": old})]

        def set_group(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            value = action.get("customerGroup")
            if value:
                ref = m._group_ref(value)
                res["customerGroup"] = ref
                res["customerGroupAssignments"] = [{"customerGroup": ref}]
                return [("CustomerGroupSet", {"customerGroup": ref})]
            res.pop("customerGroup", None)
            return [("CustomerGroupSet", {})]

        def add_address(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            addr = m._address(_need(action, "address"))
            res["addresses"].append(addr)
            return [("CustomerAddressAdded", {"address": addr})]

        def find_address(res: Resource, action: dict[str, Any]) -> int:
            for i, a in enumerate(res["addresses"]):
                if (action.get("addressId") and a.get("id") == action["addressId"]) or \
                        (action.get("addressKey") and a.get("key") == action["addressKey"]):
                    return i
            raise invalid_input(f"The customer does not contain an address with id "
                                f"'{action.get('addressId') or action.get('addressKey')}'.")

        def change_address(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            i = find_address(res, action)
            addr = m._address(_need(action, "address"), keep_id=res["addresses"][i]["id"])
            res["addresses"][i] = addr
            return [("CustomerAddressChanged", {"address": addr})]

        def set_default(kind: str) -> Handler:
            def handler(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
                id_field, list_field = f"default{kind}AddressId", f"{kind.lower()}AddressIds"
                if not action.get("addressId") and not action.get("addressKey"):
                    res.pop(id_field, None)
                    return [(f"CustomerDefault{kind}AddressSet", {})]
                addr = res["addresses"][find_address(res, action)]
                res[id_field] = addr["id"]
                if addr["id"] not in res[list_field]:
                    res[list_field].append(addr["id"])
                return [(f"CustomerDefault{kind}AddressSet", {"address": addr})]
            return handler

        def set_key(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            key = action.get("key")
            other = m.store.collections["customers"].get_by_key(key) if key else None
            if other is not None and other["id"] != res["id"]:
                raise duplicate_field("key", key)
            _set_opt(res, "key", key)
            return []

        def set_stores(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            old = res["stores"]
            new = [m._store_ref(s) for s in action.get("stores") or []]
            m._check_email(res["email"], new, res["id"])
            res["stores"] = new
            return [("CustomerStoresSet", {"stores": new, "oldStores": old})]

        def add_store(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            ref = m._store_ref(_need(action, "store"))
            if any(s["key"] == ref["key"] for s in res["stores"]):
                return []
            old = res["stores"]
            new = [*old, ref]
            m._check_email(res["email"], new, res["id"])
            res["stores"] = new
            return [("CustomerStoresSet", {"stores": new, "oldStores": old})]

        return {
            "setFirstName": simple("firstName", "CustomerFirstNameSet"),
            "setLastName": simple("lastName", "CustomerLastNameSet"),
            "setMiddleName": simple("middleName", None),
            "setTitle": simple("title", "CustomerTitleSet"),
            "setSalutation": simple("salutation", None),
            "setDateOfBirth": simple("dateOfBirth", "CustomerDateOfBirthSet"),
            "setCompanyName": simple("companyName", "CustomerCompanyNameSet"),
            "setVatId": simple("vatId", None),
            "setExternalId": simple("externalId", "CustomerExternalIdSet"),
            "setCustomerNumber": simple("customerNumber", None),
            "setLocale": simple("locale", None),
            "changeEmail": change_email,
            "setCustomerGroup": set_group,
            "addAddress": add_address,
            "changeAddress": change_address,
            "setDefaultShippingAddress": set_default("Shipping"),
            "setDefaultBillingAddress": set_default("Billing"),
            "setKey": set_key,
            "setStores": set_stores,
            "addStore": add_store,
            "setCustomField": _custom_field("Customer"),
            "setCustomType": _custom_type("Customer"),
        }

    # --- orders -----------------------------------------------------------------------------------
    def _order_actions(self) -> dict[str, Handler]:
        def state(field: str, allowed: tuple[str, ...], message: str) -> Handler:
            old_field = "old" + field[0].upper() + field[1:]

            def handler(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
                value = _enum(_need(action, field), allowed, field)
                old = res.get(field)
                res[field] = value
                payload: dict[str, Any] = {field: value}
                if old is not None:
                    payload[old_field] = old
                return [(message, payload)]
            return handler

        def set_email(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            old = res.get("customerEmail")
            _set_opt(res, "customerEmail", action.get("email"))
            payload = {k: v for k, v in (("email", action.get("email")), ("oldEmail", old)) if v is not None}
            return [("OrderCustomerEmailSet", payload)]

        def add_return(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            items = _need(action, "items")
            line_ids = {li["id"] for li in res["lineItems"]}
            now = m._now(res["lastModifiedAt"])
            out = []
            for item in items:
                if not isinstance(item, dict) or item.get("lineItemId") not in line_ids:
                    raise invalid_input(f"Line item '{item.get('lineItemId') if isinstance(item, dict) else item}' "
                                        f"does not exist in the order.")
                comment = {"comment": item["comment"]} if item.get("comment") else {}
                out.append({"type": "LineItemReturnItem", "id": str(uuid.uuid4()),
                            "quantity": int(item.get("quantity", 1)), "lineItemId": item["lineItemId"], **comment,
                            "shipmentState": item.get("shipmentState", "Advised"), "paymentState": "Initial",
                            "createdAt": now, "lastModifiedAt": now})
            info: dict[str, Any] = {"items": out}
            for field in ("returnTrackingId", "returnDate"):
                if action.get(field):
                    info[field] = action[field]
            res.setdefault("returnInfo", []).append(info)
            return [("ReturnInfoAdded", {"returnInfo": info})]

        def add_payment(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            ref = _need(action, "payment")
            payment = m.store.collections["payments"].get(str(ref.get("id"))) if isinstance(ref, dict) else None
            if payment is None:
                raise invalid_input(f"The referenced payment '{ref}' does not exist.")
            pref = {"typeId": "payment", "id": payment["id"]}
            info = res.setdefault("paymentInfo", {"payments": []})
            info["payments"].append(pref)
            return [("OrderPaymentAdded", {"payment": pref})]

        def set_store(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            if action.get("store"):
                res["store"] = m._store_ref(action["store"])
                return [("OrderStoreSet", {"store": res["store"]})]
            res.pop("store", None)
            return [("OrderStoreSet", {})]

        return {
            "changeOrderState": state("orderState", ORDER_STATES, "OrderStateChanged"),
            "changePaymentState": state("paymentState", PAYMENT_STATES, "OrderPaymentStateChanged"),
            "changeShipmentState": state("shipmentState", SHIPMENT_STATES, "OrderShipmentStateChanged"),
            "setCustomerEmail": set_email,
            "addReturnInfo": add_return,
            "addPayment": add_payment,
            "setStore": set_store,
            "setCustomField": _custom_field("Order"),
            "setCustomType": _custom_type("Order"),
        }

    def create_order_import(self, draft: dict[str, Any]) -> Resource:
        total = normalize_money(_need(draft, "totalPrice"), "totalPrice")
        currency = total["currencyCode"]
        now = self._now()
        res: Resource = {"type": "Order", "id": str(uuid.uuid4()), "version": 1, "createdAt": now,
                         "lastModifiedAt": now, "lastModifiedBy": CLIENT, "createdBy": CLIENT}
        if draft.get("orderNumber"):
            if self.store.collections["orders"].get_by_key(draft["orderNumber"]):
                raise duplicate_field("orderNumber", draft["orderNumber"])
            res["orderNumber"] = draft["orderNumber"]
        for field in ("customerId", "customerEmail", "anonymousId", "locale", "country", "completedAt",
                      "purchaseOrderNumber"):
            if draft.get(field) is not None:
                res[field] = draft[field]
        if draft.get("customerGroup"):
            res["customerGroup"] = self._group_ref(draft["customerGroup"])
        if draft.get("store"):
            res["store"] = self._store_ref(draft["store"])
        res["lineItems"] = [self._import_line_item(li, currency) for li in draft.get("lineItems") or []]
        res["customLineItems"] = [self._custom_line_item(cli, currency) for cli in draft.get("customLineItems") or []]
        res["totalPrice"] = total
        if draft.get("taxedPrice"):
            tp = draft["taxedPrice"]
            res["taxedPrice"] = {"totalNet": normalize_money(tp.get("totalNet"), "taxedPrice.totalNet"),
                                 "totalGross": normalize_money(tp.get("totalGross"), "taxedPrice.totalGross"),
                                 "taxPortions": tp.get("taxPortions") or []}
        res.update({"taxMode": draft.get("taxMode", "Platform"), "inventoryMode": "None",
                    "taxRoundingMode": "HalfEven", "taxCalculationMode": "LineItemLevel",
                    "origin": draft.get("origin", "Customer")})
        for field in ("shippingAddress", "billingAddress"):
            if draft.get(field):
                res[field] = self._address(draft[field])
        res.update({"shippingMode": "Single", "shipping": [], "discountCodes": [], "syncInfo": [],
                    "refusedGifts": [], "returnInfo": []})
        res["orderState"] = _enum(draft.get("orderState", "Open"), ORDER_STATES, "orderState")
        if draft.get("paymentState"):
            res["paymentState"] = _enum(draft["paymentState"], PAYMENT_STATES, "paymentState")
        if draft.get("shipmentState"):
            res["shipmentState"] = _enum(draft["shipmentState"], SHIPMENT_STATES, "shipmentState")
        if draft.get("paymentInfo"):
            res["paymentInfo"] = {"payments": [{"typeId": "payment", "id": str(p.get("id"))}
                                               for p in draft["paymentInfo"].get("payments", [])]}
        if draft.get("custom"):
            res["custom"] = self._custom(draft["custom"])
        self.store.collections["orders"].put(res)
        messages.emit(self.store, "order", res, "OrderImported", {"order": res})
        return res

    def _import_line_item(self, li: Any, currency: str) -> dict[str, Any]:
        if not isinstance(li, dict):
            raise invalid_input("lineItems must be objects.")
        variant = li.get("variant") or {}
        sku = variant.get("sku") or li.get("sku")
        qty = int(li.get("quantity", 1))
        price_value = normalize_money((li.get("price") or {}).get("value")
                                      or {"currencyCode": currency, "centAmount": 0}, "lineItems.price.value")
        item = self._line_item_from_sku(sku, qty, currency, price_value) if sku else None
        if item is None:
            item = {"id": str(uuid.uuid4()), "productId": str(li.get("productId") or uuid.uuid4()),
                    "name": li.get("name") or {"en": sku or "Imported item"},
                    "productType": {"typeId": "product-type", "id": "imported"},
                    "variant": {"id": int(variant.get("id", 1)), **({"sku": sku} if sku else {}),
                                "prices": [], "images": [], "attributes": variant.get("attributes") or [],
                                "assets": []},
                    "price": {"id": str(uuid.uuid4()), "value": price_value}, "quantity": qty,
                    "discountedPricePerQuantity": [], "state": [], "priceMode": "ExternalPrice",
                    "lineItemMode": "Standard",
                    "totalPrice": {**price_value, "type": "centPrecision",
                                   "fractionDigits": FRACTION.get(currency, 2),
                                   "centAmount": price_value["centAmount"] * qty},
                    "perMethodTaxRate": [], "taxedPricePortions": []}
            item["totalPrice"].pop("preciseAmount", None)
        if li.get("name"):
            item["name"] = li["name"]
        return item

    def _custom_line_item(self, cli: Any, currency: str) -> dict[str, Any]:
        if not isinstance(cli, dict):
            raise invalid_input("customLineItems must be objects.")
        money = normalize_money(cli.get("money"), "customLineItems.money")
        qty = int(cli.get("quantity", 1))
        return {"id": str(uuid.uuid4()), "name": cli.get("name") or {"en": "Custom"}, "money": money,
                "totalPrice": {**money, "centAmount": money["centAmount"] * qty}, "slug": cli.get("slug", "custom"),
                "quantity": qty, "discountedPricePerQuantity": [], "state": [], "taxedPricePortions": [],
                "perMethodTaxRate": [], "priceMode": "Standard"}

    def _line_item_from_sku(self, sku: str, qty: int, currency: str,
                            external: dict[str, Any] | None) -> dict[str, Any] | None:
        found = self.store.catalog.get(sku)
        if found is None:
            return None
        product, per_currency = found
        variant, price = per_currency.get(currency) or next(iter(per_currency.values()))
        tax = dict(zip(("name", "amount", "country"), TAX.get(currency, ("Tax", 0.0, "DE")), strict=True))
        price_obj = {"id": price["id"], "value": external} if external and external.get("centAmount") else price
        unit = price_obj["value"]["centAmount"]
        return {"id": str(uuid.uuid4()), "productId": product["id"], "productKey": product["key"],
                "name": product["name"], "productType": {"typeId": "product-type", "id": "catalog"},
                "productSlug": product["slug"], "variant": variant, "price": price_obj, "quantity": qty,
                "discountedPricePerQuantity": [],
                "taxRate": {**tax, "includedInPrice": currency != "USD", "subRates": []},
                "state": [], "priceMode": "ExternalPrice" if price_obj is not price else "Platform",
                "lineItemMode": "Standard",
                "totalPrice": {"type": "centPrecision", "currencyCode": currency, "centAmount": unit * qty,
                               "fractionDigits": FRACTION.get(currency, 2)},
                "perMethodTaxRate": [], "taxedPricePortions": []}

    def create_order_from_cart(self, draft: dict[str, Any]) -> Resource:
        cart_ref = _need(draft, "cart")
        version = _need(draft, "version")
        carts = self.store.collections["carts"]
        cart = carts.get(str(cart_ref.get("id"))) if isinstance(cart_ref, dict) else None
        if cart is None:
            raise invalid_input(f"The referenced cart '{cart_ref}' does not exist.")
        if cart["version"] != version:
            raise concurrent_modification(cart["id"], int(version), cart["version"])
        if cart["cartState"] != "Active":
            raise invalid_operation(f"Cart '{cart['id']}' has cartState '{cart['cartState']}'; only an Active "
                                    f"cart can be ordered.")
        now = self._now()
        order: Resource = {"type": "Order", "id": str(uuid.uuid4()), "version": 1, "createdAt": now,
                           "lastModifiedAt": now, "lastModifiedBy": CLIENT, "createdBy": CLIENT}
        if draft.get("orderNumber"):
            order["orderNumber"] = draft["orderNumber"]
        for field in ("customerId", "customerEmail", "anonymousId", "customerGroup", "store", "locale", "country",
                      "shippingAddress", "billingAddress", "taxedPrice", "custom"):
            if field in cart:
                order[field] = cart[field]
        order.update({"lineItems": copy.deepcopy(cart["lineItems"]), "customLineItems": cart["customLineItems"],
                      "totalPrice": cart["totalPrice"], "taxMode": cart["taxMode"], "inventoryMode": "None",
                      "taxRoundingMode": "HalfEven", "taxCalculationMode": "LineItemLevel", "origin": "Customer",
                      "shippingMode": "Single", "shipping": [], "discountCodes": [], "syncInfo": [],
                      "refusedGifts": [], "returnInfo": [], "orderState": "Open",
                      "cart": {"typeId": "cart", "id": cart["id"]}})
        if cart.get("paymentInfo"):
            order["paymentInfo"] = cart["paymentInfo"]
        self.store.collections["orders"].put(order)
        new_cart = copy.deepcopy(cart)
        new_cart["cartState"] = "Ordered"
        new_cart["version"] += 1
        new_cart["lastModifiedAt"] = self._now(cart["lastModifiedAt"])
        carts.put(new_cart)
        messages.emit(self.store, "order", order, "OrderCreated", {"order": order})
        return order

    # --- carts ------------------------------------------------------------------------------------
    def create_cart(self, draft: dict[str, Any]) -> Resource:
        currency = str(_need(draft, "currency"))
        now = self._now()
        res: Resource = {"type": "Cart", "id": str(uuid.uuid4()), "version": 1, "createdAt": now,
                         "lastModifiedAt": now, "lastModifiedBy": CLIENT, "createdBy": CLIENT, "lineItems": [],
                         "cartState": "Active", "totalPrice": normalize_money({"currencyCode": currency,
                                                                               "centAmount": 0}),
                         "shippingMode": "Single", "shipping": [], "customLineItems": [], "discountCodes": [],
                         "directDiscounts": [], "inventoryMode": "None", "taxMode": draft.get("taxMode", "Platform"),
                         "priceRoundingMode": "HalfEven", "taxRoundingMode": "HalfEven",
                         "taxCalculationMode": "LineItemLevel", "refusedGifts": [], "origin": "Customer",
                         "itemShippingAddresses": [],
                         "deleteDaysAfterLastModification": int(draft.get("deleteDaysAfterLastModification", 90))}
        for field in ("key", "customerId", "customerEmail", "anonymousId", "locale", "country"):
            if draft.get(field) is not None:
                res[field] = draft[field]
        if draft.get("store"):
            res["store"] = self._store_ref(draft["store"])
        if draft.get("customerGroup"):
            res["customerGroup"] = self._group_ref(draft["customerGroup"])
        for field in ("shippingAddress", "billingAddress"):
            if draft.get(field):
                res[field] = self._address(draft[field])
        if draft.get("custom"):
            res["custom"] = self._custom(draft["custom"])
        handler = self._cart_actions()["addLineItem"]
        for li in draft.get("lineItems") or []:
            handler(self, res, li)
        _recalculate(res)
        self.store.collections["carts"].put(res)
        return res

    def _cart_actions(self) -> dict[str, Handler]:
        def set_email(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            _set_opt(res, "customerEmail", action.get("email"))
            return []

        def add_line_item(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            sku = action.get("sku")
            if not sku:
                raise required_field("sku")
            qty = int(action.get("quantity", 1))
            currency = res["totalPrice"]["currencyCode"]
            external = action.get("externalPrice")
            ext = normalize_money(external, "externalPrice") if external else None
            item = m._line_item_from_sku(str(sku), qty, currency, ext)
            if item is None:
                if ext is None:
                    raise invalid_input(f"A product variant with SKU '{sku}' does not exist; pass externalPrice "
                                        f"to add an unknown SKU.")
                item = m._import_line_item({"variant": {"sku": sku}, "quantity": qty, "price": {"value": ext}},
                                           currency)
            for existing in res["lineItems"]:
                if existing.get("variant", {}).get("sku") == sku and ext is None:
                    existing["quantity"] += qty
                    existing["totalPrice"] = {**existing["totalPrice"],
                                              "centAmount": existing["price"]["value"]["centAmount"]
                                              * existing["quantity"]}
                    return []
            res["lineItems"].append(item)
            return []

        def find(res: Resource, action: dict[str, Any]) -> int:
            line_id = _need(action, "lineItemId")
            for i, li in enumerate(res["lineItems"]):
                if li["id"] == line_id:
                    return i
            raise invalid_input(f"The cart does not contain a line item with id '{line_id}'.")

        def set_quantity(res: Resource, i: int, qty: int) -> None:
            if qty <= 0:
                del res["lineItems"][i]
                return
            li = res["lineItems"][i] = dict(res["lineItems"][i])
            li["quantity"] = qty
            li["totalPrice"] = {**li["totalPrice"], "centAmount": li["price"]["value"]["centAmount"] * qty}

        def remove_line_item(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            i = find(res, action)
            qty = action.get("quantity")
            set_quantity(res, i, 0 if qty is None else res["lineItems"][i]["quantity"] - int(qty))
            return []

        def change_quantity(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            set_quantity(res, find(res, action), int(_need(action, "quantity")))
            return []

        return {
            "setCustomerEmail": set_email,
            "addLineItem": add_line_item,
            "removeLineItem": remove_line_item,
            "changeLineItemQuantity": change_quantity,
            "setCustomField": _custom_field(None),
            "setCustomType": _custom_type(None),
        }

    # --- payments ---------------------------------------------------------------------------------
    def _transaction(self, value: Any, now: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise required_field("transaction")
        tx: dict[str, Any] = {"id": str(uuid.uuid4()), "timestamp": value.get("timestamp") or now,
                              "type": _enum(value.get("type"), TRANSACTION_TYPES, "type"),
                              "amount": normalize_money(value.get("amount"), "transaction.amount")}
        if value.get("interactionId"):
            tx["interactionId"] = value["interactionId"]
        tx["state"] = _enum(value.get("state", "Initial"), TRANSACTION_STATES, "state")
        return tx

    def create_payment(self, draft: dict[str, Any]) -> Resource:
        amount = normalize_money(_need(draft, "amountPlanned"), "amountPlanned")
        now = self._now()
        res: Resource = {"id": str(uuid.uuid4()), "version": 1}
        for field in ("key", "interfaceId", "anonymousId"):
            if draft.get(field):
                res[field] = draft[field]
        if draft.get("customer"):
            cust = self.store.collections["customers"].get(str(draft["customer"].get("id")))
            if cust is None:
                raise invalid_input(f"The referenced customer '{draft['customer']}' does not exist.")
            res["customer"] = {"typeId": "customer", "id": cust["id"]}
        res.update({"amountPlanned": amount, "paymentMethodInfo": draft.get("paymentMethodInfo") or {},
                    "paymentStatus": draft.get("paymentStatus") or {},
                    "transactions": [self._transaction(t, now) for t in draft.get("transactions") or []],
                    "interfaceInteractions": [], "createdAt": now, "lastModifiedAt": now,
                    "lastModifiedBy": CLIENT, "createdBy": CLIENT})
        if draft.get("custom"):
            res["custom"] = self._custom(draft["custom"])
        if res.get("key") and self.store.collections["payments"].get_by_key(res["key"]):
            raise duplicate_field("key", res["key"])
        self.store.collections["payments"].put(res)
        messages.emit(self.store, "payment", res, "PaymentCreated", {"payment": res})
        return res

    def _payment_actions(self) -> dict[str, Handler]:
        def add_tx(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            tx = m._transaction(_need(action, "transaction"), m._now(res["lastModifiedAt"]))
            res["transactions"].append(tx)
            return [("PaymentTransactionAdded", {"transaction": tx})]

        def change_tx_state(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            tx_id = _need(action, "transactionId")
            state = _enum(_need(action, "state"), TRANSACTION_STATES, "state")
            for i, tx in enumerate(res["transactions"]):
                if tx["id"] == tx_id:
                    res["transactions"][i] = {**tx, "state": state}
                    return [("PaymentTransactionStateChanged", {"transactionId": tx_id, "state": state})]
            raise invalid_input(f"The payment does not contain a transaction with id '{tx_id}'.")

        def set_interface_code(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            code = action.get("interfaceCode")
            res["paymentStatus"] = dict(res.get("paymentStatus") or {})
            _set_opt(res["paymentStatus"], "interfaceCode", code)
            payload: dict[str, Any] = {"paymentId": res["id"]}
            if code is not None:
                payload["interfaceCode"] = code
            return [("PaymentStatusInterfaceCodeSet", payload)]

        def set_interface_text(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            res["paymentStatus"] = dict(res.get("paymentStatus") or {})
            _set_opt(res["paymentStatus"], "interfaceText", action.get("interfaceText"))
            return []

        def transition(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            # "lite": states are not stored as resources; a key or id becomes a state reference.
            state = _need(action, "state")
            if not isinstance(state, dict) or not (state.get("id") or state.get("key")):
                raise invalid_input("'state' must be a resource identifier with id or key.")
            ref = {"typeId": "state", "id": str(state.get("id") or uuid.uuid5(uuid.NAMESPACE_URL, str(state["key"])))}
            res["paymentStatus"] = {**(res.get("paymentStatus") or {}), "state": ref}
            return [("PaymentStatusStateTransition", {"state": ref, "force": bool(action.get("force", False))})]

        def set_payment_key(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
            _set_opt(res, "key", action.get("key"))
            return []

        return {
            "addTransaction": add_tx,
            "changeTransactionState": change_tx_state,
            "setStatusInterfaceCode": set_interface_code,
            "setStatusInterfaceText": set_interface_text,
            "transitionState": transition,
            "setKey": set_payment_key,
            "setCustomField": _custom_field("Payment"),
            "setCustomType": _custom_type(None),
        }

    # --- generic update / delete ------------------------------------------------------------------
    def handlers(self, collection: str) -> dict[str, Handler]:
        table = {"customers": self._customer_actions, "orders": self._order_actions,
                 "carts": self._cart_actions, "payments": self._payment_actions}
        if collection not in table:
            raise invalid_operation(f"Updates of {collection} are not supported by the sandbox.")
        return table[collection]()

    def update(self, collection: str, old: Resource, body: Any) -> Resource:
        if not isinstance(body, dict):
            raise invalid_input("Request body does not contain valid JSON.")
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise required_field("version")
        actions = body.get("actions")
        if not isinstance(actions, list):
            raise required_field("actions")
        if len(actions) > MAX_ACTIONS:
            raise invalid_input(f"An update may contain at most {MAX_ACTIONS} actions, got {len(actions)}.")
        handlers = self.handlers(collection)
        for action in actions:
            name = action.get("action") if isinstance(action, dict) else None
            if name not in handlers:
                raise invalid_input(f"Request body does not contain valid JSON. actions -> action: "
                                    f"Unknown update action '{name}' for {collection}.")
        if version != old["version"]:
            raise concurrent_modification(old["id"], version, old["version"])
        res = copy.deepcopy(old)
        emitted: Emitted = []
        for action in actions:
            emitted.extend(handlers[action["action"]](self, res, action))
        if collection == "carts":
            _recalculate(res)
        res["version"] = old["version"] + 1
        res["lastModifiedAt"] = self._now(old["lastModifiedAt"])
        res["lastModifiedBy"] = CLIENT
        self.store.collections[collection].put(res)
        if collection == "customers":
            self._index_email(old, res)
        if collection != "carts":  # carts emit no messages for these actions
            type_id = self.store.collections[collection].type_id
            for message_type, payload in emitted:
                messages.emit(self.store, type_id, res, message_type, payload)
        return res

    def delete(self, collection: str, old: Resource, version: int) -> Resource:
        if version != old["version"]:
            raise concurrent_modification(old["id"], version, old["version"])
        col = self.store.collections[collection]
        col.delete(old["id"])
        tomb = {**old, "version": old["version"] + 1, "lastModifiedAt": self._now(old["lastModifiedAt"])}
        if collection == "customers":
            self._index_email(old, None)
            messages.emit(self.store, "customer", tomb, "CustomerDeleted", {"email": old["email"]})
        elif collection == "orders":
            messages.emit(self.store, "order", tomb, "OrderDeleted", {"order": old})
        return old

    def get_or_404(self, collection: str, rid: str | None = None, key: str | None = None) -> Resource:
        col = self.store.collections[collection]
        res = col.get(rid) if rid is not None else col.get_by_key(str(key))
        if res is None:
            raise not_found(rid if rid is not None else f"key={key}")
        return res


def _recalculate(cart: Resource) -> None:
    currency = cart["totalPrice"]["currencyCode"]
    total = sum(li["totalPrice"]["centAmount"] for li in cart["lineItems"])
    total += sum(cli["totalPrice"]["centAmount"] for cli in cart["customLineItems"])
    cart["totalPrice"] = {"type": "centPrecision", "currencyCode": currency, "centAmount": total,
                          "fractionDigits": FRACTION.get(currency, 2)}
    cart["totalLineItemQuantity"] = sum(li["quantity"] for li in cart["lineItems"])


def _custom_field(prefix: str | None) -> Handler:
    def handler(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
        name = _need(action, "name")
        if "custom" not in res:
            raise invalid_operation("This resource has no custom type; set one with setCustomType first.")
        fields = res["custom"]["fields"]
        value = action.get("value")
        previous = fields.get(name)
        if value is None:
            fields.pop(name, None)
            return [(f"{prefix}CustomFieldRemoved", {"name": name})] if prefix and previous is not None else []
        fields[name] = value
        if not prefix:
            return []
        if previous is None:
            return [(f"{prefix}CustomFieldAdded", {"name": name, "value": value})]
        return [(f"{prefix}CustomFieldChanged", {"name": name, "value": value, "previousValue": previous})]
    return handler


def _custom_type(prefix: str | None) -> Handler:
    def handler(m: Mutator, res: Resource, action: dict[str, Any]) -> Emitted:
        if not action.get("type"):
            res.pop("custom", None)
            return [(f"{prefix}CustomTypeRemoved", {})] if prefix else []
        res["custom"] = m._custom({"type": action["type"], "fields": action.get("fields")})
        return [(f"{prefix}CustomTypeSet", {"customFields": res["custom"]})] if prefix else []
    return handler

"""Creates, update actions, version checks, deletes, emitted messages, messages on/off, touch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import Api, start


def messages_for(api: Api, rid: str) -> list[dict[str, Any]]:
    return api.ok("/messages", [("where", f'resource(id="{rid}")'), ("sort", "sequenceNumber asc"),
                                ("limit", "500")])["results"]


def new_customer(api: Api, **extra: Any) -> dict[str, Any]:
    email = f"new-{uuid.uuid4().hex[:10]}@Example.com"
    r = api.post("/customers", {"email": email, "password": "secret", "firstName": "New",
                                "addresses": [{"country": "DE", "city": "Berlin"}], "defaultShippingAddress": 0,
                                **extra})
    assert r.status_code == 201, r.text
    return r.json()["customer"]


def update(api: Api, path: str, version: int, *actions: dict[str, Any]) -> Any:
    return api.post(path, {"version": version, "actions": list(actions)})


def test_create_customer_and_messages(api: Api) -> None:
    c = new_customer(api, stores=[{"key": "eu"}], custom={"type": {"key": "customer-consent"},
                                                           "fields": {"newsletter": True}})
    assert c["version"] == 1 and c["stores"] == [{"typeId": "store", "key": "eu"}]
    assert c["defaultShippingAddressId"] == c["addresses"][0]["id"]
    assert c["password"].startswith("****") and c["createdAt"] == c["lastModifiedAt"]
    msgs = messages_for(api, c["id"])
    assert [m["type"] for m in msgs] == ["CustomerCreated"]
    assert msgs[0]["sequenceNumber"] == 1 and msgs[0]["resourceVersion"] == 1 and msgs[0]["customer"]["id"] == c["id"]
    assert api.post("/customers", {"password": "x"}).status_code == 400


def test_customer_update_actions(api: Api) -> None:
    c = new_customer(api)
    path = f"/customers/{c['id']}"
    group = api.ok("/customer-groups/key=vip")
    r = update(api, path, 1,
               {"action": "setFirstName", "firstName": "Zoë"}, {"action": "setLastName", "lastName": "山田"},
               {"action": "setCompanyName", "companyName": "ACME"}, {"action": "setExternalId", "externalId": "X1"},
               {"action": "setLocale", "locale": "ja-JP"}, {"action": "setKey", "key": f"k-{c['id'][:8]}"},
               {"action": "setCustomerGroup", "customerGroup": {"key": "vip"}},
               {"action": "addAddress", "address": {"country": "FR", "city": "Paris"}},
               {"action": "setCustomType", "type": {"key": "customer-consent"}, "fields": {"newsletter": False}},
               {"action": "setCustomField", "name": "newsletter", "value": True},
               {"action": "setStores", "stores": [{"key": "uk"}]}, {"action": "addStore", "store": {"key": "us"}})
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["version"] == 2 and u["lastModifiedAt"] > c["lastModifiedAt"]
    assert (u["firstName"], u["lastName"], u["companyName"], u["externalId"], u["locale"]) == \
        ("Zoë", "山田", "ACME", "X1", "ja-JP")
    assert u["customerGroup"]["id"] == group["id"]
    assert u["custom"]["fields"]["newsletter"] is True
    assert [s["key"] for s in u["stores"]] == ["uk", "us"]
    new_addr = u["addresses"][1]
    r = update(api, path, 2, {"action": "changeAddress", "addressId": new_addr["id"],
                              "address": {"country": "FR", "city": "Lyon"}},
               {"action": "setDefaultShippingAddress", "addressId": new_addr["id"]},
               {"action": "setDefaultBillingAddress", "addressId": new_addr["id"]},
               {"action": "changeEmail", "email": "Changed." + c["email"]})
    assert r.status_code == 200, r.text
    u2 = r.json()
    assert u2["version"] == 3 and u2["addresses"][1]["city"] == "Lyon"
    assert u2["defaultShippingAddressId"] == new_addr["id"] == u2["defaultBillingAddressId"]
    msgs = messages_for(api, c["id"])
    assert [m["sequenceNumber"] for m in msgs] == list(range(1, len(msgs) + 1))
    types = [m["type"] for m in msgs]
    assert types[:3] == ["CustomerCreated", "CustomerFirstNameSet", "CustomerLastNameSet"]
    assert {"CustomerCompanyNameSet", "CustomerExternalIdSet", "CustomerGroupSet", "CustomerAddressAdded",
            "CustomerCustomTypeSet", "CustomerCustomFieldChanged", "CustomerStoresSet", "CustomerAddressChanged",
            "CustomerDefaultShippingAddressSet", "CustomerDefaultBillingAddressSet",
            "CustomerEmailChanged"} <= set(types)
    assert all(m["resourceVersion"] == 2 for m in msgs if m["type"] == "CustomerFirstNameSet")
    changed = next(m for m in msgs if m["type"] == "CustomerEmailChanged")
    assert changed["email"] == "Changed." + c["email"] and changed["oldEmail"] == c["email"]
    assert changed["resourceVersion"] == 3
    assert next(m for m in msgs if m["type"] == "CustomerFirstNameSet")["firstName"] == "Zoë"


def test_concurrent_modification(api: Api) -> None:
    c = new_customer(api)
    assert update(api, f"/customers/{c['id']}", 1, {"action": "setFirstName", "firstName": "A"}).status_code == 200
    r = update(api, f"/customers/{c['id']}", 1, {"action": "setFirstName", "firstName": "B"})
    assert r.status_code == 409
    body = r.json()
    assert body["statusCode"] == 409
    assert body["message"] == f"Object {c['id']} has a different version than expected. Expected: 1 - Actual: 2."
    assert body["errors"] == [{"code": "ConcurrentModification", "message": body["message"], "currentVersion": 2}]
    assert api.ok(f"/customers/{c['id']}")["firstName"] == "A"


def test_unknown_action_and_bad_bodies(api: Api) -> None:
    c = new_customer(api)
    r = update(api, f"/customers/{c['id']}", 1, {"action": "setFirstName", "firstName": "ok"},
               {"action": "explode"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "InvalidInput"
    assert "explode" in r.json()["message"]
    assert api.ok(f"/customers/{c['id']}")["version"] == 1  # atomic: nothing applied
    r = api.post(f"/customers/{c['id']}", {"actions": []})
    assert r.status_code == 400
    r = api.session.post(f"{api.url}/sandbox-shop/customers/{c['id']}", data="{nope", headers=api.headers())
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "InvalidJsonInput"
    assert update(api, "/customers/missing", 1, {"action": "setFirstName"}).status_code == 404


def test_duplicate_email_per_store_scope(api: Api) -> None:
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    assert api.post("/customers", {"email": email, "password": "p", "stores": [{"key": "eu"}]}).status_code == 201
    r = api.post("/customers", {"email": email.upper(), "password": "p", "stores": [{"key": "eu"}]})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DuplicateField"
    assert r.json()["errors"][0]["field"] == "email"
    # another store is a separate scope
    assert api.post("/customers", {"email": email.upper(), "password": "p",
                                   "stores": [{"key": "us"}]}).status_code == 201
    # a global customer conflicts with every store
    r = api.post("/customers", {"email": email, "password": "p"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DuplicateField"
    other = new_customer(api, stores=[{"key": "eu"}])
    r = update(api, f"/customers/{other['id']}", 1, {"action": "changeEmail", "email": email})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DuplicateField"


def test_delete_customer(api: Api) -> None:
    c = new_customer(api)
    assert api.delete(f"/customers/{c['id']}", {"version": 5}).status_code == 409
    r = api.delete(f"/customers/{c['id']}", {"version": 1})
    assert r.status_code == 200 and r.json()["id"] == c["id"]
    assert api.get(f"/customers/{c['id']}").status_code == 404
    msgs = messages_for(api, c["id"])
    assert [m["type"] for m in msgs] == ["CustomerCreated", "CustomerDeleted"]
    assert msgs[1]["sequenceNumber"] == 2 and msgs[1]["resourceVersion"] == 2 and msgs[1]["email"] == c["email"]


def test_order_import_and_order_actions(api: Api) -> None:
    pay = api.post("/payments", {"amountPlanned": {"currencyCode": "EUR", "centAmount": 4200},
                                 "paymentMethodInfo": {"method": "CREDIT_CARD"}})
    assert pay.status_code == 201
    r = api.post("/orders/import", {
        "orderNumber": f"T-{uuid.uuid4().hex[:8]}", "customerEmail": "Guest@Example.com",
        "totalPrice": {"currencyCode": "EUR", "centAmount": 4200}, "store": {"key": "eu"},
        "lineItems": [{"name": {"en": "Thing"}, "variant": {"sku": "SKU-0001-1"},
                       "price": {"value": {"currencyCode": "EUR", "centAmount": 2100}}, "quantity": 2}],
        "customLineItems": [{"name": {"en": "Fee"}, "quantity": 1, "slug": "fee",
                             "money": {"currencyCode": "EUR", "centAmount": 0}}],
        "shippingAddress": {"country": "DE"}, "orderState": "Open", "paymentState": "Pending",
        "shipmentState": "Pending"})
    assert r.status_code == 201, r.text
    o = r.json()
    assert o["totalPrice"]["fractionDigits"] == 2 and o["lineItems"][0]["variant"]["sku"] == "SKU-0001-1"
    path = f"/orders/{o['id']}"
    r = update(api, path, 1, {"action": "changeOrderState", "orderState": "Confirmed"},
               {"action": "changePaymentState", "paymentState": "Paid"},
               {"action": "changeShipmentState", "shipmentState": "Shipped"},
               {"action": "setCustomerEmail", "email": "guest@example.com"},
               {"action": "addPayment", "payment": {"typeId": "payment", "id": pay.json()["id"]}},
               {"action": "setStore", "store": {"key": "uk"}},
               {"action": "setCustomType", "type": {"key": "order-type"}},
               {"action": "setCustomField", "name": "crmId", "value": "42"},
               {"action": "addReturnInfo", "returnTrackingId": "R1",
                "items": [{"lineItemId": o["lineItems"][0]["id"], "quantity": 1, "shipmentState": "Returned"}]})
    assert r.status_code == 200, r.text
    u = r.json()
    assert (u["orderState"], u["paymentState"], u["shipmentState"], u["store"]["key"]) == \
        ("Confirmed", "Paid", "Shipped", "uk")
    assert u["returnInfo"][0]["items"][0]["shipmentState"] == "Returned"
    msgs = messages_for(api, o["id"])
    by_type = {m["type"]: m for m in msgs}
    assert [m["sequenceNumber"] for m in msgs] == list(range(1, len(msgs) + 1))
    assert by_type["OrderImported"]["resourceVersion"] == 1
    assert by_type["OrderStateChanged"]["orderState"] == "Confirmed"
    assert by_type["OrderStateChanged"]["oldOrderState"] == "Open"
    assert by_type["OrderPaymentStateChanged"]["oldPaymentState"] == "Pending"
    assert by_type["OrderShipmentStateChanged"]["shipmentState"] == "Shipped"
    assert by_type["ReturnInfoAdded"]["returnInfo"]["returnTrackingId"] == "R1"
    assert {"OrderCustomerEmailSet", "OrderPaymentAdded", "OrderStoreSet"} <= set(by_type)
    r = update(api, path, 2, {"action": "changeOrderState", "orderState": "Bogus"})
    assert r.status_code == 400


def test_cart_lifecycle_and_ordering(api: Api) -> None:
    r = api.post("/carts", {"currency": "EUR", "customerEmail": "cart@example.com", "store": {"key": "eu"},
                            "lineItems": [{"sku": "SKU-0002-1", "quantity": 1}]})
    assert r.status_code == 201, r.text
    cart = r.json()
    assert cart["cartState"] == "Active" and cart["totalPrice"]["centAmount"] > 0
    path = f"/carts/{cart['id']}"
    r = update(api, path, cart["version"], {"action": "addLineItem", "sku": "SKU-0003-1", "quantity": 2},
               {"action": "addLineItem", "sku": "UNKNOWN", "quantity": 1,
                "externalPrice": {"currencyCode": "EUR", "centAmount": 999}},
               {"action": "setCustomerEmail", "email": "cart2@example.com"})
    assert r.status_code == 200, r.text
    cart = r.json()
    assert len(cart["lineItems"]) == 3 and cart["totalLineItemQuantity"] == 4
    first = cart["lineItems"][0]
    r = update(api, path, cart["version"], {"action": "changeLineItemQuantity", "lineItemId": first["id"],
                                            "quantity": 5},
               {"action": "removeLineItem", "lineItemId": cart["lineItems"][2]["id"]})
    cart = r.json()
    assert len(cart["lineItems"]) == 2 and cart["lineItems"][0]["quantity"] == 5
    assert update(api, path, cart["version"], {"action": "addLineItem", "sku": "NOPE"}).status_code == 400
    assert messages_for(api, cart["id"]) == []  # no cart messages
    assert api.post("/orders", {"cart": {"typeId": "cart", "id": cart["id"]}, "version": 1}).status_code == 409
    r = api.post("/orders", {"cart": {"typeId": "cart", "id": cart["id"]}, "version": cart["version"],
                             "orderNumber": f"C-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["cart"]["id"] == cart["id"] and order["customerEmail"] == "cart2@example.com"
    assert api.ok(path)["cartState"] == "Ordered"
    assert [m["type"] for m in messages_for(api, order["id"])] == ["OrderCreated"]
    again = api.post("/orders", {"cart": {"typeId": "cart", "id": cart["id"]}, "version": cart["version"] + 1})
    assert again.status_code == 400


def test_payment_actions(api: Api) -> None:
    r = api.post("/payments", {"amountPlanned": {"currencyCode": "JPY", "centAmount": 5000}, "key": uuid.uuid4().hex,
                               "transactions": [{"type": "Authorization", "state": "Success",
                                                 "amount": {"currencyCode": "JPY", "centAmount": 5000}}]})
    assert r.status_code == 201
    p = r.json()
    assert p["amountPlanned"]["fractionDigits"] == 0
    path = f"/payments/{p['id']}"
    r = update(api, path, 1, {"action": "addTransaction", "transaction": {
        "type": "Refund", "amount": {"currencyCode": "JPY", "centAmount": 1000}, "state": "Pending"}})
    p = r.json()
    refund = p["transactions"][-1]
    r = update(api, path, 2, {"action": "changeTransactionState", "transactionId": refund["id"], "state": "Success"},
               {"action": "setStatusInterfaceCode", "interfaceCode": "refunded"},
               {"action": "transitionState", "state": {"key": "refunded"}})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["transactions"][-1]["state"] == "Success" and p["paymentStatus"]["interfaceCode"] == "refunded"
    types = [m["type"] for m in messages_for(api, p["id"])]
    assert types == ["PaymentCreated", "PaymentTransactionAdded", "PaymentTransactionStateChanged",
                     "PaymentStatusInterfaceCodeSet", "PaymentStatusStateTransition"]


def test_touch_bulk_helper(api: Api) -> None:
    before = api.control("/stats", method="GET").json()["counts"]["messages"]
    r = api.control("/customers/touch", {"count": 20, "action": "setFirstName"})
    assert r.status_code == 200
    touched = r.json()["touched"]
    assert len(touched) == 20 == len({t["id"] for t in touched})
    for t in touched[:5]:
        c = api.ok(f"/customers/{t['id']}")
        assert c["version"] == t["version"] and c["firstName"].startswith("Touched")
        assert messages_for(api, t["id"])[-1]["type"] == "CustomerFirstNameSet"
    assert api.control("/stats", method="GET").json()["counts"]["messages"] == before + 20
    since = min(t["lastModifiedAt"] for t in touched)
    delta = api.ok("/customers", {"where": f'lastModifiedAt >= "{since}"', "limit": 500})["results"]
    assert {t["id"] for t in touched} <= {c["id"] for c in delta}
    ids = [touched[0]["id"]]
    r = api.control("/customers/touch", {"ids": ids, "action": "setCustomField"})
    assert r.status_code == 200 and r.json()["touched"][0]["version"] == touched[0]["version"] + 1


@pytest.mark.parametrize("via_cli", [True, False])
def test_messages_disabled(tmp_path_factory: pytest.TempPathFactory, via_cli: bool) -> None:
    proc = start(tmp_path_factory, "ct-nomsg", ["--size", "20", *(["--messages-disabled"] if via_cli else [])])
    try:
        client = Api(proc.url)
        if not via_cli:
            assert client.get("/messages").status_code == 200
            assert client.control("/messages", {"enabled": False}).json() == {"enabled": False}
        r = client.get("/messages")
        assert r.status_code == 400
        assert r.json()["errors"][0]["code"] == "InvalidOperation" and "disabled" in r.json()["message"]
        assert client.ok("")["messages"]["enabled"] is False
        client.control("/messages", {"enabled": True})
        assert client.get("/messages").status_code == 200
    finally:
        proc.stop()

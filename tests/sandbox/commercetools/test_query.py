"""Query API: predicates, AND of repeated where, sort, paging caps, withTotal, expand, 404s, keyset
pagination with ties, and records changed while paging."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from .conftest import Api


@pytest.fixture(scope="module")
def customers(api: Api) -> list[dict[str, Any]]:
    return api.all("/customers")


@pytest.fixture(scope="module")
def orders(api: Api) -> list[dict[str, Any]]:
    return api.all("/orders")


def ids(api: Api, path: str, *wheres: str, extra: list[tuple[str, str]] | None = None) -> set[str]:
    params = [("where", w) for w in wheres] + [("limit", "500")] + (extra or [])
    body = api.ok(path, params)
    assert body["count"] == len(body["results"])
    return {r["id"] for r in body["results"]}


def expect(records: list[dict[str, Any]], pred: Any) -> set[str]:
    return {r["id"] for r in records if pred(r)}


def test_paged_query_response_shape(api: Api) -> None:
    body = api.ok("/customers")
    assert list(body) == ["limit", "offset", "count", "total", "results"]
    assert body["limit"] == 20 and body["offset"] == 0 and body["count"] == 20 and body["total"] == 300


def test_by_id_key_and_404(api: Api, customers: list[dict[str, Any]], orders: list[dict[str, Any]]) -> None:
    c = next(c for c in customers if c.get("key"))
    assert api.ok(f"/customers/{c['id']}")["id"] == c["id"]
    assert api.ok(f"/customers/key={c['key']}")["id"] == c["id"]
    o = orders[0]
    assert api.ok(f"/orders/{o['id']}")["id"] == o["id"]
    assert api.ok(f"/orders/order-number={o['orderNumber']}")["id"] == o["id"]
    assert api.ok("/stores/key=eu")["key"] == "eu"
    assert api.ok("/customer-groups/key=vip")["key"] == "vip"
    for path in ("/customers/does-not-exist", "/orders/nope", "/customers/key=nope", "/payments/x"):
        r = api.get(path)
        assert r.status_code == 404
        body = r.json()
        assert body["statusCode"] == 404 and body["errors"][0]["code"] == "ResourceNotFound"
        assert body["message"] == body["errors"][0]["message"]


def test_comparison_operators(api: Api, customers: list[dict[str, Any]]) -> None:
    mid = sorted(c["lastModifiedAt"] for c in customers)[150]
    lma = "lastModifiedAt"
    assert ids(api, "/customers", f'{lma} > "{mid}"') == expect(customers, lambda c: c[lma] > mid)
    assert ids(api, "/customers", f'{lma} >= "{mid}"') == expect(customers, lambda c: c[lma] >= mid)
    assert ids(api, "/customers", f'{lma} < "{mid}"') == expect(customers, lambda c: c[lma] < mid)
    assert ids(api, "/customers", f'{lma} <= "{mid}"') == expect(customers, lambda c: c[lma] <= mid)
    assert ids(api, "/customers", f'{lma} = "{mid}"') == expect(customers, lambda c: c[lma] == mid)
    # date-only and offset forms are normalised to the stored UTC millisecond form
    day = mid[:10]
    assert ids(api, "/customers", f'createdAt >= "{day}T00:00:00+00:00"') == \
        expect(customers, lambda c: c["createdAt"] >= f"{day}T00:00:00.000Z")
    assert ids(api, "/customers", 'version > 1') == expect(customers, lambda c: c["version"] > 1)
    assert ids(api, "/customers", 'version != 1') == expect(customers, lambda c: c["version"] != 1)
    assert ids(api, "/customers", 'version <> 1') == expect(customers, lambda c: c["version"] != 1)
    assert ids(api, "/customers", 'isEmailVerified = true') == expect(customers, lambda c: c["isEmailVerified"])
    assert ids(api, "/customers", 'isEmailVerified = false') == expect(customers, lambda c: not c["isEmailVerified"])
    name = next(c["firstName"] for c in customers if c.get("firstName"))
    assert ids(api, "/customers", f'firstName = "{name}"') == expect(customers, lambda c: c.get("firstName") == name)
    assert ids(api, "/customers", f'firstName != "{name}"') == \
        expect(customers, lambda c: c.get("firstName") is not None and c["firstName"] != name)


def test_logic_and_keywords_case_insensitive(api: Api, customers: list[dict[str, Any]]) -> None:
    want = expect(customers, lambda c: c["version"] > 1 and not c["isEmailVerified"])
    assert ids(api, "/customers", "version > 1 and isEmailVerified = false") == want
    assert ids(api, "/customers", "version > 1 AND isEmailVerified = FALSE") == want
    assert ids(api, "/customers", "version > 1", "isEmailVerified = false") == want  # repeated where = AND
    want_or = expect(customers, lambda c: c["version"] > 2 or c.get("companyName") is not None)
    assert ids(api, "/customers", "version > 2 Or companyName is defined") == want_or
    assert ids(api, "/customers", "NOT(version > 2 or companyName is defined)") == \
        {c["id"] for c in customers} - want_or
    assert ids(api, "/customers", "(version > 2 or (companyName is defined)) and stores is empty") == \
        expect(customers, lambda c: (c["version"] > 2 or "companyName" in c) and not c["stores"])


def test_in_defined_empty_contains(api: Api, customers: list[dict[str, Any]]) -> None:
    assert ids(api, "/customers", 'locale in ("de-DE", "ja-JP")') == \
        expect(customers, lambda c: c.get("locale") in ("de-DE", "ja-JP"))
    assert ids(api, "/customers", 'locale not in ("de-DE", "ja-JP")') == \
        expect(customers, lambda c: c.get("locale") is not None and c["locale"] not in ("de-DE", "ja-JP"))
    assert ids(api, "/customers", "companyName is defined") == expect(customers, lambda c: "companyName" in c)
    assert ids(api, "/customers", "companyName is not defined") == expect(customers, lambda c: "companyName" not in c)
    assert ids(api, "/customers", "stores is empty") == expect(customers, lambda c: not c["stores"])
    assert ids(api, "/customers", "stores is not empty") == expect(customers, lambda c: bool(c["stores"]))
    some = next(c for c in customers if c["shippingAddressIds"])
    addr = some["shippingAddressIds"][0]
    assert ids(api, "/customers", f'shippingAddressIds contains any ("{addr}", "zzz")') == {some["id"]}
    assert ids(api, "/customers", f'shippingAddressIds contains all ("{addr}")') == {some["id"]}
    assert ids(api, "/customers", f'shippingAddressIds contains all ("{addr}", "zzz")') == set()


def test_nested_paths(api: Api, customers: list[dict[str, Any]], orders: list[dict[str, Any]]) -> None:
    assert ids(api, "/customers", 'stores(key="eu")') == \
        expect(customers, lambda c: any(s["key"] == "eu" for s in c["stores"]))
    assert ids(api, "/orders", 'store(key="uk")') == expect(orders, lambda o: o["store"]["key"] == "uk")
    assert ids(api, "/customers", "custom(fields(newsletter=true))") == \
        expect(customers, lambda c: c.get("custom", {}).get("fields", {}).get("newsletter") is True)
    group = next(c["customerGroup"]["id"] for c in customers if c.get("customerGroup"))
    assert ids(api, "/customers", f'customerGroup(id="{group}")') == \
        expect(customers, lambda c: c.get("customerGroup", {}).get("id") == group)
    assert ids(api, "/orders", 'shippingAddress(country="DE")') == \
        expect(orders, lambda o: o["shippingAddress"]["country"] == "DE")
    sku = orders[0]["lineItems"][0]["variant"]["sku"]
    assert ids(api, "/orders", f'lineItems(variant(sku="{sku}"))') == \
        expect(orders, lambda o: any(li["variant"]["sku"] == sku for li in o["lineItems"]))
    assert ids(api, "/orders", 'totalPrice(currencyCode="JPY" and centAmount > 10000)') == \
        expect(orders, lambda o: o["totalPrice"]["currencyCode"] == "JPY" and o["totalPrice"]["centAmount"] > 10000)
    pay = next(o for o in orders if o.get("paymentInfo"))["paymentInfo"]["payments"][0]["id"]
    assert pay in {p["id"] for o in orders if o["id"] in ids(api, "/orders", f'paymentInfo(payments(id="{pay}"))')
                   for p in o["paymentInfo"]["payments"]}
    msgs = api.ok("/messages", [("where", 'resource(typeId="order")'), ("limit", "500")])["results"]
    assert msgs and all(m["resource"]["typeId"] == "order" for m in msgs)
    assert api.ok("/payments", [("where", 'transactions(type="Refund" and state="Success")')])["count"] > 0


def test_input_variables_and_string_escapes(api: Api, customers: list[dict[str, Any]]) -> None:
    some = customers[10]
    assert ids(api, "/customers", "id = :x", extra=[("var.x", some["id"])]) == {some["id"]}
    assert ids(api, "/customers", "id in :x", extra=[("var.x", customers[1]["id"]), ("var.x", customers[2]["id"])]) \
        == {customers[1]["id"], customers[2]["id"]}
    tricky = next(c for c in customers if "'" in (c.get("lastName") or ""))
    assert tricky["id"] in ids(api, "/customers", f'lastName = "{tricky["lastName"]}"')
    assert ids(api, "/customers", 'firstName = "a\\"b"') == set()
    # case-insensitive email lookup
    messy = next(c for c in customers if c["email"] != c["email"].lower())
    assert messy["id"] in ids(api, "/customers", f'lowercaseEmail = "{messy["email"].lower()}"')


@pytest.mark.parametrize("where", [
    "lastModifiedAt > ", "firstName = John", 'firstName == "x"', "(version > 1", "version > 1)",
    'lastModifiedAt > "yesterday"', 'version = "abc"', "lastModifiedAt > 5", "id = :missing",
    "isEmailVerified = 3", 'firstName = "bad \\q escape"', "and", "not version", "stores is weird",
    '"just a string"', "version > 1 and", "x contains any ()", "#", 'dateOfBirth = "1990"',
])
def test_malformed_where_is_400(api: Api, where: str) -> None:
    r = api.get("/customers", {"where": where})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["statusCode"] == 400
    assert body["errors"][0]["code"] == "InvalidInput"
    assert body["errors"][0]["message"].startswith("Malformed parameter: where: ")


def test_sort_multi_field(api: Api, customers: list[dict[str, Any]]) -> None:
    got = api.ok("/customers", [("sort", "version desc"), ("sort", "createdAt asc"), ("limit", "500")])["results"]
    want = sorted(customers, key=lambda c: c["createdAt"])
    want.sort(key=lambda c: c["version"], reverse=True)
    assert [c["id"] for c in got] == [c["id"] for c in want]
    got = api.ok("/customers", [("sort", "lastModifiedAt desc"), ("sort", "id desc"), ("limit", "50")])["results"]
    want = sorted(customers, key=lambda c: (c["lastModifiedAt"], c["id"]), reverse=True)[:50]
    assert [c["id"] for c in got] == [c["id"] for c in want]
    got = api.ok("/customers", [("sort", "firstName asc"), ("sort", "id asc"), ("limit", "500")])["results"]
    named = [c for c in got if c.get("firstName")]
    assert [c["firstName"] for c in named] == sorted(c["firstName"] for c in named)
    assert api.get("/customers", {"sort": "id sideways"}).status_code == 400


def test_limit_offset_caps(api: Api) -> None:
    assert api.ok("/customers", {"limit": 500})["count"] == 300
    assert api.ok("/customers", {"limit": 0})["count"] == 0
    for params in ({"limit": 501}, {"limit": -1}, {"limit": "ten"}, {"offset": 10_001}, {"offset": -5}):
        r = api.get("/customers", params)
        assert r.status_code == 400, params
        assert r.json()["errors"][0]["code"] == "InvalidInput"
    assert api.ok("/customers", {"offset": 10_000})["count"] == 0
    first = api.ok("/customers", {"sort": "id asc", "limit": 10})["results"]
    second = api.ok("/customers", {"sort": "id asc", "limit": 5, "offset": 5})["results"]
    assert second == first[5:]


def test_with_total(api: Api) -> None:
    assert "total" not in api.ok("/customers", {"withTotal": "false"})
    assert api.ok("/customers", {"withTotal": "true", "where": 'stores(key="us")'})["total"] > 0
    assert api.get("/customers", {"withTotal": "maybe"}).status_code == 400


def test_expand(api: Api) -> None:
    c = api.ok("/customers", {"where": "customerGroup is defined", "expand": "customerGroup", "limit": 1})["results"][0]
    assert c["customerGroup"]["obj"]["id"] == c["customerGroup"]["id"] and c["customerGroup"]["obj"]["name"]
    o = api.ok("/orders", {"where": "paymentInfo is defined", "expand": "paymentInfo.payments[*]", "limit": 3})
    for order in o["results"]:
        for ref in order["paymentInfo"]["payments"]:
            assert ref["obj"]["id"] == ref["id"] and ref["obj"]["transactions"]
    cart = api.ok("/carts", {"where": "customerGroup is defined", "expand": "customerGroup", "limit": 1})["results"]
    assert not cart or "obj" in cart[0]["customerGroup"]
    single = api.ok(f"/orders/{o['results'][0]['id']}", {"expand": "paymentInfo.payments[*]"})
    assert "obj" in single["paymentInfo"]["payments"][0]
    # the stored record is not modified by expansion
    assert "obj" not in api.ok(f"/orders/{o['results'][0]['id']}")["paymentInfo"]["payments"][0]


def test_in_store_endpoint(api: Api, orders: list[dict[str, Any]]) -> None:
    got = api.ok("/in-store/key=eu/orders", {"limit": 500})["results"]
    assert {o["id"] for o in got} == expect(orders, lambda o: o["store"]["key"] == "eu")


def keyset_pages(api: Api, path: str, since: str, limit: int, on_page: Any = None) -> list[dict[str, Any]]:
    """The sync's extraction loop, verbatim."""
    seen: list[dict[str, Any]] = []
    cursor: tuple[str, str] | None = None
    while True:
        params = [("sort", "lastModifiedAt asc"), ("sort", "id asc"), ("limit", str(limit)),
                  ("withTotal", "false"), ("where", f'lastModifiedAt >= "{since}"')]
        if cursor:
            params.append(("where", f'lastModifiedAt > "{cursor[0]}" or '
                                    f'(lastModifiedAt = "{cursor[0]}" and id > "{cursor[1]}")'))
        page = api.ok(path, params)["results"]
        seen.extend(page)
        if on_page:
            on_page(len(seen))
        if len(page) < limit:
            return seen
        cursor = (page[-1]["lastModifiedAt"], page[-1]["id"])


def test_keyset_pagination_with_ties(api: Api) -> None:
    everything = api.all("/orders")
    ties = Counter(o["lastModifiedAt"] for o in everything)
    assert max(ties.values()) >= 3, "seed must contain lastModifiedAt ties"
    since = "2000-01-01T00:00:00.000Z"
    got = keyset_pages(api, "/orders", since, limit=7)
    assert len(got) == len(everything)
    assert Counter(o["id"] for o in got) == Counter(o["id"] for o in everything)
    keys = [(o["lastModifiedAt"], o["id"]) for o in got]
    assert keys == sorted(keys)


def test_records_changed_while_paging_appear_later(api: Api) -> None:
    since = "2000-01-01T00:00:00.000Z"
    first_page = api.ok("/customers", [("sort", "lastModifiedAt asc"), ("sort", "id asc"), ("limit", "5")])["results"]
    target = first_page[0]  # already read on page one; a change must make it show up again
    changed: dict[str, Any] = {}

    def change(n_seen: int) -> None:
        if n_seen >= 50 and not changed:
            r = api.post(f"/customers/{target['id']}", {"version": api.ok(f"/customers/{target['id']}")["version"],
                                                         "actions": [{"action": "setFirstName", "firstName": "Paged"}]})
            assert r.status_code == 200
            changed.update(r.json())

    got = keyset_pages(api, "/customers", since, limit=25, on_page=change)
    assert changed
    seen_versions = [c["version"] for c in got if c["id"] == target["id"]]
    assert seen_versions == [target["version"], changed["version"]]
    assert got[-1]["id"] == target["id"] or any(c["id"] == target["id"] for c in got[-5:])
    assert len({c["id"] for c in got}) == 300


def test_planner_uses_index_for_delta_queries(api: Api) -> None:
    r = api.get("/customers", [("where", 'lastModifiedAt >= "2025-12-20T00:00:00.000Z"'),
                               ("sort", "lastModifiedAt asc"), ("sort", "id asc"), ("limit", "3"),
                               ("withTotal", "false")])
    assert r.headers["X-Sandbox-Index"] == "lastModifiedAt"
    assert int(r.headers["X-Sandbox-Examined"]) == 3
    r = api.get("/customers", [("where", "id > :x"), ("var.x", "8"), ("sort", "id asc"), ("limit", "2"),
                               ("withTotal", "false")])
    assert r.headers["X-Sandbox-Index"] == "id" and int(r.headers["X-Sandbox-Examined"]) == 2
    stats = api.control("/stats", method="GET").json()
    assert stats["lastQuery"]["examined"] == 2 and stats["examined"]["customers"] > 0


def test_a_query_by_ids_walks_only_those_records(api: Api, customers: list[dict[str, Any]]) -> None:
    """commercetools resolves `id in (...)` by key: the sandbox must not walk the id index between
    the smallest and the largest of a few random ids (a shop's size would show in the delta's time)."""
    picked = sorted(c["id"] for c in customers[::7][:5])
    quoted = ", ".join(f'"{i}"' for i in [*picked, "no-such-id"])
    for where in (f"id in ({quoted})", f'id in ({quoted}) and firstName is defined',
                  f'id = "{picked[0]}" or id = "{picked[1]}"'):
        r = api.get("/customers", {"where": where, "withTotal": "false", "sort": "id desc"})
        assert r.status_code == 200, r.text
        got = [c["id"] for c in r.json()["results"]]
        wanted = sorted((i for i in picked if f'"{i}"' in where), reverse=True)
        if "firstName" in where:
            wanted = [i for i in wanted if "firstName" in next(c for c in customers if c["id"] == i)]
        assert got == wanted, where
        assert int(r.headers["X-Sandbox-Examined"]) <= len(picked), where


def test_a_query_by_customer_walks_only_their_orders(api: Api, orders: list[dict[str, Any]]) -> None:
    """`customerId in (...)` and `customerEmail in (...)` are answered from a lookup, as an index would
    in commercetools: a backfill reading each chunk's order history must not walk every order."""
    registered = [o for o in orders if o.get("customerId")]
    people = sorted({o["customerId"] for o in registered[::9][:4]})
    quoted = ", ".join(f'"{i}"' for i in people)
    r = api.get("/orders", [("where", f"customerId in ({quoted})"), ("limit", "500")])
    want = expect(orders, lambda o: o.get("customerId") in people)
    assert {o["id"] for o in r.json()["results"]} == want
    assert int(r.headers["X-Sandbox-Examined"]) == len(want) < len(orders)
    email = next(o["customerEmail"] for o in orders if not o.get("customerId"))
    r = api.get("/orders", [("where", "customerEmail in (:e)"), ("var.e", email),
                            ("where", "customerId is not defined"), ("limit", "500")])
    want = expect(orders, lambda o: o.get("customerEmail") == email and not o.get("customerId"))
    assert {o["id"] for o in r.json()["results"]} == want and want
    assert int(r.headers["X-Sandbox-Examined"]) <= len(expect(orders, lambda o: o.get("customerEmail") == email))

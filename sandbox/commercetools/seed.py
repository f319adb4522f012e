"""Deterministic, deliberately messy shop data: stores, customer groups, customers, orders (incl.
guest orders), carts, payments and the messages their history produced.

Everything derives from one `random.Random(seed)` and an anchor time (default: today 00:00 UTC), so
the same `--size/--seed` gives the same shop on the same day, and every timestamp lies before start.
Nested structures that never change (catalog variants, tax rates, store references) are shared
between records to keep a 100k-customer shop small; stored records are never mutated (see store.py).
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .messages import CLIENT, build_message
from .store import Resource, Store, format_ms

DAY_MS = 86_400_000
HISTORY_DAYS = 730
CUSTOMER_TYPE_ID = "6f1d3b2a-5c4e-4a8b-9d7f-0e1a2b3c4d5e"
LONG_TEXT = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 1300)[:70_000]

STORES = {
    # key: (name, languages, countries, currency, locales)
    "eu": ({"en": "EU Store", "de": "EU-Shop"}, ["de-DE", "fr-FR", "en"], ["DE", "FR", "AT", "NL", "IT"], "EUR",
           ["de-DE", "fr-FR", "en", "it-IT", "nl-NL"]),
    "us": ({"en": "US Store"}, ["en-US", "es-US"], ["US"], "USD", ["en-US", "es-US"]),
    "uk": ({"en": "UK Store"}, ["en-GB"], ["GB"], "GBP", ["en-GB", "en"]),
    "jp": ({"en": "Japan Store", "ja": "日本ストア"}, ["ja-JP"], ["JP"], "JPY", ["ja-JP", "en"]),
}
STORE_WEIGHTS = [("eu", 40), ("us", 25), ("uk", 20), ("jp", 15)]
CUSTOMER_GROUPS = [("retail", "Retail"), ("vip", "VIP Customers"), ("b2b", "B2B / Wholesale"),
                   ("employees", "Employees"), ("newsletter-only", "Newsletter only")]
FIRST_NAMES = ["John", "Jane", "Anna", "Jürgen", "Zoë", "François", "María José", "Øyvind", "Siobhán",
               "太郎", "花子", "محمد", "فاطمة", "Дмитрий", "Ἀλέξανδρος", "Sunny 😀", "O'Neil", "Li", "Chloé",
               "Mads", "Aiko", "Noah", "Emma", "Luca", "Sofia", "Hans-Peter", "Ana", "Wei", "Олена", "יעל"]
LAST_NAMES = ["Doe", "Müller", "Schmidt", "Dupont", "García", "Rossi", "山田", "佐藤", "الحسن", "Иванов",
              "O'Brien", "van der Berg", "Nguyễn", "Smith", "Johnson", "Kowalski", "Søren", "Cohen 🎉",
              "de la Cruz", "Lee", "Brown", "Wilson", "Tanaka", "Fischer", "Weber", "Martin", "כהן"]
ASCII_FIRST = ["john", "jane", "anna", "juergen", "zoe", "francois", "maria", "oyvind", "siobhan", "taro",
               "hanako", "mohammed", "fatima", "dmitri", "alex", "sunny", "oneil", "li", "chloe", "mads",
               "aiko", "noah", "emma", "luca", "sofia", "hanspeter", "ana", "wei", "olena", "yael"]
DOMAINS = ["example.com", "Example.COM", "mail.example.org", "gmail.example", "shop-customer.example",
           "firma.example.de", "example.co.jp", "example.co.uk"]
CITIES = {"DE": ("Berlin", "10115"), "FR": ("Paris", "75001"), "AT": ("Wien", "1010"), "NL": ("Amsterdam", "1011"),
          "IT": ("Milano", "20121"), "US": ("New York", "10001"), "GB": ("London", "SW1A 1AA"),
          "JP": ("東京都", "100-0001")}
STREETS = ["Hauptstraße", "Main Street", "Rue de Rivoli", "High Street", "銀座通り", "Via Roma", "Kerkstraat"]
CHANNELS = ["web", "email", "store", "phone"]
ORDER_STATES = ["Open", "Confirmed", "Complete", "Cancelled"]
PAYMENT_STATES = ["BalanceDue", "Failed", "Pending", "CreditOwed", "Paid"]
SHIPMENT_STATES = ["Shipped", "Delivered", "Ready", "Pending", "Delayed", "Partial", "Backorder", "Canceled"]
FRACTION = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0}
TAX = {"EUR": ("MwSt 19%", 0.19, "DE"), "USD": ("Sales tax", 0.08, "US"), "GBP": ("VAT 20%", 0.2, "GB"),
       "JPY": ("消費税 10%", 0.1, "JP")}
PSP = [("STRIPE", "CREDIT_CARD", {"en": "Credit Card", "de": "Kreditkarte"}),
       ("ADYEN", "KLARNA", {"en": "Klarna"}), ("PAYPAL", "PAYPAL", {"en": "PayPal"}),
       ("MANUAL", "INVOICE", {"en": "Invoice", "de": "Rechnung"})]


def money(currency: str, cents: int) -> dict[str, Any]:
    return {"type": "centPrecision", "currencyCode": currency, "centAmount": cents,
            "fractionDigits": FRACTION.get(currency, 2)}


@dataclass
class SeedInfo:
    size: int
    seed: int
    anchor: str
    seconds: float = 0.0


class Seeder:
    def __init__(self, store: Store, size: int, seed: int, anchor_ms: int, retention_days: int) -> None:
        self.store = store
        self.size = size
        self.rng = random.Random(seed)
        self.anchor = anchor_ms
        self.cutoff = anchor_ms - retention_days * DAY_MS if retention_days > 0 else 0
        self.messages: list[Resource] = []
        self.sequence = store.sequence
        # "bulk import" instants: many records share these exact lastModifiedAt values (ties matter)
        self.tie_instants = sorted(anchor_ms - self.rng.randint(DAY_MS, 400 * DAY_MS) for _ in range(12))
        self.tie_instants += [anchor_ms - self.rng.randint(60_000, 5 * DAY_MS) for _ in range(4)]
        self.day_cache: dict[int, str] = {}

    # --- primitives -------------------------------------------------------------------------------
    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"

    def ts(self, ms: int) -> str:
        """format_ms with the date part cached per day (seeding formats about a million timestamps)."""
        day, rest = divmod(ms, DAY_MS)
        prefix = self.day_cache.get(day)
        if prefix is None:
            prefix = self.day_cache[day] = format_ms(day * DAY_MS)[:11]
        secs, milli = divmod(rest, 1000)
        mins, sec = divmod(secs, 60)
        hour, minute = divmod(mins, 60)
        return f"{prefix}{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z"

    def created_ms(self) -> int:
        # a tenth of the shop is recent activity (inside the message retention window)
        if self.rng.random() < 0.1:
            return self.anchor - self.rng.randint(60_000, 14 * DAY_MS)
        return self.anchor - self.rng.randint(DAY_MS, HISTORY_DAYS * DAY_MS)

    def modified_ms(self, created: int) -> int:
        r = self.rng.random()
        if r < 0.06:  # shares an exact instant with other records
            later = [t for t in self.tie_instants if t >= created]
            if later:
                return self.rng.choice(later)
        if r < 0.45:
            return created
        return created + int((self.anchor - 1 - created) * self.rng.random() ** 2)

    def change_times(self, created: int, modified: int, count: int) -> list[int]:
        if count == 0:
            return []
        times = sorted(self.rng.randint(created + 1, max(created + 1, modified)) for _ in range(count - 1))
        return [*times, max(modified, created + 1)]

    def message(self, type_id: str, res: Resource, at_ms: int, version: int, mtype: str,
                payload: dict[str, Any]) -> None:
        """Count the message in the resource's sequence; keep it only inside the retention window, as
        the real project deletes older ones (deleteDaysAfterCreation)."""
        seq = self.sequence.get(res["id"], 0) + 1
        self.sequence[res["id"]] = seq
        if at_ms >= self.cutoff:
            self.messages.append(build_message(self.uuid(), self.ts(at_ms), type_id, res, seq, version,
                                               mtype, payload))

    # --- reference data ---------------------------------------------------------------------------
    def seed_reference_data(self) -> None:
        created = self.ts(self.anchor - HISTORY_DAYS * DAY_MS - 30 * DAY_MS)
        stores = []
        for key, (name, languages, countries, _currency, _locales) in STORES.items():
            stores.append({"id": self.uuid(), "version": 1, "key": key, "name": name, "languages": languages,
                           "countries": [{"code": c} for c in countries], "distributionChannels": [],
                           "supplyChannels": [], "productSelections": [], "createdAt": created,
                           "lastModifiedAt": created})
        self.store.collections["stores"].load(stores)
        self.store_refs = {key: {"typeId": "store", "key": key} for key in STORES}
        groups = []
        for key, group_name in CUSTOMER_GROUPS:
            groups.append({"id": self.uuid(), "version": 1, "key": key, "name": group_name, "createdAt": created,
                           "lastModifiedAt": created})
        self.store.collections["customer-groups"].load(groups)
        self.group_refs = [{"typeId": "customer-group", "id": g["id"]} for g in groups]
        self.type_ref = {"typeId": "type", "id": CUSTOMER_TYPE_ID}
        self.product_type = {"typeId": "product-type", "id": self.uuid(), "version": 3}
        self.tax_category = {"typeId": "tax-category", "id": self.uuid()}
        self.shipping_method = {"typeId": "shipping-method", "id": self.uuid()}
        self.discount_refs = [{"typeId": "cart-discount", "id": self.uuid()} for _ in range(3)]
        self.discount_codes = [{"typeId": "discount-code", "id": self.uuid()} for _ in range(4)]
        self.line_state = {"typeId": "state", "id": self.uuid()}
        self.tax_rates = {cur: {"name": n, "amount": a, "includedInPrice": cur != "USD", "country": c,
                                "id": self.uuid()[:8], "subRates": []} for cur, (n, a, c) in TAX.items()}
        self.catalog: list[dict[str, Any]] = []
        colors = [("red", {"en": "Red", "de": "Rot"}), ("blue", {"en": "Blue", "de": "Blau"}),
                  ("black", {"en": "Black", "de": "Schwarz"})]
        for p in range(200):
            base_eur = self.rng.randint(5, 400) * 100 - 1
            pid = self.uuid()
            name = {"en": f"Product {p}", "de": f"Produkt {p}"}
            if p % 17 == 0:
                name["ja"] = f"製品 {p} ✨"
            variants = []
            for v in range(1, self.rng.randint(1, 3) + 1):
                sku = f"SKU-{p:04d}-{v}"
                color_key, color_label = colors[(p + v) % 3]
                attributes = [{"name": "material", "value": self.rng.choice(["cotton", "wool", "steel", "木"])},
                              {"name": "color", "value": {"key": color_key, "label": color_label}},
                              {"name": "size", "value": self.rng.choice(["S", "M", "L", "XL"])},
                              {"name": "weight", "value": self.rng.randint(50, 5000)},
                              {"name": "giftable", "value": p % 3 == 0}]
                per_currency = {}
                for cur in FRACTION:
                    cents = base_eur * 150 // 100 if cur == "JPY" else base_eur
                    price = {"id": self.uuid(), "value": money(cur, cents)}
                    per_currency[cur] = ({"id": v, "sku": sku, "key": sku.lower(), "prices": [price],
                                          "images": [{"url": f"https://images.example.com/{sku}.jpg",
                                                      "dimensions": {"w": 800, "h": 800}}],
                                          "attributes": attributes, "assets": []}, price)
                variants.append(per_currency)
            product = {"id": pid, "key": f"product-{p}", "name": name,
                       "slug": {"en": f"product-{p}", "de": f"produkt-{p}"}, "variants": variants}
            self.catalog.append(product)
            for variant_prices in variants:
                self.store.catalog[str(variant_prices["EUR"][0]["sku"])] = (product, variant_prices)

    # --- customers --------------------------------------------------------------------------------
    def address(self, country: str, first: str | None, last: str | None, email: str | None) -> dict[str, Any]:
        rng = self.rng
        city, postal = CITIES[country]
        addr: dict[str, Any] = {"id": self.uuid()[:8], "country": country, "streetName": rng.choice(STREETS),
                                "streetNumber": str(rng.randint(1, 250)), "postalCode": postal, "city": city}
        if first:
            addr["firstName"] = first
        if last:
            addr["lastName"] = last
        if email and rng.random() < 0.5:
            addr["email"] = email.strip()
        if rng.random() < 0.4:
            addr["phone"] = f"+{rng.randint(1, 81)} {rng.randint(100, 999)} {rng.randint(100000, 9999999)}"
        if rng.random() < 0.1:
            addr["additionalStreetInfo"] = "Hinterhaus, 3. OG"
        return addr

    def messy_email(self, n: int, first_ascii: str) -> str:
        rng = self.rng
        local = f"{first_ascii}.{n}" if rng.random() < 0.85 else f"user{n}+shop"
        email = f"{local}@{rng.choice(DOMAINS)}"
        r = rng.random()
        if r < 0.08:
            email = email.title()
        elif r < 0.12:
            email = email.upper()
        if rng.random() < 0.04:
            email = f"  {email} "
        return email

    def customer(self, n: int, store_key: str | None, email: str | None = None) -> Resource:
        rng = self.rng
        fi = rng.randrange(len(FIRST_NAMES))
        first: str | None = FIRST_NAMES[fi]
        last: str | None = rng.choice(LAST_NAMES)
        if rng.random() < 0.06:
            first = None
        if rng.random() < 0.06:
            last = None
        email = email or self.messy_email(n, ASCII_FIRST[fi])
        created = self.created_ms()
        modified = self.modified_ms(created)
        cid = self.uuid()
        country = rng.choice(STORES[store_key][2]) if store_key else rng.choice(list(CITIES))
        locales = STORES[store_key][4] if store_key else ["en", "de-DE", "en-US", "fr-FR", "ja-JP"]
        res: Resource = {"id": cid, "version": 1, "createdAt": self.ts(created), "lastModifiedAt": self.ts(created),
                         "lastModifiedBy": CLIENT, "createdBy": CLIENT}
        if rng.random() < 0.8:
            res["customerNumber"] = f"C{n:07d}"
        if rng.random() < 0.5:
            res["key"] = f"customer-{n}"
        if rng.random() < 0.6:
            res["externalId"] = f"CRM-{rng.randint(10**6, 10**7 - 1)}"
        res["email"] = email
        if first:
            res["firstName"] = first
        if last:
            res["lastName"] = last
        if rng.random() < 0.03:
            res["middleName"] = "Q."
        if rng.random() < 0.2:
            res["salutation"] = rng.choice(["Mr", "Ms", "Mx", "Herr", "Frau"])
        if rng.random() < 0.05:
            res["title"] = "Dr."
        if rng.random() < 0.3:
            res["dateOfBirth"] = f"{rng.randint(1940, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if rng.random() < 0.1:
            res["companyName"] = rng.choice(["ACME GmbH", "Globex Corp.", "株式会社サンプル", "Initech Ltd",
                                             "Müller & Söhne KG"])
            res["vatId"] = f"DE{rng.randint(10**8, 10**9 - 1)}"
        auth = "Password" if rng.random() < 0.9 else "ExternalAuth"
        if auth == "Password":
            res["password"] = "****" + rng.choice(["aGg=", "b3Q=", "Zm8=", "cXc="])
        addresses = [self.address(country, first, last, email) for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3)))]
        res["addresses"] = addresses
        if addresses:
            res["defaultShippingAddressId"] = addresses[0]["id"]
            res["defaultBillingAddressId"] = addresses[-1]["id"]
        res["shippingAddressIds"] = [a["id"] for a in addresses[:1]]
        res["billingAddressIds"] = [a["id"] for a in addresses[-1:]]
        res["isEmailVerified"] = rng.random() < 0.7
        if rng.random() < 0.3:
            group = rng.choice(self.group_refs)
            res["customerGroup"] = group
            res["customerGroupAssignments"] = [{"customerGroup": group}]
        else:
            res["customerGroupAssignments"] = []
        long_value = n % 997 in (5, 7)  # a few customers carry a 70,000-character value
        if rng.random() < 0.65 or long_value:
            opted = rng.random() < 0.55
            fields: dict[str, Any] = {"newsletter": opted, "consentChannel": rng.choice(CHANNELS)}
            if opted:
                fields["newsletterOptInDate"] = self.ts(created + rng.randint(0, max(1, modified - created)))
            if rng.random() < 0.3:
                fields["preferredGreeting"] = {"en": f"Hello {first or 'there'}", "de": f"Hallo {first or ''}".strip()}
            if rng.random() < 0.2:
                fields["lifetimeBudget"] = money(STORES[store_key][3] if store_key else "EUR",
                                                 rng.randint(0, 5000) * 100)
            if long_value:
                fields["notes"] = LONG_TEXT
            res["custom"] = {"type": self.type_ref, "fields": fields}
        if rng.random() < 0.9:
            res["locale"] = rng.choice(locales)
        res["stores"] = [self.store_refs[store_key]] if store_key else []
        res["authenticationMode"] = auth
        # History: CustomerCreated, then a few updates up to lastModifiedAt.
        if created >= self.cutoff:
            self.message("customer", res, created, 1, "CustomerCreated", {"customer": dict(res)})
        updates = 0 if modified == created else rng.choice((1, 1, 2, 3))
        for i, at in enumerate(self.change_times(created, modified, updates)):
            version = 2 + i
            kind = rng.random()
            if kind < 0.4 and first:
                self.message("customer", res, at, version, "CustomerFirstNameSet", {"firstName": first})
            elif kind < 0.6 and last:
                self.message("customer", res, at, version, "CustomerLastNameSet", {"lastName": last})
            elif kind < 0.8 and "externalId" in res:
                self.message("customer", res, at, version, "CustomerExternalIdSet", {"externalId": res["externalId"]})
            else:
                self.message("customer", res, at, version, "CustomerEmailChanged",
                             {"email": email, "oldEmail": f"old.{n}@example.com"})
        res["version"] = 1 + updates
        res["lastModifiedAt"] = self.ts(modified)
        res["_ms"] = (created, modified)
        return res

    # --- orders, payments, carts ------------------------------------------------------------------
    def line_items(self, currency: str, locale_tax: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
        rng = self.rng
        items = []
        net_total = 0
        gross_total = 0
        rate = locale_tax["amount"]
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            product = rng.choice(self.catalog)
            variant, price = rng.choice(product["variants"])[currency]
            qty = rng.choice((1, 1, 1, 2, 3, 10))
            unit = price["value"]["centAmount"]
            price_obj: dict[str, Any] = price
            if rng.random() < 0.03:  # high-precision price (e.g. B2B unit pricing)
                precise = unit * 100 + rng.randint(1, 99)
                digits = FRACTION[currency] + 2
                price_obj = {"id": price["id"], "value": {"type": "highPrecision", "currencyCode": currency,
                                                          "centAmount": unit, "fractionDigits": digits,
                                                          "preciseAmount": precise}}
            discounted: list[dict[str, Any]] = []
            line_cents = unit * qty
            if rng.random() < 0.15:
                off = max(1, unit // 10)
                discounted = [{"quantity": qty, "discountedPrice": {
                    "value": money(currency, unit - off),
                    "includedDiscounts": [{"discount": rng.choice(self.discount_refs),
                                           "discountedAmount": money(currency, off)}]}}]
                line_cents = (unit - off) * qty
            if locale_tax["includedInPrice"]:
                gross, net = line_cents, round(line_cents / (1 + rate))
            else:
                net, gross = line_cents, round(line_cents * (1 + rate))
            net_total += net
            gross_total += gross
            items.append({
                "id": self.uuid(), "productId": product["id"], "productKey": product["key"],
                "name": product["name"], "productType": self.product_type, "productSlug": product["slug"],
                "variant": variant, "price": price_obj, "quantity": qty,
                "discountedPricePerQuantity": discounted, "taxRate": locale_tax,
                "state": [{"quantity": qty, "state": self.line_state}],
                "priceMode": "Platform", "lineItemMode": "Standard",
                "totalPrice": money(currency, line_cents),
                "taxedPrice": {"totalNet": money(currency, net), "totalGross": money(currency, gross),
                               "totalTax": money(currency, gross - net),
                               "taxPortions": [{"rate": rate, "amount": money(currency, gross - net),
                                                "name": locale_tax["name"]}]},
                "perMethodTaxRate": [], "taxedPricePortions": []})
        return items, net_total, gross_total

    def order(self, n: int, customer: Resource | None, store_key: str, created: int, guest_email: str | None
              ) -> tuple[Resource, list[Resource], Resource | None]:
        rng = self.rng
        currency = STORES[store_key][3]
        tax = self.tax_rates[currency]
        items, net, gross = self.line_items(currency, tax)
        shipping_cents = 0 if gross > 5000 else (500 if currency != "JPY" else 750)
        total = gross + shipping_cents
        modified = self.modified_ms(created)
        oid = self.uuid()
        order: Resource = {"type": "Order", "id": oid, "version": 1, "createdAt": self.ts(created),
                           "lastModifiedAt": self.ts(created), "lastModifiedBy": CLIENT, "createdBy": CLIENT,
                           "orderNumber": f"ORD-{n:08d}"}
        country = rng.choice(STORES[store_key][2])
        if customer is not None:
            order["customerId"] = customer["id"]
            order["customerEmail"] = customer["email"].strip() if rng.random() < 0.8 else customer["email"]
            if "customerGroup" in customer:
                order["customerGroup"] = customer["customerGroup"]
            addr = customer["addresses"][0] if customer["addresses"] else None
            first, last = customer.get("firstName"), customer.get("lastName")
        else:
            order["customerEmail"] = guest_email
            order["anonymousId"] = self.uuid()
            addr = None
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if addr is None or addr["country"] not in STORES[store_key][2]:
            addr = self.address(country, first, last, order.get("customerEmail"))
        order["store"] = self.store_refs[store_key]
        order["lineItems"] = items
        order["customLineItems"] = []
        order["totalPrice"] = money(currency, total)
        order["taxedPrice"] = {"totalNet": money(currency, net + shipping_cents),
                               "totalGross": money(currency, total),
                               "totalTax": money(currency, gross - net),
                               "taxPortions": [{"rate": tax["amount"], "amount": money(currency, gross - net),
                                                "name": tax["name"]}]}
        order["taxMode"] = "Platform"
        order["inventoryMode"] = "None"
        order["taxRoundingMode"] = "HalfEven"
        order["taxCalculationMode"] = "LineItemLevel"
        order["origin"] = "Customer" if rng.random() < 0.92 else "Merchant"
        order["shippingAddress"] = addr
        order["billingAddress"] = addr if rng.random() < 0.8 else self.address(country, first, last, None)
        order["country"] = addr["country"]
        order["locale"] = rng.choice(STORES[store_key][4])
        order["shippingInfo"] = {
            "shippingMethodName": "Standard", "price": money(currency, shipping_cents),
            "shippingRate": {"price": money(currency, 500 if currency != "JPY" else 750),
                             "freeAbove": money(currency, 5000), "tiers": []},
            "taxRate": tax, "taxCategory": self.tax_category, "shippingMethod": self.shipping_method,
            "deliveries": [], "shippingMethodState": "MatchesCart"}
        order["shippingMode"] = "Single"
        order["shipping"] = []
        order["discountCodes"] = ([{"discountCode": rng.choice(self.discount_codes), "state": "MatchesCart"}]
                                  if rng.random() < 0.1 else [])
        order["syncInfo"] = []
        order["refusedGifts"] = []
        order["returnInfo"] = []
        # Final states; the history replays them from Open/Pending.
        order_state = rng.choices(ORDER_STATES, (15, 25, 50, 10))[0]
        payment_state = ("Paid" if order_state == "Complete" and rng.random() < 0.9
                         else rng.choices(PAYMENT_STATES, (10, 8, 30, 7, 45))[0])
        shipment_state = ("Delivered" if order_state == "Complete"
                          else "Canceled" if order_state == "Cancelled" and rng.random() < 0.7
                          else rng.choice(SHIPMENT_STATES))
        returned = order_state == "Complete" and rng.random() < 0.08
        if returned:
            payment_state = "CreditOwed" if rng.random() < 0.5 else "Paid"
        order["orderState"] = "Open"
        order["paymentState"] = "Pending"
        order["shipmentState"] = "Pending"
        payments: list[Resource] = []
        if rng.random() < 0.87:
            attempts = 2 if rng.random() < 0.05 else 1
            for a in range(attempts):
                final_failed = attempts == 2 and a == 0
                payments.append(self.payment(n * 3 + a, order, customer, created, modified, payment_state,
                                             order_state, returned, final_failed))
            order["paymentInfo"] = {"payments": [{"typeId": "payment", "id": p["id"]} for p in payments]}
        cart = None
        if rng.random() < 0.3:
            cart = self.cart_for(order, created)
            order["cart"] = {"typeId": "cart", "id": cart["id"]}
        if created >= self.cutoff:
            self.message("order", order, created, 1, "OrderCreated", {"order": dict(order)})
        changes: list[tuple[str, dict[str, Any]]] = []
        if order_state != "Open":
            changes.append(("OrderStateChanged", {"orderState": order_state, "oldOrderState": "Open"}))
        if payment_state != "Pending":
            changes.append(("OrderPaymentStateChanged", {"paymentState": payment_state, "oldPaymentState": "Pending"}))
        if shipment_state != "Pending":
            changes.append(("OrderShipmentStateChanged",
                            {"shipmentState": shipment_state, "oldShipmentState": "Pending"}))
        if returned:
            item = items[0]
            returned_at = self.ts(modified)
            order["returnInfo"] = [{"items": [{"type": "LineItemReturnItem", "id": self.uuid(), "quantity": 1,
                                               "lineItemId": item["id"], "comment": "zu groß / too big",
                                               "shipmentState": "Returned", "paymentState": "Refunded",
                                               "createdAt": returned_at, "lastModifiedAt": returned_at}],
                                    "returnTrackingId": f"RT{n}", "returnDate": returned_at}]
            changes.append(("ReturnInfoAdded", {"returnInfo": order["returnInfo"][0]}))
        if changes and modified == created:
            modified = created + rng.randint(60_000, 20 * DAY_MS)
            modified = min(modified, self.anchor - 1)
        for i, at in enumerate(self.change_times(created, modified, len(changes))):
            mtype, payload = changes[i]
            self.message("order", order, at, 2 + i, mtype, payload)
        order["orderState"] = order_state
        order["paymentState"] = payment_state
        order["shipmentState"] = shipment_state
        order["version"] = 1 + len(changes)
        order["lastModifiedAt"] = self.ts(modified)
        return order, payments, cart

    def payment(self, n: int, order: Resource, customer: Resource | None, created: int, modified: int,
                payment_state: str, order_state: str, returned: bool, failed_attempt: bool) -> Resource:
        rng = self.rng
        total = order["totalPrice"]
        currency = total["currencyCode"]
        psp, method, name = rng.choice(PSP)
        pay: Resource = {"id": self.uuid(), "version": 1, "key": f"pay-{n}", "interfaceId": f"pi_{self.uuid()[:13]}",
                         "amountPlanned": total, "paymentMethodInfo": {"paymentInterface": psp, "method": method,
                                                                       "name": name},
                         "paymentStatus": {}, "transactions": [], "interfaceInteractions": [],
                         "createdAt": self.ts(created), "lastModifiedAt": self.ts(created),
                         "lastModifiedBy": CLIENT, "createdBy": CLIENT}
        if customer is not None:
            pay["customer"] = {"typeId": "customer", "id": customer["id"]}
        else:
            pay["anonymousId"] = order["anonymousId"]
        amount = total
        plan: list[tuple[str, str, dict[str, Any]]]
        if failed_attempt or payment_state == "Failed":
            plan = [("Authorization", "Failure", amount)]
        elif order_state == "Cancelled":
            plan = [("Authorization", "Success", amount), ("CancelAuthorization", "Success", amount)]
        elif payment_state == "Pending":
            plan = [("Authorization", "Pending", amount)]
        elif payment_state == "BalanceDue":
            plan = [("Authorization", "Success", amount), ("Charge", rng.choice(("Initial", "Pending")), amount)]
        else:
            plan = [("Authorization", "Success", amount), ("Charge", "Success", amount)]
            if payment_state == "CreditOwed" or returned:
                refund = money(currency, max(1, total["centAmount"] // 3))
                plan.append(("Refund", "Success" if returned else rng.choice(("Pending", "Success")), refund))
            if rng.random() < 0.02:
                plan.append(("Chargeback", "Success", amount))
        if created >= self.cutoff:
            self.message("payment", pay, created, 1, "PaymentCreated", {"payment": dict(pay)})
        steps = sum(1 if state == "Pending" else 2 for _, state, _ in plan)
        end = max(modified, created + steps)
        times = iter(self.change_times(created, end, steps))
        version = 1
        transactions = []
        for ttype, state, amt in plan:
            at = next(times)
            tx = {"id": self.uuid(), "timestamp": self.ts(at), "type": ttype, "amount": amt,
                  "interactionId": f"{psp.lower()}_{self.uuid()[:10]}", "state": "Pending"}
            version += 1
            self.message("payment", pay, at, version, "PaymentTransactionAdded", {"transaction": tx})
            if state != "Pending":
                at = next(times)
                version += 1
                self.message("payment", pay, at, version, "PaymentTransactionStateChanged",
                             {"transactionId": tx["id"], "state": state})
                tx = {**tx, "state": state}
            transactions.append(tx)
        pay["transactions"] = transactions
        pay["paymentStatus"] = {"interfaceCode": "succeeded" if plan[-1][1] == "Success" else plan[-1][1].lower(),
                                "interfaceText": f"{plan[-1][0]} {plan[-1][1]}"}
        pay["version"] = version
        pay["lastModifiedAt"] = self.ts(end)
        return pay

    def base_cart(self, currency: str, store_key: str | None) -> Resource:
        return {"type": "Cart", "id": self.uuid(), "version": 1, "lineItems": [], "cartState": "Active",
                "totalPrice": money(currency, 0), "shippingMode": "Single", "shipping": [],
                "customLineItems": [], "discountCodes": [], "directDiscounts": [], "inventoryMode": "None",
                "taxMode": "Platform", "priceRoundingMode": "HalfEven", "taxRoundingMode": "HalfEven",
                "taxCalculationMode": "LineItemLevel", "refusedGifts": [], "origin": "Customer",
                "itemShippingAddresses": [], "deleteDaysAfterLastModification": 90,
                **({"store": self.store_refs[store_key]} if store_key else {})}

    def cart_for(self, order: Resource, order_created: int) -> Resource:
        cart = self.base_cart(order["totalPrice"]["currencyCode"], order["store"]["key"])
        created = order_created - self.rng.randint(60_000, 3 * DAY_MS)
        cart.update({"createdAt": self.ts(created), "lastModifiedAt": self.ts(order_created),
                     "lastModifiedBy": CLIENT, "createdBy": CLIENT, "version": 2 + len(order["lineItems"]),
                     "lineItems": order["lineItems"], "totalPrice": order["totalPrice"],
                     "taxedPrice": order["taxedPrice"], "cartState": "Ordered",
                     "totalLineItemQuantity": sum(li["quantity"] for li in order["lineItems"]),
                     "shippingAddress": order["shippingAddress"], "billingAddress": order["billingAddress"],
                     "locale": order["locale"], "country": order["country"]})
        for field in ("customerId", "customerEmail", "anonymousId", "customerGroup"):
            if field in order:
                cart[field] = order[field]
        return cart

    def loose_cart(self, customer: Resource | None, store_key: str, state: str, guest_email: str | None) -> Resource:
        rng = self.rng
        currency = STORES[store_key][3]
        cart = self.base_cart(currency, store_key)
        if state == "Abandoned":
            modified = self.anchor - rng.randint(10 * DAY_MS, 80 * DAY_MS)
        elif state == "Active":
            modified = self.anchor - rng.randint(60_000, 3 * DAY_MS)
        else:
            modified = self.anchor - rng.randint(DAY_MS, 300 * DAY_MS)
        created = modified - rng.randint(60_000, 5 * DAY_MS)
        items, _net, gross = self.line_items(currency, self.tax_rates[currency])
        cart.update({"createdAt": self.ts(created), "lastModifiedAt": self.ts(modified), "lastModifiedBy": CLIENT,
                     "createdBy": CLIENT, "version": 1 + len(items), "lineItems": items,
                     "totalPrice": money(currency, gross), "totalLineItemQuantity": sum(i["quantity"] for i in items),
                     "cartState": "Active" if state == "Abandoned" else state,
                     "locale": rng.choice(STORES[store_key][4]), "country": STORES[store_key][2][0]})
        if customer is not None:
            cart["customerId"] = customer["id"]
            cart["customerEmail"] = customer["email"]
        else:
            cart["anonymousId"] = self.uuid()
            if guest_email:
                cart["customerEmail"] = guest_email
        return cart

    # --- the whole shop ---------------------------------------------------------------------------
    def run(self) -> None:
        rng = self.rng
        self.seed_reference_data()
        customers: list[Resource] = []
        n = 0
        while len(customers) < self.size:
            n += 1
            r = rng.random() * 100
            store_key = None if r < 25 else next(k for k, w in _cumulative(STORE_WEIGHTS) if r - 25 < w * 0.75)
            cust = self.customer(n, store_key)
            customers.append(cust)
            # ~2%: the same person also signed up in another store (same email, different customer)
            if store_key and rng.random() < 0.02 and len(customers) < self.size:
                other = rng.choice([k for k in STORES if k != store_key])
                email = cust["email"] if rng.random() < 0.5 else cust["email"].strip().upper()
                n += 1
                customers.append(self.customer(n, other, email=email))
        orders: list[Resource] = []
        payments: list[Resource] = []
        carts: list[Resource] = []
        order_n = 0
        for cust in customers:
            created_c, _ = cust.pop("_ms")
            k = rng.choices((0, 1, 2, 3, 4, 6), (30, 28, 20, 12, 6, 4))[0]
            store_key = cust["stores"][0]["key"] if cust["stores"] else rng.choice(list(STORES))
            for _ in range(k):
                order_n += 1
                created = rng.randint(created_c, self.anchor - 60_000)
                order, pays, cart = self.order(order_n, cust, store_key, created, None)
                orders.append(order)
                payments.extend(pays)
                if cart:
                    carts.append(cart)
            r = rng.random()
            if r < 0.08:
                carts.append(self.loose_cart(cust, store_key, "Active", None))
            elif r < 0.18:
                carts.append(self.loose_cart(cust, store_key, "Abandoned", None))
            elif r < 0.21:
                carts.append(self.loose_cart(cust, store_key, "Merged", None))
            elif r < 0.22:
                carts.append(self.loose_cart(cust, store_key, "Frozen", None))
        guest_count = max(3, self.size // 8)
        for g in range(guest_count):
            order_n += 1
            store_key = rng.choice(list(STORES))
            email = self.messy_email(900_000_000 + g, "guest")
            created = self.created_ms()
            order, pays, cart = self.order(order_n, None, store_key, created, email)
            orders.append(order)
            payments.extend(pays)
            if cart:
                carts.append(cart)
            if rng.random() < 0.25:
                carts.append(self.loose_cart(None, store_key, "Abandoned", email))
        cols = self.store.collections
        cols["customers"].load(customers)
        cols["orders"].load(orders)
        cols["payments"].load(payments)
        cols["carts"].load(carts)
        cols["messages"].load(self.messages)


def _cumulative(weights: list[tuple[str, int]]) -> list[tuple[str, float]]:
    total = 0.0
    out = []
    for key, w in weights:
        total += w
        out.append((key, total))
    return out


def default_anchor_ms() -> int:
    """Today 00:00 UTC: deterministic within a day, and before the server starts."""
    now = datetime.now(UTC)
    return int(datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() * 1000)


def seed_store(store: Store, size: int, seed: int, anchor_ms: int | None = None, retention_days: int = 15) -> None:
    anchor = default_anchor_ms() if anchor_ms is None else anchor_ms
    # Millions of new container objects would trigger the cyclic GC over and over (super-linear
    # seeding); none of them form cycles, so collect once afterwards and freeze the survivors out of
    # future collections.
    gc.disable()
    try:
        Seeder(store, size, seed, anchor, retention_days).run()
    finally:
        gc.enable()
    gc.collect()
    gc.freeze()

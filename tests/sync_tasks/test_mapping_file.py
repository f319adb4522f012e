"""The mapping file: validation names the line and the field; the default mapping maps a sandbox-shaped
customer; invalid values are left out and recorded while the rest of the record maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_tasks.mapping import load_mapping, map_company, map_customer, map_object
from sync_tasks.mapping_file import DEFAULT_MAPPING, MappingError, parse_mapping, read_mapping
from sync_tasks.settings import ConfigError, Settings, load_settings

GOOD = DEFAULT_MAPPING.read_text()


def test_default_mapping_is_valid_and_has_every_section() -> None:
    mapping = read_mapping()
    assert set(mapping.sections()) == {"contact", "company", "order", "cart", "line_item"}
    assert mapping.order.properties["hs_order_name"].source == "orderNumber"
    assert not mapping.consent.enabled and mapping.consent.subscriptions[0].subscription_id == "101"


def test_an_error_names_the_line_and_the_field() -> None:
    bad = GOOD.replace('hs_language = { transform = "language", source = "locale" }',
                       'hs_language = { transform = "langauge", source = "locale" }')
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "langauge" in text)
    with pytest.raises(MappingError) as err:
        parse_mapping(bad, "m.toml")
    assert f"line {line}: contact.properties.hs_language.transform" in str(err.value)
    assert "m.toml" in str(err.value)


def test_missing_required_parts_and_bad_types_are_named() -> None:
    bad = GOOD.replace('city = { transform = "address", part = "city" }', 'city = { transform = "address" }')
    bad = bad.replace('currency = "JPY"', 'currency = "yen"')
    with pytest.raises(MappingError) as err:
        parse_mapping(bad)
    text = str(err.value)
    assert "contact.properties.city" in text and "needs `part`" in text
    assert "context.stores.jp.currency" in text


def test_not_toml_reports_the_line() -> None:
    with pytest.raises(MappingError, match=r"not valid TOML.*line 2"):
        parse_mapping("version = 1\ncontact = = 2\n")


def test_settings_refuse_a_bad_mapping_file_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.toml"
    path.write_text(GOOD.replace('[order]\nobject = "orders"', '[order]\nobject = "orders"\nbogus = 1'))
    monkeypatch.setenv("MAPPING_FILE", str(path))
    with pytest.raises(ConfigError, match=r"MAPPING_FILE.*order\.bogus"):
        load_settings()


def test_an_edited_mapping_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(GOOD)
    settings = Settings(mapping_file=path)
    assert "ct_vip" not in load_mapping(settings).contact.properties
    path.write_text(GOOD.replace("[contact.properties]\n", '[contact.properties]\nct_vip = { transform = "constant", '
                                 'value = "yes" }\n'))
    assert load_mapping(settings).contact.properties["ct_vip"].value == "yes"


SHOP_CUSTOMER = {
    "id": "c-1", "email": "  Ann.Lee@Example.COM ", "firstName": "Zoë", "lastName": "山田", "locale": "de-DE",
    "stores": [{"typeId": "store", "key": "eu"}], "customerNumber": "C0000001", "companyName": "ACME GmbH",
    "customerGroup": {"typeId": "customer-group", "id": "g1", "obj": {"key": "vip", "name": "VIP Customers"}},
    "addresses": [{"id": "a1", "country": "DE", "city": "Berlin", "postalCode": "10115", "streetName": "Hauptstraße",
                   "streetNumber": "5", "phone": "+49 30 123"}],
    "defaultShippingAddressId": "a1", "dateOfBirth": "1980-02-29", "lastModifiedAt": "2026-01-02T03:04:05.678Z",
    "custom": {"fields": {"newsletter": True, "newsletterOptInDate": "2025-01-01T10:00:00.000Z",
                          "consentChannel": "web", "preferredGreeting": {"en": "Hello Zoë", "de": "Hallo Zoë"},
                          "lifetimeBudget": {"type": "centPrecision", "currencyCode": "JPY", "centAmount": 5000,
                                             "fractionDigits": 0}}},
}


def test_default_mapping_maps_a_shop_customer() -> None:
    mapped = map_customer(SHOP_CUSTOMER, read_mapping())
    p = mapped.properties
    assert p["email"] == "ann.lee@example.com" and p["firstname"] == "Zoë" and p["lastname"] == "山田"
    assert (p["address"], p["city"], p["zip"], p["country"], p["phone"]) == ("Hauptstraße 5", "Berlin", "10115",
                                                                            "DE", "+49 30 123")
    assert p["hs_language"] == "de" and p["ct_locale"] == "de-DE"
    assert p["ct_stores"] == "eu" and p["ct_source_store"] == "eu" and p["ct_currency_code"] == "EUR"
    assert p["ct_customer_group"] == "vip" and p["ct_date_of_birth"] == "1980-02-29"
    assert p["ct_newsletter"] == "true" and p["ct_newsletter_opt_in_date"] == "2025-01-01T10:00:00.000Z"
    assert p["ct_consent_channel"] == "web" and p["ct_preferred_greeting"] == "Hallo Zoë"
    assert (p["ct_lifetime_budget"], p["ct_lifetime_budget_currency"]) == ("5000", "JPY")
    assert p["ct_distribution_channel"] == "" and p["ct_notes"] == ""
    assert not mapped.rejected and not mapped.warnings
    assert map_company(SHOP_CUSTOMER, read_mapping()) == {"name": "ACME GmbH", "ct_company_key": "acme gmbh"}


def test_invalid_values_are_left_out_and_recorded_the_rest_maps() -> None:
    odd = dict(SHOP_CUSTOMER, email="not-an-email", locale="xx-YY", dateOfBirth="soon",
               stores=[{"key": "eu"}, {"key": "mars"}],
               custom={"fields": {"newsletter": "perhaps", "consentChannel": "pigeon"}})
    mapped = map_customer(odd, read_mapping())
    assert set(mapped.rejected) == {"email", "hs_language", "ct_date_of_birth", "ct_newsletter",
                                    "ct_consent_channel", "ct_stores"}
    assert "email" not in mapped.properties and "hs_language" not in mapped.properties
    assert mapped.properties["ct_stores"] == "eu"  # the known store still goes
    assert mapped.properties["firstname"] == "Zoë" and mapped.properties["city"] == "Berlin"


def test_order_cart_and_line_item_sections_map_commercetools_shapes() -> None:
    mapping = read_mapping()
    money = {"type": "centPrecision", "currencyCode": "JPY", "centAmount": 12000, "fractionDigits": 0}
    line = {"id": "li1", "name": {"en": "Product 1", "ja": "製品 1"}, "variant": {"sku": "SKU-0001-1"}, "quantity": 3,
            "price": {"value": {"type": "highPrecision", "currencyCode": "JPY", "centAmount": 40,
                                "fractionDigits": 2, "preciseAmount": 4012}},
            "totalPrice": money, "taxedPrice": {"totalTax": {"currencyCode": "JPY", "centAmount": 1090,
                                                             "fractionDigits": 0}}}
    order = {"id": "o1", "orderNumber": "ORD-1", "store": {"key": "jp"}, "locale": "ja-JP", "totalPrice": money,
             "createdAt": "2026-01-01T00:00:00.000Z", "orderState": "Open",
             "shippingAddress": {"firstName": "Taro", "lastName": "Yamada", "city": "東京都", "country": "JP"},
             "lineItems": [line]}
    o = map_object(mapping.order, order, mapping.context, "order").properties
    assert (o["hs_order_name"], o["hs_total_price"], o["hs_currency_code"], o["hs_source_store"]) == (
        "ORD-1", "12000", "JPY", "jp")
    assert o["hs_shipping_address_name"] == "Taro Yamada" and o["hs_shipping_address_city"] == "東京都"
    assert o["hs_external_created_date"] == "2026-01-01T00:00:00.000Z" and o["ct_locale"] == "ja-JP"
    li = map_object(mapping.line_item, dict(line, locale="ja-JP"), mapping.context, "line item").properties
    assert (li["name"], li["hs_sku"], li["quantity"], li["price"], li["amount"], li["ct_tax_amount"]) == (
        "製品 1", "SKU-0001-1", "3", "40.12", "12000", "1090")
    cart = map_object(mapping.cart, {"id": "k1", "cartState": "Active", "totalPrice": money, "store": {"key": "jp"}},
                      mapping.context, "cart").properties
    assert cart["hs_external_cart_id"] == "k1" and cart["ct_cart_state"] == "Active"

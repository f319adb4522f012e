"""Property-based tests of the mapping transforms over odd inputs: missing fields, unicode, oversize
strings, zero-decimal currencies, high-precision money, unknown locales."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_tasks import transforms as tf
from sync_tasks.mapping import HS_LANGUAGES, map_object
from sync_tasks.mapping_file import ContextSpec, ObjectSection

FAST = settings(max_examples=150, deadline=None)
anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=3), max_leaves=8)


@FAST
@given(cents=st.integers(min_value=-(10**15), max_value=10**15), digits=st.integers(min_value=0, max_value=20))
def test_money_is_exact_for_any_fraction_digits(cents: int, digits: int) -> None:
    out = tf.money({"type": "centPrecision", "currencyCode": "JPY", "centAmount": cents, "fractionDigits": digits})
    assert out is not None and "e" not in out.lower()
    assert Decimal(out) == Decimal(cents) / Decimal(10) ** digits


def test_zero_decimal_and_high_precision_money() -> None:
    assert tf.money({"currencyCode": "JPY", "centAmount": 1500, "fractionDigits": 0}) == "1500"
    assert tf.money({"currencyCode": "EUR", "centAmount": 1999, "fractionDigits": 2}) == "19.99"
    precise = {"type": "highPrecision", "currencyCode": "EUR", "centAmount": 12, "fractionDigits": 5,
               "preciseAmount": 1234567}
    assert tf.money(precise) == "12.34567"
    assert tf.money_currency(precise) == "EUR"
    assert tf.money(None) is None and tf.money({"currencyCode": "EUR"}) is None
    with pytest.raises(tf.Rejected):
        tf.money({"centAmount": "lots", "fractionDigits": 2})


@FAST
@given(value=anything)
def test_every_transform_returns_text_none_or_rejects(value: Any) -> None:
    for fn in (tf.text, tf.enum_key, tf.boolean, tf.date, tf.datetime, tf.money, tf.money_currency, tf.number,
               tf.email, lambda v: tf.localized(v, "de-DE"), lambda v: tf.language(v, HS_LANGUAGES),
               lambda v: tf.multi(v, ["eu"])[0]):
        try:
            out = fn(value)
        except tf.Rejected:
            continue
        assert out is None or isinstance(out, str)


@FAST
@given(tag=st.text(max_size=12))
def test_unknown_locales_are_rejected_never_guessed(tag: str) -> None:
    try:
        out = tf.language(tag, HS_LANGUAGES)
    except tf.Rejected:
        return
    assert out is None or out in HS_LANGUAGES


def test_locale_to_hs_language() -> None:
    assert tf.language("de-DE", HS_LANGUAGES) == "de"
    assert tf.language("zh-CN", HS_LANGUAGES) == "zh-cn"
    assert tf.language(None, HS_LANGUAGES) is None
    with pytest.raises(tf.Rejected, match="xx-YY"):
        tf.language("xx-YY", HS_LANGUAGES)


@FAST
@given(values=st.dictionaries(st.sampled_from(["en", "de", "de-DE", "fr", "ja", "en-GB"]), st.text(min_size=1),
                              min_size=1))
def test_localized_prefers_locale_then_language_then_fallback(values: dict[str, str]) -> None:
    out = tf.localized(values, "de-DE", ["en"])
    present = {k: v.strip() for k, v in values.items() if v.strip()}
    if not present:
        assert out is None
    elif "de-DE" in present:
        assert out == present["de-DE"]
    elif "de" in present:
        assert out == present["de"]
    elif "en" in present:
        assert out == present["en"]
    else:
        assert out in present.values()


def test_localized_unknown_locale_falls_back() -> None:
    assert tf.localized({"en": "Hello", "de": "Hallo"}, "xx-ZZ", ["en"]) == "Hello"
    assert tf.localized({"ja": "こんにちは"}, "fr", ["en"]) == "こんにちは"
    assert tf.localized({}, "fr") is None


@FAST
@given(text=st.text(min_size=0, max_size=200), extra=st.integers(min_value=0, max_value=5000))
def test_oversize_strings_are_truncated_with_a_warning(text: str, extra: int) -> None:
    value = (text or "x") * (tf.MAX_STRING // max(1, len(text or "x")) + 1) + "y" * extra
    section = ObjectSection(object="contacts", id_property="ct_customer_id", properties={"notes": {"source": "n"}})
    mapped = map_object(section, {"id": "c1", "n": value}, ContextSpec(), "customer")
    assert len(mapped.properties["notes"]) <= tf.MAX_STRING
    if len(value.strip()) > tf.MAX_STRING:
        assert mapped.warnings == [f"customer c1: notes truncated to {tf.MAX_STRING} characters"]


@FAST
@given(first=st.text(max_size=30), last=st.one_of(st.none(), st.text(max_size=30)))
def test_concat_skips_missing_parts(first: str, last: str | None) -> None:
    out = tf.concat([first, last, None], " ")
    parts = [p.strip() for p in (first, last) if p and p.strip()]
    assert out == (" ".join(parts) or None)


def test_addresses_pick_the_default_shipping_then_billing_then_first() -> None:
    customer = {"addresses": [{"id": "a", "city": "Paris"}, {"id": "b", "city": "Wien", "streetName": "Ring",
                                                              "streetNumber": "1", "additionalStreetInfo": "3. OG",
                                                              "mobile": "+43 1"}],
                "defaultBillingAddressId": "b"}
    address = tf.default_address(customer, "shipping")
    assert tf.address_part(address, "city") == "Wien"
    assert tf.address_part(address, "street") == "Ring 1, 3. OG"
    assert tf.address_part(address, "phone") == "+43 1"
    assert tf.address_part(tf.default_address({"addresses": []}), "city") is None


def test_get_path_and_multi_values() -> None:
    customer = {"stores": [{"key": "us"}, {"key": "eu"}, {"key": "xx"}], "custom": {"fields": {"a": True}}}
    assert tf.get_path(customer, "stores[*].key") == ["us", "eu", "xx"]
    assert tf.get_path(customer, "custom.fields.a") is True
    assert tf.get_path(customer, "custom.missing.deeper") is None
    assert tf.multi(tf.get_path(customer, "stores[*].key"), ["eu", "us"]) == ("eu;us", ["xx"])


def test_booleans_dates_and_emails() -> None:
    assert tf.boolean(True) == "true" and tf.boolean("no") == "false" and tf.boolean(None) is None
    with pytest.raises(tf.Rejected):
        tf.boolean("maybe")
    assert tf.date("2024-02-29T23:30:00+02:00") == "2024-02-29"
    assert tf.datetime("2024-02-29T23:30:00+02:00") == "2024-02-29T21:30:00.000Z"
    with pytest.raises(tf.Rejected):
        tf.date("31/02/2024")
    assert tf.email("  Ann@Example.COM ") == "ann@example.com"
    with pytest.raises(tf.Rejected):
        tf.email("not-an-email")

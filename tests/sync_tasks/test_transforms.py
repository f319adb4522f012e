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


def _reference_map(section: ObjectSection, resource: dict[str, Any], context: ContextSpec) -> tuple[Any, ...]:
    """map_object spelt out property by property through `evaluate` (the per-property closures),
    as it was before sections were compiled to one function."""
    from sync_tasks.mapping import MAX_STRING, _check_type, evaluate

    properties: dict[str, str] = {}
    rejected: dict[str, str] = {}
    warnings: list[str] = []
    for name, spec in section.properties.items():
        try:
            value, note = evaluate(spec, resource, context)
            if value is not None:
                value = _check_type(spec, value)
        except tf.Rejected as exc:
            rejected[name] = str(exc)
            continue
        if note:
            rejected[name] = note
        if value is None:
            if spec.transform == "email":
                continue
            value = ""
        elif len(value) > MAX_STRING:
            value = value[:MAX_STRING]
            warnings.append(f"record {resource.get('id')}: {name} truncated to {MAX_STRING} characters")
        properties[name] = value
    return list(properties.items()), list(rejected.items()), warnings


_ODD_SECTION = ObjectSection.model_validate({"object": "odd", "id_property": "k", "properties": {
    "plain": "a", "nested": "a.b", "deep": "a.b.c", "deeper": "a.b.c.d", "star": "s[*].k",
    "bad_path": {"source": "a..b"}, "mail": {"transform": "email", "source": "e"},
    "num": {"transform": "number", "source": "a.n"}, "typed": {"source": "a", "type": "number"},
    "flag": {"source": "a.b", "type": "bool"}, "day": {"source": "a", "type": "date"},
    "pick": {"source": "a", "type": "enumeration", "options": ["x", "y"]},
    "several": {"transform": "multi", "source": "s[*].k", "options": ["x"]},
    "group": {"transform": "customer_group", "part": "name"}, "street": {"transform": "address", "part": "street"},
    "bill": {"transform": "address", "address": "billing", "part": "zip"},
    "store": {"transform": "store_context", "part": "store"},
    "locale": {"transform": "store_context", "part": "locale"},
    "currency": {"transform": "store_context", "part": "currency"}, "lang": {"transform": "language", "source": "a"},
    "both": {"transform": "concat", "sources": ["a", "a.b"]}, "fixed": {"transform": "constant", "value": "c"},
}})


_nested = st.one_of(anything, st.fixed_dictionaries({"b": st.one_of(anything, st.fixed_dictionaries(
    {"c": st.one_of(anything, st.fixed_dictionaries({"d": anything}))}))}, optional={"n": anything}))


@FAST
@given(a=_nested, e=st.one_of(anything, st.emails()), s=st.one_of(anything, st.lists(
    st.fixed_dictionaries({"k": anything}), max_size=3)), extra=st.dictionaries(
    st.sampled_from(["locale", "store", "stores", "addresses", "customerGroup", "totalPrice", "id"]), anything,
    max_size=4))
def test_compiled_sections_map_as_the_per_property_evaluation_does(a: Any, e: Any, s: Any,
                                                                   extra: dict[str, Any]) -> None:
    from sync_tasks.mapping import load_mapping

    resource = {"a": a, "e": e, "s": s, **extra}
    context = ContextSpec.model_validate({"stores": {"eu": {"currency": "EUR"}}})
    mapping = load_mapping()
    def outcome(fn: Any, section: ObjectSection) -> Any:
        try:
            return fn(section)
        except Exception as exc:  # odd shapes some helpers do not take (`stores: true`): same error both ways
            return type(exc)

    def compiled(section: ObjectSection) -> tuple[Any, ...]:
        mapped = map_object(section, resource, context)
        return list(mapped.properties.items()), list(mapped.rejected.items()), mapped.warnings

    for section in (_ODD_SECTION, mapping.contact, mapping.company, mapping.order):
        assert outcome(compiled, section) == outcome(lambda sec: _reference_map(sec, resource, context), section)


def test_compiled_sections_truncate_and_keep_the_order_of_properties() -> None:
    resource = {"id": "r1", "a": "x" * (tf.MAX_STRING + 5), "e": "A@B.io ", "s": [{"k": "y"}, {"k": "x"}]}
    mapped = map_object(_ODD_SECTION, resource, ContextSpec())
    assert list(mapped.properties) == [n for n, _ in _reference_map(_ODD_SECTION, resource, ContextSpec())[0]]
    assert len(mapped.properties["plain"]) == tf.MAX_STRING and mapped.properties["mail"] == "a@b.io"
    assert mapped.warnings[0] == f"record r1: plain truncated to {tf.MAX_STRING} characters"
    assert mapped.rejected["several"] == "values ['y'] are not among the property's options"

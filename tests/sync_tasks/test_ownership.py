"""Ownership policies (pure): each owner and policy, HubSpot edit detection, write-back actions and
the mapping file's ownership fields."""

from __future__ import annotations

import pytest

from sync_tasks.mapping_file import DEFAULT_MAPPING, MappingError, ObjectSection, PropertySpec, parse_mapping
from sync_tasks.ownership import (
    KEPT,
    OVERWRITTEN,
    HubSpotValue,
    WriteBackError,
    needs_read,
    same,
    settle,
    writeback_actions,
)

SECTION = ObjectSection.model_validate({
    "object": "contacts", "id_property": "ct_customer_id",
    "properties": {
        "city": {"transform": "address", "part": "city"},
        "firstname": {"source": "firstName", "owner": "shared", "policy": "hubspot_wins"},
        "lastname": {"source": "lastName", "owner": "shared", "policy": "most_recent"},
        "company": {"source": "companyName", "owner": "shared", "policy": "fill_if_empty"},
        "jobtitle": {"source": "title", "owner": "shared"},  # the section default: commercetools_wins
        "phone": {"transform": "address", "part": "phone", "owner": "hubspot", "write_back": True},
    },
})
CT_TIME = "2026-05-01T10:00:00.000Z"


def hs(value: str, at: str | None = None) -> HubSpotValue:
    return HubSpotValue(value, at, "CRM_UI" if at else None)


def test_a_hubspot_value_equal_to_the_last_write_is_the_syncs_own_and_the_change_goes_through() -> None:
    out = settle(SECTION, {"firstname": "Ann"}, {"firstname": "Anna"}, {"firstname": hs("Anna")}, CT_TIME)
    assert out.send == {"firstname": "Ann"}
    assert out.conflicts == []


def test_hubspot_wins_keeps_a_hubspot_edit_and_records_it() -> None:
    out = settle(SECTION, {"firstname": "Ann"}, {"firstname": "Anna"}, {"firstname": hs("Annie")}, CT_TIME)
    assert out.send == {}
    [conflict] = out.conflicts
    assert (conflict.prop, conflict.hubspot_value, conflict.commercetools_value, conflict.last_written,
            conflict.rule, conflict.outcome) == ("firstname", "Annie", "Ann", "Anna", "shared:hubspot_wins", KEPT)


def test_commercetools_wins_overwrites_a_hubspot_edit_even_when_commercetools_did_not_change_it() -> None:
    out = settle(SECTION, {"jobtitle": "Dr"}, {"jobtitle": "Dr"}, {"jobtitle": hs("Prof")}, CT_TIME)
    assert out.send == {"jobtitle": "Dr"}
    assert [(c.rule, c.outcome) for c in out.conflicts] == [("shared:commercetools_wins", OVERWRITTEN)]


def test_a_commercetools_owned_property_read_from_hubspot_is_overwritten_and_recorded() -> None:
    out = settle(SECTION, {"city": "Berlin"}, {"city": "Bonn"}, {"city": hs("Köln")}, CT_TIME)
    assert out.send == {"city": "Berlin"}
    assert [(c.rule, c.outcome, c.hubspot_value) for c in out.conflicts] == [("commercetools", OVERWRITTEN, "Köln")]


@pytest.mark.parametrize(("hs_time", "expected_send", "outcome"), [
    ("2026-05-01T09:00:00.000Z", {"lastname": "Meyer"}, OVERWRITTEN),  # commercetools changed later
    ("2026-05-01T11:00:00.000Z", {}, KEPT),  # the HubSpot edit is newer
])
def test_most_recent_compares_the_customer_time_with_the_property_history(
        hs_time: str, expected_send: dict[str, str], outcome: str) -> None:
    out = settle(SECTION, {"lastname": "Meyer"}, {"lastname": "Maier"}, {"lastname": hs("Mayer", hs_time)}, CT_TIME)
    assert out.send == expected_send
    assert [c.outcome for c in out.conflicts] == [outcome]
    assert out.conflicts[0].hubspot_modified_at == hs_time


def test_most_recent_keeps_a_hubspot_edit_when_commercetools_did_not_change_that_property() -> None:
    # The customer changed later (another field), but this value is still the one last written.
    out = settle(SECTION, {"lastname": "Maier"}, {"lastname": "Maier"},
                 {"lastname": hs("Mayer", "2026-04-01T00:00:00.000Z")}, CT_TIME)
    assert out.send == {}
    assert [c.outcome for c in out.conflicts] == [KEPT]


def test_fill_if_empty_fills_an_empty_property_and_never_replaces_a_value() -> None:
    filled = settle(SECTION, {"company": "ACME"}, {}, {"company": hs("")}, CT_TIME)
    assert filled.send == {"company": "ACME"} and filled.conflicts == []
    kept = settle(SECTION, {"company": "ACME"}, {"company": "Acme"}, {"company": hs("Acme Ltd")}, CT_TIME)
    assert kept.send == {} and [c.outcome for c in kept.conflicts] == [KEPT]


def test_hubspot_owned_properties_go_into_creates_only() -> None:
    assert settle(SECTION, {"phone": "+49 1"}, {}, None, CT_TIME, create=True).send == {"phone": "+49 1"}
    assert settle(SECTION, {"phone": "+49 2"}, {"phone": "+49 1"}, None, CT_TIME).send == {}
    assert settle(SECTION, {"phone": "+49 2"}, {"phone": "+49 1"}, None, CT_TIME, force=True).send == {}


def test_without_hubspot_values_only_changes_are_sent_and_force_sends_everything() -> None:
    props = {"city": "Berlin", "firstname": "Ann", "email": "a@example.com"}
    written = {"city": "Berlin", "firstname": "Anna", "email": "a@example.com"}
    assert settle(SECTION, props, written, None, CT_TIME).send == {"firstname": "Ann"}
    assert settle(SECTION, props, written, None, CT_TIME, force=True).send == props


def test_a_hubspot_value_equal_to_the_new_one_needs_no_write_and_is_no_conflict() -> None:
    out = settle(SECTION, {"firstname": "Ann"}, {"firstname": "Anna"}, {"firstname": hs("Ann")}, CT_TIME)
    assert out.send == {} and out.conflicts == []


def test_reads_are_needed_only_for_shared_properties_unless_always() -> None:
    assert needs_read(SECTION, always=False) == ["company", "firstname", "jobtitle", "lastname"]
    assert "city" in needs_read(SECTION, always=True) and "phone" not in needs_read(SECTION, always=True)


def test_values_compare_as_hubspot_stores_them() -> None:
    assert same("1.50", "1.5") and same("TRUE", "true") and same(None, "")
    assert same("2026-05-01T10:00:00Z", "2026-05-01T10:00:00.000Z")
    assert same("1777629600000", "2026-05-01T10:00:00.000Z")
    assert not same("Ann", "Anna") and not same("", "x")


# -- write-back actions ------------------------------------------------------------------------------
CUSTOMER = {"id": "c1", "version": 3, "firstName": "Ann", "custom": {"type": {"id": "t"}, "fields": {}},
            "addresses": [{"id": "a1", "city": "Bonn", "phone": "+49 1"}], "defaultShippingAddressId": "a1"}


def test_write_back_actions_per_target() -> None:
    newsletter = PropertySpec(transform="boolean", source="custom.fields.newsletter", write_back=True)
    assert writeback_actions(newsletter, "true", CUSTOMER) == [
        {"action": "setCustomField", "name": "newsletter", "value": True}]
    assert writeback_actions(newsletter, "", CUSTOMER) == [{"action": "setCustomField", "name": "newsletter"}]
    first = PropertySpec(source="firstName", write_back=True)
    assert writeback_actions(first, "Anne", CUSTOMER) == [{"action": "setFirstName", "firstName": "Anne"}]
    phone = PropertySpec(transform="address", part="phone", write_back=True)
    assert writeback_actions(phone, "+49 2", CUSTOMER) == [
        {"action": "changeAddress", "addressId": "a1", "address": {"city": "Bonn", "phone": "+49 2"}}]


def test_write_back_without_a_target_names_the_customer_and_field() -> None:
    newsletter = PropertySpec(transform="boolean", source="custom.fields.newsletter", write_back=True)
    phone = PropertySpec(transform="address", part="phone", write_back=True)
    with pytest.raises(WriteBackError, match="customer c2 has no shipping address for phone"):
        writeback_actions(phone, "+49 2", {"id": "c2", "version": 1})
    with pytest.raises(WriteBackError, match="not a boolean"):
        writeback_actions(newsletter, "maybe", CUSTOMER)


# -- the mapping file ---------------------------------------------------------------------------------
def _with_contact(props: str, defaults: str = "") -> str:
    text = DEFAULT_MAPPING.read_text()
    if defaults:
        text = text.replace('default_owner = "commercetools"\ndefault_policy = "commercetools_wins"\n', defaults, 1)
    return text.replace("[contact.properties]\n", f"[contact.properties]\n{props}", 1)


def test_the_default_mapping_keeps_every_property_commercetools_owned() -> None:
    mapping = parse_mapping(DEFAULT_MAPPING.read_text())
    assert {mapping.contact.owner_of(n) for n in mapping.contact.properties} == {"commercetools"}


def test_a_section_default_owner_and_policy_apply_to_properties_without_their_own() -> None:
    mapping = parse_mapping(_with_contact('x_note = { source = "title", owner = "commercetools" }\n',
                                          'default_owner = "shared"\ndefault_policy = "most_recent"\n'))
    assert mapping.contact.owner_of("firstname") == "shared"
    assert mapping.contact.policy_of("firstname") == "most_recent"
    assert mapping.contact.owner_of("x_note") == "commercetools"


@pytest.mark.parametrize(("line", "message"), [
    ('x_a = { source = "title", owner = "hubspot", policy = "most_recent" }\n', "policy applies to shared"),
    ('x_b = { source = "title", write_back = true }\n', "property 'x_b': write_back needs owner = 'hubspot'"),
    ('x_c = { source = "customerNumber", owner = "hubspot", write_back = true }\n', "has no commercetools update"),
    ('x_d = { source = "title", owner = "someone" }\n', "x_d.owner"),
])
def test_bad_ownership_is_refused_naming_the_property(line: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(_with_contact(line))


def test_without_hubspot_values_hubspot_owned_properties_stay_out_in_property_order() -> None:
    props = {"phone": "+49 1", "city": "Berlin", "ct_customer_ids": "a", "firstname": "Ann"}
    forced = settle(SECTION, props, {}, None, CT_TIME, force=True).send
    assert list(forced.items()) == [("city", "Berlin"), ("ct_customer_ids", "a"), ("firstname", "Ann")]
    assert settle(SECTION, props, {}, {}, CT_TIME, force=True).send == forced  # read, but nothing came back
    assert list(settle(SECTION, props, {}, None, CT_TIME, create=True).send.items()) == list(props.items())
    plain = ObjectSection.model_validate({"object": "contacts", "id_property": "k",
                                          "properties": {"city": {"transform": "address", "part": "city"}}})
    assert settle(plain, props, {}, None, CT_TIME, force=True).send == props

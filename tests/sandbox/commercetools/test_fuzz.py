"""Hypothesis: no predicate, however garbled, makes the server answer 500."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.commercetools.predicates import PredicateError, parse

from .conftest import Api

FRAGMENTS = ["lastModifiedAt", "id", "version", "stores", "custom", "fields", "(", ")", "=", "!=", "<>", "<",
             ">=", " and ", " or ", "not", " in ", " is ", "defined", "empty", "contains", "any", "all", '"x"',
             '"2024-01-01T00:00:00Z"', "1", "-2.5e3", "true", ",", ":v", "\\", '"', " ", "key"]
predicates = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(" ".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=predicates)
def test_where_never_500(api: Api, where: str) -> None:
    r = api.get("/customers", [("where", where), ("var.v", "a"), ("limit", "1"), ("withTotal", "false")])
    assert r.status_code in (200, 400), (where, r.status_code, r.text)
    if r.status_code == 400:
        assert r.json()["errors"][0]["code"] == "InvalidInput"


@settings(max_examples=400, deadline=None)
@given(where=predicates)
def test_parser_only_raises_predicate_error(where: str) -> None:
    try:
        parse(where, {"v": ["a"]})
    except PredicateError:
        pass


def test_deep_nesting_is_400(api: Api) -> None:
    r = api.get("/customers", {"where": "(" * 5000 + "version = 1" + ")" * 5000})
    assert r.status_code == 400

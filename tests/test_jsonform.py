"""The stable JSON form: round-trips, its schema, and clear errors for bad input."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kql
from kql.language import ast
from kql.language.formatter import format_query
from tests.conftest import ROOT
from tests.test_properties import queries

SCHEMA = json.loads((ROOT / "docs" / "query.schema.json").read_text(encoding="utf-8"))


@settings(max_examples=300)
@given(queries)
def test_round_trip_through_json(query: ast.Query) -> None:
    form = kql.to_json(query)
    assert form["kql"] == 1
    jsonschema.validate(form, SCHEMA)
    text = json.dumps(form)
    back = kql.from_json(text)
    assert back == query
    # The JSON form and the text form describe the same query.
    assert kql.parse(format_query(back)) == query


def test_example() -> None:
    form = kql.to_json("site = 123 and not has_tag(tag_5) sort -created_at limit 10")
    assert form == {
        "kql": 1,
        "filter": {
            "and": [
                {"compare": {"field": "site", "op": "=", "value": {"int": 123}}},
                {"not": {"call": {"name": "has_tag", "args": [{"id": {"prefix": "tag", "number": 5}}]}}},
            ]
        },
        "sort": {"field": "created_at", "descending": True},
        "select": None,
        "limit": 10,
        "page": None,
    }
    assert (
        kql.compile(kql.from_json(form)).query_string == "filter[site_id]=123&filter[has_no_tag_id]=5&sort=-created_at"
    )


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"flag": "subscribed"}
    for _ in range(depth):
        node = {"not": node}
    return node


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ("not json", "invalid JSON"),
        ({"kql": 2}, "$.kql"),
        ({"filter": None}, "missing kql"),
        ({"kql": 1, "extra": 1}, "unexpected extra"),
        ({"kql": 1, "filter": {"and": [{"flag": "x"}]}}, "$.filter.and"),
        ({"kql": 1, "filter": {"flag": "not"}}, "$.filter.flag"),
        ({"kql": 1, "filter": {"flag": "x", "text": "y"}}, "exactly one"),
        ({"kql": 1, "filter": {"xor": []}}, "unknown kind 'xor'"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "=~", "value": {"int": 1}}}}, "$.filter.compare.op"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "=", "value": {"decimal": "abc"}}}}, "decimal"),
        ({"kql": 1, "filter": {"call": {"name": "f", "args": [{"ident": "bc_9"}]}}}, "typed id"),
        ({"kql": 1, "filter": {"call": {"name": "f", "args": [{"int": True}]}}}, "an integer"),
        ({"kql": 1, "limit": "5"}, "$.limit"),
        ({"kql": 1, "filter": _nested(80)}, "nested more than 64"),
    ],
)
def test_bad_json_forms_are_kql_errors(data: Any, where: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.from_json(data)
    assert caught.value.code == "E009"
    assert where in caught.value.message
    assert caught.value.hint == "see kql help query.schema (the JSON Schema)"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"kql": 1, "select": []}, "$.select"),  # `select` with nothing is not KQL: format() could not write it
        ({"kql": 1, "filter": {"text": "a\ud83d"}}, "$.filter.text"),  # a lone surrogate: no request can carry it
    ],
)
def test_forms_kql_cannot_write_are_refused(data: dict[str, object], path: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.from_json(data)
    assert caught.value.code == "E009" and path in caught.value.message


# ---- one set of limits for both forms (issue 11, items 9-10) ---------------------------


def _nested_text(depth: int) -> str:
    return '{"kql": 1, "filter": ' + '{"not": ' * depth + '{"flag": "x"}' + "}" * depth + "}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_nested_text(1_000), "nested"),
        (_nested_text(100_000), "nested"),
        ("[" * 100_000, "nested"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "=", "value": {"int": 10**5000}}}}, "19 digits"),
        ('{"kql": 1, "limit": 1' + "0" * 5000 + "}", "invalid JSON"),
        ({"kql": 1, "page": {"number": 10**24}}, "$.page.number: the number is too large"),
        ({"kql": 1, "filter": {"call": {"name": "f", "args": [{"id": {"prefix": "tag", "number": 10**24}}]}}}, "19"),
        ({"kql": 10**5000}, "unsupported version a number of more than 19 digits"),
        ({"kql": True}, "unsupported version true"),
        ({"kql": 1, 10**5000: 1, 5: 2}, "unexpected 5, a number of more than 19 digits"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "in", "value": {"int": 1}}}}, '"in" takes'),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "in", "value": {"list": []}}}}, "at least one"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "is", "value": {"int": 1}}}}, '"is" takes'),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "=", "value": {"null": 5}}}}, "expected true"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "=", "value": {"decimal": "١٠٠.٥"}}}}, "decimal"),
        ({"kql": 1, "filter": {"compare": {"field": "a", "op": "=", "value": {"date": "٢٠٢٤-01-31"}}}}, "date"),
    ],
)
def test_the_json_form_has_the_text_forms_limits(data: Any, message: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.from_json(data)
    assert caught.value.code == "E009"
    assert message in caught.value.message
    str(caught.value)


def test_a_json_query_too_long_to_write_as_text_is_refused() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.from_json({"kql": 1, "filter": {"text": "x" * 10_000}})
    assert caught.value.code == "E006"
    assert "written as KQL" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "created_in_last(-5d)",  # parses; the validator refuses it (E208) in both forms
        "has_tag(and_5) and x = 30and and @and and @or-not",  # keywords inside longer tokens
        "page 9999999999999999999 size 0000000000000000000000001",
        "has_tag(tag_0) and net_revenue > -0.50",
    ],
)
def test_every_query_that_parses_round_trips(text: str) -> None:
    query = kql.parse(text)
    back = kql.from_json(json.dumps(kql.to_json(query)))
    assert back == query
    assert kql.parse(kql.format(back)) == query
    jsonschema.validate(kql.to_json(query), SCHEMA)


def test_a_negative_duration_is_the_same_error_in_both_forms() -> None:
    codes = []
    for query in ("created_in_last(-5d)", kql.from_json(kql.to_json("created_in_last(-5d)"))):
        with pytest.raises(kql.KQLError) as caught:
            kql.compile(query)
        codes.append(caught.value.code)
    assert codes == ["E208", "E208"]


# Any text in the lexer's alphabet: what parses round-trips through JSON to the same query.
_kql_alphabet = st.sampled_from([*"()!&|=<>~,-#\"'\\ \n\tabcdnotsy_0123456789@.:", "and ", "or ", "tag_", " in "])


@settings(max_examples=500)
@given(st.lists(_kql_alphabet, max_size=40).map("".join))
def test_parse_to_json_from_json_format_parse_is_the_identity(text: str) -> None:
    try:
        query = kql.parse(text)
    except kql.KQLError:
        return
    back = kql.from_json(json.dumps(kql.to_json(query)))
    assert back == query
    assert kql.parse(kql.format(back)) == query


_KEYS = [
    "kql", "filter", "sort", "select", "limit", "page", "and", "or", "not", "compare", "call", "flag", "text",
    "segment", "field", "op", "value", "name", "args", "int", "decimal", "duration", "string", "id", "ident",
    "date", "null", "list", "amount", "unit", "prefix", "number", "size", "descending",
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**25), 10**25) | st.text(max_size=8) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.fixed_dictionaries({"kql": st.just(1)}, optional={k: json_values for k in _KEYS[1:6]}))
def test_any_json_is_a_query_that_formats_and_parses_back_or_a_kqlerror(data: dict[str, Any]) -> None:
    try:
        query = kql.from_json(data)
    except kql.KQLError as error:
        str(error)
        return
    assert kql.parse(kql.format(query)) == query

"""The stable JSON form: round-trips, its schema, and clear errors for bad input."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings

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

"""Properties over random input: format/parse round-trips, no crash on any text,
and any string value survives compile → parse_qsl."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kql
from kql.language import ast
from kql.language.formatter import format_query
from kql.language.parser import keywords

KEYWORDS = keywords()

names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS and not _looks_typed(n)
)


def _looks_typed(name: str) -> bool:
    head, _, tail = name.rpartition("_")
    return bool(head) and head.isalpha() and tail.isdigit()


small_ints = st.integers(min_value=-(10**6), max_value=10**12)
scalars: st.SearchStrategy[ast.Scalar] = st.one_of(
    small_ints.map(ast.Int),
    st.from_regex(r"-?[0-9]{1,6}\.[0-9]{1,3}", fullmatch=True).map(ast.Decimal),
    st.builds(ast.Duration, st.integers(0, 10**6), st.sampled_from(["d", "w", "m", "h"])),
    st.text(max_size=20).map(ast.Str),
    st.builds(ast.TypedId, st.sampled_from(["bc", "tag", "site", "offer", "xy"]), st.integers(0, 10**9)),
    names.map(ast.Ident),
    st.sampled_from(["2024-01-31", "2024-01-31T10:00:00Z", "2025-06-01T00:00:00+02:00"]).map(ast.Date),
    st.just(ast.Null()),
)
name_nodes = names.map(ast.Name)
comparisons = st.one_of(
    st.builds(
        ast.Comparison, name_nodes, st.sampled_from(["=", "!=", ">", "<", ">=", "<=", "~", "ends_with"]), scalars
    ),
    st.builds(
        ast.Comparison,
        name_nodes,
        st.just("in"),
        st.lists(scalars, min_size=1, max_size=4).map(lambda xs: ast.ValueList(tuple(xs))),
    ),
    st.builds(ast.Comparison, name_nodes, st.sampled_from(["is", "is_not"]), st.just(ast.Null())),
)
atoms = st.one_of(
    comparisons,
    st.builds(ast.Call, name_nodes, st.lists(scalars, max_size=3).map(tuple)),
    st.builds(ast.Flag, name_nodes),
    st.text(max_size=20).map(lambda s: ast.Text(ast.Str(s))),
    st.from_regex(r"[a-z_][a-z0-9_-]{0,10}", fullmatch=True).map(ast.SegmentRef),
)
exprs = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(ast.Not, inner),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: ast.And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: ast.Or(tuple(xs))),
    ),
    max_leaves=12,
)
positive = st.integers(-3, 10**6)
queries = st.builds(
    ast.Query,
    filter=st.none() | exprs,
    sort=st.none() | st.builds(ast.Sort, name_nodes, st.booleans()),
    select=st.none() | st.lists(name_nodes, min_size=1, max_size=4).map(lambda xs: ast.Select(tuple(xs))),
    limit=st.none() | positive.map(lambda n: ast.Limit(ast.Int(n))),
    page=st.none() | st.builds(ast.Page, positive.map(ast.Int), st.none() | positive.map(ast.Int)),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_format_then_parse_gives_the_same_tree(query: ast.Query) -> None:
    text = format_query(query)
    assert kql.parse(text) == query
    # Canonical text is a fixed point.
    assert kql.format(text) == text


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_random_text_raises_nothing_but_kqlerror(text: str) -> None:
    try:
        kql.compile(text)
    except kql.KQLError as error:
        assert error.code
        str(error)  # rendering never fails either


alphabet = st.sampled_from(list("()!&|=<>~,-#\"'\\ \n\tabcnotdsy_0123456789@.:"))


@settings(max_examples=500)
@given(st.text(alphabet, max_size=80))
def test_kql_shaped_noise_raises_nothing_but_kqlerror(text: str) -> None:
    try:
        kql.compile(text)
    except kql.KQLError as error:
        str(error)


@settings(max_examples=400)
@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_any_string_value_survives_compile_and_parse_qsl(value: str) -> None:
    query = ast.Query(filter=ast.Comparison(ast.Name("name"), "~", ast.Str(value)))
    compiled = kql.compile(format_query(query))
    assert compiled.params == [("filter[name_contains]", value)]
    assert parse_qsl(compiled.query_string, keep_blank_values=True) == compiled.params
    # Nothing in a value can add or change a parameter.
    assert compiled.query_string.count("&") == 0
    assert compiled.query_string.count("=") == 1

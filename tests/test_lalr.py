"""The parser's own LALR loop (kql.language.lalr), over the tables from kql's cache, parses exactly as
Lark's loop does over Lark's own; its recogniser accepts what Lark's interactive parser accepts."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput
from lark.exceptions import UnexpectedToken as LarkUnexpectedToken

from kql.language import lalr, tables
from kql.language.errors import KQLError
from kql.language.formatter import format_query
from kql.language.parser import _driver
from tests.lark_reference import lark_accepts, reference
from tests.test_properties import alphabet, queries


def _outcome(parse: Any, text: str) -> Any:
    """The tree with its spans, or the error: which token, where, and what was expected."""
    try:
        tree = parse(text)
    except (lalr.UnexpectedToken, LarkUnexpectedToken) as error:
        token = error.token
        return ("error", token.type, str(token), token.start_pos, token.end_pos, frozenset(error.expected))
    except UnexpectedInput as error:
        return ("error", type(error).__name__, getattr(error, "pos_in_stream", None))
    except KQLError as error:  # raised by a builder (a bad escape, a number too large)
        return ("kql", error.code, error.span)
    return ("tree", tree, _spans(tree))


def _spans(node: Any) -> list[Any]:
    """Every span in the tree, in order (equality of nodes ignores them)."""
    if isinstance(node, tuple | list):
        return [s for item in node for s in _spans(item)]
    if not attrs.has(type(node)):
        return []
    found = [getattr(node, "span", None)]
    for field in attrs.fields(type(node)):
        if field.name != "span":
            found.extend(_spans(getattr(node, field.name)))
    return found


def _same(text: str) -> None:
    assert _outcome(_driver().parse, text) == _outcome(reference().parse, text)


@settings(max_examples=300)
@given(queries)
def test_same_tree_and_spans_as_lark_on_valid_queries(query: Any) -> None:
    _same(format_query(query))


@settings(max_examples=500)
@given(st.text(alphabet, max_size=80))
def test_same_errors_as_lark_on_kql_shaped_noise(text: str) -> None:
    _same(text)


def test_same_on_edge_cases() -> None:
    for text in ["", "   ", "# only a comment", "a", "(a", "a)", "not", "has_tag()", "x in ()", "sort", "a and"]:
        _same(text)


def test_the_cached_tables_are_what_lark_gives_now() -> None:
    assert tables.tables() == tables.generate(tables.grammar())


def _same_accepts(text: str) -> None:
    tokens = list(tables.lexer().lex(text))
    if tokens and tokens[-1].type == "BAD_CHARACTER":
        tokens = tokens[:-1]
    recognizer = lalr.Recognizer(tables.tables())
    stack = recognizer.feed(t.type for t in tokens)
    assert (None if stack is None else recognizer.accepts(stack)) == lark_accepts(tokens)


@settings(max_examples=200)
@given(queries, st.data())
def test_completion_accepts_what_lark_accepts_after_any_prefix(query: Any, data: st.DataObject) -> None:
    text = format_query(query)
    _same_accepts(text[: data.draw(st.integers(0, len(text)))])


@settings(max_examples=300)
@given(st.text(alphabet, max_size=60))
def test_completion_accepts_what_lark_accepts_after_noise(text: str) -> None:
    _same_accepts(text)


def test_completion_accepts_on_edge_cases() -> None:
    for text in ["", "a", "a ", "(a", "not", "x in (1,", "has_tag(", "x is", "x is not", "a sort", "a sort -", "a and"]:
        _same_accepts(text)

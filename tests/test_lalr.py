"""The parser's own LALR loop (kql.language.lalr) parses exactly as Lark's loop does over the same tables."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from kql.language.errors import KQLError
from kql.language.formatter import format_query
from kql.language.parser import _driver, _lark, runtime
from tests.test_properties import alphabet, queries


def _outcome(parse: Any, text: str) -> Any:
    """The tree with its spans, or the error: which token, where, and what was expected."""
    lark = runtime()  # the exceptions of the Lark runtime both loops run in
    try:
        tree = parse(text)
    except lark.UnexpectedToken as error:
        return ("error", error.token.type, str(error.token), error.token.start_pos, frozenset(error.expected))
    except lark.UnexpectedInput as error:
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
    assert _outcome(_driver().parse, text) == _outcome(_lark().parse, text)


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

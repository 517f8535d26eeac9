"""The fast lexer agrees with Lark's own basic lexer built from the same grammar."""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kql.language.formatter import format_query
from kql.language.lexer import BAD_CHARACTER
from kql.language.tables import grammar, lexer
from tests.test_properties import queries


@functools.cache
def _reference() -> Any:
    from lark import Lark

    return Lark(grammar(), parser="lalr", lexer="basic")


def _ours(text: str) -> list[tuple[str, str, int]]:
    # KQLLexer over the master pattern from kql's cache
    return [(t.type, str(t), t.start_pos) for t in lexer().lex(text)]


def _theirs(text: str) -> list[tuple[str, str, int]]:
    return [(t.type, str(t), t.start_pos) for t in _reference().lex(text)]


@settings(max_examples=300)
@given(queries)
def test_same_tokens_as_lark_on_valid_queries(query: Any) -> None:
    text = format_query(query)
    assert _ours(text) == _theirs(text)


@settings(max_examples=300)
@given(st.text(st.sampled_from(list("()!&|=<>~,-#\"' \nabnotdsy_0123456789@.:TZ")), max_size=60))
def test_same_tokens_as_lark_on_noise(text: str) -> None:
    from lark.exceptions import UnexpectedCharacters

    ours = _ours(text)
    try:
        theirs = _theirs(text)
    except UnexpectedCharacters as error:
        # Where Lark stops, ours yields one BAD_CHARACTER token at the same place.
        assert ours[-1][0] == BAD_CHARACTER
        assert ours[-1][2] == error.pos_in_stream
        assert ours[:-1] == _theirs(text[: error.pos_in_stream])
        return
    assert ours == theirs


def test_keywords_are_case_insensitive_and_reserved() -> None:
    assert [t[0] for t in _ours("NoT x AND y oR z sort -name")] == [
        "NOT",
        "NAME",
        "AND",
        "NAME",
        "OR",
        "NAME",
        "SORT",
        "MINUS",
        "NAME",
    ]

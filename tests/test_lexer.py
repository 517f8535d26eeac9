"""The fast lexer agrees with Lark's own basic lexer built from the same grammar."""

from __future__ import annotations

import functools
import re
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


def test_master_pattern_tries_terminals_that_can_start_alike_in_their_order() -> None:
    from kql.language.lexer import _alternatives

    tokens = [("GE", ">="), ("NAME", "[a-z]+"), ("GT", ">"), ("INT", "-?[0-9]+"), ("MINUS", "-")]
    pattern = re.compile(f"(?:{_alternatives(tokens)})")
    assert [pattern.match(text).lastgroup for text in (">=", ">", "abc", "-1", "-", "12")] == [  # type: ignore[union-attr]
        "GE",
        "GT",
        "NAME",
        "INT",
        "MINUS",
        "INT",
    ]
    # The numbers (and `-`, which can start one) are tried together, behind one look at the character.
    assert "(?=[\\-0123456789])(?:-?[0-9]+(?P<INT>)|-(?P<MINUS>))" in pattern.pattern


def test_master_pattern_keeps_the_order_where_a_first_character_cannot_be_told() -> None:
    from kql.language.lexer import _alternatives

    tokens = [("A", "[0-9]+"), ("WORD", r"\w+"), ("B", "x")]
    assert _alternatives(tokens) == "[0-9]+(?P<A>)|\\w+(?P<WORD>)|x(?P<B>)"


def test_first_characters() -> None:
    from kql.language.lexer import _first_characters

    assert _first_characters("ab") == (frozenset("a"), True)
    assert _first_characters("[a-c_][a-z]*") == (frozenset("abc_"), True)
    assert _first_characters("-?[0-9]") == (frozenset("-0123456789"), False)
    assert _first_characters("(?:\"x\"|'y')") == (frozenset("\"'"), False)
    assert _first_characters("(T[0-9])?Z") == (frozenset("TZ"), False)
    for unknown in (r"\s+", "[^a]", "a?", "", "(?i:a)", "^a", "(?=a)a", "(", "[\u0000-\uffff]"):
        assert _first_characters(unknown) is None, unknown

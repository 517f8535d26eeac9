"""Lark's own parser for grammar/kql.lark: the reference kql's tables, loop and recogniser are checked against.

It is built from the grammar here, in the test process (it imports Lark), with kql's builders as
its transformer and kql's lexer (derived from this parser's own terminals) feeding its loop.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

from kql.language.lexer import KQLLexer, Token, master_pattern
from kql.language.parser import _Builder
from kql.language.tables import grammar, lark_parser


class _LarkTokens:
    """kql's lexer where Lark's parser asks for tokens (``lex(lexer_state, parser_state)``), as Lark's
    own ``Token`` (Lark's loop reads their lines and columns)."""

    def __init__(self, lexer: KQLLexer) -> None:
        self.lexer = lexer

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Any]:
        return lark_tokens(self.lexer.lex(lexer_state.text.text))  # a TextSlice of the whole text


def lark_tokens(tokens: Iterable[Token]) -> Iterator[Any]:
    from lark import Token as LarkToken

    for token in tokens:
        yield LarkToken(token.type, str(token), token.start_pos, end_pos=token.end_pos)


class _BuilderOfLarkTokens:
    """kql's builders as Lark's transformer: each gets its tokens as kql's loop shifts them
    (``lalr.Shifted`` tuples), not as Lark's ``Token``. Only the builders' names are attributes,
    so Lark makes its own trees for the rules without one (the repetitions)."""

    def __init__(self) -> None:
        self._builder = _Builder()

    def __getattr__(self, name: str) -> Any:
        from lark import Token as LarkToken

        method = getattr(_Builder, name, None)
        if method is None or name.startswith("_"):
            raise AttributeError(name)
        build = getattr(self._builder, name)

        def with_shifted(children: list[Any]) -> Any:
            shifted = [
                (str(c), c.type, c.start_pos, c.end_pos) if isinstance(c, LarkToken) else c for c in children
            ]
            return build(shifted)

        return with_shifted


@functools.cache
def reference() -> Any:
    """Lark's parser, building kql's AST through Lark's own callbacks and loop."""
    parser = lark_parser(grammar(), transformer=_BuilderOfLarkTokens())
    conf = parser.lexer_conf
    parser.parser.lexer = _LarkTokens(KQLLexer(*master_pattern(conf.terminals, conf.ignore)))
    return parser


def lark_accepts(tokens: list[Token]) -> set[str] | None:
    """What Lark's interactive parser accepts after ``tokens`` (None when they do not parse)."""
    from lark.exceptions import UnexpectedToken

    interactive = reference().parse_interactive("")
    interactive.parser_state.parse_conf.callbacks = {}  # recognise only, as completion does
    try:
        for token in lark_tokens(tokens):
            interactive.feed_token(token)
    except UnexpectedToken:
        return None
    accepted: set[str] = interactive.accepts()
    return accepted

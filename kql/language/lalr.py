"""A tight loop over Lark's LALR tables: the same parse, without Lark's per-token overhead.

Lark's own loop (``ParserState.feed_token``) is general: each token costs a method call,
a rule-object hash and comparison to find the rule's callback, and attribute look-ups. KQL
spends about half its compile time there. This module reads the tables and callbacks of
the parser ``kql.language.parser`` built (so the grammar, the states and the AST builders
are Lark's and ours, unchanged) into plain dicts and tuples once, and runs the
standard shift-reduce loop over them. Errors are Lark's own ``UnexpectedToken``, with the
set of expected terminals Lark would give, so the parser's messages are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kql.language.lexer import BAD_CHARACTER

# A reduction: how many values it takes, the rule it makes (for the goto), and its builder.
Reduce = tuple[int, str, Callable[[list[Any]], Any] | None]
# state -> symbol -> the next state's row (a shift, or a goto after a reduction) or a Reduce.
Table = dict[Any, dict[str, Any]]


PASSES_CHILD = "_kql_passes_child"
_F = TypeVar("_F", bound=Callable[..., Any])


def passes_child(builder: _F) -> _F:
    """Marks a rule builder that returns its one child unchanged: the loop skips calling it."""
    setattr(builder, PASSES_CHILD, True)
    return builder


class _Token(str):
    """The compile path's token: the text, its terminal and where it is. Lark's ``Token`` also
    carries lines and columns nobody reads here, and costs a method call and nine attribute
    stores per token; the builders only read ``type``, ``start_pos``, ``end_pos`` and the text.
    An error hands Lark's own ``Token`` on (see ``Driver._unexpected``)."""

    __slots__ = ("end_pos", "start_pos", "type")

    type: str
    start_pos: int
    end_pos: int | None  # None only for the end of an empty query, as Lark has it


def _token(kind: str, value: str, start: int, end: int | None) -> _Token:
    token = str.__new__(_Token, value)
    token.type = kind
    token.start_pos = start
    token.end_pos = end
    return token


class Driver:
    """Parses with the tables of one Lark LALR parser built with ``transformer=`` and a custom lexer.

    ``runtime`` is the Lark runtime the parser was built from (Lark's standalone module, see
    ``kql.language.parser.runtime``): its ``Token``, ``UnexpectedToken``, ``Shift`` and
    ``ExpandSingleChild``, so that a warm start never imports the ``lark`` package.
    """

    def __init__(self, lark: Any, runtime: Any) -> None:
        self._token = runtime.Token
        self._unexpected_token = runtime.UnexpectedToken
        shift = runtime.Shift
        expand_single_child = runtime.ExpandSingleChild
        frontend = lark.parser
        parser = frontend.parser.parser
        table = parser.parse_table
        callbacks = parser.callbacks
        (start,) = frontend.parser_conf.start
        lexer = frontend.lexer.lexer
        # The lexer's master pattern and keywords, read inline by ``parse`` (one match per token).
        self._match = lexer._master.match
        self._keywords = lexer.keywords
        self._bad_character = BAD_CHARACTER

        def reduce(rule: Any) -> Reduce:
            build = callbacks[rule]
            # `?rule` with one child (`value: INT`, `unary: atom`) hands the child on: no call needed.
            # So does a builder marked ``passes_child`` (``op: "=" | …`` returns its token).
            passes = len(rule.expansion) == 1 and (
                isinstance(build, expand_single_child) or getattr(build, PASSES_CHILD, False)
            )
            return (len(rule.expansion), rule.origin.name, None if passes else build)

        # Each state is its dict of actions; a shift or goto points at the next state's dict, so
        # the loop's stack holds the dicts themselves and never looks a state number up.
        rows: Table = {state: {} for state in table.states}
        for state, actions in table.states.items():
            for symbol, (action, arg) in actions.items():
                rows[state][symbol] = rows[arg] if action is shift else reduce(arg)
        self.table = rows
        self._numbers = {id(row): state for state, row in rows.items()}
        self.start = rows[table.start_states[start]]
        self.end = rows[table.end_states[start]]

    def parse(self, text: str) -> Any:
        states = [self.start]
        values: list[Any] = []
        match = self._match
        keywords = self._keywords
        end_state = self.end
        new_token = str.__new__
        pos = 0
        stop = len(text)
        last: _Token | None = None
        while True:
            # The next token, lexed inline (as KQLLexer.lex, without a generator per parse).
            found = match(text, pos) if pos < stop else None
            if found is None or found.lastgroup is None:
                after = found.end() if found is not None else pos
                if after < stop:  # a character no token matches
                    token = _token(self._bad_character, text[after], after, after + 1)
                else:  # as Lark makes it: at the last token
                    token = (
                        _token("$END", "", last.start_pos, last.end_pos)
                        if last is not None
                        else _token("$END", "", 0, None)
                    )
                kind = token.type
            else:
                kind = found.lastgroup
                start, pos = found.span(kind)
                token = last = new_token(_Token, text[start:pos])  # what _token does, without a call per token
                if kind == "NAME":
                    kind = keywords.get(token.lower(), kind)
                token.type = kind
                token.start_pos = start
                token.end_pos = pos
            while True:
                action = states[-1].get(kind)
                if action is None:
                    raise self._unexpected(token, states[-1])
                if action.__class__ is not tuple:  # a shift
                    states.append(action)
                    values.append(token)
                    break
                size, origin, build = action
                if build is None:  # a pass-through of one value: only the state changes
                    states[-1] = states[-2][origin]
                    continue
                if size:
                    children = values[-size:]
                    del states[-size:]
                    del values[-size:]
                else:
                    children = []
                values.append(build(children))
                states.append(states[-1][origin])
                if kind == "$END" and states[-1] is end_state:
                    return values[-1]
            if kind == "$END" or kind == self._bad_character:
                raise AssertionError("unreachable: the end of the input reduces to the start rule or raises")

    def _unexpected(self, token: _Token, row: dict[str, Any]) -> Exception:
        expected = {s for s in row if s.isupper()}
        # Lark's own Token, as Lark's lexer makes it (no lines or columns: KQLLexer gives none).
        new = self._token._future_new
        lark_token = new(token.type, str(token), token.start_pos, None, None, None, None, token.end_pos)
        if token.type == "$END" and token.end_pos is None:
            lark_token = self._token("$END", "", 0, 1, 1)
        error: Exception = self._unexpected_token(lark_token, expected, state=self._numbers[id(row)])
        return error

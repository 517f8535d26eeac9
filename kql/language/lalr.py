"""A tight loop over Lark's LALR tables: the same parse, without Lark's per-token overhead.

Lark's own loop (``ParserState.feed_token``) is general: each token costs a method call,
a rule-object hash and comparison to find the rule's callback, and attribute look-ups. KQL
spends about half its compile time there. This module reads the tables and callbacks of
the parser ``kql.language.parser`` built (so the grammar, the states and the AST builders
are Lark's and ours, unchanged) into plain dicts of ints and tuples once, and runs the
standard shift-reduce loop over them. Errors are Lark's own ``UnexpectedToken``, with the
set of expected terminals Lark would give, so the parser's messages are unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

# A reduction: how many values it takes, the rule it makes (for the goto), and its builder.
Reduce = tuple[int, str, Callable[[list[Any]], Any] | None]
# state -> symbol -> the next state (a shift, or a goto after a reduction) or a Reduce.
Table = dict[Any, dict[str, Any]]
# Marks the end of the token stream.
_END: tuple[Any] = (object(),)


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
        self.start = table.start_states[start]
        self.end = table.end_states[start]
        self.lex = frontend.lexer.lexer.lex

        def reduce(rule: Any) -> Reduce:
            build = callbacks[rule]
            # `?rule` with one child (`value: INT`, `unary: atom`) hands the child on: no call needed.
            passes = isinstance(build, expand_single_child) and len(rule.expansion) == 1
            return (len(rule.expansion), rule.origin.name, None if passes else build)

        self.table: Table = {
            state: {symbol: arg if action is shift else reduce(arg) for symbol, (action, arg) in actions.items()}
            for state, actions in table.states.items()
        }

    def parse(self, text: str) -> Any:
        table = self.table
        states = [self.start]
        values: list[Any] = []
        token_class = self._token
        last: Any = None
        for token in itertools.chain(self.lex(text), _END):
            if token is _END[0]:  # as Lark makes it: at the last token
                token = (token_class.new_borrow_pos("$END", "", last) if last is not None
                         else token_class("$END", "", 0, 1, 1))
            else:
                last = token
            kind = token.type
            while True:
                action = table[states[-1]].get(kind)
                if action is None:
                    raise self._unexpected(token, states[-1])
                if action.__class__ is not tuple:  # a shift
                    states.append(action)
                    values.append(token)
                    break
                size, origin, build = action
                if build is None:  # a pass-through of one value: only the state changes
                    states[-1] = table[states[-2]][origin]
                    continue
                if size:
                    children = values[-size:]
                    del states[-size:]
                    del values[-size:]
                else:
                    children = []
                values.append(build(children))
                states.append(table[states[-1]][origin])
                if kind == "$END" and states[-1] == self.end:
                    return values[-1]
        raise AssertionError("unreachable: the end of the input reduces to the start rule or raises")

    def _unexpected(self, token: Any, state: Any) -> Exception:
        expected = {s for s in self.table[state] if s.isupper()}
        error: Exception = self._unexpected_token(token, expected, state=state)
        return error

"""A tight loop over the parser's LALR tables: Lark's parse, without Lark's per-token overhead.

Lark's own loop (``ParserState.feed_token``) is general: each token costs a method call,
a rule-object hash and comparison to find the rule's callback, and attribute look-ups. KQL
spends about half its compile time there. This module runs the standard shift-reduce loop
over the tables Lark computed for grammar/kql.lark, as plain data (``Tables``: see
``kql.language.tables``, which reads them off Lark once and keeps them in kql's cache), so a
start never loads Lark's runtime. Each rule's callback is rebuilt here from its description:
the builder method of the same name (or, for a rule without one, a bare node for its parent
to splice in), wrapped as Lark's parse-tree builder wraps it (``?rule`` with one child hands
the child on; filtered tokens are dropped and ``[optional]`` placeholders inserted). Errors
carry the set of expected terminals Lark would give, so the parser's messages are unchanged.

``Recognizer`` is the automaton alone, for completion: which terminals can come next after
a prefix (what Lark's ``InteractiveParser.accepts`` answers), without building anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, TypedDict, TypeVar

from kql.language.lexer import BAD_CHARACTER
from kql.language.lexer import Token as _Token
from kql.language.lexer import make_token as _token

# A reduction: how many values it takes, the rule it makes (for the goto), and its builder.
Reduce = tuple[int, str, Callable[[list[Any]], Any] | None]
# state -> symbol -> the next state's row (a shift, or a goto after a reduction) or a Reduce.
Table = dict[Any, dict[str, Any]]
Row = dict[str, Any]
# A token as the loop shifts it, and as the builders get it: (text, terminal, start, end). A tuple,
# not a ``lexer.Token`` (a str subclass: one more copy of the text and three attribute stores).
Shifted = tuple[str, str, int, int]

# The tables as data (what kql's cache keeps; marshal-able: ints, strings, tuples, lists, dicts).
SHIFT, REDUCE = 0, 1
# Which children a rule's builder gets: (index, splice the child's children in, Nones before it)
# for each child kept, and the Nones after the last ("[x]" placeholders); None keeps all as they are.
Keep = tuple[tuple[tuple[int, bool, int], ...], int]
# (origin, expansion, the callback's name, ``?rule`` hands a single child on, which children to keep)
Rule = tuple[str, tuple[str, ...], str, bool, Keep | None]


class Tables(TypedDict):
    states: dict[int, dict[str, tuple[int, int]]]  # state -> symbol -> (SHIFT, state) or (REDUCE, rule)
    start: int
    end: int
    rules: list[Rule]
    pattern: str  # the lexer's master pattern (kql.language.lexer.master_pattern)
    keywords: dict[str, str]  # reserved word (lower case) -> terminal
    literals: dict[str, str]  # terminal -> its text, for the terminals that are a fixed string


PASSES_CHILD = "_kql_passes_child"
_F = TypeVar("_F", bound=Callable[..., Any])


def passes_child(builder: _F) -> _F:
    """Marks a rule builder that returns its one child unchanged: the loop skips calling it."""
    setattr(builder, PASSES_CHILD, True)
    return builder


class UnexpectedToken(Exception):
    """The parse cannot go on at ``token``; ``expected`` are the terminals it could have taken there."""

    def __init__(self, token: _Token, expected: set[str]) -> None:
        super().__init__(token.type, expected)
        self.token = token
        self.expected = expected


class Tree:
    """What a rule without a builder makes (Lark's default callback, a ``Tree``): the repetitions
    Lark adds for ``x*`` (``__start_star_0``…), whose children the parent rule splices in."""

    __slots__ = ("children", "data")

    def __init__(self, data: str, children: list[Any]) -> None:
        self.data = data
        self.children = children


def _expand_single_child(build: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    """Lark's ``ExpandSingleChild``: a ``?rule`` with one child is that child."""

    def expand(children: list[Any]) -> Any:
        return children[0] if len(children) == 1 else build(children)

    return expand


def _child_filter(keep: Keep, build: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    """Lark's ``ChildFilterLALR`` (or ``_NoPlaceholders``, when no ``[x]`` leaves a None)."""
    included, nones_after = keep
    if nones_after or any(nones for _, _, nones in included):

        def with_placeholders(children: list[Any]) -> Any:
            filtered: list[Any] = []
            for i, to_expand, nones in included:
                if nones:
                    filtered += [None] * nones
                if to_expand:
                    if filtered:
                        filtered += children[i].children
                    else:  # as Lark: reuse the left-recursive repetition's list
                        filtered = children[i].children
                else:
                    filtered.append(children[i])
            if nones_after:
                filtered += [None] * nones_after
            return build(filtered)

        return with_placeholders
    pairs = tuple((i, to_expand) for i, to_expand, _ in included)

    def without_placeholders(children: list[Any]) -> Any:
        filtered: list[Any] = []
        for i, to_expand in pairs:
            if to_expand:
                if filtered:
                    filtered += children[i].children
                else:
                    filtered = children[i].children
            else:
                filtered.append(children[i])
        return build(filtered)

    return without_placeholders


def _grow_repetition(origin: str, expansion: tuple[str, ...], keep: Keep) -> Callable[[list[Any]], Any] | None:
    """The callback of a repetition's left-recursive rule (``__x_star_0: __x_star_0 "," value``), which
    Lark's builder makes into a new ``Tree`` holding the first child's list with the kept children
    appended: appending them to the first child itself gives the same tree, without making one per
    repetition (the old tree is the same list and name, and nothing else holds it). None for any
    other rule."""
    included, nones_after = keep
    if not expansion or expansion[0] != origin or nones_after or not included or included[0] != (0, True, 0):
        return None
    if any(to_expand or nones for _, to_expand, nones in included[1:]):
        return None
    rest = [i for i, _, _ in included[1:]]
    if rest == list(range(1, len(expansion))):  # `and_expr`'s: the operator and operand, both kept

        def grow_all(children: list[Any]) -> Any:
            tree = children[0]
            tree.children += children[1:]
            return tree

        return grow_all
    picked = tuple(rest)

    def grow(children: list[Any]) -> Any:
        tree = children[0]
        tree.children += [children[i] for i in picked]
        return tree

    return grow


def callback(rule: Rule, builder: object) -> tuple[Callable[[list[Any]], Any], bool]:
    """The rule's callback, as Lark's ``ParseTreeBuilder.create_callback`` makes it for the
    transformer ``builder``; and whether it only hands its one child on (the loop then skips it)."""
    origin, expansion, name, expand1, keep = rule
    method = getattr(builder, name, None)  # Lark: getattr(transformer, name), else a Tree
    if method is None and keep is not None and not expand1:
        grown = _grow_repetition(origin, expansion, keep)
        if grown is not None:
            return grown, False
    build: Callable[[list[Any]], Any] = method if method is not None else functools.partial(Tree, name)
    if expand1:
        build = _expand_single_child(build)
    if keep is not None:
        build = _child_filter(keep, build)
    # `?rule` with one child (`value: INT`, `unary: atom`) hands the child on: no call needed.
    # So does a builder marked ``passes_child`` (``op: "=" | …`` returns its token).
    passes = len(expansion) == 1 and keep is None and (expand1 or getattr(method, PASSES_CHILD, False))
    return build, passes


class Recognizer:
    """The LALR automaton of ``tables``: each state is its dict of actions; a shift or goto points
    at the next state's dict, so a stack holds the dicts themselves and never looks a state up.

    Without ``reduce`` the reductions carry no builder: enough to tell which tokens a prefix
    accepts (``feed``, ``accepts``), which is all completion asks."""

    def __init__(self, tables: Tables, reduce: Callable[[Rule], Reduce] | None = None) -> None:
        rules = tables["rules"]
        made = [reduce(rule) if reduce is not None else (len(rule[1]), rule[0], None) for rule in rules]
        states = tables["states"]
        rows: Table = {state: {} for state in states}
        for state, actions in states.items():
            row = rows[state]
            for symbol, (action, arg) in actions.items():
                row[symbol] = rows[arg] if action == SHIFT else made[arg]
        self.table = rows
        self.start = rows[tables["start"]]
        self.end = rows[tables["end"]]

    def feed(self, kinds: Iterable[str]) -> list[Row] | None:
        """The stack after tokens of these kinds, or None when one of them cannot come where it is
        (Lark's ``InteractiveParser.feed_token`` for each, with no callbacks)."""
        stack = [self.start]
        for kind in kinds:
            if not self._takes(stack, kind):
                return None
        return stack

    def accepts(self, stack: list[Row]) -> set[str]:
        """The terminals that can come next: those of the top state that the stack can shift
        after the reductions they trigger (Lark's ``InteractiveParser.accepts``)."""
        return {kind for kind in stack[-1] if kind.isupper() and self._takes(list(stack), kind)}

    def _takes(self, stack: list[Row], kind: str) -> bool:
        """Reduce as ``kind`` asks, then shift it; False (the stack half-reduced) where it cannot."""
        end = self.end
        while True:
            action = stack[-1].get(kind)
            if action is None:
                return False
            if action.__class__ is not tuple:
                stack.append(action)
                return True
            size, origin, _ = action
            if size:
                del stack[-size:]
            stack.append(stack[-1][origin])
            if kind == "$END" and stack[-1] is end:
                return True


class Driver(Recognizer):
    """Parses with ``tables``, building the tree with ``builder``'s methods (the transformer Lark
    would have been given), one per rule alias. The lexer is inline: the tables' master pattern
    and keywords (as ``kql.language.lexer.KQLLexer`` reads them)."""

    def __init__(self, tables: Tables, builder: object) -> None:
        def reduce(rule: Rule) -> Reduce:
            build, passes = callback(rule, builder)
            return (len(rule[1]), rule[0], None if passes else build)

        super().__init__(tables, reduce)
        # The lexer's master pattern and keywords, read inline by ``parse`` (one match per token).
        # (Typed as returning a match always: the pattern matches everywhere, if only the empty string.)
        self._match: Callable[[str, int], Any] = re.compile(tables["pattern"]).match
        self._keywords = tables["keywords"]
        self._bad_character = BAD_CHARACTER

    def parse(self, text: str) -> Any:
        states = [self.start]
        values: list[Any] = []
        match = self._match
        keywords = self._keywords
        end_state = self.end
        pos = 0
        stop = len(text)
        last: Shifted | None = None
        while True:
            # The next token, lexed inline (as KQLLexer.lex, without a generator per parse).
            found = match(text, pos)  # always matches: the token after the spaces is optional
            kind = found.lastgroup
            if kind is None:  # no token: the end, or a character no token matches
                after = found.end()
                if after < stop:
                    kind = self._bad_character
                    token: tuple[str, str, int, int | None] = (text[after], kind, after, after + 1)
                else:  # as Lark makes it: at the last token (an empty query's ends nowhere)
                    kind = "$END"
                    token = ("", kind, last[2], last[3]) if last is not None else ("", kind, 0, None)
            else:
                start, pos = found.end(1), found.end()  # group 1: the spaces and comments before it
                value = text[start:pos]
                if kind == "NAME":
                    kind = keywords.get(value.lower(), kind)
                token = last = (value, kind, start, pos)
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

    def _unexpected(self, token: tuple[str, str, int, int | None], row: dict[str, Any]) -> Exception:
        text, kind, start, end = token
        return UnexpectedToken(_token(kind, text, start, end), {s for s in row if s.isupper()})

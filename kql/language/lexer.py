"""A fast lexer for the LALR parser, built from the grammar's own terminals.

Lark's contextual lexer spends most of a parse matching per-state patterns and
re-checking keywords. KQL's terminals never need context to be told apart
(keywords are reserved words), so one master regular expression does the job in
a single ``match`` per token. The terminals come from grammar/kql.lark through
Lark's lexer configuration: this module knows no token shapes of its own.

Two halves: ``master_pattern`` reads Lark's terminal definitions into plain data (the
pattern's source and the keywords), once, when kql.language.tables generates the
parser's tables; ``KQLLexer`` runs on that data and imports nothing from Lark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

# A character nothing matches becomes this token: the parser then reports it with
# the set of tokens it expected at that point.
BAD_CHARACTER = "BAD_CHARACTER"


class Token(str):
    """A token: the text, its terminal and where it is. Lark's ``Token`` also carries lines and
    columns nobody reads here, and costs a method call and nine attribute stores per token; the
    parser's builders, completion and syntax colouring read only ``type``, ``start_pos``,
    ``end_pos`` and the text."""

    __slots__ = ("end_pos", "start_pos", "type")

    type: str
    start_pos: int
    end_pos: int | None  # None only for the end of an empty query, as Lark has it


def make_token(kind: str, value: str, start: int, end: int | None) -> Token:
    token = str.__new__(Token, value)
    token.type = kind
    token.start_pos = start
    token.end_pos = end
    return token


def _is_literal(terminal: Any) -> bool:
    return bool(terminal.pattern.type == "str")  # Lark's PatternStr; PatternRE is "re"


def master_pattern(terminals: Iterable[Any], ignore: Iterable[str]) -> tuple[str, dict[str, str]]:
    """The master regular expression (its source) and the keywords (lower case → terminal), from
    Lark's terminal definitions (``lexer_conf.terminals`` and ``.ignore``).

    A match of the pattern is one token: group 1 is the spaces and comments before it (so the
    token starts at ``end(1)`` and ends at ``end()``), and ``lastgroup`` names its terminal."""
    terminals = list(terminals)
    ignored = set(ignore)
    name_re = re.compile(next(t.pattern.to_regexp() for t in terminals if t.name == "NAME") + r"\Z")
    # String terminals that look like a name (`and`, `sort`, …) are keywords:
    # the lexer reads a NAME and looks the word up, case-insensitively.
    keywords = {
        str(t.pattern.value).lower(): str(t.name)
        for t in sorted(terminals, key=lambda t: t.name)
        if _is_literal(t) and name_re.match(t.pattern.value)
    }
    symbols = [t for t in terminals if _is_literal(t) and t.name not in keywords.values()]
    patterns = [t for t in terminals if not _is_literal(t)]
    # Higher priority first (a date before the integer it starts with), then
    # longer symbols before their prefixes (`>=` before `>`); ties by name, so that the
    # pattern is the same whatever order Lark lists its terminals in.
    patterns.sort(key=lambda t: (-t.priority, t.name))
    symbols.sort(key=lambda t: (-len(t.pattern.value), t.name))
    # Spaces and comments (the grammar's %ignore) are skipped by the same match as the
    # token after them: one match per token. No token starts like them (a space or #).
    skipped = "|".join(f"(?:{t.pattern.to_regexp()})" for t in patterns if t.name in ignored)
    tokens = [(str(t.name), t.pattern.to_regexp()) for t in patterns + symbols if t.name not in ignored]
    # Possessive (`*+`): as no token starts like them, giving any back can never make a token match.
    skip = f"(?:{skipped})*+" if skipped else ""
    return f"({skip})(?:{_alternatives(tokens)})?", keywords


def _alternatives(tokens: list[tuple[str, str]]) -> str:
    """The terminals' patterns as one alternation that picks what trying them in order would pick,
    arranged so that trying one that cannot match costs little.

    Python's ``re`` tries alternatives in order, and skips one without entering it only when it
    starts with a literal or a character set (not a group, a repetition, or a lookahead). So each
    terminal is tagged by an empty named group at its end, not wrapped in one: its first character
    is then what the alternative starts with. And terminals that cannot start with the same
    character never compete, so only the order among those that can matters: they stay together
    in their order (a date before the integer it starts with, `>=` before `>`), behind one look
    at the first character when several must be entered to be tried (the numbers: a name or a
    symbol never tries them), after the groups of terminals that are skipped without entering.
    Where a terminal's first characters cannot be told, the order is kept as it is."""
    tagged = [f"{regex}(?P<{name}>)" for name, regex in tokens]
    starts = [_first_characters(regex) for _, regex in tokens]
    known = [s for s in starts if s is not None]
    if len(known) < len(starts):
        return "|".join(tagged)
    # Group the terminals whose first characters overlap, transitively, keeping their order.
    groups: list[list[int]] = []
    for i, (first, _) in enumerate(known):
        meeting = [g for g in groups if any(known[j][0] & first for j in g)]
        groups = [g for g in groups if g not in meeting] + [sorted([i, *(j for g in meeting for j in g)])]
    groups.sort(key=lambda g: (not all(known[j][1] for j in g), g[0]))
    parts = []
    for group in groups:
        alternatives = "|".join(tagged[j] for j in group)
        if len(group) > 1 and not all(known[j][1] for j in group):
            chars = "".join(re.escape(c) for c in sorted(set().union(*(known[j][0] for j in group))))
            alternatives = f"(?=[{chars}])(?:{alternatives})"
        parts.append(alternatives)
    return "|".join(parts)


def _sre_parse() -> Any:
    """The parser of ``re`` itself (``re._parser``: what Lark reads its terminals' widths with too)."""
    import importlib

    return importlib.import_module("re._parser")


# A first character set larger than this is not worth listing (and no KQL terminal has one).
_MOST_FIRST_CHARACTERS = 256


def _first_characters(regex: str) -> tuple[frozenset[str], bool] | None:
    """The characters a match of ``regex`` can start with, and whether ``re`` can skip it without
    entering (it starts with a literal or a set); None when that cannot be told for certain (an
    empty match, a category such as ``\\s``, a negated set, flags, anchors, lookarounds)."""
    sre_parse = _sre_parse()
    try:
        items = list(sre_parse.parse(regex))
    except re.error:
        return None
    if not items:
        return None
    first = _sequence_first(items)
    if first is None:
        return None
    chars, nullable = first
    if nullable:
        return None
    return chars, items[0][0] in (sre_parse.LITERAL, sre_parse.IN)


def _sequence_first(items: list[Any]) -> tuple[frozenset[str], bool] | None:
    """First characters of a sequence of parsed items, and whether the whole can match empty."""
    chars: frozenset[str] = frozenset()
    for item in items:
        first = _item_first(item)
        if first is None:
            return None
        chars |= first[0]
        if not first[1]:
            return chars, False
    return chars, True


def _item_first(item: Any) -> tuple[frozenset[str], bool] | None:
    sre_parse = _sre_parse()
    op, arg = item
    if op is sre_parse.LITERAL:
        return frozenset(chr(arg)), False
    if op is sre_parse.IN:
        chars: set[str] = set()
        for kind, value in arg:
            if kind is sre_parse.LITERAL:
                chars.add(chr(value))
            elif kind is sre_parse.RANGE and value[1] - value[0] < _MOST_FIRST_CHARACTERS:
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            else:  # NEGATE, CATEGORY, a wide range
                return None
        return frozenset(chars), False
    if op is sre_parse.SUBPATTERN:
        _group, add_flags, del_flags, pattern = arg
        return _sequence_first(list(pattern)) if not add_flags and not del_flags else None
    if op is sre_parse.BRANCH:
        union: frozenset[str] = frozenset()
        nullable = False
        for pattern in arg[1]:
            first = _sequence_first(list(pattern))
            if first is None:
                return None
            union |= first[0]
            nullable = nullable or first[1]
        return union, nullable
    if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
        low, _high, pattern = arg
        first = _sequence_first(list(pattern))
        if first is None:
            return None
        return first[0], first[1] or low == 0
    return None  # anchors, lookarounds, back references, …: not worth telling apart


class KQLLexer:
    def __init__(self, pattern: str, keywords: dict[str, str]) -> None:
        self._master = re.compile(pattern)
        self.keywords = keywords
        self._name = "NAME"

    def lex(self, text: str) -> Iterator[Token]:
        match = self._master.match
        keywords = self.keywords
        pos = 0
        end = len(text)
        while pos < end:
            found = match(text, pos)
            kind = found.lastgroup if found is not None else None
            if found is None or kind is None:  # only spaces and comments, then the end or a bad character
                stop = found.end() if found is not None else pos
                if stop < end:
                    yield make_token(BAD_CHARACTER, text[stop], stop, stop + 1)
                return
            start, pos = found.end(1), found.end()
            value = text[start:pos]
            if kind == self._name:
                kind = keywords.get(value.lower(), kind)
            yield make_token(kind, value, start, pos)

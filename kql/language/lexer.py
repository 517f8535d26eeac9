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
    Lark's terminal definitions (``lexer_conf.terminals`` and ``.ignore``)."""
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
    alternatives = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in patterns + symbols if t.name not in ignored]
    pattern = f"(?:{skipped})*(?:{'|'.join(alternatives)})?" if skipped else "|".join(alternatives)
    return pattern, keywords


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
            value = found.group(kind)
            if kind == self._name:
                kind = keywords.get(value.lower(), kind)
            pos = found.end()
            yield make_token(kind, value, pos - len(value), pos)

"""A fast lexer for Lark's LALR parser, built from the grammar's own terminals.

Lark's contextual lexer spends most of a parse matching per-state patterns and
re-checking keywords. KQL's terminals never need context to be told apart
(keywords are reserved words), so one master regular expression does the job in
a single ``match`` per token. The terminals come from grammar/kql.lark through
Lark's lexer configuration: this module knows no token shapes of its own.

It imports nothing from Lark: the parser hands it the lexer configuration and the
``Token`` class of the Lark runtime it runs in (see ``kql.language.parser``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

# A character nothing matches becomes this token: the parser then reports it with
# the set of tokens it expected at that point.
BAD_CHARACTER = "BAD_CHARACTER"


def _is_literal(terminal: Any) -> bool:
    return bool(terminal.pattern.type == "str")  # Lark's PatternStr; PatternRE is "re"


class KQLLexer:
    def __init__(self, lexer_conf: Any, token_class: Any) -> None:
        self._token_class = token_class
        terminals = list(lexer_conf.terminals)
        ignore = set(lexer_conf.ignore)
        name_re = re.compile(next(t.pattern.to_regexp() for t in terminals if t.name == "NAME") + r"\Z")
        # String terminals that look like a name (`and`, `sort`, …) are keywords:
        # the lexer reads a NAME and looks the word up, case-insensitively.
        self.keywords = {
            t.pattern.value.lower(): t.name
            for t in terminals
            if _is_literal(t) and name_re.match(t.pattern.value)
        }
        symbols = [t for t in terminals if _is_literal(t) and t.name not in self.keywords.values()]
        patterns = [t for t in terminals if not _is_literal(t)]
        # Higher priority first (a date before the integer it starts with), then
        # longer symbols before their prefixes (`>=` before `>`).
        patterns.sort(key=lambda t: -t.priority)
        symbols.sort(key=lambda t: -len(t.pattern.value))
        # Spaces and comments (the grammar's %ignore) are skipped by the same match as the
        # token after them: one match per token. No token starts like them (a space or #).
        skipped = "|".join(f"(?:{t.pattern.to_regexp()})" for t in patterns if t.name in ignore)
        alternatives = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in patterns + symbols if t.name not in ignore]
        self._master = re.compile(f"(?:{skipped})*(?:{'|'.join(alternatives)})?" if skipped else "|".join(alternatives))
        self._name = "NAME"

    def lex(self, text: str) -> Iterator[Any]:
        match = self._master.match
        # Token() only forwards to _future_new after checking for deprecated keywords.
        token: Callable[..., Any] = self._token_class._future_new
        keywords = self.keywords
        pos = 0
        end = len(text)
        while pos < end:
            found = match(text, pos)
            kind = found.lastgroup if found is not None else None
            if found is None or kind is None:  # only spaces and comments, then the end or a bad character
                stop = found.end() if found is not None else pos
                if stop < end:
                    yield token(BAD_CHARACTER, text[stop], stop, None, None, None, None, stop + 1)
                return
            value = found.group(kind)
            if kind == self._name:
                kind = keywords.get(value.lower(), kind)
            pos = found.end()
            yield token(kind, value, pos - len(value), None, None, None, None, pos)

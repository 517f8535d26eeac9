"""The sizes the language refuses beyond (imported by completion without the parser and its AST)."""

from __future__ import annotations

MAX_QUERY_LENGTH = 10_000
MAX_DEPTH = 64
# Longer digit strings are not ids, counts or days; Python's int() also refuses huge ones.
MAX_DIGITS = 19

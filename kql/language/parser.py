"""Text → AST. Runs the LALR parser of grammar/kql.lark and turns its errors into KQLErrors.

The tree is built during the parse (each rule's builder runs as the rule is reduced), so no
intermediate parse tree exists and nothing recurses over the input: a deeply nested or huge
query costs a loop, never a RecursionError.

The parser is Lark's LALR parser for the grammar, as data: its tables, read off Lark once and
kept in kql's cache (``kql.language.tables``), run by ``kql.language.lalr`` with ``_Builder``'s
methods as the callbacks. A start after the first neither imports Lark nor runs its code.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import attrs

from kql.language import ast
from kql.language.errors import KQLError, Span, first_not_unicode
from kql.language.lalr import Driver, Shifted, UnexpectedToken, passes_child
from kql.language.limits import MAX_DEPTH, MAX_DIGITS, MAX_QUERY_LENGTH
from kql.language.tables import lexer as _lexer
from kql.language.tables import tables as _tables

__all__ = ["MAX_DEPTH", "MAX_DIGITS", "MAX_QUERY_LENGTH", "decode_string", "keywords", "parse", "tokens"]

_LEADING_INT = r"-?[0-9]+"  # the amount of a DURATION token (compiled, and kept by re, on first use)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "/": "/"}

# How Lark's terminal names read in an error message.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "INT": "a number",
    "DECIMAL": "a decimal number",
    "DURATION": "a duration such as 30d",
    "DATE": "a date",
    "SEGMENT": "a segment such as @vip",
    "$END": "the end of the query",
    "LPAR": "'('",
    "RPAR": "')'",
    "MINUS": "'-'",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "COMMA": "','",
}


# The builders get each token as the loop shifts it (``lalr.Shifted``): (text, terminal, start, end).


def _span(token: Shifted) -> Span:
    return Span(token[2], token[3])


def _int(token: Shifted, text: str | None = None) -> int:
    if text is None:
        text = token[0]
    # Only a long text can be too long a number: most are short, and need no stripping.
    if len(text) > MAX_DIGITS and len(text.lstrip("-").lstrip("0")) > MAX_DIGITS:
        raise KQLError("E208", f"number '{token[0]}' is too large", _span(token), f"use at most {MAX_DIGITS} digits")
    return int(text)


def decode_string(token: Shifted) -> str:
    """Decode a quoted STRING token: both quote styles, escapes ``\\" \\' \\\\ \\n \\t \\uXXXX``."""
    raw = token[0][1:-1]
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    base = token[2] + 1
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        if nxt == "u":
            code, width = _unicode_escape(raw, i, base)
            out.append(chr(code))
            i += width
            continue
        raise KQLError(
            "E005",
            f"unknown escape '\\{nxt}' in string",
            Span(base + i, base + i + 2),
            "escapes are \\\" \\' \\\\ \\n \\t and \\uXXXX; write \\\\ for a backslash",
        )
    return "".join(out)


def _unicode_escape(raw: str, i: int, base: int) -> tuple[int, int]:
    """Code point and length of the ``\\uXXXX`` escape at ``raw[i]`` (joining surrogate pairs)."""
    hexdigits = raw[i + 2 : i + 6]
    bad = KQLError(
        "E005",
        "invalid \\u escape in string",
        Span(base + i, base + min(len(raw), i + 6)),
        "write \\u followed by four hex digits, e.g. \\u00e9; a character outside the BMP is a "
        "surrogate pair such as \\ud83d\\ude00, or simply the character itself",
    )
    if not re.fullmatch(r"[0-9A-Fa-f]{4}", hexdigits):
        raise bad
    code = int(hexdigits, 16)
    if 0xD800 <= code <= 0xDBFF:
        low = raw[i + 6 : i + 12]
        if re.fullmatch(r"\\u[dD][c-fC-F][0-9A-Fa-f]{2}", low):
            return 0x10000 + ((code - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00), 12
        raise bad
    if 0xDC00 <= code <= 0xDFFF:
        raise bad
    return code, 6


def _value(token: Shifted) -> ast.Scalar:
    """A value token as an AST value."""
    text, kind, start, end = token
    span = Span(start, end)
    if kind == "NAME":
        # A typed id is ASCII letters, `_`, ASCII digits (`bc_9`; `[A-Za-z]+_[0-9]+`), told without a regex.
        prefix, _, digits = text.rpartition("_")
        if digits.isdigit() and digits.isascii() and prefix.isalpha() and prefix.isascii():
            return ast.TypedId(prefix, _int(token, digits), span=span)
        return ast.Ident(text, span=span)
    if kind == "INT":
        return ast.Int(_int(token, text), span=span)
    if kind == "STRING":
        return ast.Str(decode_string(token), span=span)
    if kind == "DURATION":
        match = re.match(_LEADING_INT, text)
        assert match is not None
        return ast.Duration(_int(token, match.group()), text[match.end() :], span=span)
    if kind == "DECIMAL":
        return ast.Decimal(text, span=span)
    if kind == "DATE":
        return ast.Date(text, span=span)
    assert kind == "NULL", kind
    return ast.Null(span=span)


def _name(token: Shifted) -> ast.Name:
    return ast.Name(token[0], span=_span(token))


_CLAUSES = (ast.Sort, ast.Select, ast.Limit, ast.Page)  # a tuple: `A | B` builds a union per call


class _Builder:
    """The callbacks of the grammar's rules, one per rule alias, each building one AST node."""

    def start(self, children: list[Any]) -> ast.Query:
        expr = None
        clauses: dict[str, Any] = {}
        for child in children:
            if isinstance(child, _CLAUSES):
                key = type(child).__name__.lower()
                if key in clauses:
                    raise KQLError(
                        "E008",
                        f"'{key}' clause given twice",
                        child.span,
                        f"keep one '{key}' clause",
                    )
                clauses[key] = child
            elif child is not None:
                expr = child
        return ast.Query(filter=expr, **clauses)

    # The spans below are written out per rule (which child is a token, which a node): this
    # runs for every node of every query.

    def or_expr(self, children: list[Any]) -> ast.Or:
        items = tuple(children[::2])  # `a or b or c`: the operands, without the operator tokens
        return ast.Or(items, span=Span(items[0].span.start, items[-1].span.end))

    def and_expr(self, children: list[Any]) -> ast.And:
        items = tuple(children[::2])
        return ast.And(items, span=Span(items[0].span.start, items[-1].span.end))

    def not_(self, children: list[Any]) -> ast.Not:
        keyword, item = children
        return ast.Not(item, span=Span(keyword[2], item.span.end))

    def group(self, children: list[Any]) -> Any:
        # The parentheses belong to the group: carets under `(a or b) and c` start at `(`.
        left, inner, right = children
        return attrs.evolve(inner, span=Span(left[2], right[3]))

    @passes_child
    def op(self, children: list[Any]) -> Any:
        return children[0]

    def comparison(self, children: list[Any]) -> ast.Comparison:
        name, op, value = children
        text, _, start, end = name
        operator = "=" if op[0] == "==" else op[0].lower()
        field = ast.Name(text, span=Span(start, end))
        return ast.Comparison(field, operator, _value(value), span=Span(start, value[3]))

    def value_list(self, children: list[Any]) -> list[ast.Scalar]:
        return [_value(children[0])] if len(children) == 1 else [_value(c) for c in children]

    def in_list(self, children: list[Any]) -> ast.Comparison:
        name, _in, lpar, values, rpar = children
        listed = ast.ValueList(tuple(values), span=Span(lpar[2], rpar[3]))
        return ast.Comparison(_name(name), "in", listed, span=Span(name[2], rpar[3]))

    def is_null(self, children: list[Any]) -> ast.Comparison:
        name, _is, null = children
        return ast.Comparison(_name(name), "is", ast.Null(span=_span(null)), span=Span(name[2], null[3]))

    def is_not_null(self, children: list[Any]) -> ast.Comparison:
        name, _is, _not, null = children
        return ast.Comparison(_name(name), "is_not", ast.Null(span=_span(null)), span=Span(name[2], null[3]))

    def call(self, children: list[Any]) -> ast.Call:
        name, _lpar, values, rpar = children
        text, _, start, end = name
        called = ast.Name(text, span=Span(start, end))
        return ast.Call(called, tuple(values) if values else (), span=Span(start, rpar[3]))

    # A span is immutable, so a node and its only child, which cover the same text, share one.

    def flag(self, children: list[Any]) -> ast.Flag:
        ((text, _, start, end),) = children
        span = Span(start, end)
        return ast.Flag(ast.Name(text, span=span), span=span)

    def text(self, children: list[Any]) -> ast.Text:
        (token,) = children
        span = Span(token[2], token[3])
        return ast.Text(ast.Str(decode_string(token), span=span), span=span)

    def segment(self, children: list[Any]) -> ast.SegmentRef:
        (token,) = children
        return ast.SegmentRef(token[0][1:], span=_span(token))

    def sort(self, children: list[Any]) -> ast.Sort:
        descending = len(children) == 3
        return ast.Sort(_name(children[-1]), descending, span=Span(children[0][2], children[-1][3]))

    def select(self, children: list[Any]) -> ast.Select:
        names = tuple(_name(c) for c in children[1:])
        return ast.Select(names, span=Span(children[0][2], children[-1][3]))

    def limit(self, children: list[Any]) -> ast.Limit:
        keyword, count = children
        return ast.Limit(ast.Int(_int(count), span=_span(count)), span=Span(keyword[2], count[3]))

    def page(self, children: list[Any]) -> ast.Page:
        number = ast.Int(_int(children[1]), span=_span(children[1]))
        size = ast.Int(_int(children[3]), span=_span(children[3])) if len(children) == 4 else None
        return ast.Page(number, size, span=Span(children[0][2], children[-1][3]))


@functools.cache
def _driver() -> Any:
    """The grammar's tables and our builders, run by a tighter loop than Lark's (kql.language.lalr)."""
    return Driver(_tables(), _Builder())


def keywords() -> frozenset[str]:
    """The reserved words of the grammar (lower case), read from its terminals."""
    return frozenset(_tables()["keywords"])


def tokens(text: str) -> Iterator[Any]:
    """The tokens of ``text`` as the parser reads them, for syntax colouring: spaces and comments
    are skipped, and a character no token matches ends the stream as a ``BAD_CHARACTER`` token."""
    lexed: Iterator[Any] = _lexer().lex(text)
    return lexed


def parse(text: str) -> ast.Query:
    """Parse KQL text into a Query. Raises KQLError with a span on any problem."""
    if not isinstance(text, str):
        raise TypeError(f"kql.parse() takes a string, not {type(text).__name__}")
    try:
        if len(text) > MAX_QUERY_LENGTH:
            raise KQLError(
                "E006",
                f"query is {len(text):,} characters long; the limit is {MAX_QUERY_LENGTH:,}",
                Span(MAX_QUERY_LENGTH, len(text)),
                "split it into saved segments, or simplify it",
            )
        _check_text(text)
        query = _parse_lark(text)
        if query.filter is not None and ast.depth(query.filter) > MAX_DEPTH:
            raise KQLError(
                "E007",
                f"expression is nested more than {MAX_DEPTH} levels deep",
                query.filter.span,
                "flatten it: 'a and (b and c)' is 'a and b and c'",
            )
    except KQLError as error:
        raise error.with_source(text) from None
    return query


def _check_text(text: str) -> None:
    bad = first_not_unicode(text)
    if bad is not None:
        raise KQLError(
            "E001",
            "the query contains a byte that is not UTF-8 text",
            Span(bad, bad + 1),
            "write the query in UTF-8 (check the terminal's or the file's encoding)",
        )


def _parse_lark(text: str) -> ast.Query:
    try:
        result: ast.Query = _driver().parse(text)
    except UnexpectedToken as exc:
        raise _unexpected_token(text, exc) from None
    return result


def _expected(names: Any) -> str | None:
    words = sorted({_TERMINAL_WORDS.get(n, _terminal_text(n)) for n in names})
    if not words:
        return None
    if len(words) > 6:
        words = [*words[:6], "…"]
    return "expected " + ", ".join(words)


def _terminal_text(name: str) -> str:
    literal = _tables()["literals"].get(name)  # a fixed string; a pattern's terminal reads as its name
    return f"'{literal}'" if literal is not None else name.lower()


def _unexpected_character(text: str, pos: int, expected: Any) -> KQLError:
    char = text[pos]
    if char in "\"'":
        line_end = text.find("\n", pos)
        return KQLError(
            "E004",
            "unterminated string",
            Span(pos, len(text) if line_end == -1 else line_end),
            f"close it with {char}; write a newline inside a string as \\n",
        )
    if char.isdecimal():  # a digit of another script: ١٠٠ is not sent as 100, so it is not read as one
        return KQLError(
            "E001",
            f"unexpected character {char!r}: kql reads numbers written with the digits 0-9",
            Span(pos, pos + 1),
            f"write {unicodedata.decimal(char)} for {char!r}",
        )
    return KQLError(
        "E001",
        f"unexpected character {char!r}",
        Span(pos, pos + 1),
        _expected(expected or ()),
    )


def _unexpected_token(text: str, exc: Any) -> KQLError:
    from kql.language.lexer import BAD_CHARACTER

    token = exc.token
    if token.type == "$END":
        return _unexpected_end(text, exc.expected)
    if token.type == BAD_CHARACTER:
        return _unexpected_character(text, token.start_pos, exc.expected)
    hint = _expected(exc.expected)
    if token.type == "NAME" and {"AND", "OR"} & set(exc.expected):
        hint = "join conditions with 'and' or 'or'"
    return KQLError("E002", f"unexpected {_describe(token)}", Span(token.start_pos, token.end_pos), hint)


def _unexpected_end(text: str, expected: Any) -> KQLError:
    end = len(text.rstrip())
    return KQLError("E003", "the query ends too early", Span(end, end + 1), _expected(expected or ()))


def _describe(token: Any) -> str:
    value = str(token)
    if token.type == "STRING":
        return "string"
    return f"'{value}'" if len(value) <= 40 else f"'{value[:37]}...'"

"""Completion for editors and shells: what can come next at a cursor in a query.

The parser's automaton (``kql.language.lalr.Recognizer``, over the tables Lark computed,
answering as Lark's interactive parser would) says which tokens the grammar accepts at the
cursor; the registry says which names, operators and values make sense there. Every
suggestion, inserted in place of the word being typed, still parses.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Protocol

import attrs

from kql.language.lalr import Recognizer
from kql.language.lexer import BAD_CHARACTER
from kql.language.limits import MAX_QUERY_LENGTH
from kql.language.tables import lexer, tables
from kql.registry import Registry, registry
from kql.registry.operators import ATTRIBUTE_OPS, derivable_ops


class NamedSegment(Protocol):
    """A saved segment as completion shows it (``kql.planning.segments.Segment`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def description(self) -> str | None: ...


# The segments that ``@`` can complete to (a ``kql.Segments`` is one).
Segments = Iterable[NamedSegment]

# The word being typed: a segment reference (`@vi`) or a name (`has_t`).
_PARTIAL_SEGMENT = re.compile(r"@[A-Za-z0-9_-]*\Z")
_PARTIAL_NAME = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*\Z")
# After these a word needs a space in front, or it would join the token before it.
_GLUES = re.compile(r"[A-Za-z0-9_)\"'.]\Z")
_CLAUSES = {"SORT", "SELECT", "LIMIT", "PAGE"}
_KIND_ORDER = ("segment", "filter", "field", "sort_key", "value", "id_kind", "operator", "punctuation", "keyword")
# Literal terminals: suggested from what the field or predicate takes, not as bare token names.
_LITERALS = {"STRING", "DURATION", "INT", "DECIMAL", "DATE", "NULL"}
# Terminals shown as they are written; aliases (&&, ||, !) are left out as noise.
_SKIPPED = {"AND_SYMBOL", "OR_SYMBOL", "NOT_SYMBOL", "BAD_CHARACTER"}
_KEYWORD_HELP = {
    "and": "both conditions",
    "or": "either condition (planned as several requests)",
    "not": "the opposite of a condition",
    "sort": "order the customers",
    "select": "only these attributes",
    "limit": "stop after N customers",
    "page": "one page of results",
    "size": "customers per page",
    "in": "any of a list of values",
    "is": "is null / is not null",
    "null": "no value",
    "ends_with": "text ends with",
    "starts_with": "text starts with",
}


@attrs.frozen(slots=True)
class Completion:
    label: str
    kind: str  # keyword, filter, field, operator, value, id_kind, sort_key, segment, punctuation
    insert: str
    description: str
    # The text between start and end (the word being typed) is replaced by `insert`.
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


def complete(
    text: str, cursor: int | None = None, segments: Segments | None = None, reg: Registry | None = None
) -> list[Completion]:
    """Completions at ``cursor`` (default: the end of ``text``)."""
    cursor = len(text) if cursor is None else max(0, min(cursor, len(text)))
    if cursor > MAX_QUERY_LENGTH:
        return []
    prefix = text[:cursor]
    partial_match = _PARTIAL_SEGMENT.search(prefix) or _PARTIAL_NAME.search(prefix)
    partial = partial_match.group() if partial_match else ""
    start = cursor - len(partial)
    tokens = list(lexer().lex(prefix[:start]))
    if tokens and tokens[-1].type == BAD_CHARACTER:
        # Inside an unterminated string the only useful completion closes it.
        quote = str(tokens[-1])
        if quote in "\"'" and _recognizer().feed(t.type for t in tokens[:-1]) is not None:
            return [Completion(quote, "punctuation", quote, "close the string", cursor, cursor)]
        return []
    stack = _recognizer().feed(t.type for t in tokens)
    if stack is None:
        return []
    accepted = _recognizer().accepts(stack)
    if partial and not partial.startswith("@"):
        segments = None  # only `@…` completes to a segment: the segments file is not read for `has_t`
    context = _Context(tokens, reg or registry(), segments)
    found = [c for c in context.candidates(accepted) if c[0].lower().startswith(partial.lower())]
    found.sort(key=lambda c: _KIND_ORDER.index(c[1]))  # stable: keeps each kind's own order
    seen: set[str] = set()
    results = []
    glued = not partial and _GLUES.search(prefix) is not None
    for label, kind, insert, description in found:
        if label not in seen:
            seen.add(label)
            if glued and (insert[:1].isalnum() or insert[:1] in '"@'):
                insert = " " + insert
            results.append(Completion(label, kind, insert, description, start, cursor))
    return results


@functools.cache
def _recognizer() -> Recognizer:
    """The parser's automaton without builders: recognising is all completion needs."""
    return Recognizer(tables())


class _Context:
    """What the tokens before the cursor say about the word that comes next."""

    def __init__(self, tokens: list[Any], reg: Registry, segments: Segments | None) -> None:
        self.tokens = tokens
        self.reg = reg
        self.segments = segments

    def last(self, back: int = 1) -> str:
        return self.tokens[-back].type if len(self.tokens) >= back else ""

    def candidates(self, accepted: set[str]) -> Iterable[tuple[str, str, str, str]]:
        if "NAME" in accepted:
            yield from self.names(accepted)
        if "SEGMENT" in accepted and self.segments is not None:
            for segment in self.segments:
                yield "@" + segment.name, "segment", "@" + segment.name, segment.description or segment.query
        if "NULL" in accepted and "IS" in (self.last(), self.last(2)):
            yield "null", "keyword", "null", "no value"
        if "STRING" in accepted and self.last() in ("LPAR", "AND", "OR", "NOT", "") and not self.call_name():
            yield '"', "value", '"', "fuzzy search on name or email"
        field = self.field_before_operator()
        for terminal in sorted(accepted - _SKIPPED - _LITERALS - {"NAME", "SEGMENT"}):
            yield from self.terminal(terminal, field)

    # ---- names --------------------------------------------------------------------------

    def names(self, accepted: set[str]) -> Iterable[tuple[str, str, str, str]]:
        clause = self.clause()
        if clause == "SORT":
            for key in self.reg.sort_keys:
                yield key, "sort_key", key, f"sort by {key} (prefix - for descending)"
        elif clause == "SELECT":
            for name, attribute in self.reg.attributes.items():
                yield name, "field", name, f"customer attribute ({attribute.type})"
        elif self.last() in _operator_terminals() or self.in_list():
            yield from self.values(self.value_field())
        elif self.call_name() is not None:
            yield from self.arguments(self.call_name() or "")
        else:
            yield from self.atoms()

    def atoms(self) -> Iterable[tuple[str, str, str, str]]:
        for name, entries in self.reg.by_name.items():
            entry = next((e for e in entries if not e.negated), entries[0])
            if entry.form == "flag":
                yield name, "filter", name, entry.description
            elif entry.form == "predicate":
                yield name, "filter", name + "(", entry.description
            elif entry.form in ("comparison", "enum"):
                yield name, "field", name, entry.description
        yield "search", "filter", "search(", "fuzzy search on name or email"
        for name, attribute in self.reg.attributes.items():
            if name not in self.reg.by_name:
                yield name, "field", name, f"customer attribute ({attribute.type}), compared on returned customers"

    def values(self, field: str | None) -> Iterable[tuple[str, str, str, str]]:
        for entry in self.reg.by_name.get(field or "", ()):
            if entry.form == "enum" and entry.enum_value:
                yield entry.enum_value, "value", entry.enum_value, entry.description
            else:
                yield from self.value_of(entry.value, entry.id_kind)
        attribute = self.reg.attributes.get(field or "")
        if attribute is not None and attribute.type == "string":
            yield '"', "value", '"', "a quoted string"

    def arguments(self, name: str) -> Iterable[tuple[str, str, str, str]]:
        for entry in self.reg.by_name.get(name, ()):
            yield from self.value_of(entry.value, entry.id_kind)
        if name == "search":
            yield '"', "value", '"', "text to search for"

    def value_of(self, value: str, id_kind: str | None) -> Iterable[tuple[str, str, str, str]]:
        if value == "id" and id_kind:
            prefix = self.reg.id_prefixes[id_kind] + "_"
            yield prefix, "id_kind", prefix, f"a {id_kind} id, e.g. {prefix}5"
        elif value == "days":
            yield "30d", "value", "30d", "a number of days (2w is 14 days)"
        elif value == "string":
            yield '"', "value", '"', "a quoted string"

    # ---- other tokens -------------------------------------------------------------------

    def terminal(self, terminal: str, field: str | None) -> Iterable[tuple[str, str, str, str]]:
        text = self.text_of(terminal)
        if terminal in _operator_terminals() or terminal in ("IN", "IS", "ENDS_WITH", "STARTS_WITH"):
            op = {"IS": "is"}.get(terminal, text)
            if field is None or op in self.operators(field):
                yield text, "operator" if terminal in _operator_terminals() else "keyword", text, _op_help(text)
        elif terminal == "LPAR" and self.tokens and self.last() == "NAME":
            if self.is_callable(str(self.tokens[-1])):
                yield "(", "punctuation", "(", "arguments"
        elif text.isalpha() or "_" in text:
            yield text.lower(), "keyword", text.lower(), _KEYWORD_HELP.get(text.lower(), "")
        elif terminal == "RPAR" and self.last() == "LPAR":
            return  # `name()` parses, but every predicate takes an argument
        elif terminal in ("RPAR", "COMMA", "LPAR", "MINUS"):
            yield text, "punctuation", text, {"MINUS": "descending"}.get(terminal, "")

    def text_of(self, terminal: str) -> str:
        return tables()["literals"].get(terminal, terminal.lower())

    def operators(self, field: str) -> set[str]:
        entries = self.reg.by_name.get(field, ())
        ops = {e.op for e in entries if e.form == "comparison" and e.op}
        ops |= derivable_ops(tuple(e for e in entries if e.form == "comparison"))
        if any(e.form == "enum" for e in entries):
            ops |= {"=", "!=", "in"}
        if any(e.form == "predicate" for e in entries):
            ops.add("in")
        attribute = self.reg.attributes.get(field)
        if attribute is not None:
            ops |= ATTRIBUTE_OPS[attribute.type]
        if not entries and attribute is None:
            return {"=", "!=", ">", "<", ">=", "<=", "~", "in", "is", "ends_with", "starts_with"}
        return ops

    def is_callable(self, name: str) -> bool:
        return name == "search" or any(e.form == "predicate" for e in self.reg.by_name.get(name, ()))

    # ---- where are we? ------------------------------------------------------------------

    def clause(self) -> str | None:
        """SORT or SELECT when the cursor is in that clause's list of names."""
        for token in reversed(self.tokens):
            if token.type in _CLAUSES:
                return str(token.type)
            if token.type not in ("NAME", "COMMA", "MINUS"):
                return None
        return None

    def field_before_operator(self) -> str | None:
        """The field of a comparison whose operator comes next."""
        if self.last() == "NAME" and len(self.tokens) >= 1:
            return str(self.tokens[-1])
        return None

    def value_field(self) -> str | None:
        if self.last() in _operator_terminals() and len(self.tokens) >= 2:
            return str(self.tokens[-2])
        return self.list_field()

    def in_list(self) -> bool:
        return self.list_field() is not None

    def list_field(self) -> str | None:
        """The field of `field in (…` when the cursor is inside the list."""
        index = self.open_paren()
        if index is not None and index >= 2 and self.tokens[index - 1].type == "IN":
            return str(self.tokens[index - 2])
        return None

    def call_name(self) -> str | None:
        """The predicate whose argument list the cursor is in."""
        index = self.open_paren()
        if index is not None and index >= 1 and self.tokens[index - 1].type == "NAME":
            return str(self.tokens[index - 1])
        return None

    def open_paren(self) -> int | None:
        """The index of the `(` of the value list the cursor is in, if it is in one."""
        for index in range(len(self.tokens) - 1, -1, -1):
            kind = self.tokens[index].type
            if kind == "LPAR":
                return index
            if kind not in ("COMMA", "NAME", "INT", "DECIMAL", "STRING", "DURATION", "DATE", "NULL"):
                return None
        return None


@functools.cache
def _operator_terminals() -> frozenset[str]:
    """The symbol terminals of the grammar's `op` rule (= != > … ~), whatever Lark named them."""
    names = {symbol for origin, expansion, *_ in tables()["rules"] if origin == "op" for symbol in expansion}
    return frozenset(names - {"ENDS_WITH", "STARTS_WITH"})


def _op_help(op: str) -> str:
    return {
        "=": "equals",
        "==": "equals",
        "!=": "does not equal",
        ">": "greater than",
        "<": "less than",
        ">=": "at least",
        "<=": "at most",
        "~": "contains",
        "in": "any of a list",
        "is": "is null / is not null",
        "ends_with": "text ends with",
        "starts_with": "text starts with",
    }.get(op, "")

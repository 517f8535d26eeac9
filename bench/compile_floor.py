"""The floor for bench/compile.py: the least a KQL-to-query-string compiler has to do, hand-written.

A regular-expression tokenizer, a recursive-descent parser that builds tuples, and an
encoder that maps each ``and``-ed atom to its registry parameter, merges repeated list
parameters and writes the query string. Written to be quick but whole for the bench's
queries: it reads every token, builds the tree, encodes every value. What it leaves out is
what kql adds on top: spans, errors with hints, validation, the planner, the attrs AST.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from kql.registry import Filter, registry

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<num>-?[0-9]+(?:\.[0-9]+|[A-Za-z_][A-Za-z0-9_]*)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<sym>>=|<=|!=|==|[=<>~(),])
    )""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")
_OPS = {"=", "==", "!=", ">", "<", ">=", "<=", "~"}
_DAYS = {"d": 1, "w": 7}
_TYPED = re.compile(r"([A-Za-z]+)_([0-9]+)\Z")

Node = tuple[Any, ...]


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        found = _TOKEN.match(text, pos)
        if found is None:
            raise ValueError(f"unexpected character at {pos}")
        kind = found.lastgroup or ""
        value = found.group(kind)
        if kind == "name" and value.lower() in ("and", "or", "not"):
            kind = value.lower()
        tokens.append((kind, value))
        pos = found.end()
    tokens.append(("end", ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        got_kind, got = self.tokens[self.i]
        if (kind and got_kind != kind) or (value and got != value):
            raise ValueError(f"unexpected {got!r}")
        self.i += 1
        return got

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i]

    def expr(self) -> Node:
        items = [self.conjunction()]
        while self.peek()[0] == "or":
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else ("or", items)

    def conjunction(self) -> Node:
        items = [self.unary()]
        while self.peek()[0] == "and":
            self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else ("and", items)

    def unary(self) -> Node:
        if self.peek()[0] == "not":
            self.i += 1
            return ("not", self.unary())
        return self.atom()

    def atom(self) -> Node:
        kind, value = self.peek()
        if kind == "str":
            self.i += 1
            return ("text", _string(value))
        if value == "(":
            self.i += 1
            inner = self.expr()
            self.take(value=")")
            return inner
        name = self.take("name")
        kind, value = self.peek()
        if value in _OPS:
            self.i += 1
            return ("cmp", name, "=" if value == "==" else value, self.value())
        if value == "(":
            self.i += 1
            args = [self.value()]
            while self.peek()[1] == ",":
                self.i += 1
                args.append(self.value())
            self.take(value=")")
            return ("call", name, args)
        return ("flag", name)

    def value(self) -> Node:
        kind, value = self.peek()
        self.i += 1
        if kind == "str":
            return ("str", _string(value))
        if kind == "num":
            if "." in value:
                return ("dec", value)
            if value[-1].isdigit():
                return ("int", int(value))
            digits = value.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
            return ("dur", int(digits), value[len(digits) :])
        if kind == "name":
            typed = _TYPED.match(value)
            return ("id", typed.group(1), int(typed.group(2))) if typed else ("ident", value)
        raise ValueError(f"unexpected {value!r}")


def _string(token: str) -> str:
    return _ESCAPE.sub(lambda m: m.group(1), token[1:-1]) if "\\" in token else token[1:-1]


class Floor:
    """Compiles the and-joined KQL of the bench to a query string; lookup tables built once."""

    def __init__(self) -> None:
        reg = registry()
        self.by_param = reg.by_param
        self.comparisons: dict[tuple[str, str], Filter] = {}
        self.enums: dict[tuple[str, str], Filter] = {}
        self.predicates: dict[tuple[str, bool], Filter] = {}
        self.flags: dict[str, Filter] = {}
        for f in reg:
            if f.form == "comparison":
                self.comparisons[f.name, f.op or ""] = f
            elif f.form == "enum":
                self.enums[f.name, f.enum_value or ""] = f
            elif f.form == "predicate" and f.arity == "one":
                self.predicates[f.name, f.negated] = f
            elif f.form == "flag":
                self.flags[f.name] = f
            elif f.form == "text":
                self.search = f

    def parse(self, text: str) -> Node:
        parser = _Parser(text)
        tree = parser.expr()
        parser.take("end")
        return tree

    def params(self, text: str) -> list[tuple[str, str]]:
        tree = self.parse(text)
        atoms = tree[1] if tree[0] == "and" else [tree]
        groups: dict[str, tuple[Filter, list[str]]] = {}
        for atom in atoms:
            entry, values = self.encode(atom)
            key = entry.merge_into or entry.param
            if key in groups:
                groups[key][1].extend(values)
            else:
                groups[key] = (entry, values)
        params = []
        for key, (entry, values) in groups.items():
            name = entry.param if len(values) == 1 else key
            params.append((f"filter[{name}]", ",".join(values)))
        return params

    def compile(self, text: str) -> str:
        return "&".join(f"{quote(k, safe='[]')}={quote(v, safe=',@:/')}" for k, v in self.params(text))

    def encode(self, atom: Node) -> tuple[Filter, list[str]]:
        negated = atom[0] == "not"
        if negated:
            atom = atom[1]
        kind = atom[0]
        if kind == "text":
            return self.search, [atom[1]]
        if kind == "flag":
            return self.flags[atom[1]], ["true"]
        if kind == "cmp":
            _, name, op, value = atom
            if value[0] == "ident":
                return self.enums[name, value[1]], ["true"]
            return self.comparisons[name, op], [_scalar(value)]
        if kind == "call":
            return self.predicates[atom[1], negated], [_scalar(v) for v in atom[2]]
        raise ValueError(f"one request cannot send {atom!r}")


def _scalar(value: Node) -> str:
    kind = value[0]
    if kind == "id":
        return str(value[2])
    if kind == "dur":
        return str(value[1] * _DAYS[value[2]])
    return str(value[1])

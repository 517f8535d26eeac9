"""The stable JSON form of a query: ``{"kql": 1, …}``, for storing and exchanging queries.

The form mirrors the AST one node per object, each object with exactly one key
naming the node kind. Its JSON Schema is docs/query.schema.json (``kql help query.schema``). ``from_json``
checks the shape and raises KQLError (E009) naming the path of what is wrong;
``from_json(to_json(q)) == q`` for every query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kql.language import ast
from kql.language.errors import NOT_UNICODE, KQLError

VERSION = 1

# ---- to JSON ---------------------------------------------------------------------------




def to_json(query: ast.Query) -> dict[str, Any]:
    """The JSON form of ``query`` (spans are not part of it)."""
    return {
        "kql": VERSION,
        "filter": None if query.filter is None else _expr(query.filter),
        "sort": None if query.sort is None else {"field": query.sort.field.text, "descending": query.sort.descending},
        "select": None if query.select is None else [f.text for f in query.select.fields],
        "limit": None if query.limit is None else query.limit.count.value,
        "page": None
        if query.page is None
        else {
            "number": query.page.number.value,
            "size": None if query.page.size is None else query.page.size.value,
        },
    }


def _expr(node: ast.Expr) -> dict[str, Any]:
    # Depth is bounded by the parser's MAX_DEPTH (and by from_json's check).
    if isinstance(node, ast.And):
        return {"and": [_expr(i) for i in node.items]}
    if isinstance(node, ast.Or):
        return {"or": [_expr(i) for i in node.items]}
    if isinstance(node, ast.Not):
        return {"not": _expr(node.item)}
    if isinstance(node, ast.Comparison):
        return {"compare": {"field": node.field.text, "op": node.op, "value": _value(node.value)}}
    if isinstance(node, ast.Call):
        return {"call": {"name": node.name.text, "args": [_value(a) for a in node.args]}}
    if isinstance(node, ast.Flag):
        return {"flag": node.name.text}
    if isinstance(node, ast.Text):
        return {"text": node.value.value}
    return {"segment": node.name}


def _value(value: ast.Value) -> dict[str, Any]:
    if isinstance(value, ast.Int):
        return {"int": value.value}
    if isinstance(value, ast.Decimal):
        return {"decimal": value.text}
    if isinstance(value, ast.Duration):
        return {"duration": {"amount": value.amount, "unit": value.unit}}
    if isinstance(value, ast.Str):
        return {"string": value.value}
    if isinstance(value, ast.TypedId):
        return {"id": {"prefix": value.prefix, "number": value.number}}
    if isinstance(value, ast.Ident):
        return {"ident": value.name}
    if isinstance(value, ast.Date):
        return {"date": value.text}
    if isinstance(value, ast.Null):
        return {"null": True}
    return {"list": [_value(v) for v in value.items]}


# ---- from JSON -------------------------------------------------------------------------


# Where a pip user finds the JSON Schema (docs/query.schema.json, shipped with the package).
SCHEMA_HINT = "see kql help query.schema (the JSON Schema)"


class _Reader:
    """Reads the JSON form back, checking every node; errors name the JSON path."""

    def __init__(self) -> None:
        self.depth = 0

    def fail(self, path: str, message: str) -> KQLError:
        return KQLError("E009", f"invalid JSON query at {path}: {message}", None, SCHEMA_HINT)

    def obj(self, data: Any, path: str, keys: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        if not isinstance(data, dict):
            raise self.fail(path, f"expected an object, got {type(data).__name__}")
        missing = keys - data.keys()
        extra = data.keys() - keys - optional
        if missing:
            raise self.fail(path, "missing " + ", ".join(sorted(missing)))
        if extra:
            raise self.fail(path, "unexpected " + ", ".join(sorted(extra)))
        return data

    def single(self, data: Any, path: str, kinds: dict[str, Callable[[Any, str], Any]]) -> Any:
        if not isinstance(data, dict) or len(data) != 1:
            raise self.fail(path, "expected an object with exactly one of " + ", ".join(kinds))
        ((kind, body),) = data.items()
        if kind not in kinds:
            raise self.fail(path, f"unknown kind {kind!r}; expected one of " + ", ".join(kinds))
        return kinds[kind](body, f"{path}.{kind}")

    def typed(self, data: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
        if not isinstance(data, kind) or (isinstance(data, bool) and kind is not bool):
            raise self.fail(path, f"expected {what}")
        return data

    def integer(self, data: Any, path: str) -> int:
        return int(self.typed(data, path, int, "an integer"))

    def string(self, data: Any, path: str) -> str:
        text = str(self.typed(data, path, str, "a string"))
        if NOT_UNICODE.search(text):
            raise self.fail(path, "the string holds a lone surrogate: it is not Unicode text")
        return text

    def shaped(self, data: Any, path: str, pattern: re.Pattern[str], what: str) -> str:
        """A string that must look like its KQL literal, so the query can be written as text."""
        text = self.string(data, path)
        from kql.language.parser import keywords

        if not pattern.fullmatch(text) or text.lower() in keywords():
            raise self.fail(path, f"{text!r} is not {what}")
        return text

    def name(self, data: Any, path: str) -> ast.Name:
        return ast.Name(self.shaped(data, path, _NAME, "a name"))

    def array(self, data: Any, path: str, nonempty: bool = False) -> list[Any]:
        items = list(self.typed(data, path, list, "an array"))
        if nonempty and not items:
            raise self.fail(path, "expected at least one item")
        return items

    def query(self, data: Any) -> ast.Query:
        data = self.obj(data, "$", {"kql"}, {"filter", "sort", "select", "limit", "page"})
        if data["kql"] != VERSION:
            raise self.fail("$.kql", f"unsupported version {data['kql']!r}; this kql reads version {VERSION}")
        sort = data.get("sort")
        select = data.get("select")
        limit = data.get("limit")
        page = data.get("page")
        fields = None if select is None else self.array(select, "$.select", nonempty=True)
        return ast.Query(
            filter=None if data.get("filter") is None else self.expr(data["filter"], "$.filter"),
            sort=None if sort is None else self.sort(sort),
            select=None
            if fields is None
            else ast.Select(tuple(self.name(f, f"$.select[{i}]") for i, f in enumerate(fields))),
            limit=None if limit is None else ast.Limit(ast.Int(self.integer(limit, "$.limit"))),
            page=None if page is None else self.page(page),
        )

    def sort(self, data: Any) -> ast.Sort:
        data = self.obj(data, "$.sort", {"field"}, {"descending"})
        descending = self.typed(data.get("descending", False), "$.sort.descending", bool, "true or false")
        return ast.Sort(self.name(data["field"], "$.sort.field"), bool(descending))

    def page(self, data: Any) -> ast.Page:
        data = self.obj(data, "$.page", {"number"}, {"size"})
        size = data.get("size")
        return ast.Page(
            ast.Int(self.integer(data["number"], "$.page.number")),
            None if size is None else ast.Int(self.integer(size, "$.page.size")),
        )

    def expr(self, data: Any, path: str) -> ast.Expr:
        from kql.language.parser import MAX_DEPTH

        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.fail(path, f"nested more than {MAX_DEPTH} levels deep")
            result: ast.Expr = self.single(
                data,
                path,
                {
                    "and": lambda body, p: ast.And(self.items(body, p)),
                    "or": lambda body, p: ast.Or(self.items(body, p)),
                    "not": lambda body, p: ast.Not(self.expr(body, p)),
                    "compare": self.compare,
                    "call": self.call,
                    "flag": lambda body, p: ast.Flag(self.name(body, p)),
                    "text": lambda body, p: ast.Text(ast.Str(self.string(body, p))),
                    "segment": lambda body, p: ast.SegmentRef(self.shaped(body, p, _SEGMENT, "a segment name")),
                },
            )
            return result
        finally:
            self.depth -= 1

    def items(self, data: Any, path: str) -> tuple[ast.Expr, ...]:
        items = self.array(data, path)
        if len(items) < 2:
            raise self.fail(path, "needs at least two items")
        return tuple(self.expr(item, f"{path}[{i}]") for i, item in enumerate(items))

    def compare(self, data: Any, path: str) -> ast.Comparison:
        data = self.obj(data, path, {"field", "op", "value"})
        op = self.string(data["op"], f"{path}.op")
        if op not in _OPS:
            raise self.fail(f"{path}.op", f"unknown operator {op!r}")
        value = self.value(data["value"], f"{path}.value", allow_list=op == "in")
        return ast.Comparison(self.name(data["field"], f"{path}.field"), op, value)

    def call(self, data: Any, path: str) -> ast.Call:
        data = self.obj(data, path, {"name", "args"})
        args = self.array(data["args"], f"{path}.args")
        scalars = tuple(self.scalar(a, f"{path}.args[{i}]") for i, a in enumerate(args))
        return ast.Call(self.name(data["name"], f"{path}.name"), scalars)

    def value(self, data: Any, path: str, allow_list: bool) -> ast.Value:
        if allow_list and isinstance(data, dict) and list(data) == ["list"]:
            items = self.array(data["list"], f"{path}.list")
            return ast.ValueList(tuple(self.scalar(v, f"{path}.list[{i}]") for i, v in enumerate(items)))
        return self.scalar(data, path)

    def scalar(self, data: Any, path: str) -> ast.Scalar:
        result: ast.Scalar = self.single(
            data,
            path,
            {
                "int": lambda body, p: ast.Int(self.integer(body, p)),
                "decimal": lambda body, p: ast.Decimal(self.shaped(body, p, _DECIMAL, "a decimal such as 99.50")),
                "duration": self.duration,
                "string": lambda body, p: ast.Str(self.string(body, p)),
                "id": self.typed_id,
                "ident": self.ident,
                "date": lambda body, p: ast.Date(self.shaped(body, p, _DATE, "a date such as 2024-01-31")),
                "null": lambda body, p: ast.Null(),
            },
        )
        return result

    def ident(self, data: Any, path: str) -> ast.Ident:
        text = self.name(data, path).text
        if _TYPED.fullmatch(text):
            raise self.fail(path, f'{text!r} is a typed id: write it as {{"id": …}}')
        return ast.Ident(text)

    def duration(self, data: Any, path: str) -> ast.Duration:
        data = self.obj(data, path, {"amount", "unit"})
        amount = self.integer(data["amount"], f"{path}.amount")
        if amount < 0:
            raise self.fail(f"{path}.amount", "a duration is not negative")
        return ast.Duration(amount, self.shaped(data["unit"], f"{path}.unit", _UNIT, "a unit such as d"))

    def typed_id(self, data: Any, path: str) -> ast.TypedId:
        data = self.obj(data, path, {"prefix", "number"})
        number = self.integer(data["number"], f"{path}.number")
        if number < 0:
            raise self.fail(f"{path}.number", "an id number is not negative")
        return ast.TypedId(self.shaped(data["prefix"], f"{path}.prefix", _PREFIX, "an id prefix such as bc"), number)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PREFIX = re.compile(r"[A-Za-z]+")
_TYPED = re.compile(r"[A-Za-z]+_\d+")
_UNIT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"-?\d+\.\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
_OPS = {"=", "!=", ">", "<", ">=", "<=", "~", "in", "ends_with", "starts_with", "is", "is_not"}


def from_json(data: Any) -> ast.Query:
    """The Query a JSON form describes (a dict, or JSON text). Raises KQLError E009."""
    if isinstance(data, str | bytes):
        import json

        try:
            data = json.loads(data)
        except ValueError as error:
            raise KQLError("E009", f"invalid JSON: {error}", None, SCHEMA_HINT) from None
    return _Reader().query(data)

"""The stable JSON form of a query: ``{"kql": 1, …}``, for storing and exchanging queries.

The form mirrors the AST one node per object, each object with exactly one key
naming the node kind. Its JSON Schema is docs/query.schema.json (``kql help query.schema``). ``from_json``
checks the shape and raises KQLError (E009) naming the path of what is wrong;
``from_json(to_json(q)) == q`` for every query.

Both forms obey one set of limits, the parser's: what ``from_json`` accepts,
``format`` writes as KQL that parses back to the same query (numbers of at most
MAX_DIGITS digits, MAX_DEPTH levels of nesting, MAX_QUERY_LENGTH characters).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kql.language import ast
from kql.language.errors import KQLError, first_not_unicode
from kql.language.parser import MAX_DEPTH, MAX_DIGITS, MAX_QUERY_LENGTH

VERSION = 1

# ---- to JSON ---------------------------------------------------------------------------


def to_json(query: ast.Query) -> dict[str, Any]:
    """The JSON form of ``query`` (spans are not part of it)."""
    if query.filter is not None and ast.depth(query.filter) > MAX_DEPTH:  # a Query built in code: _expr recurses
        raise KQLError("E007", f"expression is nested more than {MAX_DEPTH} levels deep", query.filter.span, None)
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
    # Depth is bounded by MAX_DEPTH: the parser's, from_json's and to_json's checks.
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
            raise self.fail(
                path,
                "unexpected "
                + ", ".join(sorted(k if isinstance(k, str) and len(k) <= 40 else _shown(k) for k in extra)),
            )
        return data

    def single(self, data: Any, path: str, kinds: dict[str, Callable[[Any, str], Any]]) -> Any:
        if not isinstance(data, dict) or len(data) != 1:
            raise self.fail(path, "expected an object with exactly one of " + ", ".join(kinds))
        ((kind, body),) = data.items()
        if kind not in kinds:
            raise self.fail(path, f"unknown kind {_shown(kind)}; expected one of " + ", ".join(kinds))
        return kinds[kind](body, f"{path}.{kind}")

    def typed(self, data: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
        if not isinstance(data, kind) or (isinstance(data, bool) and kind is not bool):
            raise self.fail(path, f"expected {what}")
        return data

    def integer(self, data: Any, path: str) -> int:
        """An integer the text form can write: at most MAX_DIGITS digits, as the parser reads them."""
        number = int(self.typed(data, path, int, "an integer"))
        if abs(number) >= 10**MAX_DIGITS:
            raise self.fail(path, f"the number is too large: use at most {MAX_DIGITS} digits")
        return number

    def string(self, data: Any, path: str) -> str:
        text = str(self.typed(data, path, str, "a string"))
        if first_not_unicode(text) is not None:
            raise self.fail(path, "the string holds a lone surrogate: it is not Unicode text")
        return text

    def shaped(self, data: Any, path: str, pattern: re.Pattern[str], what: str, word: bool = False) -> str:
        """A string that must look like its KQL literal, so the query can be written as text.

        A ``word`` stands alone in the text, so it cannot be a keyword; an id prefix,
        a duration's unit or a segment name is part of a longer token, and can.
        """
        text = self.string(data, path)
        from kql.language.parser import keywords

        if not pattern.fullmatch(text) or (word and text.lower() in keywords()):
            raise self.fail(path, f"{_shown(text)} is not {what}")
        return text

    def name(self, data: Any, path: str) -> ast.Name:
        return ast.Name(self.shaped(data, path, _NAME, "a name", word=True))

    def array(self, data: Any, path: str, nonempty: bool = False) -> list[Any]:
        items = list(self.typed(data, path, list, "an array"))
        if nonempty and not items:
            raise self.fail(path, "expected at least one item")
        return items

    def query(self, data: Any) -> ast.Query:
        data = self.obj(data, "$", {"kql"}, {"filter", "sort", "select", "limit", "page"})
        if type(data["kql"]) is not int or data["kql"] != VERSION:
            raise self.fail("$.kql", f"unsupported version {_shown(data['kql'])}; this kql reads version {VERSION}")
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
            raise self.fail(f"{path}.op", f"unknown operator {_shown(op)}")
        value = self.value(data["value"], f"{path}.value", allow_list=op == "in")
        # The text form has `x in (…)` with a list, `x is null`, `x is not null`, and nothing else.
        if op == "in" and not isinstance(value, ast.ValueList):
            raise self.fail(f"{path}.value", 'the operator "in" takes {"list": […]}')
        if op in ("is", "is_not") and not isinstance(value, ast.Null):
            raise self.fail(f"{path}.value", f'the operator "{op}" takes {{"null": true}}')
        return ast.Comparison(self.name(data["field"], f"{path}.field"), op, value)

    def call(self, data: Any, path: str) -> ast.Call:
        data = self.obj(data, path, {"name", "args"})
        args = self.array(data["args"], f"{path}.args")
        scalars = tuple(self.scalar(a, f"{path}.args[{i}]") for i, a in enumerate(args))
        return ast.Call(self.name(data["name"], f"{path}.name"), scalars)

    def value(self, data: Any, path: str, allow_list: bool) -> ast.Value:
        if allow_list and isinstance(data, dict) and list(data) == ["list"]:
            items = self.array(data["list"], f"{path}.list", nonempty=True)
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
                "null": self.null,
            },
        )
        return result

    def null(self, data: Any, path: str) -> ast.Null:
        if data is not True:
            raise self.fail(path, "expected true")
        return ast.Null()

    def ident(self, data: Any, path: str) -> ast.Ident:
        text = self.name(data, path).text
        if _TYPED.fullmatch(text):
            raise self.fail(path, f'{text!r} is a typed id: write it as {{"id": …}}')
        return ast.Ident(text)

    def duration(self, data: Any, path: str) -> ast.Duration:
        data = self.obj(data, path, {"amount", "unit"})
        # A negative amount (-5d) parses as text; the validator refuses it in both forms (E208).
        amount = self.integer(data["amount"], f"{path}.amount")
        return ast.Duration(amount, self.shaped(data["unit"], f"{path}.unit", _UNIT, "a unit such as d"))

    def typed_id(self, data: Any, path: str) -> ast.TypedId:
        data = self.obj(data, path, {"prefix", "number"})
        number = self.integer(data["number"], f"{path}.number")
        if number < 0:
            raise self.fail(f"{path}.number", "an id number is not negative")
        return ast.TypedId(self.shaped(data["prefix"], f"{path}.prefix", _PREFIX, "an id prefix such as bc"), number)


# The shapes of the grammar's terminals; ASCII digits only, as the lexer reads them.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PREFIX = re.compile(r"[A-Za-z]+")
_TYPED = re.compile(r"[A-Za-z]+_[0-9]+")
_UNIT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?")
_OPS = {"=", "!=", ">", "<", ">=", "<=", "~", "in", "ends_with", "starts_with", "is", "is_not"}


def from_json(data: Any) -> ast.Query:
    """The Query a JSON form describes (a dict, or JSON text). Raises KQLError E009."""
    if isinstance(data, str | bytes):
        import json

        try:
            data = json.loads(data)
        except RecursionError:  # json recurses once per level of nesting
            raise KQLError(
                "E009", f"invalid JSON query: nested far more than {MAX_DEPTH} levels deep", None, SCHEMA_HINT
            ) from None
        except ValueError as error:  # also a number too long for int(), and bytes that are not UTF-8
            raise KQLError("E009", f"invalid JSON: {error}", None, SCHEMA_HINT) from None
    query = _Reader().query(data)
    _check_writable(query)
    return query


def _check_writable(query: ast.Query) -> None:
    """What the JSON form describes, the text form must say: the same limits, the same query."""
    from kql.language.formatter import format_query
    from kql.language.parser import parse

    text = format_query(query)
    if len(text) > MAX_QUERY_LENGTH:
        raise KQLError(
            "E006",
            f"written as KQL, the query is {len(text):,} characters long; the limit is {MAX_QUERY_LENGTH:,}",
            None,
            "split it into saved segments, or simplify it",
        )
    try:
        again = parse(text)
    except KQLError as error:
        message = f"invalid JSON query at $: it cannot be written as KQL ({error.message})"
        raise KQLError("E009", message, None, SCHEMA_HINT) from None
    if again != query:
        raise KQLError("E009", "invalid JSON query at $: it cannot be written as KQL", None, SCHEMA_HINT)


def _shown(value: object) -> str:
    """A value for an error message: short, and never a repr that could fail (huge ints, deep lists)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, bool) or value is None:
        return json_literal(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**MAX_DIGITS else f"a number of more than {MAX_DIGITS} digits"
    return f"a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}"


def json_literal(value: bool | None) -> str:
    return "null" if value is None else ("true" if value else "false")


_JSON_TYPES = {dict: "object", list: "array", float: "number"}

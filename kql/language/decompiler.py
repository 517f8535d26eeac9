"""A Kajabi customers URL (or its query string) → canonical KQL.

Every registry parameter maps back to the form that sends it, so
``compile(decompile(q))`` gives ``q``'s parameters again — plus ``page[size]=25`` for a
``page[number]`` without a size: ``page N`` means ``page N size 25``, never the server's default. Anything kql does not
know — an unknown parameter, a value the filter cannot take — is reported with
its position in the input, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote_plus

import attrs

from kql.language import ast
from kql.language.errors import KQLError, Span, did_you_mean, first_not_unicode, raise_all
from kql.language.formatter import format_query
from kql.language.parser import MAX_DIGITS, MAX_QUERY_LENGTH, parse
from kql.registry import Filter, Registry, registry

_FILTER = re.compile(r"filter\[(\w+)\](\[\])?\Z")
# ASCII digits only: "١٠٠" is not what the URL sends to the API as 100.
_MONEY = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_CUSTOMERS_PATH = re.compile(r"(.*/)?customers/?\Z")


@attrs.frozen(slots=True)
class Decompiled:
    query: ast.Query
    text: str


@attrs.frozen(slots=True)
class _Param:
    name: str
    value: str
    span: Span


def _params(text: str, errors: list[KQLError]) -> list[_Param]:
    """Split a query string, keeping each parameter's place in ``text`` for errors."""
    bad = first_not_unicode(text)
    if bad is not None:
        where = Span(bad, bad + 1)
        errors.append(KQLError("E011", "the input holds bytes that are not UTF-8 text", where, None))
        return []
    end = text.find("#")
    end = len(text) if end == -1 else end  # a #fragment is never sent to the server
    start = text.find("?", 0, end) + 1  # 0 when there is no "?": a bare query string or a bare URL
    if start:
        _check_path(text[: start - 1], errors)
    elif "://" in text[:end] or text.startswith("/"):
        _check_path(text[:end], errors)
        return []  # a URL without a query string: every customer
    params = []
    for piece in re.finditer(r"[^&]+", text[start:end]):
        raw_name, _, raw_value = piece.group().partition("=")
        span = Span(start + piece.start(), start + piece.end())
        try:
            name, value = unquote_plus(raw_name, errors="strict"), unquote_plus(raw_value, errors="strict")
            params.append(_Param(name, value, span))
        except UnicodeDecodeError:
            # A replacement character would change the value silently: say so instead.
            errors.append(KQLError("E011", "this parameter's %-encoded bytes are not UTF-8 text", span, None))
    return params


_CLAUSES = ("sort", "fields[customers]", "page[number]", "page[size]")


def _check_path(url: str, errors: list[KQLError]) -> None:
    """Only a customers listing decompiles: `…/v1/offers?…` is not a customers query."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :] if "://" in url else path
    if "/" in url and not _CUSTOMERS_PATH.match(path):
        errors.append(
            KQLError(
                "E010",
                f"not a customers listing: the path is {path or '/'!r}",
                Span(0, len(url)),
                "kql decompiles GET /v1/customers URLs (or just their query strings)",
            )
        )


def decompile(text: str, reg: Registry | None = None) -> Decompiled:
    """Canonical KQL for a customers URL or query string (encoded or not). Raises KQLError."""
    reg = reg or registry()
    errors: list[KQLError] = []
    atoms: list[ast.Expr] = []
    bracketed: dict[str, tuple[Filter, list[str], Span]] = {}
    clauses: dict[str, ast.Sort | ast.Select | ast.Page] = {}
    page: dict[str, int] = {}
    given: set[str] = set()
    for param in _params(text, errors):
        match = _FILTER.match(param.name)
        if match:
            entry = reg.by_param.get(match.group(1))
            if entry is None:
                hint = did_you_mean(param.name, [f.api_name for f in reg])
                errors.append(KQLError("E010", f"unknown parameter '{param.name}'", param.span, hint))
            elif match.group(2):  # filter[x][]=a&filter[x][]=b
                bracketed.setdefault(entry.param, (entry, [], param.span))[1].append(param.value)
            else:
                many = entry.arity == "many" and entry.multi == "comma"
                atoms.extend(_atom(entry, param, param.value.split(",") if many else [param.value], reg, errors))
        elif param.name in _CLAUSES:
            if param.name in given:
                errors.append(KQLError("E011", f"'{param.name}' is given twice", param.span, "keep the one you mean"))
                continue
            given.add(param.name)
            _clause(param, reg, clauses, page, errors)
        else:
            known = [*_CLAUSES, *(f.api_name for f in reg)]
            errors.append(
                KQLError("E010", f"unknown parameter '{param.name}'", param.span, did_you_mean(param.name, known))
            )
    for entry, values, span in bracketed.values():
        atoms.extend(_atom(entry, _Param(entry.api_name + "[]", ",".join(values), span), values, reg, errors))
    if page:
        number = page.get("page[number]", 1)
        size = page.get("page[size]")
        clauses["page"] = ast.Page(ast.Int(number), None if size is None else ast.Int(size))
    raise_all(errors, text)
    expr: ast.Expr | None = None
    if len(atoms) == 1:
        expr = atoms[0]
    elif atoms:
        expr = ast.And(tuple(atoms))
    query = ast.Query(filter=expr, **clauses)  # type: ignore[arg-type]
    return Decompiled(query, _writable(query, text))


def _writable(query: ast.Query, source: str) -> str:
    """The KQL for ``query``; an error rather than text kql would refuse to parse."""
    kql = format_query(query)
    if len(kql) > MAX_QUERY_LENGTH:
        raise KQLError(
            "E006",
            f"as KQL, this is {len(kql):,} characters long; the limit of a query is {MAX_QUERY_LENGTH:,}",
            Span(0, len(source)),
            "split it into saved segments, or simplify it",
        ).with_source(source)
    try:
        parse(kql)  # every value is checked as the parser checks it: a safety net, never expected to fail
    except KQLError as error:
        message = f"this cannot be written as KQL that parses: {error.message}"
        raise KQLError("E011", message, Span(0, len(source)), None).with_source(source) from None
    return kql


def _number(text: str, minimum: int) -> int | None:
    """The whole number ``text`` holds, if the parser would read it (ASCII, at most MAX_DIGITS digits)."""
    if not _DIGITS.match(text) or len(text.lstrip("0")) > MAX_DIGITS:
        return None
    number = int(text)
    return number if number >= minimum else None


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


def _clause(
    param: _Param,
    reg: Registry,
    clauses: dict[str, ast.Sort | ast.Select | ast.Page],
    page: dict[str, int],
    errors: list[KQLError],
) -> None:
    """sort, fields[customers], page[…]: checked as the compiler would check their KQL."""

    def bad(expected: str) -> None:
        message = f"'{param.name}' cannot take {_shown(param.value)}"
        errors.append(KQLError("E011", message, param.span, f"expected {expected}"))

    if param.name == "sort":
        key = param.value.removeprefix("-")
        if key not in reg.sort_keys:
            bad("one of " + ", ".join(reg.sort_keys) + ", with '-' for descending")
            return
        clauses["sort"] = ast.Sort(ast.Name(key), param.value.startswith("-"))
    elif param.name == "fields[customers]":
        fields = param.value.split(",")
        if not all(f in reg.select_fields for f in fields):
            bad("a comma-separated list of " + ", ".join(reg.select_fields))
            return
        clauses["select"] = ast.Select(tuple(ast.Name(f) for f in dict.fromkeys(fields)))
    elif (number := _number(param.value, 1)) is not None:
        page[param.name] = number
    else:
        bad(f"a whole number from 1, of at most {MAX_DIGITS} digits")


def _atom(entry: Filter, param: _Param, values: list[str], reg: Registry, errors: list[KQLError]) -> list[ast.Expr]:
    try:
        return [form_of(entry, values, reg)]
    except ValueError as problem:
        errors.append(
            KQLError(
                "E011",
                f"'{param.name}' cannot take {_shown(param.value)}",
                param.span,
                f"expected {problem}, as in {entry.example(reg.id_prefixes)}",
            )
        )
        return []


def form_of(entry: Filter, values: Sequence[str], reg: Registry) -> ast.Expr:
    """The canonical KQL form that sends ``entry`` with ``values``; ValueError names what was expected."""
    name = ast.Name(entry.name)
    node: ast.Expr
    if entry.form in ("flag", "enum"):
        if list(values) != ["true"]:
            raise ValueError("true")
        node = ast.Flag(name) if entry.form == "flag" else ast.Comparison(name, "=", ast.Ident(entry.enum_value or ""))
    elif entry.form == "text":
        if not values or not values[0].strip():
            raise ValueError("some text")
        node = ast.Text(ast.Str(values[0]))
    else:
        scalars: list[ast.Scalar] = []
        for item in values:
            scalar = _scalar(entry, item, reg)
            if scalar is None:
                raise ValueError(_EXPECTED[entry.value])
            scalars.append(scalar)
        if entry.form == "comparison":
            node = ast.Comparison(name, entry.op or "=", scalars[0])
        else:
            node = ast.Call(name, tuple(scalars))
    return ast.Not(node) if entry.negated else node


_EXPECTED = {
    "id": f"a positive id of at most {MAX_DIGITS} digits",
    "days": f"a number of days of at most {MAX_DIGITS} digits",
    "money": f"an amount (at most {MAX_DIGITS} digits without cents)",
    "string": "some text",
}


def _scalar(entry: Filter, value: str, reg: Registry) -> ast.Scalar | None:
    if entry.value == "id":
        number = _number(value, 1)
        return None if number is None else ast.TypedId(reg.id_prefixes[entry.id_kind or ""], number)
    if entry.value == "days":
        days = _number(value, 1)
        return None if days is None else ast.Duration(days, "d")
    if entry.value == "money":
        if not _MONEY.match(value):
            return None
        if "." in value:
            return ast.Decimal(value)
        amount = _number(value.removeprefix("-"), 0)  # the parser's limit on an integer's digits
        return None if amount is None else ast.Int(-amount if value.startswith("-") else amount)
    return ast.Str(value) if value.strip() else None

"""Local filters: comparisons the API cannot run, checked on each returned customer.

Records are flat, as the executor yields them (``{"id": …, **attributes}``) with
the API's encodings: money as a decimal string, instants as ISO 8601 strings.
A comparison with a missing value (``null``) is false — so its negation is true,
exactly as ``not`` says — except ``is null`` and ``is not null``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kql.language import ast
from kql.planning.plan import LocalFilter
from kql.registry import registry


def matches(local: LocalFilter, record: Mapping[str, Any]) -> bool:
    """Whether ``record`` satisfies ``local`` (its negation included)."""
    result = _test(local, record.get(local.attribute))
    return not result if local.negated else result


def _test(local: LocalFilter, raw: Any) -> bool:
    if local.op == "is":
        return raw is None
    if local.op == "is_not":
        return raw is not None
    if raw is None:
        return False
    kind = registry().attributes[local.attribute].type
    value = convert(kind, raw)
    if value is None:
        return False
    if local.op == "in":
        assert isinstance(local.value, ast.ValueList)
        return any(_compare(kind, value, "=", item) for item in local.value.items)
    return _compare(kind, value, local.op, local.value)


def _compare(kind: str, value: Any, op: str, wanted_node: ast.Value) -> bool:
    wanted = _literal(kind, wanted_node)
    if wanted is None:
        return False
    if op in ("~", "ends_with", "starts_with"):
        text, part = str(value), str(wanted)
        if op == "~":
            return part.casefold() in text.casefold()  # as the API's *_contains filters
        return text.endswith(part) if op == "ends_with" else text.startswith(part)
    try:
        if op == "=":
            return bool(value == wanted)
        if op == "!=":
            return bool(value != wanted)
        if op == ">":
            return bool(value > wanted)
        if op == "<":
            return bool(value < wanted)
        if op == ">=":
            return bool(value >= wanted)
        if op == "<=":
            return bool(value <= wanted)
    except TypeError:  # e.g. comparing an aware and a naive instant: treat as no match
        return False
    raise ValueError(f"unknown operator {op!r}")


def convert(kind: str, raw: Any) -> Any:
    """An attribute value as the API returns it, as a comparable Python value."""
    if kind == "money":
        try:
            return Decimal(str(raw))
        except InvalidOperation:
            return None
    if kind == "integer":
        try:
            return int(raw)
        except (TypeError, ValueError):
            return None
    if kind == "datetime":
        return _instant(str(raw))
    return raw if kind == "object" else str(raw)


def _literal(kind: str, node: ast.Value) -> Any:
    if isinstance(node, ast.Int):
        return Decimal(node.value) if kind == "money" else node.value
    if isinstance(node, ast.Decimal):
        return Decimal(node.text)
    if isinstance(node, ast.Date):
        return _instant(node.text)
    if isinstance(node, ast.Str):
        return node.value
    return None


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # A date without a zone is read as UTC, as the API's timestamps are.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

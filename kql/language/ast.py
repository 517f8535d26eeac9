"""The KQL syntax tree: frozen, slotted attrs classes.

Equality is structural: spans are carried for error messages but are not part of
a node's identity, so ``parse(format(q)) == q`` holds although offsets move.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

import attrs

from kql.language.errors import Span
from kql.language.frozen import quick_init


def _span() -> Span | None:
    return attrs.field(default=None, eq=False, repr=False, kw_only=True)  # type: ignore[no-any-return]


# ---- values ---------------------------------------------------------------------------


@quick_init
@attrs.frozen(slots=True)
class Int:
    value: int
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Decimal:
    """A number with a fractional part, kept as written (``99.50`` stays ``99.50``)."""

    text: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Duration:
    """``30d``, ``2w``: an amount and the unit as written (the validator checks it)."""

    amount: int
    unit: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Str:
    value: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class TypedId:
    """``bc_9``: an id with its kind's prefix; sends the number."""

    prefix: str
    number: int
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Ident:
    """A bare word in value position: an enum value such as ``healthy``."""

    name: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Date:
    """An absolute date or instant, ``2024-01-31`` or ``2024-01-31T10:00:00Z``, as written."""

    text: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Null:
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class ValueList:
    """``(a, b, c)`` after ``in``."""

    items: tuple[Scalar, ...]
    span: Span | None = _span()


Scalar: TypeAlias = Int | Decimal | Duration | Str | TypedId | Ident | Date | Null
Value: TypeAlias = Scalar | ValueList


# ---- filter expressions ---------------------------------------------------------------


@quick_init
@attrs.frozen(slots=True)
class Name:
    """An identifier with its position: filter, field or sort key."""

    text: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Comparison:
    """``field op value``; op is one of ``= != > < >= <= ~ in ends_with starts_with is is_not``."""

    field: Name
    op: str
    value: Value
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Call:
    """``name(arg, …)``: a predicate."""

    name: Name
    args: tuple[Scalar, ...]
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Flag:
    """A bare name: ``subscribed``."""

    name: Name
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Text:
    """A bare string: the API's fuzzy name/email search."""

    value: Str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class SegmentRef:
    """``@name``: a saved segment."""

    name: str
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Not:
    item: Expr
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class And:
    items: tuple[Expr, ...]
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Or:
    items: tuple[Expr, ...]
    span: Span | None = _span()


Atom: TypeAlias = Comparison | Call | Flag | Text | SegmentRef
Expr: TypeAlias = Atom | Not | And | Or


# ---- clauses and the query ------------------------------------------------------------


@quick_init
@attrs.frozen(slots=True)
class Sort:
    field: Name
    descending: bool = False
    span: Span | None = _span()

    @property
    def param(self) -> str:
        return ("-" if self.descending else "") + self.field.text


@quick_init
@attrs.frozen(slots=True)
class Select:
    fields: tuple[Name, ...]
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Limit:
    count: Int
    span: Span | None = _span()


@quick_init
@attrs.frozen(slots=True)
class Page:
    number: Int
    size: Int | None = None
    span: Span | None = _span()


Clause: TypeAlias = Sort | Select | Limit | Page


@quick_init
@attrs.frozen(slots=True)
class Query:
    filter: Expr | None = None
    sort: Sort | None = None
    select: Select | None = None
    limit: Limit | None = None
    page: Page | None = None
    span: Span | None = _span()


def walk(expr: Expr) -> Iterator[Expr]:
    """Every expression node under ``expr`` (itself included), without recursion."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, And | Or):
            stack.extend(reversed(node.items))
        elif isinstance(node, Not):
            stack.append(node.item)


# isinstance() with a tuple: `A | B` would build a union object on every call, per node.
_OPERATORS = (And, Or, Not)


def depth(expr: Expr) -> int:
    """Nesting depth of ``expr`` (an atom is 1), computed without recursion."""
    deepest = 1
    # Only the operators go on the stack: an atom under one at ``level`` is ``level + 1`` deep, and
    # most of a query's nodes are atoms (this runs for every parsed query).
    stack: list[tuple[And | Or | Not, int]] = [(expr, 1)] if isinstance(expr, _OPERATORS) else []
    while stack:
        node, level = stack.pop()
        level += 1
        for item in node.items if not isinstance(node, Not) else (node.item,):
            if isinstance(item, _OPERATORS):
                stack.append((item, level))
            elif level > deepest:
                deepest = level
        if level - 1 > deepest:
            deepest = level - 1
    return deepest

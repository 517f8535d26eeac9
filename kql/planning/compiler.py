"""A query → the parameters of exactly one ``GET /v1/customers`` request.

Compiling is planning and requiring a plan of one request (one path from text to
plan). The compiler never approximates: what one request cannot say exactly (``or``,
``not`` without an API complement, ``>=``, the same parameter with values that
cannot merge, attribute predicates) is a KQLError naming the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kql.language import ast
from kql.language.errors import KQLError, Span, raise_all
from kql.language.formatter import format_expr
from kql.language.frozen import quick_init
from kql.planning.checked import check
from kql.planning.plan import LARGEST_PAGE_SIZE, Param, Plan, encode
from kql.planning.planner import carets, plan_checked
from kql.planning.sends import Send, merge_sends
from kql.planning.validate import Cond, Local, TAnd, TNot, TOr, Typed, Validated
from kql.registry import Filter, Registry, registry

if TYPE_CHECKING:  # imported only where a query uses @segments
    from kql.planning.segments import Segments


@quick_init
@attrs.frozen(slots=True)
class Compiled:
    """One request: its parameters in a stable order, and what the executor needs to know.

    ``plan`` is the single-request plan it was read from; the executor runs that.
    """

    query: ast.Query
    params: list[Param]
    query_string: str
    plan: Plan = attrs.field(repr=False)
    warnings: tuple[KQLError, ...] = ()
    # True when the filters contradict each other: no request is needed at all.
    matches_nothing: bool = False
    limit: int | None = None
    page: tuple[int, int] | None = None
    sort: str | None = None
    fields: tuple[str, ...] | None = None

    def url(self, base_url: str = "https://api.kajabi.com") -> str:
        path = base_url.rstrip("/") + "/v1/customers"
        return f"{path}?{self.query_string}" if self.query_string else path

    @classmethod
    def of(cls, plan: Plan) -> Compiled:
        """The one request of a single-request plan (or a plan that matches nothing)."""
        params = plan.params
        # Positional, in the order of the fields: a call with ten keywords costs a dict of them.
        return cls(
            plan.query,
            params,
            encode(params),
            plan,
            plan.warnings,
            plan.matches_nothing,
            plan.limit,
            plan.page,
            plan.sort,
            plan.select,
        )


def compile_query(
    text_or_query: str | ast.Query, reg: Registry | None = None, segments: Segments | None = None
) -> Compiled:
    """Compile KQL into exactly one request: plan it, and require a plan of one request.

    A query that needs more is refused with the reasons, read off the same validated
    query the planner had (E301–E306: the ``or``, the ``not`` without a complement…).
    Raises KQLError.
    """
    reg = reg or registry()
    source = text_or_query if isinstance(text_or_query, str) else None
    with carets(source):
        checked = check(text_or_query, segments, reg)
    try:
        plan = plan_checked(checked, reg, source=source)
    except KQLError as error:
        if error.code != "E307":
            raise
        plan = None  # too many branches to plan: still, say why it is not one request
    if plan is not None and (plan.single_request or plan.matches_nothing):
        compiled = Compiled.of(plan)
        if plan.single_request and checked.page is not None and checked.page[1] > LARGEST_PAGE_SIZE:
            # About the literal request compile prints; a run pages it itself, so a plan has no such warning.
            compiled = attrs.evolve(compiled, warnings=(*compiled.warnings, _large_page(checked, source)))
        return compiled
    raise_all(_why_not_one_request(checked, plan, reg), source)
    raise AssertionError("unreachable: raise_all raises for a non-empty list")


def _large_page(checked: Validated, source: str | None) -> KQLError:
    """W002: the printed request asks for more than LARGEST_PAGE_SIZE customers at once."""
    assert checked.page is not None and checked.query.page is not None
    number, size = checked.page
    warning = KQLError(
        "W002",
        f"page[size]={size} is above {LARGEST_PAGE_SIZE}, the largest page kql asks for: the API may refuse it "
        "(its maximum is not documented)",
        checked.query.page.span,
        f"kql run fetches customers {(number - 1) * size + 1:,}–{number * size:,} as pages of "
        f"{LARGEST_PAGE_SIZE} (--max-page-size) and returns exactly those",
    )
    return warning.with_source(source) if source is not None else warning


def _why_not_one_request(checked: Validated, plan: Plan | None, reg: Registry) -> list[KQLError]:
    """Each part of the query that one request cannot say, as an error with a hint."""
    sends, errors = _conjuncts(checked.filter, reg)
    if errors:
        return errors
    errors = [_conflict_error(c) for c in merge_sends(sends, reg).conflicts]
    if errors:
        return errors
    # Every conjunct is a parameter and none conflicts, yet the plan has more: say how many.
    needs = f"{plan.requests} requests" if plan is not None else "several requests"
    span = checked.query.filter.span if checked.query.filter else None
    return [KQLError("E301", f"the query needs {needs}, not one", span, PLANNED)]


# ---- one conjunction of API conditions ------------------------------------------------


def _conjuncts(typed: Typed | None, reg: Registry) -> tuple[list[Send], list[KQLError]]:
    """Flatten the top-level ``and``; every conjunct must map to one API parameter."""
    sends: list[Send] = []
    errors: list[KQLError] = []
    stack: list[Typed] = [typed] if typed is not None else []
    while stack:
        item = stack.pop()
        if isinstance(item, TAnd):
            stack.extend(reversed(item.items))
        elif isinstance(item, TNot) and isinstance(item.item, TNot):
            stack.append(item.item.item)  # `not not x` is exactly x
        else:
            send = _send(item, reg, errors)
            if send is not None:
                sends.append(send)
    return sends, errors


# Where the hints of "valid, but not one request" errors send the user.
PLANNED = "kql explain shows the plan, kql run runs it"


def _send(item: Typed, reg: Registry, errors: list[KQLError]) -> Send | None:
    def fail(code: str, message: str, node: ast.Expr, hint: str) -> None:
        errors.append(KQLError(code, message, node.span, hint))

    if isinstance(item, TOr):
        sent_what = " or ".join(_short(i) for i in item.items[:3])
        fail(
            "E301",
            "one request cannot express 'or': the API ANDs all of its filters",
            item.node,
            f"'{sent_what}' needs one request per branch: {PLANNED}",
        )
        return None
    if isinstance(item, Local):
        fail(
            "E305",
            f"the API cannot filter on '{_short(item)}'",
            item.node,
            f"it is checked locally on the customers returned: {PLANNED}",
        )
        return None
    negated = isinstance(item, TNot)
    cond = item.item if isinstance(item, TNot) else item
    if isinstance(cond, TAnd | TOr | TNot | Local):
        node = item.node
        fail(
            "E302",
            "one request cannot negate a group of conditions",
            node,
            f"'not (a and b)' is 'not a or not b', several requests: {PLANNED}",
        )
        return None
    assert isinstance(cond, Cond)
    node = item.node
    if cond.op in {"!=", ">=", "<=", "in"}:
        fail(
            "E303",
            f"the API has no '{cond.op}' filter for '{cond.name}'",
            node,
            _planner_op_hint(cond),
        )
        return None
    count = len(cond.values)
    entry = _lookup(reg, cond, negated, count)
    if entry is not None:
        return Send(entry, cond.values, node)
    positive = _lookup(reg, cond, False, count)
    if negated and positive is not None:
        fail(
            "E302",
            f"the API has no complement of '{cond.name}': 'not {_short(cond)}' cannot be one request",
            node,
            f"filter[{positive.param}] exists, but no parameter selects the customers it leaves out; "
            f"an anti-join of two requests does: {PLANNED}",
        )
    elif not negated and cond.name == "sent" and count > 1:
        fail(
            "E301",
            f"'{_short(cond)}' means sent any of them: a union, which one request cannot express",
            node,
            f"one request per id: {PLANNED} ('not sent(…)', sent none of them, is one request)",
        )
    elif not negated:
        fail(
            "E306",
            f"the API has no filter for '{_short(cond)}' on its own, only for its negation",
            node,
            f"'not {_short(cond)}' is one request",
        )
    else:
        fail("E302", f"the API cannot negate '{_short(cond)}'", node, f"an anti-join of two requests: {PLANNED}")
    return None


def _lookup(reg: Registry, cond: Cond, negated: bool, count: int) -> Filter | None:
    return reg.find(cond.name, cond.form, cond.op, cond.enum_value, negated=negated, single=count == 1)


def _planner_op_hint(cond: Cond) -> str:
    if cond.op in (">=", "<="):
        strict = cond.op[0]
        either = f"{cond.name} {strict} x or {cond.name} = x"
        return f"'{cond.name} {cond.op} x' is '{either}', two requests: {PLANNED}"
    if cond.op == "!=":
        return f"'{cond.name} != x' is 'not {cond.name} = x', which the API cannot negate: {PLANNED}"
    return f"'{cond.name} in (…)' is one request per value: {PLANNED}"


def _short(item: Typed) -> str:
    return _short_node(item.node)


def _conflict_error(send: Send) -> KQLError:
    return KQLError(
        "E304",
        f"filter[{send.entry.param}] holds one value; one request cannot also ask for '{_short_node(send.node)}'",
        send.node.span or Span(0, 0),
        f"customers matching both are an intersection of two requests: {PLANNED}",
    )


def _short_node(node: ast.Expr) -> str:
    text = format_expr(node)
    return text if len(text) <= 60 else text[:57] + "..."

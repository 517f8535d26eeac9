"""Typed query → the parameters of exactly one ``GET /v1/customers`` request.

The compiler never approximates: what one request cannot say exactly (``or``,
``not`` without an API complement, ``>=``, the same parameter with values that
cannot merge, attribute predicates) is a KQLError naming the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from urllib.parse import quote

import attrs

from kql.language import ast
from kql.language.errors import KQLError, Span, raise_all
from kql.language.parser import parse
from kql.planning.segments import Segments
from kql.planning.validate import Cond, Local, TAnd, TNot, TOr, Typed, Validated, validate
from kql.registry import Filter, Registry, registry

Param = tuple[str, str]


@attrs.frozen(slots=True)
class Compiled:
    """One request: its parameters in a stable order, and what the executor needs to know."""

    query: ast.Query
    params: list[Param]
    query_string: str
    warnings: tuple[KQLError, ...] = ()
    # True when the filters contradict each other: no request is needed at all.
    matches_nothing: bool = False
    limit: int | None = None
    page: tuple[int, int | None] | None = None
    sort: str | None = None
    fields: tuple[str, ...] | None = None

    def url(self, base_url: str = "https://api.kajabi.com") -> str:
        path = base_url.rstrip("/") + "/v1/customers"
        return f"{path}?{self.query_string}" if self.query_string else path


def encode(params: Sequence[Param]) -> str:
    """A query string that ``parse_qsl(…, keep_blank_values=True)`` turns back into ``params``.

    Brackets in names and ``,@:/`` in values stay readable; everything else that
    could end a value or change a parameter (``& = # + % ;`` and spaces) is escaped.
    """
    return "&".join(f"{quote(name, safe='[]')}={quote(value, safe=',@:/')}" for name, value in params)


@attrs.frozen(slots=True)
class Send:
    """One condition the API can run: a registry parameter with its values."""

    entry: Filter
    values: tuple[str, ...]
    node: ast.Expr


@attrs.frozen(slots=True)
class Merged:
    """Sends combined per parameter: what to send, whether it is a contradiction, and
    the sends whose values one parameter cannot also hold (same parameter, other value)."""

    params: list[tuple[Filter, tuple[str, ...]]]
    nothing: bool
    conflicts: list[Send]

    def encoded(self) -> list[Param]:
        return [p for entry, values in self.params for p in _encode_values(entry, values)]


def compile_query(
    text_or_query: str | ast.Query, reg: Registry | None = None, segments: Segments | None = None
) -> Compiled:
    """Compile KQL text (or a parsed Query) into one request. Raises KQLError."""
    reg = reg or registry()
    source = text_or_query if isinstance(text_or_query, str) else None
    checked = check(text_or_query, segments, reg)
    query = checked.query
    sends, errors = _conjuncts(checked.filter, reg)
    raise_all(errors, source)
    merged = merge_sends(sends, reg)
    nothing = merged.nothing
    if not nothing:  # a contradiction needs no request, so nothing else can stand in its way
        raise_all([_conflict_error(c) for c in merged.conflicts], source)

    params: list[Param] = []
    if not nothing:
        params.extend(merged.encoded())
        if checked.sort:
            params.append(("sort", checked.sort))
        if checked.fields:
            params.append(("fields[customers]", ",".join(checked.fields)))
        if checked.page:
            params.append(("page[number]", str(checked.page[0])))
            if checked.page[1] is not None:
                params.append(("page[size]", str(checked.page[1])))
    return Compiled(
        query=query,
        params=params,
        query_string=encode(params),
        warnings=checked.warnings,
        matches_nothing=nothing,
        limit=checked.limit,
        page=checked.page,
        sort=checked.sort,
        fields=checked.fields,
    )


def check(text_or_query: str | ast.Query, segments: Segments | None, reg: Registry) -> Validated:
    """The front half shared by the compiler and the planner: parse, expand segments, validate."""
    source = text_or_query if isinstance(text_or_query, str) else None
    query = parse(text_or_query) if isinstance(text_or_query, str) else text_or_query
    return validate(expand(query, segments, source), source, reg)


def expand(query: ast.Query, segments: Segments | None, source: str | None) -> ast.Query:
    """Replace ``@name`` references by their segments (a no-op without segments)."""
    if segments is None:
        return query
    try:
        expanded = segments.expand(query)
    except KQLError as error:
        if source is not None and error.source is None:
            error.with_source(source)
        raise
    from kql.language.parser import MAX_DEPTH

    if expanded.filter is not None and ast.depth(expanded.filter) > MAX_DEPTH:
        raise KQLError(
            "E007", f"with its segments expanded, the query is nested more than {MAX_DEPTH} levels deep", query.span
        ).with_source(source or "")
    return expanded


def _encode_values(entry: Filter, values: tuple[str, ...]) -> list[Param]:
    name = entry.api_name
    if len(values) == 1 or entry.multi == "comma":
        return [(name, ",".join(values))]
    if entry.multi == "brackets":
        return [(f"{name}[]", v) for v in values]
    return [(name, v) for v in values]


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


# ---- merging parameters and spotting contradictions -----------------------------------


def _conflict_error(send: Send) -> KQLError:
    return KQLError(
        "E304",
        f"filter[{send.entry.param}] holds one value; one request cannot also ask for '{_short_node(send.node)}'",
        send.node.span or Span(0, 0),
        f"customers matching both are an intersection of two requests: {PLANNED}",
    )


def merge_sends(sends: list[Send], reg: Registry) -> Merged:
    """Combine sends of the same parameter; spot contradictions (match nothing)."""
    groups: dict[str, list[Send]] = {}
    for send in sends:
        groups.setdefault(_group_key(send.entry), []).append(send)

    merged: list[tuple[Filter, tuple[str, ...]]] = []
    conflicts: list[Send] = []
    nothing = _contradicts(sends, reg)
    for members in groups.values():
        first = members[0].entry
        rule = first.merge
        distinct = _distinct([s.values for s in members], money=first.value == "money")
        if rule == "all":
            values = tuple(dict.fromkeys(v for vs in distinct for v in vs))
            # One has_tag(…) stays has_tag_id; several tags, or has_all_tags(…), become the list parameter.
            single = all(m.entry.merge_into is not None for m in members) and len(values) == 1
            target = first if single else reg.by_param[first.merge_into or first.param]
            merged.append((target, values))
        elif rule in ("min", "max"):
            pick = min if rule == "min" else max
            merged.append((first, (pick((vs[0] for vs in distinct), key=Decimal),)))
        elif rule == "exclusive_group":
            if len({m.entry.param for m in members}) > 1:
                nothing = True
            merged.append((first, members[0].values))
        elif len(distinct) == 1:
            merged.append((first, distinct[0]))
        elif rule == "exclusive":
            nothing = True
        else:
            merged.append((first, members[0].values))
            kept = {members[0].values}
            for member in members[1:]:
                if member.values not in kept:
                    kept.add(member.values)
                    conflicts.append(member)
    return Merged(merged, nothing, conflicts)


def _group_key(entry: Filter) -> str:
    if entry.merge == "exclusive_group":
        return "group:" + entry.name
    return entry.merge_into or entry.param


def _distinct(value_sets: list[tuple[str, ...]], money: bool) -> list[tuple[str, ...]]:
    seen: dict[object, tuple[str, ...]] = {}
    for values in value_sets:
        key = tuple(Decimal(v) for v in values) if money else values
        seen.setdefault(key, values)
    return list(seen.values())


def _family(entry: Filter, reg: Registry) -> Filter:
    """The positive parameter an entry is about (`has_no_tag_id` → `has_tag_id` → `has_all_tag_id`)."""
    if entry.negated:
        positive = next(
            (f for f in reg.by_name[entry.name] if not f.negated and f.form == entry.form and f.arity == "one"),
            None,
        )
        if positive is None:
            return entry
        entry = positive
    return reg.by_param[entry.merge_into] if entry.merge_into else entry


def _contradicts(sends: list[Send], reg: Registry) -> bool:
    """True when no customer can match all sends (e.g. `has_tag(5) and not has_tag(5)`)."""
    positive: dict[str, set[str]] = {}
    negative: dict[str, set[str]] = {}
    days_within: dict[str, int] = {}
    days_beyond: dict[str, int] = {}
    money: dict[str, list[Decimal]] = {"=": [], ">": [], "<": []}
    for send in sends:
        entry = send.entry
        family = _family(entry, reg).param
        if entry.value == "days":
            days = int(send.values[0])
            if entry.negated:
                days_beyond[family] = max(days, days_beyond.get(family, 0))
            else:
                days_within[family] = min(days, days_within.get(family, days))
        elif entry.value == "money" and entry.op:
            money[entry.op].append(Decimal(send.values[0]))
        elif entry.value in ("id", "string"):
            (negative if entry.negated else positive).setdefault(family, set()).update(send.values)
    if any(positive.get(f, set()) & values for f, values in negative.items()):
        return True
    # Active in the last 7 days but inactive for the last 30: impossible.
    if any(days_within[f] <= beyond for f, beyond in days_beyond.items() if f in days_within):
        return True
    low = max(money[">"], default=None)
    high = min(money["<"], default=None)
    if low is not None and high is not None and high <= low:
        return True
    return any((low is not None and exact <= low) or (high is not None and exact >= high) for exact in money["="])


def _short_node(node: ast.Expr) -> str:
    from kql.language.formatter import format_expr

    text = format_expr(node)
    return text if len(text) <= 60 else text[:57] + "..."

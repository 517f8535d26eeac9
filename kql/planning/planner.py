"""Any KQL expression → API requests plus local work, over an API that can only AND.

1. Normal form: planner operators become what the API has (`>=` is `> or =`,
   `in` is an `or`, `x != v` is `not x = v` — for API conditions and attribute predicates
   alike, so a customer without the attribute matches it); `not` is pushed down to the literals (De
   Morgan); the result is put in disjunctive form, with a cap on its size.
2. Simplify: contradictory branches go, duplicates and absorbed branches go
   (`a or (a and b)` is `a`), `(c and x) or (c and not x)` is `c`.
3. Each branch becomes one streamed request, plus
   - exclusions: `not x` without an API complement fetches the ids matching `x`
     within the rest of the branch and leaves them out (anti-join);
   - intersections: a second value for a parameter that holds one
     (`opened(bc_1) and opened(bc_2)`) fetches the ids matching it and keeps only those;
   - local filters: comparisons on returned attributes, with an exact superset
     pushed down where one exists (`email ends_with "x"` sends `email ~ "x"`).
4. Branches are merged in the query's sort order (id breaks ties), duplicates
   removed by id; `limit` and `page` apply after the merge.

The planner never touches the network; the executor runs the plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from kql.language import ast
from kql.language.errors import KQLError
from kql.language.formatter import format_expr
from kql.planning.checked import check
from kql.planning.plan import DEFAULT_ORDER, Branch, LocalFilter, Plan, Request
from kql.planning.sends import Send, merge_sends
from kql.planning.validate import Cond, Local, TAnd, TNot, TOr, Typed, Validated
from kql.registry import Filter, Registry, registry

if TYPE_CHECKING:
    from datetime import datetime

    from kql.planning.segments import Segments  # imported only where a query uses @segments

MAX_BRANCHES = 32
# How far one step of multiplying out may grow before simplification brings it back under the cap.
RAW_FACTOR = 8
# ---- normal form ------------------------------------------------------------------------


# Literals are hashed again and again (sets of branches, ranks, `x and not x`): cache the hash.
# Not frozen, though nothing assigns to one after it is made: a frozen attrs class sets each field
# through object.__setattr__, which makes one literal (made for every condition) cost twice as much.
@attrs.define(slots=True, unsafe_hash=True, cache_hash=True)
class Lit:
    """An API condition, maybe negated. Equal when they mean the same (whatever the spelling)."""

    name: str
    form: str
    op: str | None
    enum_value: str | None
    values: tuple[str, ...]
    negated: bool
    node: ast.Expr = attrs.field(eq=False, repr=False)

    def flipped(self) -> Lit:
        # The constructor, not attrs.evolve: this runs for every literal of every branch.
        return Lit(self.name, self.form, self.op, self.enum_value, self.values, not self.negated, self.node)

    def text(self, reg: Registry) -> str:
        """This literal in canonical KQL (not the source's spelling: `>=` became `>` or `=`)."""
        from kql.language.decompiler import form_of

        single = len(self.values) == 1
        own = reg.find(self.name, self.form, self.op, self.enum_value, negated=self.negated, single=single)
        if own is not None:
            return format_expr(form_of(own, self.values, reg))
        opposite = reg.find(self.name, self.form, self.op, self.enum_value, negated=not self.negated, single=single)
        assert opposite is not None
        inner = format_expr(form_of(opposite, self.values, reg))
        return inner.removeprefix("not ") if inner.startswith("not ") else f"not {inner}"

    @property
    def position(self) -> int:
        return self.node.span.start if self.node.span else 0


@attrs.define(slots=True, unsafe_hash=True, cache_hash=True)  # as Lit
class LocalLit:
    attribute: str
    op: str
    value_text: str
    negated: bool
    local: Local = attrs.field(eq=False, repr=False)

    def flipped(self) -> LocalLit:
        return LocalLit(self.attribute, self.op, self.value_text, not self.negated, self.local)

    def text(self, reg: Registry | None = None) -> str:
        return ("not " if self.negated else "") + _paren(format_expr(self.local.node))

    @property
    def position(self) -> int:
        return self.local.node.span.start if self.local.node.span else 0


Literal: TypeAlias = Lit | LocalLit
# For isinstance() in the normal form's loops: a tuple, where `Lit | LocalLit` builds a union per call.
_LITERALS = (Lit, LocalLit)


@attrs.frozen(slots=True)
class _And:
    items: tuple[_Node, ...]


@attrs.frozen(slots=True)
class _Or:
    items: tuple[_Node, ...]


@attrs.frozen(slots=True)
class _Not:
    item: _Node


@attrs.frozen(slots=True)
class _ManyValues:
    """A predicate of several ids that the API only takes one at a time (either polarity)."""

    lit: Lit


_Node: TypeAlias = Lit | LocalLit | _And | _Or | _Not | _ManyValues


def _paren(text: str) -> str:
    return f"({text})" if " and " in text or " or " in text else text


def _positive(typed: Typed, reg: Registry) -> _Node:
    """The typed tree with planner operators rewritten into what the API has."""
    if isinstance(typed, TAnd):
        return _And(tuple(_positive(i, reg) for i in typed.items))
    if isinstance(typed, TOr):
        return _Or(tuple(_positive(i, reg) for i in typed.items))
    if isinstance(typed, TNot):
        return _Not(_positive(typed.item, reg))
    if isinstance(typed, Local):
        from kql.language.formatter import format_value

        if typed.op == "!=":
            # `x != v` is `not x = v`, as for API conditions: true for a customer without x (null).
            equal = attrs.evolve(typed, op="=", node=attrs.evolve(typed.node, op="="))
            return _Not(_positive(equal, reg))
        return LocalLit(typed.attribute.name, typed.op, format_value(typed.value), False, typed)
    return _cond(typed, reg)


def _cond(cond: Cond, reg: Registry) -> _Node:
    def lit(op: str | None, values: tuple[str, ...], enum_value: str | None = cond.enum_value) -> Lit:
        return Lit(cond.name, cond.form, op, enum_value, values, False, cond.node)

    if cond.form == "enum" and cond.op in ("in", "!="):
        each = tuple(lit(None, ("true",), v) for v in cond.values)
        return _Not(each[0]) if cond.op == "!=" else _either(each)
    if cond.op == ">=" or cond.op == "<=":
        return _Or((lit(cond.op[0], cond.values), lit("=", cond.values)))
    if cond.op == "!=":
        return _Not(lit("=", cond.values))
    if cond.op == "in":
        op = "=" if cond.form == "comparison" else None
        return _either(tuple(lit(op, (v,)) for v in dict.fromkeys(cond.values)))
    single = lit(cond.op, cond.values)
    many_values = len(cond.values) > 1
    if many_values and reg.find(cond.name, cond.form, cond.op, cond.enum_value, negated=False, single=False) is None:
        # `sent(bc_1, bc_2)`: sent any of them. (`not sent(…)` is handled when negated.)
        return _ManyValues(single)
    return single


def _either(items: tuple[_Node, ...]) -> _Node:
    return items[0] if len(items) == 1 else _Or(items)


def _nnf(node: Any, negate: bool, reg: Registry) -> _Node:
    """Push every `not` down to the literals (De Morgan)."""
    if isinstance(node, _Not):
        return _nnf(node.item, not negate, reg)
    if isinstance(node, (_And, _Or)):
        items = tuple(_nnf(i, negate, reg) for i in node.items)
        flip = isinstance(node, _And) == negate
        return _Or(items) if flip else _And(items)
    if isinstance(node, _ManyValues):
        lit = node.lit.flipped() if negate else node.lit
        if reg.find(lit.name, lit.form, lit.op, lit.enum_value, negated=lit.negated, single=False):
            return lit  # `not sent(bc_1, bc_2)` is one parameter
        singles = tuple(attrs.evolve(lit, values=(v,)) for v in lit.values)
        return _And(singles) if negate else _Or(singles)
    if isinstance(node, _LITERALS):
        return node.flipped() if negate else node
    raise TypeError(node)


def _dnf(node: _Node, cap: int, query: ast.Query) -> list[list[Literal]]:
    """Disjunctive normal form: a list of conjunctions of literals, simplified as it grows.

    The cap applies to the simplified form, so redundancy (`(a or b) and (a or b)`,
    absorption, `x or not x`) never counts against it; an unsimplified step may grow
    to RAW_FACTOR times the cap before it is refused, which bounds the work.
    """
    if isinstance(node, _LITERALS):
        return [[node]]
    if isinstance(node, _Or):
        conjunctions = [conj for item in node.items for conj in _dnf(item, cap, query)]
        return _within_cap(conjunctions, cap, query, multiplied=False)
    assert isinstance(node, _And)
    product: list[list[Literal]] = [[]]
    for item in node.items:
        options = _dnf(item, cap, query)
        if len(options) == 1:
            # One option multiplies nothing out: extend each conjunction in place (the lists are
            # this call's own), so an `and` of n literals costs n steps, not n² copies.
            for left in product:
                left.extend(options[0])
            continue
        _cap(len(product) * len(options), cap * RAW_FACTOR, cap, query, multiplied=True)
        product = _within_cap([left + right for left in product for right in options], cap, query, multiplied=True)
    return product


def _within_cap(
    conjunctions: list[list[Literal]], cap: int, query: ast.Query, *, multiplied: bool
) -> list[list[Literal]]:
    _cap(len(conjunctions), cap * RAW_FACTOR, cap, query, multiplied=multiplied)
    if len(conjunctions) <= cap:
        return conjunctions  # simplified once at the end: most queries never come near the cap
    simplified = _simplify(conjunctions)
    _cap(len(simplified), cap, cap, query, multiplied=multiplied)
    return simplified


def _cap(size: int, limit: int, cap: int, query: ast.Query, *, multiplied: bool) -> None:
    """E307 when ``size`` branches exceed ``limit`` (the cap, or how far a step may grow first)."""
    if size > limit:
        hint = (
            "an 'and' of several 'or's multiplies out: factor common conditions, or split the query"
            if multiplied
            else f"each part of an 'or' is a request: split it into queries of at most {cap} parts"
        )
        span = query.filter.span if query.filter else None
        raise KQLError("E307", f"the query expands to more than {cap} branches (requests)", span, hint)


def _simplify(conjunctions: list[list[Literal]]) -> list[list[Literal]]:
    """Drop contradictions, duplicates and absorbed branches; join `c∧x ∨ c∧¬x` into `c`."""
    if len(conjunctions) == 1:
        # One conjunction (every query one request can answer): nothing to absorb or join.
        written = dict.fromkeys(conjunctions[0])
        # `x and not x`: one of the two is negated, so looking from the negated ones finds it.
        if any(lit.flipped() in written for lit in written if lit.negated):
            return []
        # In the order written; a stable sort keeps first appearances in order for equal positions.
        return [sorted(written, key=_position)]
    # First appearance, in the order the normal form lists them (the query's order), for
    # literals without a position to tell them apart (a query built from its JSON form).
    rank: dict[Literal, int] = {}
    for conj in conjunctions:
        for lit in conj:
            rank.setdefault(lit, len(rank))
    sets: list[frozenset[Literal]] = []
    for conj in conjunctions:
        unique = frozenset(conj)
        if any(lit.flipped() in unique for lit in unique):
            continue  # x and not x
        sets.append(unique)
    changed = True
    while changed:
        changed = False
        sets = list(dict.fromkeys(sets))
        # Absorption: a branch that contains another branch adds nothing.
        kept = [s for s in sets if not any(other < s for other in sets)]
        if len(kept) != len(sets):
            sets, changed = kept, True
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                diff_a, diff_b = a - b, b - a
                if len(diff_a) == 1 and len(diff_b) == 1 and next(iter(diff_a)).flipped() in diff_b:
                    sets = [s for s in sets if s not in (a, b)] + [a & b]
                    changed = True
                    break
            if changed:
                break
    # Literals in the order they are written in the query.
    return [sorted(s, key=lambda lit: (lit.position, rank[lit])) for s in sets]


def _position(lit: Literal) -> int:
    return lit.position


# ---- branches ---------------------------------------------------------------------------


def _send(lit: Lit, reg: Registry) -> Send | None:
    entry = reg.find(lit.name, lit.form, lit.op, lit.enum_value, negated=lit.negated, single=len(lit.values) == 1)
    return None if entry is None else Send(entry, lit.values, lit.node)


class _BranchBuilder:
    def __init__(self, reg: Registry, now: datetime | None) -> None:
        self.reg = reg
        self._now = now

    @property
    def now(self) -> datetime:
        """The plan's one "now", read the first time a date asks for it (datetime costs start-up)."""
        if self._now is None:
            from datetime import UTC, datetime

            self._now = datetime.now(UTC)
        return self._now

    def build(self, conj: list[Literal]) -> Branch | None:
        sends: list[Send] = []
        excluded: list[Send] = []
        local: list[LocalFilter] = []
        for lit in conj:
            if isinstance(lit, LocalLit):
                local.append(self.local(lit))
                sends.extend(self.pushdown(lit))
                continue
            send = _send(lit, self.reg)
            if send is not None:
                sends.append(send)
                continue
            opposite = _send(lit.flipped(), self.reg)
            if opposite is None:  # the validator only lets through forms with some parameter
                raise AssertionError(f"no parameter for {lit}")
            excluded.append(opposite)
        reg = self.reg
        return self.assemble(sends, excluded, local, lambda: " and ".join(lit.text(reg) for lit in conj))

    def assemble(
        self, sends: list[Send], excluded: list[Send], local: list[LocalFilter], describe: Callable[[], str]
    ) -> Branch | None:
        """The branch of a conjunction's sends, exclusions and local filters (None: it matches nothing)."""
        merged = merge_sends(sends, self.reg)
        if merged.nothing:
            return None
        main_sends, main_merged = sends, merged
        if merged.conflicts:
            main_sends = [s for s in sends if s not in merged.conflicts]
            main_merged = merge_sends(main_sends, self.reg)
        main = Request(tuple(main_merged.encoded()))
        intersect = []
        for conflict in merged.conflicts:
            others = [s for s in main_sends if _group(s.entry) != _group(conflict.entry)]
            narrowed = merge_sends([*others, conflict], self.reg)
            if narrowed.nothing:
                return None
            intersect.append(Request(tuple(narrowed.encoded())))
        exclude = []
        for send in excluded:
            within = merge_sends([*main_sends, send], self.reg)
            if within.nothing or within.conflicts:
                # Nobody in the branch matches `x`, so there is nothing to leave out; or
                # `x` needs its own intersection — exclude by `x` alone (exact either way).
                if within.nothing:
                    continue
                within = merge_sends([send], self.reg)
            exclude.append(Request(tuple(within.encoded())))
        return Branch(main, tuple(exclude), tuple(intersect), tuple(local), describe)

    def local(self, lit: LocalLit) -> LocalFilter:
        return LocalFilter(lit.attribute, lit.local.op, lit.local.value, lit.negated, lit.text(self.reg))

    def pushdown(self, lit: LocalLit) -> list[Send]:
        """API conditions every customer matching ``lit`` also matches (supersets)."""
        if lit.negated:
            return []
        op, value, attribute = lit.local.op, lit.local.value, lit.attribute
        contains = self.reg.find(attribute, "comparison", "~", None, negated=False, single=True)
        string_test = op in ("=", "ends_with", "starts_with") and isinstance(value, ast.Str) and value.value.strip()
        if contains is not None and string_test:
            assert isinstance(value, ast.Str)
            return [Send(contains, (value.value,), lit.local.node)]
        in_last = self.reg.attributes[attribute].in_last
        if in_last is not None and isinstance(value, ast.Date):
            return self.within(in_last, op, value, lit.local.node)
        return []

    def within(self, in_last: str, op: str, value: ast.Date, node: ast.Expr) -> list[Send]:
        """`created_at >= 2024-01-01` is within `created_in_last(N)` for N days back to that date
        (and `last_request_at` within `active_in_last`, as the registry pairs them)."""
        from datetime import UTC, datetime

        moment = datetime.fromisoformat(value.text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        days = (self.now - moment).total_seconds() / 86400
        if op in (">", ">=", "="):
            entry = self.reg.find(in_last, "predicate", None, None, negated=False, single=True)
            # One extra day of margin: the API's day boundary may not be ours.
            return [Send(entry, (str(max(1, math.ceil(days) + 1)),), node)] if entry else []
        if op in ("<", "<=") and days >= 2:
            # The complement (`not created_in_last`) also holds customers without the instant:
            # a superset still, as the local filter drops them.
            entry = self.reg.find(in_last, "predicate", None, None, negated=True, single=True)
            return [Send(entry, (str(math.floor(days) - 1),), node)] if entry else []
        return []


def _group(entry: Filter) -> str:
    return entry.merge_into or entry.param


# ---- entry point ------------------------------------------------------------------------


def plan_query(
    text_or_query: str | ast.Query,
    segments: Segments | None = None,
    reg: Registry | None = None,
    max_branches: int = MAX_BRANCHES,
    max_requests: int | None = None,
    now: datetime | None = None,
    source: str | None = None,
) -> Plan:
    """Plan any KQL query. Raises KQLError for invalid queries and exceeded budgets.

    ``source`` is the text a parsed query came from, for the carets of its errors.
    """
    reg = reg or registry()
    source = text_or_query if isinstance(text_or_query, str) else source
    with carets(source):
        checked = check(text_or_query, segments, reg)
    return plan_checked(checked, reg, max_branches, max_requests, now, source)


def plan_checked(
    checked: Validated,
    reg: Registry,
    max_branches: int = MAX_BRANCHES,
    max_requests: int | None = None,
    now: datetime | None = None,
    source: str | None = None,
) -> Plan:
    """The plan of a query already parsed, expanded and validated (``kql.planning.checked.check``)."""
    with carets(source):
        branches = _branches(checked.filter, reg, max_branches, checked.query, now)
    needed = _needed_attributes(branches, checked.sort)
    fetch, strip = _fields(checked.fields, needed)
    # Positional (query, branches, sort, select, fetch, strip, limit, page, warnings): keywords cost a dict.
    result = Plan(
        checked.query,
        tuple(branches),
        checked.sort,
        checked.fields,
        fetch,
        strip,
        checked.limit,
        checked.page,
        checked.warnings,
    )
    check_budget(result, max_requests, source)
    return result


class carets:  # lower case: used as a function, `with carets(source):`
    """Errors raised inside carry ``source`` (the query text), so they render with carets.

    A class rather than ``@contextmanager``: it wraps every compile twice, and a generator-based
    context manager costs a generator and several calls per use."""

    __slots__ = ("source",)

    def __init__(self, source: str | None) -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        source = self.source
        if source is None or not isinstance(error, KQLError) or error.source is not None:
            return  # nothing to add: the exception (if any) goes on as it is
        raise error.with_source(source) from None


def check_budget(plan: Plan, max_requests: int | None, source: str | None = None) -> None:
    """E308 when the plan needs more listings than ``max_requests`` (checked before sending anything)."""
    if max_requests is None or plan.requests <= max_requests:
        return
    over = KQLError(
        "E308",
        f"the plan needs at least {plan.requests} requests; the budget is {max_requests}",
        plan.query.filter.span if plan.query.filter else None,
        "raise --max-requests, or narrow the query (kql explain shows where the requests go)",
    )
    raise over.with_source(source) if source is not None else over


def _branches(typed: Typed | None, reg: Registry, cap: int, query: ast.Query, now: datetime | None) -> list[Branch]:
    builder = _BranchBuilder(reg, now)
    if typed is None:
        return [Branch(Request(()))]
    sends = _direct_sends(typed, reg)
    if sends is not None:
        branch = builder.assemble(sends, [], [], lambda: " and ".join(_send_text(s, reg) for s in sends))
        return [] if branch is None else [branch]
    single: list[Literal] = []
    if _one_conjunction(typed, False, reg, single):
        conjunctions = _simplify([single])  # what the three passes below make of it, in one walk
    else:
        conjunctions = _simplify(_dnf(_nnf(_positive(typed, reg), False, reg), cap, query))
    if any(not conj for conj in conjunctions):
        return [Branch(Request(()))]  # a tautology: every customer
    built = (builder.build(conj) for conj in conjunctions)
    return [b for b in built if b is not None]


def _direct_sends(typed: Typed, reg: Registry) -> list[Send] | None:
    """The sends of ``typed`` when its normal form is one conjunction of literals that each have a
    parameter of their own (most queries, and every one request without an anti-join): what
    ``_one_conjunction``, ``_simplify`` and ``_BranchBuilder.build`` make of it, without building
    literals. None when it is anything else (an `or`, an exclusion, a local filter, a derived
    operator, several values, `x and not x`): then the general passes run.

    A literal's parameter is found by its name, form, op, enum value and polarity, and has exactly
    those: so two literals are equal exactly when their parameters and values are.
    """
    sends: list[Send] = []
    if not _walk_sends(typed, False, reg.derived(_own_params), sends):
        return None
    keys = [(s.entry.param, s.values) for s in sends]
    present = set(keys)
    positive_of = reg.derived(_positive_params)
    if any((positive_of[p], values) in present for p, values in keys if p in positive_of):
        return None  # `x and not x`: the general passes say it matches nothing
    if len(present) < len(keys):  # a literal written twice: the first stays, as in `_simplify`
        first: dict[tuple[str, tuple[str, ...]], Send] = {}
        for key, send in zip(keys, sends, strict=True):
            first.setdefault(key, send)
        sends = list(first.values())
    starts = [s.node.span.start if s.node.span else 0 for s in sends]
    if starts != sorted(starts):  # `_simplify`'s order: by position, stable (parsed text is in order already)
        sends = [sends[i] for i in sorted(range(len(sends)), key=starts.__getitem__)]
    return sends


def _positive_params(reg: Registry) -> dict[str, str]:
    """Negated parameter -> the parameter of the same literal unnegated (with one value), where one exists."""
    out = {}
    for f in reg.filters:
        positive = f.negated and reg.find(f.name, f.form, f.op, f.enum_value, negated=False, single=True)
        if positive:
            out[f.param] = positive.param
    return out


def _walk_sends(typed: Typed, negate: bool, own: dict[_Key, Filter], out: list[Send]) -> bool:
    """``_one_conjunction``'s walk, appending each literal's send: False where it gives up."""
    if type(typed) is Cond:  # the usual node first
        # `own` has no entry for a derived operator (no parameter has one): `_cond` rewrites those.
        entry = own.get((typed.name, typed.form, typed.op, typed.enum_value, negate))
        if entry is None or len(typed.values) != 1:  # an exclusion, a derived operator, several values
            return False
        out.append(Send(entry, typed.values, typed.node))
        return True
    if type(typed) is TNot:
        return _walk_sends(typed.item, not negate, own, out)
    if isinstance(typed, (TAnd, TOr)):
        if isinstance(typed, TAnd) == negate:
            return False
        for item in typed.items:  # noqa: SIM110 (as in _one_conjunction)
            if not _walk_sends(item, negate, own, out):
                return False
        return True
    return False  # a local filter


# A literal's key, what selects its parameter: name, form, op, enum value, negated.
_Key: TypeAlias = tuple[str, str, str | None, str | None, bool]


def _own_params(reg: Registry) -> dict[_Key, Filter]:
    """Per key of a registry parameter, what ``Registry.find`` gives for it with one value (a key
    that is no parameter's finds nothing)."""
    keys = {(f.name, f.form, f.op, f.enum_value, f.negated) for f in reg.filters}
    found = {key: reg.find(*key[:4], negated=key[4], single=True) for key in keys}
    return {key: entry for key, entry in found.items() if entry is not None}


def _send_text(send: Send, reg: Registry) -> str:
    """What ``Lit.text`` writes for the literal of a direct send (its own parameter is the send's)."""
    from kql.language.decompiler import form_of

    return format_expr(form_of(send.entry, send.values, reg))


def _one_conjunction(typed: Typed, negate: bool, reg: Registry, out: list[Literal]) -> bool:
    """Append the literals of ``typed`` (negated when ``negate``) to ``out`` when its normal
    form is one conjunction — the usual query, and every query one request answers; False
    when it has an `or` anywhere (then ``out`` is to be dropped and the general passes run).

    The same literals in the same order as ``_dnf(_nnf(_positive(typed)))``: an `and` whose
    parts each have one conjunction is their concatenation, and no step can exceed a cap.
    """
    if isinstance(typed, (TAnd, TOr)):
        if isinstance(typed, TAnd) == negate:  # `a or b`, `not (a and b)`: a disjunction
            return False
        for item in typed.items:  # noqa: SIM110 (a loop, not all() over a generator: this runs per condition)
            if not _one_conjunction(item, negate, reg, out):
                return False
        return True
    if isinstance(typed, TNot):
        return _one_conjunction(typed.item, not negate, reg, out)
    if not isinstance(typed, Local) and typed.op not in _DERIVED_OPS and len(typed.values) < 2:
        # A condition the API has as it is (most of them): the literal `_positive` and `_nnf` make.
        out.append(Lit(typed.name, typed.form, typed.op, typed.enum_value, typed.values, negate, typed.node))
        return True
    return _flat(_nnf(_positive(typed, reg), negate, reg), out)


# The operators `_cond` rewrites into the API's own (`>=` is `> or =`, `in` an `or`, …).
_DERIVED_OPS = frozenset((">=", "<=", "!=", "in"))


def _flat(node: _Node, out: list[Literal]) -> bool:
    if isinstance(node, _LITERALS):
        out.append(node)
        return True
    return isinstance(node, _And) and all(_flat(item, out) for item in node.items)


def _needed_attributes(branches: Sequence[Branch], sort: str | None) -> list[str]:
    needed = [f.attribute for b in branches for f in b.local]
    if len(branches) > 1 or any(b.requests > 1 or b.local for b in branches):
        # A plan's stream is merged and its order checked on the sort key (created_at by
        # default) of each customer: a narrowed single branch too, or it warns falsely.
        needed.append((sort or DEFAULT_ORDER).lstrip("-"))
    return list(dict.fromkeys(needed))


def _fields(select: Sequence[str] | None, needed: list[str]) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    if not select:
        return None, ()  # every attribute comes back anyway
    extra = tuple(a for a in needed if a not in select)
    return tuple(select) + extra, extra

"""Exact counts from the API's own totals: a plan → conjunctions to count, with signs.

The API can only AND, but every response carries ``meta.total_count``. A plan is a
union of branches, each a listing R minus the ids of its exclusions X1..Xk, so

    |B1 ∪ … ∪ Bn| = Σ over non-empty sets T of branches  (−1)^(|T|+1) |∩T|      (union)
    |P ∖ (X1 ∪ … ∪ Xk)| = Σ over sets U of exclusions     (−1)^|U|   |P ∧ ∩U|    (anti-join)

and every |P ∧ ∩U| is one request when the parameters of its listings merge into one
parameter set (``merge_sends``, the rules ``kql compile`` uses): the *terms*. Terms that
are the same request are one term (coefficients added; those that sum to 0 go), terms
that are contradictions (``merge_sends(...).nothing``) are 0 and so are all their
supersets, which prunes the enumeration. No term plan (``None``: count by listing) when

- a branch has local filters (nothing the API counts) or an intersection (a second
  value of one parameter: never one request), or a term would need one (``opened(bc_1)
  or opened(bc_2)``: the customers who opened both);
- the enumeration grows past ``MAX_WORK`` merges, or more than ``max_terms`` terms remain.

Requests are modelled as the client sends them: ``filter[site_id]`` of the client's
site is added to every listing without one, as the pager does. Pure logic, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import attrs

from kql.language import ast
from kql.planning.plan import Param, Plan, Request
from kql.planning.sends import Merged, Send, merge_sends
from kql.registry import Filter, Registry, registry

# Merges the enumeration may make before it gives up (a 2^n explosion): listing wins then.
MAX_WORK = 2048
# Terms a count may send at most (each one request of one record).
MAX_TERMS = 256
SITE_PARAM = "filter[site_id]"

# A request's meaning, spelling aside: its merged parameters with their values.
Key = frozenset[tuple[str, tuple[str, ...]]]
# merge_sends only reads a send's node for error messages.
_NODE: ast.Expr = ast.Flag(ast.Name("count"))


@attrs.frozen(slots=True)
class Term:
    """One conjunction to count: the filters of one ``page[size]=1`` request, and its sign."""

    params: tuple[Param, ...]
    coefficient: int


@attrs.frozen(slots=True)
class CountPlan:
    """count = Σ coefficient × total_count(term); listing costs are there to compare."""

    terms: tuple[Term, ...]
    # Per listing a run of the plan reads (branch streams, then distinct id sets): the index
    # of the term that is the same request (its total_count is the listing's size), or None.
    listings: tuple[int | None, ...]

    @property
    def requests(self) -> int:
        return len(self.terms)

    def total(self, counts: Mapping[int, int]) -> int:
        """The exact count from each term's total_count (by term index)."""
        return sum(term.coefficient * counts[i] for i, term in enumerate(self.terms))

    def listing_requests(self, counts: Mapping[int, int], page_size: int) -> int:
        """Requests listing would make, as far as ``counts`` tell (an unknown listing: one page)."""
        pages = 0
        for index in self.listings:
            size = counts.get(index) if index is not None else None
            pages += 1 if size is None else max(1, math.ceil(size / page_size))
        return pages

    def probes(self) -> list[int]:
        """The terms that also measure a listing: counting them first prices the listing."""
        return list(dict.fromkeys(i for i in self.listings if i is not None))

    def terms_cheaper(self, counts: Mapping[int, int], page_size: int) -> bool:
        """True when the terms not yet counted cost no more than listing (ties go to terms)."""
        remaining = sum(1 for i in range(len(self.terms)) if i not in counts)
        return remaining <= self.listing_requests(counts, page_size)


class _Unfit(Exception):
    """The plan cannot be counted by terms within the limits (count by listing instead)."""


def with_site(params: Iterable[Param], site_id: str | None) -> tuple[Param, ...]:
    """A listing's filters as the client sends them: its site added when it has none."""
    params = tuple(params)
    if site_id is not None and not any(name == SITE_PARAM for name, _ in params):
        return ((SITE_PARAM, str(site_id)), *params)
    return params


def count_terms(
    plan: Plan,
    site_id: str | None = None,
    reg: Registry | None = None,
    max_terms: int = MAX_TERMS,
    max_work: int = MAX_WORK,
) -> CountPlan | None:
    """The terms that count ``plan`` exactly, or None when listing must count it."""
    reg = reg or registry()
    if any(b.local or b.intersect for b in plan.branches):
        return None
    by_name = {f.api_name: f for f in reg}
    decoded: dict[Request, list[Send]] = {}

    def sends(request: Request) -> list[Send]:
        if request not in decoded:
            decoded[request] = _decode(with_site(request.params, site_id), by_name, reg)
        return decoded[request]

    # The listings a run reads: each branch's stream, then each distinct id set (as kql/execute/planrun.py).
    listed = [b.request for b in plan.branches] + list(dict.fromkeys(r for b in plan.branches for r in b.exclude))
    try:
        found = _Enumeration(reg, max_work)
        mains = [sends(b.request) for b in plan.branches]
        found.branches(mains, [[sends(r) for r in b.exclude] for b in plan.branches])
        listed_keys = [_key(merge_sends(sends(r), reg)) for r in listed]
    except _Unfit:
        return None
    kept = [(key, coef) for key, coef in found.coefficients.items() if coef != 0]
    if len(kept) > max_terms:
        return None  # more requests than a count may send
    terms = tuple(Term(tuple(found.merged[key].encoded()), coef) for key, coef in kept)
    index = {key: i for i, (key, _) in enumerate(kept)}
    return CountPlan(terms, tuple(index.get(key) for key in listed_keys))


class _Enumeration:
    """Inclusion–exclusion over sets of branches, then over sets of their exclusions."""

    def __init__(self, reg: Registry, max_work: int) -> None:
        self.reg, self.max_work, self.work = reg, max_work, 0
        self.coefficients: dict[Key, int] = {}
        self.merged: dict[Key, Merged] = {}

    def merge(self, sends: list[Send]) -> Merged:
        self.work += 1
        if self.work > self.max_work:
            raise _Unfit()
        merged = merge_sends(sends, self.reg)
        if merged.conflicts and not merged.nothing:
            raise _Unfit()  # two values of one parameter: that term needs an intersection, no one request
        return merged

    def branches(self, mains: Sequence[list[Send]], excludes: Sequence[list[list[Send]]]) -> None:
        def extend(start: int, sends: list[Send], within: list[list[Send]], size: int) -> None:
            for i in range(start, len(mains)):
                joined = sends + mains[i]
                merged = self.merge(joined)
                if merged.nothing:
                    continue  # no customer is in all of these branches, nor in any superset of them
                # The exclusions of every branch in the set (one listing named twice is one).
                more = within + [x for x in excludes[i] if x not in within]
                self.exclusions(joined, merged, more, 1 if size % 2 == 0 else -1)
                extend(i + 1, joined, more, size + 1)

        extend(0, [], [], 0)

    def exclusions(self, sends: list[Send], merged: Merged, excluded: list[list[Send]], sign: int) -> None:
        key = _key(merged)
        steps = [self.merge(sends + x) for x in excluded]  # the sets of one exclusion, reused below
        if any(not m.nothing and _key(m) == key for m in steps):
            return  # P ⊆ X for one exclusion: P ∖ X is empty, every term of it cancels out
        self.add(key, merged, sign)

        def extend(start: int, current: list[Send], parity: int) -> None:
            for j in range(start, len(excluded)):
                joined = current + excluded[j]
                inner = steps[j] if start == 0 and current is sends else self.merge(joined)
                if inner.nothing:
                    continue
                self.add(_key(inner), inner, sign * (-1) ** (parity + 1))
                extend(j + 1, joined, parity + 1)

        extend(0, sends, 0)

    def add(self, key: Key, merged: Merged, coefficient: int) -> None:
        self.coefficients[key] = self.coefficients.get(key, 0) + coefficient
        self.merged.setdefault(key, merged)


def _decode(params: Sequence[Param], by_name: Mapping[str, Filter], reg: Registry) -> list[Send]:
    """A listing's encoded filters back into sends; _Unfit unless they encode back the same."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name.removesuffix("[]"), []).append(value)
    sends = []
    for name, values in grouped.items():
        entry = by_name.get(name)
        if entry is None:
            raise _Unfit()
        if entry.arity == "many" and entry.multi == "comma":
            values = [v for joined in values for v in joined.split(",")]
        sends.append(Send(entry, tuple(values), _NODE))
    back = merge_sends(sends, reg)
    if back.nothing or back.conflicts or sorted(back.encoded()) != sorted(params):
        raise _Unfit()  # not a spelling this module understands: listing stays exact
    return sends


def _key(merged: Merged) -> Key:
    """What a merged parameter set means, whatever the order or spelling of its values."""
    return frozenset((entry.param, _canonical(entry, values)) for entry, values in merged.params)


def _canonical(entry: Filter, values: tuple[str, ...]) -> tuple[str, ...]:
    if entry.merge == "all":
        return tuple(sorted(set(values)))  # has_all_tag_id=5,6 is has_all_tag_id=6,5
    if entry.value == "money":
        return tuple(str(Decimal(v).normalize()) for v in values)  # 100 is 100.00
    return values

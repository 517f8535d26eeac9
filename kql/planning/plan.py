"""The plan IR: what the planner produces and the executor runs.

A ``Plan`` is a list of ``Branch``es merged in one order; each branch streams one
``Request`` (a filtered listing, all of its pages), narrowed by id sets (``exclude``,
``intersect``) and ``LocalFilter``s checked on each returned customer. A query the API
answers in one request is a plan with one branch, one request and no local work
(``Plan.single_request``): ``kql compile`` prints it, ``kql run`` pages it.

Plain data with no behaviour beyond describing itself, so the executor imports this
module and never the planner.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from kql.language import ast
from kql.language.errors import KQLError
from kql.language.frozen import quick_init

Param = tuple[str, str]

# The smallest attribute, for listings whose records are only counted or matched by id.
ID_ONLY_FIELD = "sign_in_count"
# `page N` without `size` means `page N size 25`, as one request (`page[size]=25` is sent) and as
# a plan: Kajabi does not document its own default, so kql does not leave the size to it.
DEFAULT_PAGE_SIZE = 25
# The largest `page[size]` kql asks for unless told otherwise (`max_page_size`, `--max-page-size`):
# the sandbox's maximum; Kajabi documents none. A `page N size M` above it is fetched in pages of
# this size and cut to customers (N-1)·M+1 … N·M, the same ones a plan's window gives.
LARGEST_PAGE_SIZE = 100
# Without `sort`, customers come newest first: the API's own default (`sort=-created_at`).
DEFAULT_ORDER = "-created_at"

# ---- the plan ---------------------------------------------------------------------------


@quick_init
@attrs.frozen(slots=True)
class Request:
    """One filtered listing of customers (all of its pages)."""

    params: tuple[Param, ...]

    @property
    def query_string(self) -> str:
        return encode(self.params)


@quick_init
@attrs.frozen(slots=True)
class LocalFilter:
    """A comparison evaluated on each returned customer."""

    attribute: str
    op: str
    value: ast.Value
    negated: bool
    text: str


@quick_init
@attrs.frozen(slots=True)
class Branch:
    """One conjunction: a streamed request, narrowed by id sets and local filters."""

    request: Request
    exclude: tuple[Request, ...] = ()  # ids matching any of these are left out
    intersect: tuple[Request, ...] = ()  # ids must match every one of these
    local: tuple[LocalFilter, ...] = ()
    # The branch as KQL, for explain: the text, or a function that writes it when asked (a
    # compile never shows it, so it does not pay for writing it). Derived from what the branch
    # sends, so not part of its identity.
    describe: str | Callable[[], str] = attrs.field(default="", eq=False, repr=False)

    @property
    def text(self) -> str:
        """The branch as canonical KQL (empty for all customers)."""
        return self.describe if isinstance(self.describe, str) else self.describe()

    @property
    def requests(self) -> int:
        return 1 + len(self.exclude) + len(self.intersect)


@quick_init
@attrs.frozen(slots=True)
class Plan:
    query: ast.Query
    branches: tuple[Branch, ...]
    sort: str | None
    select: tuple[str, ...] | None
    # Attributes fetched for local filters or the merge but not asked for: dropped from output.
    fetch: tuple[str, ...] | None
    strip: tuple[str, ...]
    limit: int | None
    page: tuple[int, int] | None  # (number, size); `page N` alone is (N, DEFAULT_PAGE_SIZE)
    warnings: tuple[KQLError, ...] = ()

    @property
    def matches_nothing(self) -> bool:
        return not self.branches

    @property
    def requests(self) -> int:
        """Listings to fetch (each at least one request; more when results span pages)."""
        return sum(b.requests for b in self.branches)

    @property
    def single_request(self) -> bool:
        if len(self.branches) != 1:
            return False
        branch = self.branches[0]
        return not (branch.exclude or branch.intersect or branch.local)  # its one request, nothing more

    @property
    def params(self) -> list[Param]:
        """The one request of a single-request plan, as ``kql compile`` prints it: its filters,
        then the query's sort, fields and page. Empty for a plan that matches nothing."""
        if self.matches_nothing:
            return []
        if not self.single_request:
            raise ValueError(f"the plan needs {self.requests} requests, not one")
        params = list(self.branches[0].request.params)
        if self.sort:
            params.append(("sort", self.sort))
        if self.select:
            params.append(("fields[customers]", ",".join(self.select)))
        if self.page:
            params += [("page[number]", str(self.page[0])), ("page[size]", str(self.page[1]))]
        return params

    @property
    def merge_order(self) -> str:
        """The order of the answer: the query's sort, else newest first (the API's default)."""
        return self.sort or DEFAULT_ORDER

    def stream_params(self, branch: Branch) -> list[Param]:
        """The parameters of a branch's streamed listing: its filters, the merge order, the fields.
        A single-request plan's one request is ``params``, exactly as ``kql compile`` prints it."""
        if self.single_request:
            return self.params
        # The order is sent even when it is the API's default: the merge depends on it.
        params = [*branch.request.params, ("sort", self.merge_order)]
        if self.fetch:
            params.append(("fields[customers]", ",".join(self.fetch)))
        return params

    @staticmethod
    def id_params(request: Request) -> list[Param]:
        """The parameters of an id-set listing (exclude, intersect): only the ids matter."""
        # A sparse fieldset names at least one attribute; the id always comes back. Oldest first,
        # as the order of a set does not matter: customers created mid-run land on the last page
        # and never push one already there onto a page read before.
        return [*request.params, ("sort", "created_at"), ("fields[customers]", ID_ONLY_FIELD)]

    def to_dict(self) -> dict[str, Any]:
        from kql.language.jsonform import _value

        return {
            "branches": [
                {
                    "kql": b.text,
                    "request": encode(self.stream_params(b)),
                    "exclude": [encode(self.id_params(r)) for r in b.exclude],
                    "intersect": [encode(self.id_params(r)) for r in b.intersect],
                    "local": [
                        {"attribute": f.attribute, "op": f.op, "value": _value(f.value), "negated": f.negated}
                        for f in b.local
                    ],
                }
                for b in self.branches
            ],
            "merge": {"order": self.merge_order, "tie_break": "id", "dedupe": "id"},
            "sort": self.sort,
            "select": list(self.select) if self.select else None,
            "fetch": list(self.fetch) if self.fetch else None,
            "strip": list(self.strip),
            "limit": self.limit,
            "page": list(self.page) if self.page else None,
            "requests": self.requests,
            "matches_nothing": self.matches_nothing,
        }

    def explain(self) -> str:
        return "\n".join(_explain(self))

    def __str__(self) -> str:
        return self.explain()


def _explain(plan: Plan) -> Iterator[str]:
    if plan.matches_nothing:
        yield "matches nothing: the conditions contradict each other; no request is needed"
        return
    count = len(plan.branches)
    yield (
        f"{plan.requests} listing(s) in {count} branch(es)"
        + (f", merged by {plan.merge_order} (ties by id), duplicates removed by id" if count > 1 else "")
    )
    for number, branch in enumerate(plan.branches, start=1):
        yield f"branch {number}: {branch.text or '(all customers)'}"
        yield f"  request:   {_listing(plan.stream_params(branch))}"
        for request in branch.exclude:
            yield f"  exclude:   ids of {_listing(plan.id_params(request))}"
        for request in branch.intersect:
            yield f"  intersect: ids of {_listing(plan.id_params(request))}"
        for local in branch.local:
            yield f"  local:     {local.text}  (checked on each returned customer)"
    if plan.strip:
        yield f"fetched for local work, not shown: {', '.join(plan.strip)}"
    if plan.limit is not None:
        yield f"limit {plan.limit}" + (" after merging" if count > 1 else "")
    if plan.sort is None:
        yield "order: newest first (no sort: the API's default, -created_at)"
    if plan.page is not None:
        number, size = plan.page
        given = plan.query.page is not None and plan.query.page.size is not None
        shown = f"size {size}" + ("" if given else " (page N alone means size 25)")
        window = f"customers {(number - 1) * size + 1:,}–{number * size:,}"
        if not plan.single_request:
            stream = "merged stream" if count > 1 else "filtered stream"
            yield f"page {number} {shown} of the {stream}: {window}"
        elif size > LARGEST_PAGE_SIZE:
            yield f"page {number} {shown}: {window}, fetched as pages of {LARGEST_PAGE_SIZE} (see the warning)"
        else:
            yield f"page {number} {shown}"


def _listing(params: list[Param]) -> str:
    return f"GET /v1/customers?{encode(params)}"


def encode(params: Sequence[Param]) -> str:
    """A query string that ``parse_qsl(…, keep_blank_values=True)`` turns back into ``params``.

    Brackets in names and ``,@:/`` in values stay readable; everything else that
    could end a value or change a parameter (``& = # + % ;`` and spaces) is escaped.
    """
    # (_quote_value's test written out: it runs for every parameter of every compile.)
    return "&".join(
        [
            f"{_quote_name(name)}={value if _PLAIN_VALUE.issuperset(value) else _quote(value, ',@:/')}"
            for name, value in params
        ]
    )


# What quote() never escapes (letters, digits, ``_.-~``) plus the value's ``safe`` set: a value
# made only of these is its own encoding, and most are (ids, numbers, dates, plain words).
# (Sets of characters, not regexes: nothing to compile at start-up.)
_PLAIN_VALUE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-,@:/")
# The same for a parameter's name, whose ``safe`` set is the brackets (``filter[site_id]``).
_PLAIN_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-[]")


@functools.lru_cache(maxsize=1024)  # names come from the registry: a small set
def _quote_name(name: str) -> str:
    return name if _PLAIN_NAME.issuperset(name) else _quote(name, "[]")


def _quote_value(value: str) -> str:
    return value if _PLAIN_VALUE.issuperset(value) else _quote(value, ",@:/")


def _quote(text: str, safe: str) -> str:
    from urllib.parse import quote  # only for what needs escaping: urllib.parse costs start-up time

    return quote(text, safe=safe)

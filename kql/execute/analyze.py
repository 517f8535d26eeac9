"""``kql explain --analyze``: what a plan would cost, from one cheap count probe per listing.

Each listing of the plan (a branch's stream, each id set) is asked for one
record (``page[size]=1``); ``meta.total_count`` then tells how many pages the
full run needs. Probes run one after another: a plan has few listings, and the
point is to look before running, not to run.

A listing's count is only an upper bound of what its branch yields once exclusions
narrow it. Where inclusion–exclusion terms allow (kql/planning/counting.py), the
exact count of each narrowed branch and of the whole query follow from the probes
plus the few terms that are not listings (at most ``EXACT_TERMS`` more requests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from kql.execute.merging import Window
from kql.planning.counting import count_terms, with_site
from kql.planning.plan import Plan, encode

# Requests beyond the probes that exact counts may take.
EXACT_TERMS = 64


class Counter(Protocol):
    """What analysing needs of a client: its settings and the total of one listing (``Client.total``)."""

    max_page_size: int
    site_id: str | None

    def total(self, params: Sequence[tuple[str, str]]) -> int: ...


@attrs.frozen(slots=True)
class Probe:
    role: str  # "branch 1", "branch 1 exclude", …
    query_string: str
    count: int
    pages: int  # requests the full run makes for this listing
    exact: int | None = None  # a narrowed branch: what it yields, where terms can tell


@attrs.frozen(slots=True)
class Analysis:
    probes: tuple[Probe, ...]
    page_size: int
    lookups: int = 0  # catalogue requests made to resolve tag, offer and product names
    exact: int | None = None  # customers the query matches, where terms can tell
    term_requests: int = 0  # requests beyond the probes for the exact counts
    upper_bound: int = 0  # at most this many customers: the sum of the branches' listings

    @property
    def requests(self) -> int:
        return self.lookups + sum(p.pages for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "listings": [
                {"role": p.role, "request": p.query_string, "count": p.count, "pages": p.pages, "exact": p.exact}
                for p in self.probes
            ],
            "count": self.exact,
            "count_upper_bound": self.upper_bound,
            "term_requests": self.term_requests,
            "page_size": self.page_size,
            "estimated_requests": self.requests,
            "name_lookup_requests": self.lookups,
            "probe_requests": len(self.probes),
        }

    def explain(self) -> str:
        lines = [f"analysis ({len(self.probes)} count probe(s) with page[size]=1):"]
        width = max((len(p.role) for p in self.probes), default=0)
        for probe in self.probes:
            narrowed = f"; {probe.exact:,} after its exclusions (exact)" if probe.exact is not None else ""
            lines.append(
                f"  {probe.role.ljust(width)}  {probe.count:,} customer(s), {probe.pages} page(s) of {self.page_size}"
                + narrowed
            )
        names = f", {self.lookups} of them to look up names" if self.lookups else ""
        lines.append(f"estimated requests to run it: {self.requests} (without retries{names})")
        if self.exact is not None:
            extra = f"{self.term_requests} request(s) beyond the probes"
            lines.append(f"matching customers: {self.exact:,}, exact (inclusion–exclusion over the totals; {extra})")
        else:
            lines.append(f"matching customers: at most {self.upper_bound:,} (the branches' listings; kql count counts)")
        return "\n".join(lines)


def analyze(client: Counter, plan: Plan, lookups: int = 0) -> Analysis:
    size = client.max_page_size
    # An un-narrowed stream stops once the merged window is full (see kql.execute.planrun).
    needed = Window(limit=plan.limit, page=plan.page).needed
    totals = _Totals(client)
    probes: list[Probe] = []
    streams: list[int] = []  # the index of each branch's own probe
    for number, branch in enumerate(plan.branches, start=1):
        streams.append(len(probes))
        narrowed = bool(branch.exclude or branch.intersect or branch.local)
        listings = [(f"branch {number}", plan.stream_params(branch), branch.request, None if narrowed else needed)]
        listings += [(f"branch {number} exclude", plan.id_params(r), r, None) for r in branch.exclude]
        listings += [(f"branch {number} intersect", plan.id_params(r), r, None) for r in branch.intersect]
        for role, params, request, cap in listings:
            count = client.total(params)
            totals.known[frozenset(with_site(request.params, client.site_id))] = count
            fetched = count if cap is None else min(count, cap)
            probes.append(Probe(role, encode(params), count, max(1, math.ceil(fetched / size))))
    # Exact counts after the probes, so that terms which are listings cost nothing more.
    for index, branch in zip(streams, plan.branches, strict=True):
        if branch.exclude:
            probes[index] = attrs.evolve(probes[index], exact=totals.exact(attrs.evolve(plan, branches=(branch,))))
    total = totals.exact(plan)
    bound = sum(probes[i].count for i in streams)
    return Analysis(tuple(probes), size, lookups, total, totals.requests, bound)


class _Totals:
    """Term counts by parameter set: the probes' and those fetched for exact counts."""

    def __init__(self, client: Counter) -> None:
        self.client = client
        self.known: dict[frozenset[tuple[str, str]], int] = {}
        self.requests = 0

    def exact(self, plan: Plan) -> int | None:
        terms = count_terms(plan, self.client.site_id)
        if terms is None:
            return None
        missing = [t.params for t in terms.terms if frozenset(t.params) not in self.known]
        if self.requests + len(missing) > EXACT_TERMS:
            return None
        for params in missing:
            self.known[frozenset(params)] = self.client.total(list(params))
            self.requests += 1
        return sum(t.coefficient * self.known[frozenset(t.params)] for t in terms.terms)

"""``kql explain --analyze``: what a plan would cost, from one cheap count probe per listing.

Each listing of the plan (a branch's stream, each id set) is asked for one
record (``page[size]=1``); ``meta.total_count`` then tells how many pages the
full run needs. Probes run one after another: a plan has few listings, and the
point is to look before running, not to run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from kql.execute.merging import Window
from kql.planning.plan import Plan, encode


class Counter(Protocol):
    """What analysing needs of a client: the total of one listing (``Client.total``)."""

    max_page_size: int

    def total(self, params: Sequence[tuple[str, str]]) -> int: ...


@attrs.frozen(slots=True)
class Probe:
    role: str  # "branch 1", "branch 1 exclude", …
    query_string: str
    count: int
    pages: int  # requests the full run makes for this listing


@attrs.frozen(slots=True)
class Analysis:
    probes: tuple[Probe, ...]
    page_size: int
    lookups: int = 0  # catalogue requests made to resolve tag, offer and product names

    @property
    def requests(self) -> int:
        return self.lookups + sum(p.pages for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "listings": [
                {"role": p.role, "request": p.query_string, "count": p.count, "pages": p.pages} for p in self.probes
            ],
            "page_size": self.page_size,
            "estimated_requests": self.requests,
            "name_lookup_requests": self.lookups,
            "probe_requests": len(self.probes),
        }

    def explain(self) -> str:
        lines = [f"analysis ({len(self.probes)} count probe(s) with page[size]=1):"]
        width = max((len(p.role) for p in self.probes), default=0)
        for probe in self.probes:
            lines.append(
                f"  {probe.role.ljust(width)}  {probe.count:,} customer(s), {probe.pages} page(s) of {self.page_size}"
            )
        names = f", {self.lookups} of them to look up names" if self.lookups else ""
        lines.append(f"estimated requests to run it: {self.requests} (without retries{names})")
        return "\n".join(lines)


def analyze(client: Counter, plan: Plan, lookups: int = 0) -> Analysis:
    size = client.max_page_size
    # An un-narrowed stream stops once the merged window is full (see kql.execute.planrun).
    needed = Window(limit=plan.limit, page=plan.page).needed
    probes = []
    for number, branch in enumerate(plan.branches, start=1):
        narrowed = bool(branch.exclude or branch.intersect or branch.local)
        listings = [(f"branch {number}", plan.stream_params(branch), None if narrowed else needed)]
        listings += [(f"branch {number} exclude", plan.id_params(r), None) for r in branch.exclude]
        listings += [(f"branch {number} intersect", plan.id_params(r), None) for r in branch.intersect]
        for role, params, cap in listings:
            count = client.total(params)
            fetched = count if cap is None else min(count, cap)
            probes.append(Probe(role, encode(params), count, max(1, math.ceil(fetched / size))))
    return Analysis(tuple(probes), size, lookups)

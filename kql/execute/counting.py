"""Counting a plan exactly: by terms (one ``page[size]=1`` request each) or by listing.

The terms (``kql.planning.counting``) are sent concurrently, ``concurrency`` at a time,
and the count is Σ coefficient × ``meta.total_count``. Which way is cheaper:

- no term plan (local filters, intersections, too many terms, over ``max_requests``): listing;
- no more terms than listings (each listing is at least one request): terms;
- otherwise the terms that are also listings are counted first — their totals give the
  listing's pages — and the rest of the terms are sent only if they cost no more than
  those pages would; else the plan is listed (``count_plan``, ids only).

``page`` and ``limit`` do not change a count. The terms assume what the single-request
``count`` already does: ``meta.total_count`` is the number of distinct customers the
listing has.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

import attrs

from kql.execute.planrun import AsyncLister, SyncLister, count_plan, count_plan_async
from kql.planning.counting import MAX_TERMS, CountPlan, Term, count_terms
from kql.planning.plan import Plan


class _Settings(Protocol):
    site_id: str | None
    max_page_size: int
    concurrency: int
    stats: Counter[str]


class Client(_Settings, SyncLister, Protocol):
    """What counting needs of the synchronous client: its settings, listings, and one total."""

    def total(self, params: Sequence[tuple[str, str]]) -> int: ...


class AsyncClient(_Settings, AsyncLister, Protocol):
    """The asynchronous client, as counting uses it."""

    async def total(self, params: Sequence[tuple[str, str]]) -> int: ...

Method = Literal["terms", "listing"]


@attrs.frozen(slots=True)
class CountResult:
    count: int
    method: Method
    requests: int  # HTTP requests this count sent (retries included)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "method": self.method, "requests": self.requests}


def term_plan(client: Client | AsyncClient, plan: Plan, max_requests: int | None) -> CountPlan | None:
    limit = MAX_TERMS if max_requests is None else min(MAX_TERMS, max_requests)
    return count_terms(plan, client.site_id, max_terms=limit)


def count_exact(client: Client, plan: Plan, max_requests: int | None = None) -> CountResult:
    """How many customers ``plan`` matches: one request for a single-request plan, else the
    cheaper of terms and listing."""
    before = client.stats["requests"]
    if plan.matches_nothing:
        return CountResult(0, "terms", 0)
    if plan.single_request:
        return CountResult(client.total(plan.params), "terms", client.stats["requests"] - before)
    terms = term_plan(client, plan, max_requests)
    counts: dict[int, int] = {}
    if terms is not None and terms.requests > len(terms.listings):
        counts.update(_counted(client, terms.terms, terms.probes()))
        if not terms.terms_cheaper(counts, client.max_page_size):
            terms = None
    if terms is None:
        return CountResult(count_plan(client, plan), "listing", client.stats["requests"] - before)
    counts.update(_counted(client, terms.terms, [i for i in range(terms.requests) if i not in counts]))
    return CountResult(terms.total(counts), "terms", client.stats["requests"] - before)


async def count_exact_async(client: AsyncClient, plan: Plan, max_requests: int | None = None) -> CountResult:
    """``count_exact`` for the asynchronous client."""
    before = client.stats["requests"]
    if plan.matches_nothing:
        return CountResult(0, "terms", 0)
    if plan.single_request:
        return CountResult(await client.total(plan.params), "terms", client.stats["requests"] - before)
    terms = term_plan(client, plan, max_requests)
    counts: dict[int, int] = {}
    if terms is not None and terms.requests > len(terms.listings):
        counts.update(await _acounted(client, terms.terms, terms.probes()))
        if not terms.terms_cheaper(counts, client.max_page_size):
            terms = None
    if terms is None:
        return CountResult(await count_plan_async(client, plan), "listing", client.stats["requests"] - before)
    counts.update(await _acounted(client, terms.terms, [i for i in range(terms.requests) if i not in counts]))
    return CountResult(terms.total(counts), "terms", client.stats["requests"] - before)


def _counted(client: Client, terms: Sequence[Term], which: list[int]) -> dict[int, int]:
    """``meta.total_count`` of each term in ``which``, ``concurrency`` requests at a time."""
    if len(which) <= 1:
        return {i: client.total(terms[i].params) for i in which}
    # A pool of its own, as for id sets: the client's pool serves pages.
    with ThreadPoolExecutor(min(client.concurrency, len(which)), thread_name_prefix="kql-count") as pool:
        totals = pool.map(lambda i: client.total(terms[i].params), which)
        return dict(zip(which, totals, strict=True))


async def _acounted(client: AsyncClient, terms: Sequence[Term], which: list[int]) -> dict[int, int]:
    gate = asyncio.Semaphore(client.concurrency)

    async def one(i: int) -> int:
        async with gate:
            return await client.total(terms[i].params)

    totals = await asyncio.gather(*(one(i) for i in which))
    return dict(zip(which, totals, strict=True))

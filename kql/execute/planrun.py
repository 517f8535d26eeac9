"""Running a plan that needs more than one request (``kql.planning.plan`` says what a plan is).

For each branch: the id sets it excludes or intersects with are fetched first
(all of them at once, only ids, the largest pages), then its listing is streamed
in the merge order and narrowed by those sets and its local filters. The
branches' streams are merged lazily (k-way, on the sort key with id as
tie-break), duplicates removed by id, and ``page``/``limit`` applied to the
merged stream — so ``limit 10`` over a 4-way ``or`` stops after about ten
customers per branch, not after every page of every branch.

Both clients use this: the synchronous one with threads, the asynchronous one
with tasks; the pure parts (order, narrowing, window) live in ``kql.execute.merging``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import attrs

from kql.execute.base import ListingLike
from kql.execute.idset import IdSet
from kql.execute.merging import Narrowing, OrderCheck, Record, SortKey, Window, merge, order_key
from kql.execute.pagination import Pager
from kql.execute.streams import AsyncCustomers, Customers
from kql.planning.plan import Branch, Plan, Request


class Lister(Protocol):
    """What a plan run needs of a client: a pager for a listing (``ClientBase._pager``)."""

    def _pager(self, compiled: ListingLike, limit: int | None = None) -> Pager: ...


class SyncLister(Lister, Protocol):
    """The synchronous client, as the runner uses it: a listing's records, page by page."""

    def _records(self, pager: Pager) -> Generator[Record, None, None]: ...


class AsyncLister(Lister, Protocol):
    """The asynchronous client, as the runner uses it."""

    def _records(self, pager: Pager, nothing: bool) -> AsyncGenerator[Record, None]: ...


# Id-set listings fetched at the same time (each also pages concurrently).
MAX_PARALLEL_ID_SETS = 4


@attrs.frozen(slots=True)
class Listing:
    """One listing of a plan, in the shape the client's pager reads."""

    params: list[tuple[str, str]]
    limit: int | None = None
    page: tuple[int, int] | None = None
    sort: str | None = None
    matches_nothing: bool = False


class PlanRun:
    """What a plan's run has done so far, read as a Pager's tally is (kql.execute.client.Tally)."""

    def __init__(self, client: Lister, plan: Plan, limit: int | None) -> None:
        self.client, self.plan = client, plan
        if limit is not None and plan.limit is not None:
            limit = min(limit, plan.limit)
        elif limit is None:
            limit = plan.limit
        self.window = Window(limit=limit, page=plan.page, strip=plan.strip)
        key, reverse = order_key(plan.merge_order)
        self.order = OrderCheck(key, reverse)
        self.pagers: list[Pager] = []

    # Totals are unknown until every listing has answered: the bar shows pages so far.
    total_pages: int | None = None
    first_total: int | None = None

    @property
    def pages_seen(self) -> int:
        return sum(p.pages_seen for p in self.pagers)

    @property
    def yielded(self) -> int:
        return self.window.yielded

    def warnings(self) -> list[str]:
        found = [w for p in self.pagers for w in p.warnings()]
        if self.order.disorders:
            found.append(
                f"{self.order.disorders} customer(s) came back out of {self.plan.merge_order} order; "
                "the merged output may be out of order there (no customer is lost or repeated)"
            )
        return list(dict.fromkeys(found))

    # -- building the listings -------------------------------------------------

    def stream_pager(self, branch: Branch) -> Pager:
        narrowed = bool(branch.exclude or branch.intersect or branch.local)
        # Only an un-narrowed stream can stop early by count: a narrowed one drops records after paging.
        limit = None if narrowed else self.window.needed
        pager = self.client._pager(Listing(self.plan.stream_params(branch)), limit)
        self.pagers.append(pager)
        return pager

    def id_pager(self, request: Request) -> Pager:
        pager = self.client._pager(Listing(self.plan.id_params(request)))
        self.pagers.append(pager)
        return pager

    def id_requests(self) -> list[Request]:
        """Every distinct exclude/intersect listing of the plan (branches often share them)."""
        return list(dict.fromkeys(r for b in self.plan.branches for r in (*b.exclude, *b.intersect)))

    def narrowing(self, branch: Branch, ids: dict[Request, IdSet]) -> Narrowing:
        return Narrowing([ids[r] for r in branch.exclude], [ids[r] for r in branch.intersect], branch.local)


def counting(plan: Plan) -> Plan:
    """The plan reduced to what counting its customers needs: no page or limit, the fewest fields."""
    needed = [f.attribute for b in plan.branches for f in b.local] + [plan.merge_order.lstrip("-")]
    return attrs.evolve(plan, select=None, fetch=tuple(dict.fromkeys(needed)), strip=(), limit=None, page=None)


def count_plan(client: SyncLister, plan: Plan) -> int:
    with run_plan(client, counting(plan)) as customers:
        return sum(1 for _ in customers)


async def count_plan_async(client: AsyncLister, plan: Plan) -> int:
    async with run_plan_async(client, counting(plan)) as customers:
        return sum([1 async for _ in customers])


def run_plan(client: SyncLister, plan: Plan, limit: int | None = None) -> Customers:
    run = PlanRun(client, plan, limit)
    return Customers(run, _records(client, run))


def _records(client: SyncLister, run: PlanRun) -> Generator[Record, None, None]:
    if run.window.finished:
        return
    requests = run.id_requests()
    ids: dict[Request, IdSet] = {}
    if requests:
        # A pool of its own: id-set jobs wait on page fetches that run on the client's pool.
        with ThreadPoolExecutor(min(MAX_PARALLEL_ID_SETS, len(requests)), thread_name_prefix="kql-ids") as pool:
            pagers = [run.id_pager(r) for r in requests]
            futures = [pool.submit(_id_set, client, p) for p in pagers]
            ids = {r: f.result() for r, f in zip(requests, futures, strict=True)}
    streams = [_narrowed(client, run, b, ids) for b in run.plan.branches]
    merged = merge(streams, run.plan.merge_order, run.order)
    try:
        yield from run.window.apply(merged)
    finally:
        for stream in streams:
            stream.close()


def _id_set(client: SyncLister, pager: Pager) -> IdSet:
    found = IdSet()
    for record in client._records(pager):
        found.add(record["id"])
    return found


def _narrowed(
    client: SyncLister, run: PlanRun, branch: Branch, ids: dict[Request, IdSet]
) -> Generator[Record, None, None]:
    records = client._records(run.stream_pager(branch))
    narrowing = run.narrowing(branch, ids)
    try:
        yield from (r for r in records if narrowing.keeps(r))
    finally:
        records.close()


# ---- asynchronous --------------------------------------------------------------------


def run_plan_async(client: AsyncLister, plan: Plan, limit: int | None = None) -> AsyncCustomers:
    run = PlanRun(client, plan, limit)
    return AsyncCustomers(run, _arecords(client, run))


async def _arecords(client: AsyncLister, run: PlanRun) -> AsyncGenerator[Record, None]:
    if run.window.finished:
        return
    requests = run.id_requests()
    sets = await asyncio.gather(*(_aid_set(client, run.id_pager(r)) for r in requests))
    ids = dict(zip(requests, sets, strict=True))
    streams = [_anarrowed(client, run, b, ids) for b in run.plan.branches]
    key, reverse = order_key(run.plan.merge_order)
    merged = _amerge([_awatch(s, run.order) for s in streams], key, reverse)
    try:
        async for record in merged:
            for kept in run.window.apply((record,)):
                yield kept
            if run.window.finished:
                return
    finally:
        await merged.aclose()
        for stream in streams:
            await stream.aclose()


async def _aid_set(client: AsyncLister, pager: Pager) -> IdSet:
    found = IdSet()
    async for record in client._records(pager, False):
        found.add(record["id"])
    return found


async def _anarrowed(
    client: AsyncLister, run: PlanRun, branch: Branch, ids: dict[Request, IdSet]
) -> AsyncGenerator[Record, None]:
    records = client._records(run.stream_pager(branch), False)
    narrowing = run.narrowing(branch, ids)
    try:
        async for record in records:
            if narrowing.keeps(record):
                yield record
    finally:
        await records.aclose()


async def _awatch(records: AsyncIterator[Record], check: OrderCheck) -> AsyncGenerator[Record, None]:
    previous: SortKey | None = None
    async for record in records:
        previous = check.see(record, previous)
        yield record


class _Reversed:
    """A sort key that orders backwards, for a min-heap serving a descending merge."""

    __slots__ = ("key",)

    def __init__(self, key: SortKey) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


async def _amerge(
    streams: Sequence[AsyncIterator[Record]], key: Callable[[Record], SortKey], reverse: bool
) -> AsyncGenerator[Record, None]:
    """heapq.merge for async streams: one record per stream in the heap at a time."""
    heap: list[tuple[Any, int, Record]] = []

    def entry(index: int, record: Record) -> tuple[Any, int, Record]:
        sort_key = key(record)
        return (_Reversed(sort_key) if reverse else sort_key, index, record)

    for index, stream in enumerate(streams):
        first = await anext(stream, None)
        if first is not None:
            heap.append(entry(index, first))
    heapq.heapify(heap)
    while heap:
        _, index, record = heap[0]
        yield record
        following = await anext(streams[index], None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, entry(index, following))

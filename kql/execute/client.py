"""``kql.Client``: run KQL queries against the Kajabi API, synchronously.

    with kql.Client(token="…", site_id="123") as client:
        for customer in client.customers("net_revenue > 100 sort -created_at"):
            print(customer["id"], customer["email"])

The client owns one httpx client. The first page of a listing tells how many pages
there are; the rest are fetched concurrently (``concurrency`` at a time, a bounded
window ahead of the reader) and yielded in page order, so memory stays flat however
large the result. The policy pieces live in small modules: base (settings, what an
answer means), auth (tokens), retry (when and how long), pagination (which pages,
checks, dedupe), origin (where the token may go), errors (what failed).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from types import TracebackType
from typing import Any

import httpx

from kql.execute import deadline, pools, targets, timeline
from kql.execute.auth import TokenSource
from kql.execute.base import (
    _AGAIN,
    _RETRY,
    CUSTOMERS_PATH,
    TOKEN_PATH,
    ClientBase,
    Download,
    _Exchange,
    _Stopped,
    request_target,
)
from kql.execute.counting import count_exact
from kql.execute.errors import ExecutorError
from kql.execute.pagination import Page, Pager, Record, parse_page
from kql.execute.planrun import run_plan
from kql.execute.retry import RetryPolicy
from kql.execute.state import Snapshot
from kql.execute.streams import Customers
from kql.execute.targets import Runnable, prepare
from kql.execute.timeline import Changes
from kql.language.ast import Query
from kql.planning.lookups import check_before_lookups
from kql.planning.names import Resolver
from kql.planning.plan import Plan
from kql.planning.segments import Segments

__all__ = ["Client", "Customers", "RetryPolicy", "prepare"]


class Client(ClientBase):
    """Synchronous client; page requests run on a small thread pool over one ``httpx.Client``.

    Constructor parameters: ``help(kql.Client.__init__)``; ``Client.from_env()`` reads the environment.
    """

    _tokens: TokenSource

    def _open(self) -> None:
        self._http = httpx.Client(**self._httpx_options())
        # Every connect, read and write within what is left of the attempt (see kql.execute.deadline).
        self.bounded = deadline.install(self._http)
        # A connection pool per sending thread, so the workers never queue on one pool's lock
        # (kql.execute.pools); after the deadline, whose backend each thread's pool takes over.
        self.pooled_per_thread = pools.install(self._http)
        self._tokens = TokenSource(self._credentials, self._grant)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._names: Resolver | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def names(self) -> Resolver:
        """Resolves tag, offer and product names (``has_tag("VIP")``); catalogues are cached for the
        client's life — ``client.names.clear()`` to fetch them again."""
        if self._names is None:
            self._names = Resolver(self)
        return self._names

    def resolve(self, query: str | Query) -> str | Query:
        """``query`` with tag, offer and product names replaced by ids (unchanged without names)."""
        found = targets.parsed(query)
        if found is None or not targets.has_names(found[0]):
            return query
        check_before_lookups(*found)  # other mistakes first, before any catalogue is fetched
        return self.names.resolve(*found)

    def catalogue(self, kind: str, site: str | None = None) -> list[tuple[str, str]]:
        """Every ``(id, name)`` of one kind (``tag``, ``offer``, ``product``), walking all pages;
        in ``site``, else the client's ``site_id`` (the planner's ``CatalogueSource``)."""
        walk = self._catalogue_walk(kind, site)
        while (params := walk.next_params()) is not None:
            walk.accept(self._send("GET", self._url(walk.path), params=params))
        return walk.found()

    def plan(self, query: Runnable, *, segments: Segments | None = None, max_requests: int | None = None) -> Plan:
        """The plan this client would run for ``query``: segments expanded, names resolved (the
        catalogues are fetched, nothing else), refused with E308 past ``max_requests`` listings."""
        found = targets.parsed(query, segments)
        if found is None:
            return targets.planned(query, max_requests)  # type: ignore[arg-type]
        expanded, source = found
        if targets.has_names(expanded):
            check_before_lookups(expanded, source, max_requests)
            expanded = self.names.resolve(expanded, source)
        return targets.plan(expanded, source, max_requests)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def customers(
        self,
        query: Runnable,
        *,
        limit: int | None = None,
        max_requests: int | None = None,
        segments: Segments | None = None,
    ) -> Customers:
        """Every customer the query matches, lazily, in the query's order.

        Any KQL expression: one that needs several requests runs as a plan, refused with
        E308 before anything is sent if it needs more than ``max_requests`` listings;
        ``@name`` expands from ``segments``; tag, offer and product names are resolved to ids
        first. ``limit`` caps the stream (with the query's own ``limit``, the smaller wins).
        """
        plan = self.plan(query, segments=segments, max_requests=max_requests)
        if not (plan.single_request or plan.matches_nothing):
            return run_plan(self, plan, limit)
        pager = self._pager(plan, limit)
        records: Iterator[Record] = iter(()) if plan.matches_nothing else self._records(pager)
        return Customers(pager, records)

    def count(self, query: Runnable, *, max_requests: int | None = None, segments: Segments | None = None) -> int:
        """How many customers the query matches (``page`` and ``limit`` aside).

        One request for a single record when the API can answer it; a plan by the cheaper of
        its inclusion–exclusion terms and listing (kql/execute/counting.py).
        """
        plan = self.plan(query, segments=segments, max_requests=max_requests)
        return count_exact(self, plan, max_requests).count

    def total(self, params: Sequence[tuple[str, str]]) -> int:
        """``meta.total_count`` of one listing: one request for a single record."""
        return self._total(self._send("GET", self._url(CUSTOMERS_PATH), params=self._count_params(params)))

    # -- paging ---------------------------------------------------------------

    def _records(self, pager: Pager) -> Generator[Record, None, None]:
        first = self._fetch(pager, pager.first_number)
        records = pager.accept(first)
        rest = pager.rest(first)
        if rest is None:  # no total_pages: one page after another while they come back full
            yield from records
            page = first
            while pager.wants_next(page):
                page = self._fetch(pager, page.number + 1)
                if pager.behind(page):
                    page = self._again(pager, page)
                yield from pager.accept(page)
            self._finished(pager)
            return
        numbers = iter(rest)
        pool = self._executor()
        stop = threading.Event()  # set when the stream ends: requests still retrying give up at once
        # The next pages are asked for before the first page's customers are handed out: the
        # reader's time on them overlaps the requests, as it does for every later page. The pool
        # only fetches; this thread decodes each page as its turn comes (``_page``), so a worker
        # sends its next request as soon as it has read a body, not after the JSON work on it.
        window: deque[tuple[int, Future[Download]]] = deque(
            (n, pool.submit(self._download, pager, n, stop)) for n in islice(numbers, self.lookahead)
        )
        try:
            yield from records
            while window and not pager.finished:
                number, download = window.popleft()
                page = self._page(pager, number, download.result(), stop)
                if pager.behind(page):
                    page = self._again(pager, page, stop)
                yield from pager.accept(page)
                following = next(numbers, None)
                if following is not None and not pager.finished:
                    window.append((following, pool.submit(self._download, pager, following, stop)))
            self._finished(pager)
        finally:
            stop.set()
            for _, future in window:
                future.cancel()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="kql-page")
            return self._pool

    def _fetch(self, pager: Pager, number: int, stop: threading.Event | None = None) -> Page:
        """Page ``number``, fetched and decoded on this thread."""
        return self._page(pager, number, self._download(pager, number, stop), stop)

    def _download(self, pager: Pager, number: int, stop: threading.Event | None = None) -> Download:
        """A page's request and its body off the wire, not decoded (a pool thread's whole job)."""
        url, params = self._page_request(pager, number)
        download: Download = self._send("GET", url, params=params, stop=stop, decode=False)
        return download

    def _page(self, pager: Pager, number: int, download: Download, stop: threading.Event | None) -> Page:
        """The page in ``download``, decoded and checked: a body that is not JSON is asked for again
        (the same exchange's retries), a short page once more."""
        page = parse_page(number, self._decoded(download, stop))
        if pager.is_short(page):  # once more: a hiccup of the server's, or customers really missing
            self._count("fault:short-page")
            url, params = self._page_request(pager, number)
            again = parse_page(number, self._send("GET", url, params=params, stop=stop))
            page = again if len(again.records) >= len(page.records) else page
        return page

    def _decoded(self, download: Download, stop: threading.Event | None) -> Any:
        decoded = download.exchange.decode(download.body)
        if decoded is _RETRY:
            return self._complete(download.exchange, None, stop, retrying=True)
        return decoded

    def _again(self, pager: Pager, page: Page, stop: threading.Event | None = None) -> Page:
        """``page`` once more: it was served before the page ahead of it (``Pager.behind``)."""
        self._count("fault:stale-page")
        return self._fetch(pager, page.number, stop)

    # -- one request, with auth, redirects and retries ------------------------

    def _grant(self, form: dict[str, str]) -> Mapping[str, Any]:
        self._count("token-grant")
        body = self._send("POST", self._url(TOKEN_PATH), data=form, authorize=False)
        if not isinstance(body, dict):
            raise ExecutorError("the token endpoint did not answer with a JSON object")
        return body

    def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        data: dict[str, str] | None = None,
        authorize: bool = True,
        stop: threading.Event | None = None,
        decode: bool = True,
    ) -> Any:
        """The decoded body of a successful answer (a ``Download`` if not ``decode``)."""
        return self._complete(_Exchange(self, method, url, params, authorize), data, stop, decode=decode)

    def _complete(
        self,
        exchange: _Exchange,
        data: dict[str, str] | None,
        stop: threading.Event | None,
        *,
        decode: bool = True,
        retrying: bool = False,
    ) -> Any:
        """``exchange`` to its end: attempts until an answer is final, waiting between them; first the
        wait after a failure already seen if ``retrying`` (a body that turned out not to be JSON)."""
        while True:
            if retrying:
                delay = exchange.delay()  # raises the failure when retrying is over
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    raise _Stopped()
            retrying = True
            if stop is not None and stop.is_set():
                raise _Stopped()
            headers: dict[str, str] = {}
            generation = 0
            if exchange.authorize:
                token, generation = self._tokens.get()
                headers["Authorization"] = f"Bearer {token}"
            exchange.start()
            try:
                response, body = self._attempt(exchange.method, exchange.url, exchange.params, data, headers)
            except httpx.TransportError as exc:
                exchange.transport_failed(exc)
            else:
                step = exchange.answered(response, body, generation, decode)
                if step is _AGAIN:
                    retrying = False
                elif step is not _RETRY:
                    return step

    def _attempt(
        self,
        method: str,
        url: httpx.URL,
        params: list[tuple[str, Any]] | None,
        data: dict[str, str] | None,
        headers: dict[str, str],
    ) -> tuple[httpx.Response, bytearray]:
        """One attempt: the (closed) response and its body, within ``timeout`` from connect to last
        byte (a server trickling its headers or body a byte a second is cut off: kql.execute.deadline),
        its body capped in size."""
        until = time.monotonic() + self.timeout
        target, query = request_target(url, params)
        request = self._http.build_request(method, target, params=query, data=data, headers=headers)
        cap = self.max_body_bytes
        with deadline.within(self.timeout, str(self._too_slow(request))):
            response = self._http.send(request, stream=True)
            try:
                self._check_length(response)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise self._too_large(response)
                    if time.monotonic() > until:  # also where the backend could not be installed
                        raise self._too_slow(request)
            finally:
                response.close()
        return response, body

    def snapshot(self, query: str | Query, **options: Any) -> Snapshot:
        """Record who matches ``query`` (``"@vip"``, or an expression with ``name=``) in the state store.

        Options as ``kql.execute.timeline.snapshot``: name, state, segments, keep, batch."""
        return timeline.snapshot(self, query, **options)

    def diff(self, query: str | Query, **options: Any) -> Changes:
        """Entered / left / changed since the last snapshot: ``with client.diff("@vip") as changes: …``.

        Options as ``kql.execute.timeline.diff``: name, state, segments, since, dry_run,
        accept_new_definition, keep, batch."""
        return timeline.diff(self, query, **options)

"""``kql.AsyncClient``: the client for asyncio programs, over one ``httpx.AsyncClient``.

Pages run as tasks, ``concurrency`` at a time, in a bounded window ahead of the
reader; everything else (settings, retries, what an answer means) is ``ClientBase``'s,
shared with the synchronous ``kql.Client``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from itertools import islice
from types import TracebackType
from typing import Any

import httpx

from kql.execute import targets
from kql.execute.auth import AsyncTokenSource
from kql.execute.base import (
    _AGAIN,
    _RETRY,
    CUSTOMERS_PATH,
    TOKEN_PATH,
    ClientBase,
    Download,
    _Exchange,
    request_target,
)
from kql.execute.counting import count_exact_async
from kql.execute.errors import ExecutorError
from kql.execute.pagination import Page, Pager, Record, parse_page
from kql.execute.planrun import run_plan_async
from kql.execute.streams import AsyncCustomers, ResolvingCustomers
from kql.execute.targets import Runnable
from kql.language.ast import Query
from kql.planning.lookups import check_before_lookups
from kql.planning.names import AsyncResolver
from kql.planning.plan import Plan
from kql.planning.segments import Segments

__all__ = ["AsyncClient"]


class AsyncClient(ClientBase):
    """Asynchronous client over one ``httpx.AsyncClient``; pages run as tasks, ``concurrency`` at a time.

    Constructor parameters and ``from_env()``: as ``kql.Client``.
    """

    _tokens: AsyncTokenSource

    def _open(self) -> None:
        self._http = httpx.AsyncClient(**self._httpx_options())
        self._tokens = AsyncTokenSource(self._credentials, self._grant)
        self._gate: asyncio.Semaphore | None = None
        self._names: AsyncResolver | None = None

    @property
    def names(self) -> AsyncResolver:
        """Resolves tag, offer and product names; catalogues cached for the client's life."""
        if self._names is None:
            self._names = AsyncResolver(self)
        return self._names

    async def resolve(self, query: str | Query) -> str | Query:
        """``query`` with tag, offer and product names replaced by ids (unchanged without names)."""
        found = targets.parsed(query)
        if found is None or not targets.has_names(found[0]):
            return query
        check_before_lookups(*found)  # other mistakes first, before any catalogue is fetched
        return await self.names.resolve(*found)

    async def catalogue(self, kind: str, site: str | None = None) -> list[tuple[str, str]]:
        """``Client.catalogue`` for the asynchronous client."""
        walk = self._catalogue_walk(kind, site)
        while (params := walk.next_params()) is not None:
            walk.accept(await self._send("GET", self._url(walk.path), params=params))
        return walk.found()

    async def plan(self, query: Runnable, *, segments: Segments | None = None, max_requests: int | None = None) -> Plan:
        """``Client.plan``: the plan this client would run, names resolved."""
        found = targets.parsed(query, segments)
        if found is None:
            return targets.planned(query, max_requests)  # type: ignore[arg-type]
        expanded, source = found
        if targets.has_names(expanded):
            check_before_lookups(expanded, source, max_requests)
            expanded = await self.names.resolve(expanded, source)
        return targets.plan(expanded, source, max_requests)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def customers(
        self,
        query: Runnable,
        *,
        limit: int | None = None,
        max_requests: int | None = None,
        segments: Segments | None = None,
    ) -> AsyncCustomers | ResolvingCustomers:
        """``Client.customers`` as an async stream: ``async for record in client.customers(q)``."""
        found = targets.parsed(query, segments)
        if found is not None and targets.has_names(found[0]):
            # Names need the catalogues: resolved on the first read; other mistakes now, as without names.
            check_before_lookups(*found, max_requests)
            return ResolvingCustomers(self._resolved_stream(*found, limit=limit, max_requests=max_requests))
        plan = targets.prepare(query, segments=segments, max_requests=max_requests)
        return self._stream(plan, limit)

    async def _resolved_stream(
        self, query: Query, source: str | None, *, limit: int | None, max_requests: int | None
    ) -> AsyncCustomers:
        resolved = await self.names.resolve(query, source)  # checked already
        return self._stream(targets.plan(resolved, source, max_requests), limit)

    def _stream(self, plan: Plan, limit: int | None) -> AsyncCustomers:
        if not (plan.single_request or plan.matches_nothing):
            return run_plan_async(self, plan, limit)
        pager = self._pager(plan, limit)
        return AsyncCustomers(pager, self._records(pager, plan.matches_nothing))

    async def count(self, query: Runnable, *, max_requests: int | None = None, segments: Segments | None = None) -> int:
        """``Client.count`` for the asynchronous client."""
        plan = await self.plan(query, segments=segments, max_requests=max_requests)
        return (await count_exact_async(self, plan, max_requests)).count

    async def total(self, params: Sequence[tuple[str, str]]) -> int:
        """``meta.total_count`` of one listing: one request for a single record."""
        return self._total(await self._send("GET", self._url(CUSTOMERS_PATH), params=self._count_params(params)))

    async def _records(self, pager: Pager, nothing: bool) -> AsyncGenerator[Record, None]:
        if nothing:
            return
        first = await self._fetch(pager, pager.first_number)
        records = pager.accept(first)
        rest = pager.rest(first)
        if rest is None:
            for record in records:
                yield record
            page = first
            while pager.wants_next(page):
                page = await self._fetch(pager, page.number + 1)
                if pager.behind(page):
                    page = await self._again(pager, page)
                for record in pager.accept(page):
                    yield record
            self._finished(pager)
            return
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrency)
        gate = self._gate

        async def gated(number: int) -> Download:
            async with gate:  # the request only: its slot is free for the next page before this one is decoded
                return await self._download(pager, number)

        numbers = iter(rest)
        # As Client._records: the next pages are under way while the first one's customers are read,
        # and each page is decoded here, in its turn, not in the task that fetched it.
        window: deque[tuple[int, asyncio.Task[Download]]] = deque(
            (n, asyncio.ensure_future(gated(n))) for n in islice(numbers, self.lookahead)
        )
        try:
            for record in records:
                yield record
            while window and not pager.finished:
                number, download = window.popleft()
                page = await self._page(pager, number, await download)
                if pager.behind(page):
                    page = await self._again(pager, page)
                for record in pager.accept(page):
                    yield record
                following = next(numbers, None)
                if following is not None and not pager.finished:
                    window.append((following, asyncio.ensure_future(gated(following))))
            self._finished(pager)
        finally:
            tasks = [task for _, task in window]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # collect them: no "never retrieved" noise

    async def _fetch(self, pager: Pager, number: int) -> Page:
        """Page ``number``, fetched and decoded (as Client._fetch)."""
        return await self._page(pager, number, await self._download(pager, number))

    async def _download(self, pager: Pager, number: int) -> Download:
        """A page's request and its body, not decoded (as Client._download)."""
        url, params = self._page_request(pager, number)
        download: Download = await self._send("GET", url, params=params, decode=False)
        return download

    async def _page(self, pager: Pager, number: int, download: Download) -> Page:
        """The page in ``download``, decoded and checked (as Client._page)."""
        decoded = download.exchange.decode(download.body)
        if decoded is _RETRY:  # not JSON: the same exchange goes on, its back-off first
            decoded = await self._complete(download.exchange, None, retrying=True)
        page = parse_page(number, decoded)
        if pager.is_short(page):  # once more, as Client._page
            self._count("fault:short-page")
            url, params = self._page_request(pager, number)
            again = parse_page(number, await self._send("GET", url, params=params))
            page = again if len(again.records) >= len(page.records) else page
        return page

    async def _again(self, pager: Pager, page: Page) -> Page:
        """``page`` once more: it was served before the page ahead of it (``Pager.behind``)."""
        self._count("fault:stale-page")
        return await self._fetch(pager, page.number)

    async def _grant(self, form: dict[str, str]) -> Mapping[str, Any]:
        self._count("token-grant")
        body = await self._send("POST", self._url(TOKEN_PATH), data=form, authorize=False)
        if not isinstance(body, dict):
            raise ExecutorError("the token endpoint did not answer with a JSON object")
        return body

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        data: dict[str, str] | None = None,
        authorize: bool = True,
        decode: bool = True,
    ) -> Any:
        """The decoded body of a successful answer (a ``Download`` if not ``decode``)."""
        return await self._complete(_Exchange(self, method, url, params, authorize), data, decode=decode)

    async def _complete(
        self, exchange: _Exchange, data: dict[str, str] | None, *, decode: bool = True, retrying: bool = False
    ) -> Any:
        """The same loop as Client._complete, awaiting instead of blocking."""
        while True:
            if retrying:
                await asyncio.sleep(exchange.delay())  # raises the failure when retrying is over
            retrying = True
            headers: dict[str, str] = {}
            generation = 0
            if exchange.authorize:
                token, generation = await self._tokens.get()
                headers["Authorization"] = f"Bearer {token}"
            exchange.start()
            try:
                response, body = await self._attempt(exchange.method, exchange.url, exchange.params, data, headers)
            except httpx.TransportError as exc:
                exchange.transport_failed(exc)
            else:
                step = exchange.answered(response, body, generation, decode)
                if step is _AGAIN:
                    retrying = False
                elif step is not _RETRY:
                    return step

    async def _attempt(
        self,
        method: str,
        url: httpx.URL,
        params: list[tuple[str, Any]] | None,
        data: dict[str, str] | None,
        headers: dict[str, str],
    ) -> tuple[httpx.Response, bytearray]:
        """One attempt within ``timeout`` from connect to last byte: the (closed) response and its
        body, capped in size."""
        target, query = request_target(url, params)
        request = self._http.build_request(method, target, params=query, data=data, headers=headers)
        cap = self.max_body_bytes
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.send(request, stream=True)
                try:
                    self._check_length(response)
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > cap:
                            raise self._too_large(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise self._too_slow(request) from None
        return response, body

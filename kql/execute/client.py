"""``kql.Client`` and ``kql.AsyncClient``: run KQL queries against the Kajabi API.

    with kql.Client(token="…", site_id="123") as client:
        for customer in client.customers("net_revenue > 100 sort -created_at"):
            print(customer["id"], customer["email"])

Each client owns one httpx client. The first page of a query tells how many
pages there are; the rest are fetched concurrently (``concurrency`` at a time,
a bounded window ahead of the reader) and yielded in page order, so memory
stays flat however large the result. The policy pieces live in small modules:
auth (tokens), retry (when and how long), pagination (which pages, checks,
dedupe), origin (where the token may go), apierror (what failed).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from kql.execute.auth import AsyncTokenSource, ClientCredentials, Credentials, StaticToken, TokenSource
from kql.execute.errors import APIError, ConfigError, ExecutorError, PaginationError, RedirectRefused, TransportError
from kql.execute.origin import check_base_url, describe_origin, same_origin
from kql.execute.pagination import DEFAULT_MAX_PAGE_SIZE, Page, Pager, Record, parse_page
from kql.execute.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from kql.execute.state import Snapshot
    from kql.execute.timeline import Changes
    from kql.language.ast import Query
    from kql.planning.names import AsyncResolver, Resolver
    from kql.planning.planner import Plan
    from kql.planning.segments import Segments

__all__ = ["AsyncClient", "AsyncCustomers", "Client", "Customers", "RetryPolicy"]

DEFAULT_BASE_URL = "https://api.kajabi.com"
CUSTOMERS_PATH = "/v1/customers"
TOKEN_PATH = "/v1/oauth/token"
MAX_REDIRECTS = 5
LOOKAHEAD_PER_WORKER = 4
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class CompiledLike(Protocol):
    """What the executor reads from ``kql.compile``: one request and how to page it."""

    @property
    def params(self) -> list[tuple[str, str]]: ...
    @property
    def matches_nothing(self) -> bool: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def page(self) -> tuple[int, int | None] | None: ...
    @property
    def sort(self) -> str | None: ...


def prepare(
    query: str | Query | CompiledLike | Plan,
    *,
    segments: Segments | None = None,
    max_requests: int | None = None,
) -> CompiledLike | Plan:
    """A query as the clients run it: one compiled request where that is enough, else a plan.

    Compiled queries and plans pass through unchanged.
    """
    if not isinstance(query, str) and (hasattr(query, "params") or hasattr(query, "branches")):
        if hasattr(query, "branches"):
            from kql.planning.planner import check_budget

            check_budget(query, max_requests)  # type: ignore[arg-type]
        return query  # type: ignore[return-value]
    from kql.planning.planner import compile_or_plan

    return compile_or_plan(query, segments, max_requests)


def _parsed(query: object) -> tuple[Query, str | None] | None:
    """(the query parsed, its text) for KQL text or a Query; None for a Compiled or a Plan."""
    from kql.language.ast import Query

    if isinstance(query, str):
        from kql.language.parser import parse

        return parse(query), query
    return (query, None) if isinstance(query, Query) else None


def _named(query: Query) -> bool:
    from kql.planning.names import find_names

    return bool(find_names(query))


def _compiled_or_planned(query: Query, source: str | None, max_requests: int | None) -> CompiledLike | Plan:
    from kql.planning.planner import compile_or_plan

    # A resolved query keeps the original spans: the text goes back in for the carets.
    return compile_or_plan(query, max_requests=max_requests, source=source)


def _retryable(exc: httpx.TransportError) -> bool:
    # Timeouts, refused/reset connections, and a peer closing mid-response. Not: bad
    # URLs, unsupported protocols, proxies misconfigured locally, local protocol misuse.
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def _describe(exc: httpx.TransportError) -> str:
    kind = {
        httpx.ConnectTimeout: "connection timed out",
        httpx.ReadTimeout: "read timed out",
        httpx.WriteTimeout: "write timed out",
        httpx.PoolTimeout: "no free connection in time",
        httpx.ConnectError: "could not connect",
        httpx.RemoteProtocolError: "the connection was dropped or the response was malformed",
        httpx.ReadError: "the connection failed while reading",
    }.get(type(exc), type(exc).__name__)
    detail = str(exc).strip()
    return f"{kind} ({detail})" if detail and len(detail) < 200 else kind


def _fault_name(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    return "dropped"


class _Stopped(ExecutorError):
    """The stream this request belonged to has ended; nobody will read the page."""


class _Base:
    """Configuration, request building and response handling shared by both clients."""

    _tokens: TokenSource | AsyncTokenSource

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        site_id: str | int | None = None,
        timeout: float = 30.0,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        insecure: bool = False,
        lookahead: int | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, insecure=insecure)
        if token is not None and (client_id or client_secret):
            raise ConfigError("give either a token or a client id and secret, not both")
        self._credentials: Credentials
        if token is not None:
            try:
                self._credentials = StaticToken(token)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        elif client_id or client_secret:
            if not (client_id and client_secret):
                raise ConfigError("OAuth needs both a client id and a client secret")
            self._credentials = ClientCredentials(client_id, client_secret)
        else:
            raise ConfigError("no credentials: give a token, or a client id and client secret")
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if max_page_size < 1:
            raise ConfigError("max_page_size must be at least 1")
        if timeout <= 0:
            raise ConfigError("timeout must be positive")
        self.site_id = None if site_id is None else str(site_id)
        self.timeout = timeout
        self.concurrency = concurrency
        # Pages requested ahead of the reader. Wider than `concurrency`, so one page stuck in a
        # Retry-After wait does not idle the others; bounded, so memory does not grow with the result.
        self.lookahead = max(lookahead or LOOKAHEAD_PER_WORKER * concurrency, concurrency)
        self.retry = retry or RetryPolicy()
        self.max_page_size = max_page_size
        # Counters for progress, tests and benchmarks: requests, retries, faults by kind, token grants.
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        """Create the httpx client and token source (each subclass its own kind)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={str(self.base_url)!r}, auth={self._credentials!r}, "
            f"site_id={self.site_id!r}, concurrency={self.concurrency})"
        )

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _secrets(self) -> tuple[str, ...]:
        return self._credentials.secrets()

    def _url(self, path: str) -> httpx.URL:
        return self.base_url.copy_with(path=self.base_url.path.rstrip("/") + path)

    def _pager(self, compiled: CompiledLike, limit: int | None = None) -> Pager:
        if limit is not None:
            limit = limit if compiled.limit is None else min(limit, compiled.limit)
        else:
            limit = compiled.limit
        return Pager(
            compiled.params,
            limit=limit,
            page=compiled.page,
            sort=compiled.sort,
            site_id=self.site_id,
            max_page_size=self.max_page_size,
        )

    def _httpx_options(self) -> dict[str, Any]:
        from kql import __version__

        return {
            "timeout": httpx.Timeout(self.timeout),
            "follow_redirects": False,  # redirects are checked by hand: the token stays on our origin
            "headers": {"User-Agent": f"kql/{__version__}", "Accept": "application/vnd.api+json, application/json"},
            "limits": httpx.Limits(
                max_connections=self.concurrency + 2, max_keepalive_connections=self.concurrency + 2
            ),
            # Proxies from the environment only for https, where they see a CONNECT tunnel and never
            # the token; a plain-http origin (the sandbox, --insecure) is always reached directly.
            "trust_env": self.base_url.scheme == "https",
        }

    def _redirect(self, response: httpx.Response, method: str, redirects: int) -> httpx.URL:
        """Where a same-origin GET redirect leads; RedirectRefused for anything else."""
        location = response.headers.get("location", "")
        target = response.request.url.join(location)
        if not same_origin(target, self.base_url):
            raise RedirectRefused(
                f"the server redirected to another origin ({describe_origin(target)}); "
                f"kql sends the token only to {describe_origin(self.base_url)}, so it did not follow"
            )
        if method != "GET":
            raise RedirectRefused(f"the server redirected a {method} request ({response.status_code}); not following")
        if redirects >= MAX_REDIRECTS:
            raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects")
        return target

    def _error(self, response: httpx.Response, attempts: int) -> APIError:
        return APIError.from_response(
            response.status_code,
            response.reason_phrase,
            response.headers.get("content-type", ""),
            response.content,
            url=str(response.request.url.copy_with(query=None)),
            secrets=self._secrets(),
            attempts=attempts,
        )

    def _give_up(self, failure: ExecutorError | str, attempts: int, what: str) -> ExecutorError:
        if isinstance(failure, ExecutorError):
            return failure
        suffix = f" after {attempts} attempts" if attempts > 1 else ""
        return TransportError(f"{what}: {failure}{suffix}", attempts=attempts)

    def _decide(self, response: httpx.Response, attempts: int) -> tuple[Any, ExecutorError | str | None, float | None]:
        """(decoded body, None, None) on success, or (None, failure, retry-after) for a retryable failure.

        Raises at once for responses that must not be retried.
        """
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json(), None, None
            except ValueError:
                self._count("fault:bad-body")
                return None, "the response body was not valid JSON (cut short?)", None
        if status in RETRY_STATUSES:
            self._count(f"fault:{status}")
            return None, self._error(response, attempts), parse_retry_after(response.headers.get("retry-after"))
        raise self._error(response, attempts)

    def _page_request(self, pager: Pager, number: int) -> tuple[httpx.URL, list[tuple[str, str]]]:
        return self._url(CUSTOMERS_PATH), pager.params(number)

    def _count_params(self, compiled: CompiledLike) -> list[tuple[str, str]]:
        pager = self._pager(compiled)
        return [p for p in pager.params(1) if p[0] not in ("page[number]", "page[size]", "sort")] + [
            ("page[number]", "1"),
            ("page[size]", "1"),
        ]


# What one answer means for the request it belongs to (besides a decoded body: done).
_AGAIN = object()  # redirected, or re-authorized: send again at once
_RETRY = object()  # a retryable failure: wait, then send again


class _Exchange:
    """One request across its attempts: redirects, one re-authorization, retries. No I/O,
    so the synchronous and the asynchronous client send it the same way."""

    def __init__(
        self,
        client: _Base,
        method: str,
        url: httpx.URL,
        params: Sequence[tuple[str, str]] | None,
        authorize: bool,
    ) -> None:
        self.client, self.method, self.authorize = client, method, authorize
        self.url = url
        self.params: list[tuple[str, Any]] | None = None if params is None else list(params)
        self.started = time.monotonic()
        self.attempts = self.redirects = 0
        self.reauthorized = False
        self.failure: ExecutorError | str = ""
        self.retry_after: float | None = None

    def start(self) -> None:
        self.attempts += 1
        self.retry_after = None
        self.client._count("requests")

    def transport_failed(self, exc: httpx.TransportError) -> None:
        if not _retryable(exc):
            raise TransportError(_describe(exc)) from None
        self.client._count(f"fault:{_fault_name(exc)}")
        self.failure = _describe(exc)

    def answered(self, response: httpx.Response, generation: int) -> Any:
        """The decoded body, _AGAIN or _RETRY; raises for answers that must not be retried."""
        client = self.client
        if response.status_code in _REDIRECTS:
            self.url, self.params = client._redirect(response, self.method, self.redirects), None
            self.redirects += 1
            self.attempts -= 1
            return _AGAIN
        refreshable = self.authorize and client._credentials.refreshable
        if response.status_code == 401 and refreshable and not self.reauthorized:
            self.reauthorized = True  # once: a fresh token refused again is a real refusal
            client._count("reauthorize")
            client._tokens.invalidate(generation)
            self.attempts -= 1
            return _AGAIN
        body, problem, self.retry_after = client._decide(response, self.attempts)
        if problem is None:
            return body
        self.failure = problem
        return _RETRY

    def delay(self) -> float:
        """Seconds to wait before the next attempt; raises the failure when retrying is over."""
        delay = self.client.retry.delay(self.attempts, time.monotonic() - self.started, self.retry_after)
        if delay is None:
            if isinstance(self.failure, APIError):
                self.failure.after(self.attempts)
            raise self.client._give_up(self.failure, self.attempts, f"{self.method} {self.url.copy_with(query=None)}")
        self.client._count("retries")
        return delay


class Tally(Protocol):
    """What a run has done so far: a Pager for one listing, a PlanRun for a plan."""

    @property
    def total_pages(self) -> int | None: ...
    @property
    def first_total(self) -> int | None: ...
    @property
    def pages_seen(self) -> int: ...
    @property
    def yielded(self) -> int: ...
    def warnings(self) -> list[str]: ...


class _Progress:
    """What a stream has done so far; the CLI's progress bar reads it."""

    def __init__(self, pager: Tally) -> None:
        self._pager = pager

    @property
    def total_pages(self) -> int | None:
        return self._pager.total_pages

    @property
    def total_count(self) -> int | None:
        return self._pager.first_total

    @property
    def pages_fetched(self) -> int:
        return self._pager.pages_seen

    @property
    def yielded(self) -> int:
        return self._pager.yielded

    @property
    def warnings(self) -> list[str]:
        """Consistency warnings (total_count drift, duplicates removed); final once the stream ends."""
        return self._pager.warnings()


class Customers(_Progress, Iterator[Record]):
    """A lazy stream of flat customer records ``{"id": …, **attributes}``."""

    def __init__(self, pager: Tally, records: Iterator[Record]) -> None:
        super().__init__(pager)
        self._records = records

    def __iter__(self) -> Customers:
        return self

    def __next__(self) -> Record:
        return next(self._records)

    def close(self) -> None:
        """Stop early: queued page requests are cancelled."""
        close = getattr(self._records, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Customers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCustomers(_Progress, AsyncIterator[Record]):
    """The async stream: ``async for record in client.customers(q)``."""

    def __init__(self, pager: Tally, records: AsyncIterator[Record]) -> None:
        super().__init__(pager)
        self._records = records

    def __aiter__(self) -> AsyncCustomers:
        return self

    async def __anext__(self) -> Record:
        return await self._records.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._records, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncCustomers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Client(_Base):
    """Synchronous client; page requests run on a small thread pool over one ``httpx.Client``."""

    _tokens: TokenSource

    def _open(self) -> None:
        self._http = httpx.Client(**self._httpx_options())
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
            from kql.planning.names import Resolver

            self._names = Resolver(self)
        return self._names

    def resolve(self, query: str | Query) -> str | Query:
        """``query`` with tag, offer and product names replaced by ids (unchanged without names)."""
        parsed, source = _parsed(query) or (None, None)
        if parsed is None or not _named(parsed):
            return query
        from kql.planning.names import check_before_lookups

        check_before_lookups(parsed, source)  # other mistakes first, before any catalogue is fetched
        return self.names.resolve(parsed, source)

    def _target(self, query: str | Query | CompiledLike | Plan, max_requests: int | None) -> CompiledLike | Plan:
        parsed = _parsed(query)
        if parsed is None:
            return prepare(query, max_requests=max_requests)
        resolved, source = parsed
        if _named(resolved):
            from kql.planning.names import check_before_lookups

            check_before_lookups(resolved, source, max_requests)
            resolved = self.names.resolve(resolved, source)
        return _compiled_or_planned(resolved, source, max_requests)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def customers(
        self,
        query: str | Query | CompiledLike | Plan,
        *,
        limit: int | None = None,
        max_requests: int | None = None,
    ) -> Customers:
        """Every customer the query matches, lazily (see docs/executor.md for the order).

        Any KQL expression: one that needs several requests runs as a plan (docs/planner.md),
        refused with E308 before anything is sent if it needs more than ``max_requests``
        listings; tag, offer and product names are resolved to ids first (docs/names.md).
        """
        target = self._target(query, max_requests)
        if hasattr(target, "branches"):
            from kql.execute.planrun import run_plan

            return run_plan(self, target, limit)  # type: ignore[arg-type]
        compiled: CompiledLike = target
        pager = self._pager(compiled, limit)
        records: Iterator[Record] = iter(()) if compiled.matches_nothing else self._records(pager)
        return Customers(pager, records)

    def count(self, query: str | Query | CompiledLike | Plan, *, max_requests: int | None = None) -> int:
        """How many customers the query matches (``page`` and ``limit`` aside).

        One request for a single record when the API can answer it; a plan is run for ids.
        """
        target = self._target(query, max_requests)
        if hasattr(target, "branches"):
            from kql.execute.planrun import count_plan

            return count_plan(self, target)  # type: ignore[arg-type]
        compiled: CompiledLike = target
        if compiled.matches_nothing:
            return 0
        body = self._send("GET", self._url(CUSTOMERS_PATH), params=self._count_params(compiled))
        page = parse_page(1, body)
        if page.total_count is None:
            raise PaginationError("the response has no meta.total_count")
        return page.total_count

    # -- paging ---------------------------------------------------------------

    def _records(self, pager: Pager) -> Generator[Record, None, None]:
        first = self._fetch(pager, pager.first_number)
        yield from pager.accept(first)
        rest = pager.rest(first)
        if rest is None:  # no total_pages: one page after another while they come back full
            page = first
            while pager.wants_next(page):
                page = self._fetch(pager, page.number + 1)
                yield from pager.accept(page)
            return
        numbers = iter(rest)
        pool = self._executor()
        stop = threading.Event()  # set when the stream ends: requests still retrying give up at once
        window: deque[Future[Page]] = deque(
            pool.submit(self._fetch, pager, n, stop) for n in islice(numbers, self.lookahead)
        )
        try:
            while window and not pager.finished:
                page = window.popleft().result()
                yield from pager.accept(page)
                following = next(numbers, None)
                if following is not None and not pager.finished:
                    window.append(pool.submit(self._fetch, pager, following, stop))
        finally:
            stop.set()
            for future in window:
                future.cancel()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="kql-page")
            return self._pool

    def _fetch(self, pager: Pager, number: int, stop: threading.Event | None = None) -> Page:
        url, params = self._page_request(pager, number)
        return parse_page(number, self._send("GET", url, params=params, stop=stop))

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
    ) -> Any:
        exchange = _Exchange(self, method, url, params, authorize)
        while True:
            if stop is not None and stop.is_set():
                raise _Stopped()
            headers: dict[str, str] = {}
            generation = 0
            if authorize:
                token, generation = self._tokens.get()
                headers["Authorization"] = f"Bearer {token}"
            exchange.start()
            try:
                response = self._http.request(
                    method, exchange.url, params=exchange.params, data=data, headers=headers
                )
            except httpx.TransportError as exc:
                exchange.transport_failed(exc)
            else:
                step = exchange.answered(response, generation)
                if step is _AGAIN:
                    continue
                if step is not _RETRY:
                    return step
            delay = exchange.delay()
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise _Stopped()

    # -- segments over time (kql.execute.timeline; docs/segments.md) -----------

    def snapshot(self, query: str | Query, **options: Any) -> Snapshot:
        """Record who matches ``query`` (``"@vip"``, or an expression with ``name=``) in the state store.

        Options as ``kql.execute.timeline.snapshot``: name, state, segments, keep, batch."""
        from kql.execute.timeline import snapshot

        return snapshot(self, query, **options)

    def diff(self, query: str | Query, **options: Any) -> Changes:
        """Entered / left / changed since the last snapshot: ``with client.diff("@vip") as changes: …``.

        Options as ``kql.execute.timeline.diff``: name, state, segments, since, dry_run,
        accept_new_definition, keep, batch."""
        from kql.execute.timeline import diff

        return diff(self, query, **options)


class AsyncClient(_Base):
    """Asynchronous client over one ``httpx.AsyncClient``; pages run as tasks, ``concurrency`` at a time."""

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
            from kql.planning.names import AsyncResolver

            self._names = AsyncResolver(self)
        return self._names

    async def resolve(self, query: str | Query) -> str | Query:
        """``query`` with tag, offer and product names replaced by ids (unchanged without names)."""
        parsed, source = _parsed(query) or (None, None)
        if parsed is None or not _named(parsed):
            return query
        from kql.planning.names import check_before_lookups

        check_before_lookups(parsed, source)  # other mistakes first, before any catalogue is fetched
        return await self.names.resolve(parsed, source)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def customers(
        self,
        query: str | Query | CompiledLike | Plan,
        *,
        limit: int | None = None,
        max_requests: int | None = None,
    ) -> AsyncCustomers | _ResolvingCustomers:
        parsed = _parsed(query)
        if parsed is not None and _named(parsed[0]):  # names need the catalogues: resolve on the first read
            from kql.planning.names import check_before_lookups

            check_before_lookups(*parsed, max_requests)  # other mistakes now, as without names
            return _ResolvingCustomers(self, *parsed, limit=limit, max_requests=max_requests)
        if parsed is None:
            target = prepare(query, max_requests=max_requests)
        else:
            target = _compiled_or_planned(*parsed, max_requests)
        if hasattr(target, "branches"):
            from kql.execute.planrun import run_plan_async

            return run_plan_async(self, target, limit)  # type: ignore[arg-type]
        compiled: CompiledLike = target
        pager = self._pager(compiled, limit)
        return AsyncCustomers(pager, self._records(pager, compiled.matches_nothing))

    async def count(self, query: str | Query | CompiledLike | Plan, *, max_requests: int | None = None) -> int:
        parsed = _parsed(query)
        if parsed is None:
            target = prepare(query, max_requests=max_requests)
        else:
            resolved, source = parsed
            if _named(resolved):
                from kql.planning.names import check_before_lookups

                check_before_lookups(resolved, source, max_requests)
                resolved = await self.names.resolve(resolved, source)
            target = _compiled_or_planned(resolved, source, max_requests)
        if hasattr(target, "branches"):
            from kql.execute.planrun import count_plan_async

            return await count_plan_async(self, target)  # type: ignore[arg-type]
        compiled: CompiledLike = target
        if compiled.matches_nothing:
            return 0
        body = await self._send("GET", self._url(CUSTOMERS_PATH), params=self._count_params(compiled))
        page = parse_page(1, body)
        if page.total_count is None:
            raise PaginationError("the response has no meta.total_count")
        return page.total_count

    async def _records(self, pager: Pager, nothing: bool) -> AsyncGenerator[Record, None]:
        if nothing:
            return
        first = await self._fetch(pager, pager.first_number)
        for record in pager.accept(first):
            yield record
        rest = pager.rest(first)
        if rest is None:
            page = first
            while pager.wants_next(page):
                page = await self._fetch(pager, page.number + 1)
                for record in pager.accept(page):
                    yield record
            return
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrency)
        gate = self._gate

        async def gated(number: int) -> Page:
            async with gate:
                return await self._fetch(pager, number)

        numbers = iter(rest)
        window: deque[asyncio.Task[Page]] = deque(
            asyncio.ensure_future(gated(n)) for n in islice(numbers, self.lookahead)
        )
        try:
            while window and not pager.finished:
                page = await window.popleft()
                for record in pager.accept(page):
                    yield record
                following = next(numbers, None)
                if following is not None and not pager.finished:
                    window.append(asyncio.ensure_future(gated(following)))
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)  # collect them: no "never retrieved" noise

    async def _fetch(self, pager: Pager, number: int) -> Page:
        url, params = self._page_request(pager, number)
        return parse_page(number, await self._send("GET", url, params=params))

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
    ) -> Any:
        # The same loop as Client._send, awaiting instead of blocking.
        exchange = _Exchange(self, method, url, params, authorize)
        while True:
            headers: dict[str, str] = {}
            generation = 0
            if authorize:
                token, generation = await self._tokens.get()
                headers["Authorization"] = f"Bearer {token}"
            exchange.start()
            try:
                response = await self._http.request(
                    method, exchange.url, params=exchange.params, data=data, headers=headers
                )
            except httpx.TransportError as exc:
                exchange.transport_failed(exc)
            else:
                step = exchange.answered(response, generation)
                if step is _AGAIN:
                    continue
                if step is not _RETRY:
                    return step
            await asyncio.sleep(exchange.delay())


class _ResolvingCustomers(AsyncIterator[Record]):
    """``AsyncClient.customers`` for a query with names: resolves them on the first read, then streams."""

    def __init__(
        self, client: AsyncClient, query: Query, source: str | None, *, limit: int | None, max_requests: int | None
    ) -> None:
        self._client, self._query, self._source, self._limit = client, query, source, limit
        self._max_requests = max_requests
        self._inner: AsyncCustomers | None = None

    def __aiter__(self) -> _ResolvingCustomers:
        return self

    async def __anext__(self) -> Record:
        if self._inner is None:
            resolved = await self._client.names.resolve(self._query, self._source)  # checked already
            target = _compiled_or_planned(resolved, self._source, self._max_requests)
            self._inner = self._client.customers(target, limit=self._limit)  # type: ignore[assignment]
        assert self._inner is not None
        return await self._inner.__anext__()

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()

    async def __aenter__(self) -> _ResolvingCustomers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Progress: nothing before the first read, then the inner stream's.
    @property
    def total_pages(self) -> int | None:
        return self._inner.total_pages if self._inner is not None else None

    @property
    def total_count(self) -> int | None:
        return self._inner.total_count if self._inner is not None else None

    @property
    def pages_fetched(self) -> int:
        return self._inner.pages_fetched if self._inner is not None else 0

    @property
    def yielded(self) -> int:
        return self._inner.yielded if self._inner is not None else 0

    @property
    def warnings(self) -> list[str]:
        return self._inner.warnings if self._inner is not None else []

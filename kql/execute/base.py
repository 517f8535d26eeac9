"""What both clients share: configuration, request building, and what each answer means.

``ClientBase`` holds the settings (origin, credentials, concurrency, retries) and turns
responses into bodies or failures; ``_Exchange`` follows one request across its attempts
(redirects, one re-authorization, retries) without doing I/O, so the synchronous and the
asynchronous client send it the same way.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self
from urllib.parse import urlencode

import httpx

from kql._version import __version__
from kql.execute.auth import AsyncTokenSource, ClientCredentials, Credentials, StaticToken, TokenSource
from kql.execute.catalogues import CatalogueWalk
from kql.execute.environment import client_options
from kql.execute.errors import (
    APIError,
    ConfigError,
    ExecutorError,
    PaginationError,
    RedirectRefused,
    ResponseTooLarge,
    TransportError,
    redact,
)
from kql.execute.origin import check_base_url, describe_origin, same_origin
from kql.execute.pagination import DEFAULT_MAX_PAGE_SIZE, Pager, parse_page
from kql.execute.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

DEFAULT_BASE_URL = "https://api.kajabi.com"
CUSTOMERS_PATH = "/v1/customers"
TOKEN_PATH = "/v1/oauth/token"
MAX_REDIRECTS = 5
LOOKAHEAD_PER_WORKER = 4
# A page of 100 customers is well under 1 MiB; anything near this is not a page.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ListingLike(Protocol):
    """One listing as the pager reads it: a single-request ``Plan``, or a plan runner's ``Listing``."""

    @property
    def params(self) -> list[tuple[str, str]]: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def page(self) -> tuple[int, int] | None: ...
    @property
    def sort(self) -> str | None: ...


def request_target(
    url: httpx.URL, params: list[tuple[str, Any]] | None
) -> tuple[httpx.URL | str, list[tuple[str, Any]] | None]:
    """``(url, params)`` for ``build_request``: string parameters joined onto the URL as its query.

    The same query httpx would make (its ``QueryParams`` are ``urlencode``d too), but a URL
    string is parsed once, where merging ``params`` into an ``httpx.URL`` parses and re-encodes
    it three times: most of the cost of building a request, paid once per page."""
    if params and not url.query and all(type(v) is str for _, v in params):
        return f"{url}?{urlencode(params)}", None
    return url, params


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


class ClientBase:
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
        allow_partial: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        """A client of the customers API at ``base_url``.

        Parameters (all but ``base_url`` by keyword):

        - ``base_url``: the API origin, default ``https://api.kajabi.com``; ``https`` only, except
          loopback (or with ``insecure=True``); it must not carry credentials.
        - ``token``: a bearer token. Or, instead:
        - ``client_id``, ``client_secret``: OAuth client credentials; a token is fetched from
          ``/v1/oauth/token`` and fetched again when it expires or is refused.
        - ``site_id``: a site id (``123``), sent as ``filter[site_id]`` on every listing.
        - ``timeout``: seconds per request (default 30).
        - ``concurrency``: pages fetched at once (default 8).
        - ``retry``: a ``kql.RetryPolicy`` (attempts, back-off, ``Retry-After``); default ``RetryPolicy()``.
        - ``max_page_size``: the largest ``page[size]`` requested (default 100).
        - ``insecure``: allow plain ``http://`` to a host that is not loopback (the token travels unencrypted).
        - ``lookahead``: pages requested ahead of the reader (default ``4 * concurrency``, at least ``concurrency``).
        - ``allow_partial``: customers missing from the server's pages are a warning, not an error.
        - ``max_body_bytes``: the largest response body accepted (default 32 MiB).
        - ``trace``: called with one line per attempt — method, path and parameters, status or
          failure, time, the retry and its wait — with every secret redacted (``kql run -v``).

        ``ConfigError`` for settings that cannot work. The environment is not read: use
        ``from_env()`` for ``KAJABI_TOKEN`` and friends.
        """
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
            try:
                self._credentials = ClientCredentials(client_id, client_secret)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            raise ConfigError("no credentials: give a token, or a client id and client secret")
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if max_page_size < 1:
            raise ConfigError("max_page_size must be at least 1")
        if not timeout > 0:
            raise ConfigError("timeout must be positive")
        if max_body_bytes < 1:
            raise ConfigError("max_body_bytes must be at least 1")
        # Customers missing from a run: an IncompleteResult, or (allow_partial) a warning and
        # stats["records-missing"].
        self.allow_partial = allow_partial
        self.max_body_bytes = max_body_bytes
        self.trace = trace
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
        self._customers_url = self._url(CUSTOMERS_PATH)  # built once: every page asks for it
        self._open()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A client configured from the environment (``environ``, default ``os.environ``).

        Credentials from ``KAJABI_TOKEN``, or ``KAJABI_CLIENT_ID`` + ``KAJABI_CLIENT_SECRET``;
        the origin from ``KAJABI_BASE_URL`` (default ``https://api.kajabi.com``); the site from
        ``KAJABI_SITE_ID`` (``123`` or ``site_123``). ``options`` are the other constructor
        parameters (``timeout``, ``concurrency``, …). ``ConfigError`` names the variable at
        fault and never shows a value.
        """
        return cls(**client_options(environ), **options)

    def _open(self) -> None:
        """Create the httpx client and token source (each subclass its own kind)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={str(self.base_url)!r}, auth={self._credentials!r}, "
            f"site_id={self.site_id!r}, concurrency={self.concurrency})"
        )

    def _count(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += amount

    def _secrets(self) -> tuple[str, ...]:
        return self._credentials.secrets()

    def _url(self, path: str) -> httpx.URL:
        return self.base_url.copy_with(path=self.base_url.path.rstrip("/") + path)

    def _pager(self, compiled: ListingLike, limit: int | None = None) -> Pager:
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
            allow_partial=self.allow_partial,
        )

    def _finished(self, pager: Pager) -> None:
        """A listing was read to its end: IncompleteResult if customers are missing (or, with
        ``allow_partial``, counted in ``stats["records-missing"]``)."""
        missing = pager.finish()
        if missing:
            self._count("records-missing", missing)

    # -- one attempt's body: bounded in size; the clients bound it in time ----

    def _check_length(self, response: httpx.Response) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large(response)

    def _too_large(self, response: httpx.Response) -> ResponseTooLarge:
        limit = self.max_body_bytes
        size = f"{limit / 1048576:g} MiB" if limit >= 1048576 else f"{limit} bytes"
        return ResponseTooLarge(
            f"the response to {response.request.method} {response.request.url.copy_with(query=None)} is larger than "
            f"{size}: not a page of customers (max_body_bytes; kql run --max-body-mb to allow more)"
        )

    def _too_slow(self, request: httpx.Request) -> httpx.ReadTimeout:
        return httpx.ReadTimeout(
            f"no complete response within {self.timeout:g} s (the timeout bounds a whole attempt)", request=request
        )

    def _httpx_options(self) -> dict[str, Any]:
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

    def _error(self, response: httpx.Response, body: bytes | bytearray, attempts: int) -> APIError:
        return APIError.from_response(
            response.status_code,
            response.reason_phrase,
            response.headers.get("content-type", ""),
            bytes(body),
            url=str(response.request.url.copy_with(query=None)),
            secrets=self._secrets(),
            attempts=attempts,
        )

    def _give_up(self, failure: ExecutorError | str, attempts: int, what: str) -> ExecutorError:
        if isinstance(failure, ExecutorError):
            return failure
        suffix = f" after {attempts} attempts" if attempts > 1 else ""
        return TransportError(f"{what}: {failure}{suffix}", attempts=attempts)

    def _decide(
        self, response: httpx.Response, body: bytes | bytearray, attempts: int
    ) -> tuple[ExecutorError | str | None, float | None]:
        """(None, None) on success (the body is for the caller to decode), or (failure, retry-after)
        for a retryable failure.

        ``response`` is closed; ``body`` is what was read of it (decoded, capped in size).
        Raises at once for responses that must not be retried.
        """
        status = response.status_code
        if 200 <= status < 300:
            return None, None
        if status in RETRY_STATUSES:
            self._count(f"fault:{status}")
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return self._error(response, body, attempts), retry_after
        raise self._error(response, body, attempts)

    def _page_request(self, pager: Pager, number: int) -> tuple[httpx.URL, list[tuple[str, str]]]:
        return self._customers_url, pager.params(number)

    def _count_params(self, params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """One listing's parameters asking for one record: ``meta.total_count`` is the count."""
        pager = Pager(params, site_id=self.site_id, max_page_size=self.max_page_size)
        return [p for p in pager.params(1) if p[0] not in ("page[number]", "page[size]", "sort")] + [
            ("page[number]", "1"),
            ("page[size]", "1"),
        ]

    @staticmethod
    def _total(body: Any) -> int:
        page = parse_page(1, body)
        if page.total_count is None:
            raise PaginationError("the response has no meta.total_count")
        return page.total_count

    def _catalogue_walk(self, kind: str, site: str | None) -> CatalogueWalk:
        return CatalogueWalk(kind, self.max_page_size, site or self.site_id)


# What one answer means for the request it belongs to (besides a decoded body: done).
_AGAIN = object()  # redirected, or re-authorized: send again at once
_RETRY = object()  # a retryable failure: wait, then send again

_NOT_JSON = "the response body was not valid JSON (cut short?)"


class Download:
    """A 2xx body as it came off the wire, not yet decoded, and the exchange it ends.

    A page's fetching thread (or task) hands this on and sends its next request at once; the
    reader decodes it (``_Exchange.decode``), so the JSON work of one page overlaps the waits of
    the others instead of delaying the next request on its connection. A body that is not JSON
    goes on with the same exchange: its attempts and back-off, as if it had been decoded at once."""

    __slots__ = ("body", "exchange")

    def __init__(self, exchange: _Exchange, body: bytes | bytearray) -> None:
        self.exchange, self.body = exchange, body


class _Exchange:
    """One request across its attempts: redirects, one re-authorization, retries. No I/O,
    so the synchronous and the asynchronous client send it the same way."""

    def __init__(
        self,
        client: ClientBase,
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
        self.attempt_started = time.monotonic()
        self.client._count("requests")

    def _trace(self, outcome: str) -> None:
        """One line for ``trace``: what was asked, what came of it (secrets redacted)."""
        trace = self.client.trace
        if trace is None:
            return
        query = urlencode(self.params or [], safe="[],:@/")
        target = f"{self.url.copy_with(query=None)}" + (f"?{query}" if query else "")
        took = time.monotonic() - self.attempt_started
        line = f"{self.method} {target} -> {outcome} ({took:.2f}s, attempt {self.attempts})"
        trace(redact(line, self.client._secrets()))

    def transport_failed(self, exc: httpx.TransportError) -> None:
        # redacted: httpx quotes a header value it refuses (b'Bearer …') in its message
        described = redact(_describe(exc), self.client._secrets())
        self._trace(described)
        if not _retryable(exc):
            raise TransportError(described) from None
        self.client._count(f"fault:{_fault_name(exc)}")
        self.failure = described

    def answered(self, response: httpx.Response, body: bytes | bytearray, generation: int, decode: bool = True) -> Any:
        """The decoded body (a ``Download`` if not ``decode``), _AGAIN or _RETRY; raises for answers
        that must not be retried."""
        client = self.client
        self._trace(f"{response.status_code} {response.reason_phrase}".strip())
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
        problem, self.retry_after = client._decide(response, body, self.attempts)
        if problem is None:
            return self.decode(body) if decode else Download(self, body)
        self.failure = problem
        return _RETRY

    def decode(self, body: bytes | bytearray) -> Any:
        """A 2xx body's JSON, or _RETRY (counted as ``fault:bad-body``) if it is not JSON."""
        try:
            return json.loads(body)
        except ValueError:
            self.client._count("fault:bad-body")
            self.failure = _NOT_JSON
            return _RETRY

    def delay(self) -> float:
        """Seconds to wait before the next attempt; raises the failure when retrying is over."""
        delay = self.client.retry.delay(self.attempts, time.monotonic() - self.started, self.retry_after)
        if delay is None:
            if isinstance(self.failure, APIError):
                self.failure.after(self.attempts)
            raise self.client._give_up(self.failure, self.attempts, f"{self.method} {self.url.copy_with(query=None)}")
        self.client._count("retries")
        if self.client.trace is not None:
            why = self.failure if isinstance(self.failure, str) else type(self.failure).__name__
            self.client.trace(f"  retrying in {delay:.2f}s ({why})")
        return delay

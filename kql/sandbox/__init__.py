"""A local Kajabi customers API over SQLite, for tests, `kql run --sandbox` and benchmarks.

    from kql.sandbox import running
    with running(customers=1000, seed=1) as sb:
        sb.base_url   # "http://127.0.0.1:<port>"; paths are /v1/customers etc.
        sb.token      # "sandbox"

Stdlib only at runtime (and platformdirs, to find the user's cache directory). See ``kql help sandbox``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kql.sandbox.api import App
from kql.sandbox.faults import Faults, Stats
from kql.sandbox.server import SandboxServer
from kql.sandbox.store import Store
from kql.sandbox.tokens import Tokens

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Sandbox", "Stats", "default_cache_dir", "running"]

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
CACHE_ENV = "KQL_CACHE_DIR"
READ_TIMEOUT = 15.0  # seconds a connection may take to send a request line, headers or body


def default_cache_dir() -> Path:
    """Where generated databases are cached: $KQL_CACHE_DIR, else the user's cache directory for kql."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen)
    import platformdirs  # only here: the rest of the sandbox (and kql run --sandbox) never needs it

    return Path(platformdirs.user_cache_dir("kql"))


class Sandbox:
    """A built sandbox: database, token store, fault injector and an HTTP server (not yet serving)."""

    def __init__(
        self, *, customers: int = 10_000, seed: int = 1, sites: int = 1, port: int = 0, latency_ms: float = 0,
        jitter_ms: float = 0, error_rate: float = 0.0, rate_limit: float | None = None, drop_rate: float = 0.0,
        max_page_size: int = MAX_PAGE_SIZE, default_page_size: int = DEFAULT_PAGE_SIZE,
        links_host: str | None = None, token: str | None = "sandbox", client_id: str = "sandbox",
        client_secret: str = "sandbox", expires_in: int = 3600, db: str | Path | None = None,
        cache: bool | str | Path = False, read_timeout: float = READ_TIMEOUT,
    ) -> None:
        """`cache`: False builds the data in memory every time; True uses `default_cache_dir()`;
        a path uses that directory. `db` (a file to build or reuse) wins over the cache."""
        # Settings are checked, and the port bound, before the (possibly long) generation.
        if not 1 <= default_page_size <= max_page_size:
            raise ValueError("need 1 <= default_page_size <= max_page_size")
        if customers < 0 or sites < 1:
            raise ValueError("customers must be >= 0 and sites >= 1")
        if not read_timeout > 0:
            raise ValueError("read_timeout must be positive (seconds)")
        faults = Faults(seed=seed, latency_ms=latency_ms, jitter_ms=jitter_ms, error_rate=error_rate,
                        rate_limit=rate_limit, drop_rate=drop_rate)
        self.stats = Stats()
        self.token = token
        cache_dir = None if cache is False else default_cache_dir() if cache is True else Path(cache)
        self.server = SandboxServer(port, faults, self.stats, read_timeout=read_timeout)
        try:
            self.store = Store(customers=customers, seed=seed, sites=sites, db=db, cache_dir=cache_dir)
        except BaseException:
            self.server.server_close()
            raise
        self.tokens = Tokens(static=token, client_id=client_id, client_secret=client_secret, expires_in=expires_in)
        self.app = App(self.store, self.tokens, sites=sites, default_page_size=default_page_size,
                       max_page_size=max_page_size, links_host=links_host)
        self.server.attach(self.app)
        self.base_url = self.app.base
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def insert_customers(self, n: int) -> list[int]:
        """Add n customers while serving, newer than all others; returns their ids."""
        return self.store.insert_customers(n)

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.05)

    def start(self) -> Sandbox:
        self._thread = threading.Thread(target=self.serve_forever, name="kql-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()
        self.store.close()


@contextmanager
def running(
    customers: int = 1000, seed: int = 1, sites: int = 1, latency_ms: float = 0, jitter_ms: float = 0,
    error_rate: float = 0.0, rate_limit: float | None = None, drop_rate: float = 0.0,
    max_page_size: int = MAX_PAGE_SIZE, default_page_size: int = DEFAULT_PAGE_SIZE, links_host: str | None = None,
    token: str | None = "sandbox", client_id: str = "sandbox", client_secret: str = "sandbox",
    expires_in: int = 3600, db: str | Path | None = None, cache: bool | str | Path = False,
    read_timeout: float = READ_TIMEOUT,
) -> Iterator[Sandbox]:
    """Serve a sandbox on a free loopback port in a background thread for the block's duration."""
    sandbox = Sandbox(
        customers=customers, seed=seed, sites=sites, latency_ms=latency_ms, jitter_ms=jitter_ms,
        error_rate=error_rate, rate_limit=rate_limit, drop_rate=drop_rate, max_page_size=max_page_size,
        default_page_size=default_page_size, links_host=links_host, token=token, client_id=client_id,
        client_secret=client_secret, expires_in=expires_in, db=db, cache=cache, read_timeout=read_timeout,
    ).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()

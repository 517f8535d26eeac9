"""One connection pool per thread for the synchronous client (``kql.Client``).

httpx gives a client one httpcore connection pool, and every request takes that pool's lock
about three times (to queue, to be given a connection, to give it back). Inside the lock the
holder checks each idle connection with a ``poll``, which lets go of the GIL, so with the page
workers and the reader all sending, the others queue on the lock: 200–490 ms of waiting summed
over the threads of a 100-page export (bench/client.py b), on the path of every request.

A thread has one request in flight at a time (an attempt reads its body and closes it before the
next), so each thread that sends gets a pool of its own, made like the one httpx made (the same
TLS context, the same network backend — kql.execute.deadline's — the same keep-alive expiry),
and never waits for another thread's. Pools of threads that have ended are closed when the next
pool is made, and all of them when the client closes. Requests through a proxy (``trust_env``
mounts) keep httpx's shared pool.
"""

from __future__ import annotations

import threading
from typing import Any

import httpcore
import httpx


class PerThreadPool:
    """The ``_pool`` of an ``httpx.HTTPTransport``: an ``httpcore.ConnectionPool`` per thread."""

    def __init__(self, model: httpcore.ConnectionPool) -> None:
        self._model = model  # never sends: its settings are copied into each thread's pool
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pools: list[tuple[threading.Thread, httpcore.ConnectionPool]] = []

    def _own(self) -> httpcore.ConnectionPool:
        pool: httpcore.ConnectionPool | None = getattr(self._local, "pool", None)
        if pool is None:
            m = self._model
            pool = httpcore.ConnectionPool(
                ssl_context=m._ssl_context,
                max_connections=None,  # one request at a time per thread; never a wait for a slot
                max_keepalive_connections=1,
                keepalive_expiry=m._keepalive_expiry,
                http1=m._http1,
                http2=m._http2,
                retries=m._retries,
                local_address=m._local_address,
                uds=m._uds,
                network_backend=m._network_backend,
                socket_options=m._socket_options,
            )
            with self._lock:
                ended = [p for thread, p in self._pools if not thread.is_alive()]
                self._pools = [(t, p) for t, p in self._pools if t.is_alive()]
                self._pools.append((threading.current_thread(), pool))
            for old in ended:
                old.close()
            self._local.pool = pool
        return pool

    def pools(self) -> list[tuple[threading.Thread, httpcore.ConnectionPool]]:
        """The pools made so far and the threads they belong to (for tests)."""
        with self._lock:
            return list(self._pools)

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        return self._own().handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for _, pool in pools:
            pool.close()
        self._model.close()

    def __enter__(self) -> PerThreadPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def install(client: httpx.Client) -> bool:
    """Give ``client``'s direct transport a pool per thread (after kql.execute.deadline.install, so
    each thread's pool has the bounded backend). False, and nothing changed, if httpx is laid out
    otherwise than expected or the transport is not a plain connection pool."""
    transport = getattr(client, "_transport", None)
    model = getattr(transport, "_pool", None)
    if not isinstance(transport, httpx.HTTPTransport) or type(model) is not httpcore.ConnectionPool:
        return False
    expected = ("_ssl_context", "_keepalive_expiry", "_http1", "_http2", "_retries", "_local_address", "_uds",
                "_network_backend", "_socket_options")
    if not all(hasattr(model, name) for name in expected):
        return False
    transport._pool = PerThreadPool(model)  # type: ignore[assignment]
    return True

"""A deadline for a whole attempt of the synchronous client, connect to last byte.

httpcore bounds each socket operation, not an attempt: a server that sends its status line
and headers a byte a second, each byte within the read timeout, holds a request forever
(the asynchronous client wraps the attempt in ``asyncio.timeout`` instead). So the
synchronous client's connection pools get a network backend whose every connect, TLS
handshake, read and write is given no more than the time left to the attempt running on
that thread (``within``), and fails at once when none is left.

httpx takes no network backend of its own, so ``install`` sets it on the httpcore pools
it built (before any connection exists); ``tests/executor/test_meaning.py`` checks the
bound against a server trickling its headers, so a change inside httpx cannot lift it unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from ssl import SSLContext
from typing import Any

import httpcore
import httpx

_local = threading.local()


@contextmanager
def within(seconds: float, message: str) -> Iterator[None]:
    """Network operations on this thread end within ``seconds`` from now (a timeout: ``message``)."""
    previous = getattr(_local, "until", None)
    _local.until, _local.message = time.monotonic() + seconds, message
    try:
        yield
    finally:
        _local.until = previous


def _left(timeout: float | None, late: type[httpcore.TimeoutException]) -> float | None:
    """The timeout for one operation: httpcore's, shortened to what is left of the attempt."""
    until: float | None = getattr(_local, "until", None)
    if until is None:  # not inside an attempt (a pool closing its connections)
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise late(_local.message)
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install(client: httpx.Client) -> bool:
    """Give every connection pool of ``client`` (direct, and through proxies) the bounded backend.
    False if httpx is laid out otherwise than expected: attempts are then bounded per chunk only."""
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    pools = [getattr(t, "_pool", None) for t in transports]
    if not all(isinstance(getattr(p, "_network_backend", None), httpcore.NetworkBackend) for p in pools):
        return False
    for pool in pools:
        if not isinstance(pool._network_backend, _Backend):  # type: ignore[union-attr]
            pool._network_backend = _Backend(pool._network_backend)  # type: ignore[union-attr]
    return True

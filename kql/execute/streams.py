"""The streams a client's ``customers()`` returns, and what they tell about the run so far."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from typing import Protocol

from kql.execute.pagination import Record


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

    def __iter__(self) -> Iterator[Record]:
        # The records themselves, so that a ``for`` loop reads them without a Python-level
        # ``__next__`` call per customer; ``next(stream)`` and ``close()`` reach the same iterator.
        return self._records

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

    def __aiter__(self) -> AsyncIterator[Record]:
        # As Customers.__iter__: ``async for`` awaits the records' own ``__anext__``, without a
        # coroutine of ours wrapped around each customer.
        return self._records

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


class ResolvingCustomers(AsyncIterator[Record]):
    """An async stream that first has to be made (``AsyncClient.customers`` for a query with
    names: the catalogues are fetched on the first read), then streams like ``AsyncCustomers``."""

    def __init__(self, make: Awaitable[AsyncCustomers]) -> None:
        self._make: Awaitable[AsyncCustomers] | None = make
        self._inner: AsyncCustomers | None = None

    def __aiter__(self) -> ResolvingCustomers:
        return self

    async def __anext__(self) -> Record:
        if self._inner is None:
            assert self._make is not None
            make, self._make = self._make, None
            self._inner = await make
        return await self._inner.__anext__()

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
        elif self._make is not None and isinstance(self._make, Coroutine):
            self._make.close()  # never started: no "coroutine was never awaited" warning

    async def __aenter__(self) -> ResolvingCustomers:
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

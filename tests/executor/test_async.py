"""kql.AsyncClient: the same guarantees as the sync client, on one event loop."""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
from collections import Counter
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pytest

from kql.execute.async_client import AsyncClient
from kql.execute.errors import APIError, RedirectRefused
from tests.executor.conftest import FAST
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen, serving


async def collect(stream: Any) -> list[str]:
    return [record["id"] async for record in stream]


def every_id(n: int) -> list[str]:
    """The fake API's customers 1…n in the default order: newest first."""
    return [str(i) for i in range(n, 0, -1)]


def test_async_pages_in_order_despite_latency(api: FakeAPI) -> None:
    api.hook = lambda s: Reply(200, api.page_document(s.params), delay=0.01 * (25 - s.page) if s.page < 6 else 0)

    async def main() -> list[str]:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST, max_page_size=10, concurrency=4) as c:
            return await collect(c.customers(""))

    assert asyncio.run(main()) == every_id(250)


def test_async_retries_and_refuses(api: FakeAPI, other: FakeAPI) -> None:
    calls = {"n": 0}

    def hook(seen: Seen) -> Reply | None:
        calls["n"] += 1
        if calls["n"] == 2:
            return Reply(429, b"", {"Retry-After": "0"})
        if calls["n"] == 3:
            return Reply(200, api.page_document(seen.params), drop_after=100)
        return None

    api.hook = hook

    async def main() -> tuple[list[str], int]:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST) as c:
            got = await collect(c.customers(""))
            return got, await c.count("limit 1")

    got, total = asyncio.run(main())
    assert got == every_id(250) and total == 250

    api.hook = lambda s: Reply(301, b"", {"Location": f"http://localhost:{other.port}/v1/customers"})

    async def refused() -> None:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST) as c:
            await collect(c.customers(""))

    with pytest.raises(RedirectRefused):
        asyncio.run(refused())
    assert other.requests == []


def test_async_single_refresh_with_8_in_flight() -> None:
    with serving(900, token=None, client_id="cid", client_secret="csecret-123") as api:

        def hook(seen: Seen) -> Reply | None:
            if seen.path == "/v1/customers" and seen.token == "granted-1-XYZW" and seen.page > 1:
                return Reply(401, {"errors": [{"title": "Unauthorized"}]})
            return None

        api.hook = hook

        async def main() -> list[str]:
            async with AsyncClient(api.base_url, client_id="cid", client_secret="csecret-123", retry=FAST) as c:
                return await collect(c.customers(""))

        assert asyncio.run(main()) == every_id(900)
        assert len(api.grants) == 2


def test_async_400_not_retried_and_stop_early(api: FakeAPI) -> None:
    async def main() -> int:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST, max_page_size=5, concurrency=2) as c:
            stream = c.customers("")
            first = [await stream.__anext__() for _ in range(3)]
            await stream.aclose()
            return len(first)

    assert asyncio.run(main()) == 3
    assert len(api.requests) <= 1 + 2 * 2 + 2
    api.requests.clear()
    api.hook = lambda s: Reply(400, {"errors": [{"title": "Bad Request"}]})

    async def bad() -> None:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST) as c:
            await collect(c.customers(""))

    with pytest.raises(APIError):
        asyncio.run(bad())
    assert len(api.requests) == 1


def test_async_body_not_json_is_retried_within_the_budget(api: FakeAPI) -> None:
    from kql.execute.errors import TransportError

    asked = {"n": 0}

    def hook(seen: Seen) -> Reply | None:
        if seen.page == 2:
            asked["n"] += 1
            if asked["n"] == 1:
                return Reply(200, b'{"data": [', {"Content-Type": "application/vnd.api+json"})
        if seen.page == 3:
            return Reply(200, b"<html>", {"Content-Type": "text/html"})
        return None

    api.hook = hook

    async def main(query: str) -> list[str]:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST, max_page_size=50) as c:
            return await collect(c.customers(query))

    assert asyncio.run(main("limit 100")) == every_id(250)[:100]  # page 2 healed when asked again
    with pytest.raises(TransportError) as caught:
        asyncio.run(main(""))  # page 3 never does: the policy's 6 attempts, then the error
    assert "not valid JSON" in str(caught.value) and "after 6 attempts" in str(caught.value)
    assert api.pages_requested().count(3) == 6


class _Lookups(importlib.abc.MetaPathFinder):
    """Records every module looked for: once warm, only a failed import (never cached) is looked for again."""

    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        self.names[name] += 1


def test_async_requests_search_for_no_module(api: FakeAPI) -> None:
    # httpcore imports sniffio for each lock it sets up; a missing sniffio is searched along
    # sys.path every time (a failed import is not cached): kql depends on it, so none is searched.
    async def main() -> list[str]:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST, max_page_size=50) as c:
            return await collect(c.customers(""))

    assert asyncio.run(main()) == every_id(250)  # warm: whatever a run imports is imported now
    lookups = _Lookups()
    sys.meta_path.insert(0, lookups)
    try:
        assert asyncio.run(main()) == every_id(250)
    finally:
        sys.meta_path.remove(lookups)
    assert dict(lookups.names) == {}

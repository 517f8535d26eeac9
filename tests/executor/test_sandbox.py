"""The executor against the built-in sandbox (kql.sandbox): the real API shapes, end to end."""

from __future__ import annotations

import pytest

from kql.execute.client import Client
from tests.executor.conftest import FAST

sandbox = pytest.importorskip("kql.sandbox")


def test_full_export_matches_count_newest_first() -> None:
    with sandbox.running(customers=1000, seed=3) as sb, Client(sb.base_url, token=sb.token, retry=FAST) as c:
        records = list(c.customers(""))
        assert len(records) == c.count("") == 1000
        assert len({r["id"] for r in records}) == 1000
        created = [r["created_at"] for r in records]
        assert created == sorted(created, reverse=True)  # no sort asked: newest first, the API's default


def test_limit_5_one_request_and_filters() -> None:
    with sandbox.running(customers=300, seed=3) as sb, Client(sb.base_url, token=sb.token, retry=FAST) as c:
        before = sb.stats["requests"]
        assert len(list(c.customers("limit 5"))) == 5
        assert sb.stats["requests"] - before == 1
        rich = list(c.customers("net_revenue > 100 select net_revenue sort -net_revenue"))
        assert rich and all(float(r["net_revenue"]) > 100 for r in rich)
        assert set(rich[0]) == {"id", "net_revenue"}


def test_inserted_between_pages_no_duplicates_and_a_warning() -> None:
    with (
        sandbox.running(customers=1000, seed=3) as sb,
        Client(sb.base_url, token=sb.token, retry=FAST, concurrency=1) as c,
    ):
        stream = c.customers("")
        got = [next(stream)["id"]]
        sb.insert_customers(40)  # pages 4+ are requested after this
        got += [r["id"] for r in stream]
        assert len(got) == len(set(got))
        assert set(str(i) for i in range(1, 1001)) <= set(got)
        assert any("total_count changed from 1000 to 1040" in w for w in stream.warnings)


def test_links_host_never_followed_and_oauth() -> None:
    with (
        sandbox.running(
            customers=250, links_host="localhost", token=None, client_id="cid", client_secret="csec-123", expires_in=2
        ) as sb,
        Client(sb.base_url, client_id="cid", client_secret="csec-123", retry=FAST) as c,
    ):
        assert len(list(c.customers(""))) == 250
        assert len(list(c.customers(""))) == 250
        assert c.stats["token-grant"] == 1  # a 2-second token is reused


def test_sandbox_faults_every_customer_exactly_once() -> None:
    with (
        sandbox.running(customers=2000, seed=5, error_rate=0.15, drop_rate=0.05, jitter_ms=5) as sb,
        Client(sb.base_url, token=sb.token, retry=FAST, concurrency=8) as c,
    ):
        got = [r["id"] for r in c.customers("")]
        faults = sb.stats["unavailable"] + sb.stats["dropped"]
    assert sorted(got, key=int) == [str(i) for i in range(1, 2001)]
    assert faults > 0 and c.stats["retries"] == faults


def test_async_client_against_the_sandbox() -> None:
    import asyncio

    from kql.execute.async_client import AsyncClient

    async def main(base_url: str) -> tuple[list[str], int]:
        async with AsyncClient(base_url, token="sandbox", retry=FAST) as c:
            return [r["id"] async for r in c.customers("sort -created_at")], await c.count("")

    with sandbox.running(customers=700, seed=2) as sb:
        got, total = asyncio.run(main(sb.base_url))
    assert got == [str(i) for i in range(700, 0, -1)] and total == 700

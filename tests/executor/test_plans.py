"""Plans run end to end: several listings, narrowed, merged, windowed (kql/planrun.py).

The differential tests in tests/planner_sandbox compare random expressions with
ground truth; these pin the mechanics: order, limits stopping early, fields
stripped, sync and async alike, budgets, the CLI.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

import kql
from kql.execute.async_client import AsyncClient
from kql.execute.client import Client
from kql.execute.merging import Window, order_key
from kql.execute.planrun import PlanRun
from kql.sandbox import Sandbox, running
from tests.executor.conftest import FAST


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running(customers=600, seed=11) as server:
        yield server


@pytest.fixture
def client(sb: Sandbox) -> Iterator[Client]:
    with Client(sb.base_url, token=sb.token, retry=FAST) as c:
        yield c


def ids(client: Client, query: str) -> set[str]:
    return {r["id"] for r in client.customers(query)}


def test_or_is_the_union_newest_first_without_duplicates(client: Client) -> None:
    left, right = ids(client, "opened(bc_9)"), ids(client, "clicked(bc_10)")
    assert left & right, "the data should overlap, or dedupe is not exercised"
    got = list(client.customers("opened(bc_9) or clicked(bc_10)"))
    assert isinstance(client.customers("opened(bc_9) or clicked(bc_10)")._pager, PlanRun)  # really a plan
    assert [r["id"] for r in got] == list(dict.fromkeys(r["id"] for r in got))
    assert {r["id"] for r in got} == left | right
    key, _ = order_key("-created_at")
    assert [key(r) for r in got] == sorted((key(r) for r in got), reverse=True)  # no sort: newest first


def test_anti_join_and_intersection_are_set_algebra(client: Client) -> None:
    passed = ids(client, "passed_assessment(asmt_7)")
    both = ids(client, "opened(bc_1)") & ids(client, "opened(bc_2)")
    assert ids(client, "opened(bc_1) and opened(bc_2)") == both
    everyone = ids(client, "")
    assert ids(client, "not passed_assessment(asmt_7)") == everyone - passed


@pytest.mark.parametrize("order", ["name", "-name", "net_revenue", "-net_revenue", "last_request_at", "-created_at"])
def test_merged_order_is_the_servers_order(client: Client, order: str) -> None:
    query = f"(opened(bc_9) or clicked(bc_10) or has_tag(tag_1)) sort {order}"
    got = list(client.customers(query))
    key, reverse = order_key(order)
    assert [key(r) for r in got] == sorted((key(r) for r in got), reverse=reverse)
    assert got and not client.customers(query).warnings
    # The same order the API gives one listing of the same customers.
    single = [r["id"] for r in client.customers(f"sort {order}") if r["id"] in {g["id"] for g in got}]
    assert [r["id"] for r in got] == single


def test_local_filter_and_stripped_fields(client: Client) -> None:
    got = list(client.customers("sign_in_count > 5 and opened(bc_9) select name"))
    assert got and all(set(r) == {"id", "name"} for r in got)
    full = {r["id"]: r for r in client.customers("opened(bc_9)")}
    assert {r["id"] for r in got} == {i for i, r in full.items() if r["sign_in_count"] > 5}


def test_limit_after_merging_stops_early(sb: Sandbox, client: Client) -> None:
    query = "opened(bc_9) or clicked(bc_10) or has_tag(tag_1) or has_tag(tag_2) sort -net_revenue"
    everything = list(client.customers(query))
    before = sb.stats["requests"]
    top = list(client.customers(query + " limit 3"))
    assert [r["id"] for r in top] == [r["id"] for r in everything[:3]]
    assert sb.stats["requests"] - before == 4  # one small page per branch, nothing more


def test_page_of_the_merged_stream(client: Client) -> None:
    query = "opened(bc_9) or clicked(bc_10) sort email"
    everything = [r["id"] for r in client.customers(query)]
    assert [r["id"] for r in client.customers(query + " page 2 size 7")] == everything[7:14]
    assert [r["id"] for r in client.customers(query + " page 2")] == everything[25:50]  # the API's default size
    assert [r["id"] for r in client.customers(query, limit=4)] == everything[:4]


def test_count_of_a_plan(client: Client) -> None:
    query = "(opened(bc_9) or clicked(bc_10)) and not has_tag(tag_1) limit 2"
    assert client.count(query) == len(ids(client, query.replace(" limit 2", "")))


def test_contradiction_sends_nothing(sb: Sandbox, client: Client) -> None:
    before = sb.stats["requests"]
    assert list(client.customers("(site = 1 and site = 2) or (opened(bc_1) and not opened(bc_1))")) == []
    assert sb.stats["requests"] == before


def test_async_client_gives_the_same_answer(sb: Sandbox, client: Client) -> None:
    query = "(opened(bc_9) or clicked(bc_10)) and not passed_assessment(asmt_7) sort -name limit 40"

    async def collect() -> list[str]:
        async with AsyncClient(sb.base_url, token=sb.token, retry=FAST) as c:
            out = [r["id"] async for r in c.customers(query)]
            assert await c.count(query) == client.count(query)
            return out

    assert asyncio.run(collect()) == [r["id"] for r in client.customers(query)]


def test_budget_is_checked_before_any_request(sb: Sandbox) -> None:
    before = sb.stats["requests"]
    done = subprocess.run(
        [sys.executable, "-m", "kql", "run", "--base-url", sb.base_url, "--token", sb.token or "x",
         "--max-requests", "2", "opened(bc_1) or opened(bc_2) or opened(bc_3)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "E308" in done.stderr and "Traceback" not in done.stderr
    assert sb.stats["requests"] == before


def test_kql_run_streams_a_plan(sb: Sandbox, client: Client) -> None:
    query = "(opened(bc_9) or clicked(bc_10)) and sign_in_count > 2 select email sort -email limit 5"
    done = subprocess.run(
        [sys.executable, "-m", "kql", "run", "--base-url", sb.base_url, "--token", sb.token or "x", query],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == list(client.customers(query))
    assert len(rows) == 5 and all(set(r) == {"id", "email"} for r in rows)


def test_window_dedupes_then_pages_then_strips() -> None:
    records = [{"id": str(i % 4), "x": i} for i in range(10)]
    window = Window(limit=None, page=(2, 2), strip=("x",))
    assert list(window.apply(records)) == [{"id": "2"}, {"id": "3"}]
    assert window.duplicates == 0  # it stopped before reaching any
    window = Window(limit=3, page=None)
    assert [r["id"] for r in window.apply(records)] == ["0", "1", "2"]


def test_order_key_places_nulls_as_the_api_does() -> None:
    key, reverse = order_key("last_request_at")
    rows = [{"id": "2", "last_request_at": None}, {"id": "1", "last_request_at": "2024-01-01T00:00:00Z"}]
    assert [r["id"] for r in sorted(rows, key=key)] == ["1", "2"]  # nulls last ascending
    key, reverse = order_key("-name")
    rows = [{"id": "10", "name": "bob"}, {"id": "9", "name": "Bob"}, {"id": "3", "name": "alice"}]
    assert reverse and [r["id"] for r in sorted(rows, key=key, reverse=True)] == ["10", "9", "3"]


def test_explain_analyze_counts_each_listing(sb: Sandbox, client: Client) -> None:
    query = "(opened(bc_9) or clicked(bc_10)) and not has_tag(tag_1)"
    before = sb.stats["requests"]
    done = subprocess.run(
        [sys.executable, "-m", "kql", "explain", "--analyze", "--json", "--base-url", sb.base_url,
         "--token", sb.token or "x", query],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    analysis = json.loads(done.stdout)["analysis"]
    assert analysis["probe_requests"] == len(analysis["listings"])
    assert sb.stats["requests"] - before == analysis["probe_requests"] + analysis["term_requests"]
    # The branches overlap: the sum of their listings is only an upper bound; the terms are exact.
    assert analysis["count"] == len(ids(client, query)) < analysis["count_upper_bound"]
    counts = {item["role"]: item["count"] for item in analysis["listings"]}
    assert counts["branch 1"] == len(ids(client, "opened(bc_9) and not has_tag(tag_1)"))
    assert counts["branch 2"] == len(ids(client, "clicked(bc_10) and not has_tag(tag_1)"))
    assert analysis["estimated_requests"] == sum(item["pages"] for item in analysis["listings"])


def test_explain_analyze_without_credentials_is_a_clear_error() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("KAJABI_")}
    done = subprocess.run(
        [sys.executable, "-m", "kql", "explain", "--analyze", "opened(bc_9) or clicked(bc_1)"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2 and "no credentials" in done.stderr and "Traceback" not in done.stderr


def test_client_budget_refuses_before_any_request(sb: Sandbox, client: Client) -> None:
    import kql

    query = "opened(bc_1) or opened(bc_2) or opened(bc_3)"
    before = sb.stats["requests"]
    for attempt in (
        lambda: client.customers(query, max_requests=2),
        lambda: client.customers(kql.plan(query), max_requests=2),
        lambda: client.count(query, max_requests=2),
    ):
        with pytest.raises(kql.KQLError) as caught:
            attempt()
        assert caught.value.code == "E308"
    assert sb.stats["requests"] == before
    assert len(list(client.customers(query, max_requests=3))) == len(ids(client, query))


def test_a_narrowed_branch_whose_select_omits_the_sort_key_is_not_out_of_order(sb: Sandbox) -> None:
    # Issue 11.16: the sort key was not fetched, so every record looked out of order.
    query = "subscribed and not passed_assessment(asmt_1) select name sort -net_revenue limit 30"
    plan = kql.plan(query)
    assert not plan.single_request and plan.strip == ("net_revenue",)
    with Client(sb.base_url, token=sb.token) as client:
        customers = client.customers(query)
        records = list(customers)
        assert records and all(set(r) == {"id", "name"} for r in records)
        assert customers.warnings == []

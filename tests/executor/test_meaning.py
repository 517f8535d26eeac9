"""One query, one meaning (issue 11, items 14, 15, 17, 18 and the synchronous whole-attempt timeout).

Faults and fuzz against real servers on 127.0.0.1 — the sandbox, and the fake API where a
fault must be staged — in bounded loops:

- 14: without ``sort``, compile, explain and run mean newest first; a single request is sent
  exactly as ``kql compile`` prints it; customers created mid-run never push an existing one
  out of the run (past the first page's ``total_pages``, or between two pages served out of order);
- 15: ``page N`` is ``page N size 25`` everywhere, whatever the server's own default;
- 17: ``page N size M`` above the largest page size gives customers (N-1)·M+1 … N·M as one
  request and as a plan;
- 18: ``x != v`` is ``not x = v`` (the differential in tests/planner_sandbox checks it on data);
- ``--timeout`` bounds a whole attempt of the synchronous client, headers included.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import kql
from kql.execute.client import Client
from kql.execute.errors import TransportError
from kql.execute.retry import RetryPolicy
from kql.language.decompiler import decompile
from kql.language.formatter import format_query
from kql.language.jsonform import from_json
from tests.executor.conftest import FAST
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen, serving

sandbox = pytest.importorskip("kql.sandbox")

CUSTOMERS = 230


@pytest.fixture(scope="module")
def sb() -> Iterator[Any]:
    # A server default page size that is not 25: `page N` must not depend on it.
    with sandbox.running(customers=CUSTOMERS, seed=5, default_page_size=10) as server:
        yield server


def plain(sb: Any, params: list[tuple[str, str]]) -> list[str]:
    """The ids one request returns, fetched with plain httpx (not through kql's executor)."""
    response = httpx.get(f"{sb.base_url}/v1/customers", params=params, headers={"Authorization": "Bearer sandbox"})
    response.raise_for_status()
    return [str(item["id"]) for item in response.json()["data"]]


def everyone(sb: Any, sort: str | None = None) -> list[str]:
    """Every id in the server's order for ``sort`` (None: the server's default order)."""
    out: list[str] = []
    for number in range(1, CUSTOMERS // 100 + 2):
        out += plain(sb, [*([("sort", sort)] if sort else []), ("page[number]", str(number)), ("page[size]", "100")])
    return out


def run(sb: Any, text: str, **options: Any) -> list[str]:
    with Client(sb.base_url, token="sandbox", retry=FAST, **options) as client:
        return [r["id"] for r in client.customers(text)]


# -- 14: one order without `sort` -------------------------------------------------------------


def test_no_sort_means_newest_first_everywhere(sb: Any) -> None:
    assert kql.compile("page 1 size 5").params == [("page[number]", "1"), ("page[size]", "5")]  # LANGUAGE.md
    assert "newest first" in kql.plan("page 1 size 5").explain()
    plan = kql.plan("subscribed or hidden")
    assert plan.merge_order == "-created_at" and plan.to_dict()["merge"]["order"] == "-created_at"
    assert all("sort=-created_at" in b["request"] for b in plan.to_dict()["branches"])
    newest = everyone(sb)
    assert newest == everyone(sb, "-created_at")  # the server's default is newest first
    assert run(sb, "page 1 size 5") == plain(sb, kql.compile("page 1 size 5").params) == newest[:5]
    assert run(sb, "") == newest
    assert run(sb, "subscribed or not subscribed") == newest  # a tautology: one request


def test_single_requests_are_sent_as_compiled(api: FakeAPI) -> None:
    rng = random.Random(14)
    with Client(api.base_url, token=TOKEN, retry=FAST) as client:
        for _ in range(25):
            sort = rng.choice([None, "name", "-created_at", "created_at"])
            number, size = rng.randint(1, 5), rng.choice([1, 7, 25, 100])
            text = f"select name page {number} size {size}" + (f" sort {sort}" if sort else "")
            before = len(api.requests)
            list(client.customers(text))
            sent = api.requests[before:]
            assert len(sent) == 1, text
            assert sorted(sent[0].params.items()) == sorted(kql.compile(text).params), text


def _inserting(api: FakeAPI, pages: set[int], n: int) -> Any:
    def hook(seen: Seen) -> Reply | None:
        if seen.path == "/v1/customers" and seen.page in pages:
            with api.lock:
                pages.discard(seen.page)
            api.insert(n)
        return None

    return hook


def test_creations_past_the_first_total_pages_are_read_on(api: FakeAPI) -> None:
    # 250 customers, pages of 100: 3 pages. 60 created when page 2 is asked for push the 10
    # oldest onto a page 4 the first page did not know about.
    api.hook = _inserting(api, {2}, 60)
    with Client(api.base_url, token=TOKEN, retry=FAST, concurrency=1) as client:
        stream = client.customers("")
        got = [r["id"] for r in stream]
    assert {str(i) for i in range(1, 251)} <= set(got) and len(got) == len(set(got))
    assert 4 in api.pages_requested()
    assert any("total_count changed from 250 to 310" in w for w in stream.warnings)


def test_a_page_served_before_the_one_ahead_of_it_is_asked_again(api: FakeAPI) -> None:
    # Page 2 is answered late, after 30 customers were created; page 3 at once, from before:
    # between the two, 30 existing customers would fall through.
    gate = threading.Event()

    def hook(seen: Seen) -> Reply | None:
        if seen.path != "/v1/customers":
            return None
        if seen.page == 2 and not gate.is_set():
            time.sleep(0.3)  # page 3 (asked at the same time) is served meanwhile
            api.insert(30)
            gate.set()
        return None

    api.hook = hook
    with Client(api.base_url, token=TOKEN, retry=FAST, concurrency=4, max_page_size=100) as client:
        stream = client.customers("")
        got = [r["id"] for r in stream]
        stale = client.stats["fault:stale-page"]
    assert {str(i) for i in range(1, 251)} <= set(got), "existing customers fell between pages 2 and 3"
    assert len(got) == len(set(got)) and stale >= 1


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_creations_mid_run_lose_nobody(seed: int) -> None:
    rng = random.Random(seed)
    total = rng.randint(150, 700)
    with serving(total) as api:
        created = {"n": 0}

        def hook(seen: Seen) -> Reply | None:
            if seen.path != "/v1/customers":
                return None
            doc: Reply | None = None
            if rng.random() < 0.5:
                doc = Reply(200, api.page_document(seen.params), delay=rng.random() * 0.03)  # served from now, late
            if created["n"] < 120 and rng.random() < 0.6:
                k = rng.randint(1, 15)
                created["n"] += k
                api.insert(k)
            return doc

        api.hook = hook
        query = rng.choice(["", "sort -created_at", "select name", "limit 400"])
        with Client(api.base_url, token=TOKEN, retry=FAST, concurrency=rng.choice([1, 3, 8]),
                    max_page_size=rng.choice([10, 37, 100])) as client:
            got = [r["id"] for r in client.customers(query)]
    assert len(got) == len(set(got)), "duplicates"
    wanted = range(total, total - 400, -1) if query == "limit 400" else range(1, total + 1)
    if query == "limit 400":
        assert len(got) == min(400, total + created["n"])
    else:
        missing = {str(i) for i in wanted if i >= 1} - set(got)
        assert not missing, f"{len(missing)} existing customers lost ({query!r}, seed {seed})"


# -- 15: `page N` means size 25 ---------------------------------------------------------------


def test_page_without_size_is_size_25_everywhere(sb: Any) -> None:
    compiled = kql.compile("page 3")
    assert compiled.params == [("page[number]", "3"), ("page[size]", "25")] and compiled.page == (3, 25)
    assert format_query(kql.parse("page 3")) == "page 3"  # as written; the same query as `page 3 size 25`
    assert kql.compile(from_json({"kql": 1, "page": {"number": 3}})).params == compiled.params
    assert kql.compile(decompile("page[number]=3").text).params == compiled.params
    assert "size 25" in kql.plan("page 3").explain()
    newest = everyone(sb)
    assert run(sb, "page 3") == plain(sb, compiled.params) == newest[50:75]  # the server's default is 10
    assert run(sb, "sign_in_count >= 0 page 3") == newest[50:75]  # a plan: the same window


# -- 17: a page above the largest page size -----------------------------------------------------


def test_large_page_warns_at_compile_and_is_the_same_customers_run(sb: Any) -> None:
    compiled = kql.compile("page 2 size 150")
    assert compiled.params == [("page[number]", "2"), ("page[size]", "150")]  # the literal request
    assert [w.code for w in compiled.warnings] == ["W002"] and "the API may refuse" in compiled.warnings[0].message
    assert not kql.compile("page 2 size 100").warnings
    assert not kql.plan("page 2 size 150").warnings  # the run pages it itself: nothing to warn about there
    with pytest.raises(httpx.HTTPStatusError):
        plain(sb, compiled.params)  # the sandbox's maximum is 100, as kql's
    newest = everyone(sb)
    assert run(sb, "page 2 size 150") == newest[150:300]
    assert run(sb, "sign_in_count >= 0 page 2 size 150") == newest[150:300]


def test_fuzz_large_pages_one_request_and_plan_agree(sb: Any) -> None:
    rng = random.Random(17)
    orders = {s: everyone(sb, s) for s in (None, "name", "-net_revenue")}
    with Client(sb.base_url, token="sandbox", retry=FAST, max_page_size=7) as client:
        for _ in range(30):
            sort = rng.choice(list(orders))
            number, size = rng.randint(1, 12), rng.randint(1, 40)
            limit = rng.choice([None, None, rng.randint(1, 30)])
            clauses = f"page {number} size {size}" + (f" sort {sort}" if sort else "") + (
                f" limit {limit}" if limit else ""
            )
            window = orders[sort][(number - 1) * size : number * size][:limit]
            one = [r["id"] for r in client.customers(clauses)]
            planned = [r["id"] for r in client.customers("sign_in_count >= 0 " + clauses)]
            assert one == planned == window, clauses


# -- 18: `x != v` is `not x = v` ------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["external_user_id", "public_location", "email", "sign_in_count"])
def test_not_equal_plans_as_not_equal(attribute: str) -> None:
    value = "1" if attribute == "sign_in_count" else '"x"'
    ne, not_eq = kql.plan(f"{attribute} != {value}"), kql.plan(f"not {attribute} = {value}")
    assert ne.branches == not_eq.branches
    assert kql.plan(f"{attribute} != {value} or {attribute} = {value}").branches == kql.plan("").branches


def test_not_equal_keeps_customers_without_the_attribute(sb: Any) -> None:
    with Client(sb.base_url, token="sandbox", retry=FAST) as client:
        records = list(client.customers("select external_user_id"))
        lacking = {r["id"] for r in records if r.get("external_user_id") is None}
        assert lacking, "the sandbox has customers without an external_user_id"
        kept = {r["id"] for r in client.customers('external_user_id != "cust_7"')}
    assert lacking <= kept
    assert kept == {r["id"] for r in records if r.get("external_user_id") != "cust_7"}


# -- the synchronous client's timeout bounds a whole attempt ----------------------------------------


def test_sync_client_cuts_off_headers_trickled_a_byte_at_a_time() -> None:
    # ~270 header bytes at 0.5 s each: over two minutes unless the attempt as a whole is bounded.
    with serving(10) as api:
        api.scenario("trickle-head")
        retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
        with Client(api.base_url, token=TOKEN, retry=retry, timeout=1) as client:
            assert client.bounded
            with pytest.raises(TransportError, match="timed out") as failed:
                list(client.customers("limit 5"))
            assert failed.value.attempts == 2 and client.stats["fault:timeout"] == 2

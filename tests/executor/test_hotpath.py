"""Pure logic of the export hot path: each fast path gives exactly what the general one gives."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kql.execute.async_client import AsyncClient
from kql.execute.base import request_target
from kql.execute.client import Client
from kql.execute.errors import PaginationError
from kql.execute.idset import IdSet
from kql.execute.pagination import Page, Pager, parse_page
from kql.execute.streams import Customers
from tests.executor.conftest import FAST
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen

_IDS = st.one_of(st.integers(0, 2**63 - 1).map(str), st.sampled_from(["0", "00", "007", "7", "x", "²", ""]))


@given(st.lists(st.lists(_IDS, max_size=40), max_size=12))
def test_add_many_is_add_in_a_loop(batches: list[list[str]]) -> None:
    batched, one_by_one = IdSet(bucket=1), IdSet(bucket=1)  # tiny buckets: doubling inside a batch
    for keys in batches:
        expected = [i for i, key in enumerate(keys) if not one_by_one.add(key)]
        assert batched.add_many(keys) == expected
    assert len(batched) == len(one_by_one)


def test_add_many_reports_repeats_within_the_batch_and_across() -> None:
    ids = IdSet(bucket=2)
    assert ids.add_many(["1", "2", "1", "007", "7", "007"]) == [2, 5]
    assert ids.add_many(["3", "2", "abc", "abc"]) == [1, 3]
    assert len(ids) == 6


def test_parse_page_record_shape() -> None:
    page = parse_page(
        2,
        {
            "data": [
                {"id": "9", "attributes": {"name": "A", "id": "other", "email": "a@x"}},
                {"id": 10, "type": "customers"},
                {"id": "11", "attributes": None},
            ],
        },
    )
    # The resource's id, first, whatever the attributes say; then the attributes in their order.
    assert [list(r) for r in page.records] == [["id", "name", "email"], ["id"], ["id"]]
    assert page.records == [{"id": "9", "name": "A", "email": "a@x"}, {"id": "10"}, {"id": "11"}]
    assert page.total_pages is None and page.total_count is None and page.current_page is None
    for bad in ([{"attributes": {}}], ["9"], [None], [{"id": None}], [{"id": 1.5}], [{"id": ["1"]}]):
        with pytest.raises(PaginationError, match="page 2: a resource without an id"):
            parse_page(2, {"data": bad})
    for payload in (None, [], {"data": {}}, {"data": None}):
        with pytest.raises(PaginationError, match="no 'data' list"):
            parse_page(2, payload)


def _page(number: int, ids: list[str]) -> Page:
    return Page(number, [{"id": i} for i in ids], None, None, number)


def test_accept_drops_repeats_within_and_across_pages() -> None:
    pager = Pager([], max_page_size=4)
    assert [r["id"] for r in pager.accept(_page(1, ["1", "2", "2", "3"]))] == ["1", "2", "3"]
    assert [r["id"] for r in pager.accept(_page(2, ["3", "4", "5", "1"]))] == ["4", "5"]
    assert pager.duplicates == 3 and pager.yielded == 5 and not pager.finished


def test_accept_stops_at_the_limit_inside_a_page() -> None:
    pager = Pager([], limit=5, max_page_size=4)  # pages of 3 for a limit of 5
    assert [r["id"] for r in pager.accept(_page(1, ["1", "2", "3"]))] == ["1", "2", "3"]
    # A repeat does not count towards the limit; customers past it are neither yielded nor
    # counted as duplicates.
    assert [r["id"] for r in pager.accept(_page(2, ["3", "4", "5"]))] == ["4", "5"]
    assert pager.finished and pager.yielded == 5 and pager.duplicates == 1
    assert pager.accept(_page(3, ["6"])) == []


def test_accept_a_page_that_exactly_reaches_the_limit_finishes() -> None:
    pager = Pager([], limit=3, max_page_size=3)
    assert len(pager.accept(_page(1, ["1", "2", "3"]))) == 3
    assert pager.finished


@pytest.mark.parametrize(
    "params",
    [
        [("filter[search]", "a&b=c#d+e%f [x] 'q' \"w\"\nz é 日本"), ("sort", "-created_at")],
        [("filter[site_id]", "1"), ("page[number]", "2"), ("page[size]", "100")],
        [("empty", ""), ("same", "1"), ("same", "2")],
    ],
)
def test_request_target_is_the_query_httpx_would_send(params: list[tuple[str, str]]) -> None:
    url = httpx.URL("https://api.example.com/v1/customers")
    target, rest = request_target(url, params)
    assert rest is None
    with httpx.Client() as http:
        ours = http.build_request("GET", target)
        theirs = http.build_request("GET", url, params=params)
    assert ours.url == theirs.url
    assert parse_qsl(ours.url.query.decode(), keep_blank_values=True) == params


def test_request_target_leaves_other_requests_to_httpx() -> None:
    url = httpx.URL("https://api.example.com/v1/customers")
    with_query = httpx.URL("https://api.example.com/v1/customers?page[number]=2")  # a redirect's target
    assert request_target(with_query, [("a", "1")]) == (with_query, [("a", "1")])
    assert request_target(url, None) == (url, None)
    assert request_target(url, [("n", 1)]) == (url, [("n", 1)])  # httpx's own rules for non-strings


def test_customers_iterates_its_records_in_a_loop_and_by_next() -> None:
    stream = Customers(Pager([]), iter([{"id": "1"}, {"id": "2"}, {"id": "3"}]))
    assert next(stream) == {"id": "1"}
    assert [r["id"] for r in stream] == ["2", "3"]
    with pytest.raises(StopIteration):
        next(stream)


def test_ndjson_and_json_as_json_dumps_writes_them() -> None:
    from kql.cli.render import write

    records = [{"id": "1", "name": "Zoë \"Z\"\n", "socials": {"a": [1, 2.5, None, True]}, "n": float("inf")}]
    out = io.StringIO()
    write(iter(records), out, "ndjson")
    assert out.getvalue() == json.dumps(records[0], ensure_ascii=False, separators=(",", ":")) + "\n"
    out = io.StringIO()
    write(iter(records), out, "json")
    assert out.getvalue() == "[\n" + json.dumps(records[0], ensure_ascii=False) + "\n]\n"


# ---- against a real server on 127.0.0.1 -----------------------------------------------


def _page_two_flag(api: FakeAPI) -> threading.Event:
    asked = threading.Event()

    def hook(seen: Seen) -> Reply | None:
        if seen.path == "/v1/customers" and seen.page == 2:
            asked.set()
        return None

    api.hook = hook
    return asked


def test_the_next_pages_are_asked_for_before_the_first_page_is_read(api: FakeAPI) -> None:
    asked = _page_two_flag(api)
    with Client(api.base_url, token=TOKEN, retry=FAST) as client:
        stream = client.customers("")
        assert next(stream)["id"] == "250"  # newest first, the API's default
        # One customer read of page 1's hundred: page 2 is under way all the same (a deadline, not a timing).
        assert asked.wait(30)
        assert [r["id"] for r in stream] == [str(i) for i in range(249, 0, -1)]


def test_the_async_client_asks_for_the_next_pages_before_the_first_page_is_read(api: FakeAPI) -> None:
    asked = _page_two_flag(api)

    async def main() -> tuple[bool, list[str]]:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST) as client:
            stream = client.customers("")
            first = await anext(stream)
            seen = await asyncio.to_thread(asked.wait, 30)  # the loop runs the page tasks meanwhile
            return seen, [first["id"]] + [r["id"] async for r in stream]

    seen, ids = asyncio.run(main())
    assert seen and ids == [str(i) for i in range(250, 0, -1)]  # newest first, the API's default


def _not_json_once_then_page_three(api: FakeAPI) -> tuple[threading.Event, list[int]]:
    """Page 2's first answer is a 200 whose body is not JSON; page 3's first request notes how often
    page 2 had been asked for by then."""
    page_three = threading.Event()
    page_two_asked: list[int] = []

    def hook(seen: Seen) -> Reply | None:
        if seen.path != "/v1/customers":
            return None
        asked = [r.page for r in api.requests].count(2)
        if seen.page == 3 and not page_three.is_set():
            page_two_asked.append(asked)
            page_three.set()
        if seen.page == 2 and asked == 1:
            return Reply(200, b'{"data": [', {"Content-Type": "application/vnd.api+json"})
        return None

    api.hook = hook
    return page_three, page_two_asked


def test_a_worker_asks_for_its_next_page_before_the_page_it_read_is_decoded(api: FakeAPI) -> None:
    # One worker, and the reader held on page 1: the worker reads page 2's body and goes on to page 3
    # without decoding it (so it has not seen that it is not JSON). The reader decodes page 2 in its
    # turn, asks for it again, and nothing is lost.
    page_three, page_two_asked = _not_json_once_then_page_three(api)
    with Client(api.base_url, token=TOKEN, retry=FAST, max_page_size=50, concurrency=1) as client:
        stream = client.customers("")
        assert next(stream)["id"] == "250"
        assert page_three.wait(30)
        assert page_two_asked == [1]
        assert [r["id"] for r in stream] == [str(i) for i in range(249, 0, -1)]
        assert client.stats["fault:bad-body"] == 1
    assert [r.page for r in api.requests].count(2) == 2


def test_an_async_page_task_frees_its_slot_before_its_page_is_decoded(api: FakeAPI) -> None:
    page_three, page_two_asked = _not_json_once_then_page_three(api)

    async def main() -> tuple[bool, list[str], int]:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST, max_page_size=50, concurrency=1) as client:
            stream = client.customers("")
            first = await anext(stream)
            seen = await asyncio.to_thread(page_three.wait, 30)  # the loop runs the page tasks meanwhile
            rest = [r["id"] async for r in stream]
            return seen, [first["id"], *rest], client.stats["fault:bad-body"]

    seen, ids, bad = asyncio.run(main())
    assert seen and page_two_asked == [1]
    assert ids == [str(i) for i in range(250, 0, -1)] and bad == 1
    assert [r.page for r in api.requests].count(2) == 2

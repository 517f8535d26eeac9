"""The executor against a real server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kql.execute.client import Client
from kql.execute.errors import APIError, PaginationError, RedirectRefused, TransportError
from tests.executor.conftest import FAST
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen, serving


def client(api: FakeAPI, **options: Any) -> Client:
    options.setdefault("token", TOKEN)
    options.setdefault("retry", FAST)
    return Client(api.base_url, **options)


def ids(records: Any) -> list[str]:
    return [r["id"] for r in records]


def every_id(n: int, total: int | None = None) -> list[str]:
    """The first ``n`` of the fake API's ``total`` (default ``n``) customers in the default order:
    newest first (customer i was created i-th)."""
    top = n if total is None else total
    return [str(i) for i in range(top, top - n, -1)]


def first_attempt(api: FakeAPI, page: int, reply: Reply, times: int = 1) -> None:
    """Answer the first ``times`` requests for ``page`` with ``reply``, then behave."""
    seen_count = {"n": 0}

    def hook(seen: Seen) -> Reply | None:
        if seen.path == "/v1/customers" and seen.page == page and seen_count["n"] < times:
            seen_count["n"] += 1
            return reply
        return None

    api.hook = hook


def test_pages_concurrently_in_order(api: FakeAPI) -> None:
    # Later pages answer first: the output must still be in page order.
    api.hook = lambda s: Reply(200, api.page_document(s.params), delay=0.02 * (5 - s.page)) if s.page < 5 else None
    with client(api, max_page_size=10, concurrency=4) as c:
        assert ids(c.customers("")) == every_id(250)
    assert sorted(api.pages_requested()) == list(range(1, 26))
    assert all("sort" not in s.params for s in api.requests)  # no sort asked: the API's default, newest first


def test_limit_5_is_one_request(api: FakeAPI) -> None:
    with client(api) as c:
        assert ids(c.customers("limit 5")) == every_id(5, 250)
    assert len(api.requests) == 1
    assert api.requests[0].params["page[size]"] == "5"


def test_limit_across_pages_stops_early(api: FakeAPI) -> None:
    with client(api, max_page_size=50) as c:
        assert ids(c.customers("limit 120")) == every_id(120, 250)
    assert sorted(api.pages_requested()) == [1, 2, 3]  # three pages of 40


def test_429_with_retry_after_waits_then_succeeds(api: FakeAPI) -> None:
    first_attempt(api, 2, Reply(429, {"errors": [{"title": "Too Many Requests"}]}, {"Retry-After": "1"}))
    started = time.monotonic()
    with client(api) as c:
        assert ids(c.customers("")) == every_id(250)
        assert c.stats["fault:429"] == 1
    assert time.monotonic() - started >= 0.9  # the server's Retry-After was honoured


def test_bursts_of_503(api: FakeAPI) -> None:
    burst = Reply(503, b"<html><title>503 Service Unavailable</title></html>", {"Content-Type": "text/html"})
    api.hook = lambda s: burst if sum(1 for r in api.requests if r.page == s.page) <= 3 else None
    with client(api, max_page_size=50) as c:
        assert ids(c.customers("")) == every_id(250)
        assert c.stats["fault:503"] == 15


def test_503_until_retries_run_out_is_an_api_error(api: FakeAPI) -> None:
    api.hook = lambda s: Reply(503, b"")
    with client(api) as c, pytest.raises(APIError) as caught:
        list(c.customers(""))
    assert caught.value.status == 503 and caught.value.exit_code == 4
    assert "after 6 attempts" in str(caught.value)


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_never_retried(api: FakeAPI, status: int) -> None:
    api.hook = lambda s: Reply(status, {"errors": [{"status": str(status), "title": "No"}]})
    with client(api) as c, pytest.raises(APIError) as caught:
        list(c.customers(""))
    assert caught.value.status == status
    assert len(api.requests) == 1


def test_read_timeout_is_retried(api: FakeAPI) -> None:
    first_attempt(api, 2, Reply(200, {"data": []}, delay=1.0))
    with client(api, timeout=0.3, max_page_size=100) as c:
        assert ids(c.customers("")) == every_id(250)
        assert c.stats["fault:timeout"] == 1


def test_connection_dropped_mid_body(api: FakeAPI) -> None:
    def hook(seen: Seen) -> Reply | None:
        if seen.page == 2 and sum(1 for r in api.requests if r.page == 2) == 1:
            return Reply(200, api.page_document(seen.params), drop_after=200)
        return None

    api.hook = hook
    with client(api) as c:
        assert ids(c.customers("")) == every_id(250)
        assert c.stats["fault:dropped"] == 1


def test_links_next_on_another_origin_is_never_followed(other: FakeAPI) -> None:
    # Like Kajabi's links (app.kajabi.com vs api.kajabi.com): localhost is not 127.0.0.1.
    with serving(250, links_base=f"http://localhost:{other.port}") as api, client(api) as c:
        assert ids(c.customers("")) == every_id(250)
        assert api.requests[0].page == 1 and len(api.requests) == 3
    assert other.requests == []


def test_cross_origin_redirect_refused(api: FakeAPI, other: FakeAPI) -> None:
    target = f"http://localhost:{other.port}/v1/customers"
    first_attempt(api, 1, Reply(302, b"", {"Location": target}))
    with client(api) as c, pytest.raises(RedirectRefused, match="another origin"):
        list(c.customers(""))
    assert other.requests == []


def test_same_origin_redirect_followed(api: FakeAPI) -> None:
    first_attempt(api, 1, Reply(307, b"", {"Location": "/v1/customers?page[number]=1&page[size]=5"}))
    with client(api) as c:
        assert ids(c.customers("limit 5")) == every_id(5, 250)
    assert all(s.token == TOKEN for s in api.requests)


def test_page_that_never_advances(api: FakeAPI) -> None:
    # A server that ignores page[number] and keeps sending page 1.
    api.hook = lambda s: Reply(200, api.page_document({**s.params, "page[number]": "1"}))
    with client(api) as c, pytest.raises(PaginationError, match="does not advance"):
        list(c.customers(""))


def test_repeating_page_without_meta(api: FakeAPI) -> None:
    def hook(seen: Seen) -> Reply:
        doc = api.page_document({**seen.params, "page[number]": "1"})
        del doc["meta"]
        return Reply(200, doc)

    api.hook = hook
    with client(api) as c, pytest.raises(PaginationError, match="repeats page 1"):
        list(c.customers(""))
    assert len(api.requests) == 2  # sequential fallback, stopped at the first repeat


def test_no_total_pages_falls_back_to_sequential(api: FakeAPI) -> None:
    def hook(seen: Seen) -> Reply:
        doc = api.page_document(seen.params)
        del doc["meta"]
        return Reply(200, doc)

    api.hook = hook
    with client(api) as c:
        assert ids(c.customers("")) == every_id(250)


def test_token_expiring_with_8_pages_in_flight_refreshes_once() -> None:
    with serving(900, token=None, client_id="cid", client_secret="csecret-123") as api:
        barrier = threading.Barrier(8, timeout=10)

        def hook(seen: Seen) -> Reply | None:
            if seen.path == "/v1/customers" and seen.token == "granted-1-XYZW" and seen.page > 1:
                api.valid_tokens.discard("granted-1-XYZW")  # expired on the server's side
                barrier.wait()  # all 8 are in flight with the old token before any answer
                return Reply(401, {"errors": [{"title": "Unauthorized", "detail": "token expired"}]})
            return None

        api.hook = hook
        with Client(api.base_url, client_id="cid", client_secret="csecret-123", retry=FAST, concurrency=8) as c:
            assert ids(c.customers("")) == every_id(900)
            assert c.stats["token-grant"] == 2
        assert len(api.grants) == 2  # the first token, and exactly one refresh


def test_customers_inserted_between_pages_newest_first(api: FakeAPI) -> None:
    # Newest first (the default), new customers shift older ones onto the next page: dedupe and warn.
    original = set(every_id(250))

    def hook(seen: Seen) -> Reply | None:
        if seen.page == 2 and len(api.customers) == 250:
            api.insert(30)
        return None

    api.hook = hook
    with client(api, concurrency=1) as c:
        stream = c.customers("")
        got = ids(stream)
    assert len(got) == len(set(got))  # no duplicates
    assert original <= set(got)  # nobody pushed out
    warnings = " ".join(stream.warnings)
    assert "total_count changed from 250 to 280" in warnings and "duplicate" in warnings


def test_customers_inserted_oldest_first(api: FakeAPI) -> None:
    # sort created_at: new customers land at the end and shift nothing.
    api.hook = lambda s: api.insert(30) if s.page == 2 and len(api.customers) == 250 else None  # type: ignore[func-returns-value]
    with client(api, concurrency=1) as c:
        stream = c.customers("sort created_at")
        got = ids(stream)
    assert got[:250] == [str(i) for i in range(1, 251)] and len(got) == len(set(got))
    assert any("total_count changed" in w for w in stream.warnings)


def test_nothing_listening_is_a_transport_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", token=TOKEN, retry=FAST) as c, pytest.raises(TransportError) as caught:
        list(c.customers(""))
    assert "could not connect" in str(caught.value) and caught.value.exit_code == 4


def test_token_goes_nowhere_but_the_origin(api: FakeAPI) -> None:
    with client(api) as c:
        list(c.customers("limit 5"))
        assert TOKEN not in repr(c)
    assert api.requests[0].token == TOKEN


def test_count_is_one_small_request(api: FakeAPI) -> None:
    with client(api) as c:
        assert c.count("") == 250
    assert len(api.requests) == 1 and api.requests[0].params["page[size]"] == "1"


def test_contradiction_sends_nothing(api: FakeAPI) -> None:
    with client(api) as c:
        assert list(c.customers("site = 1 and site = 2")) == []
        assert c.count("site = 1 and site = 2") == 0
    assert api.requests == []


def test_stop_early_cancels_queued_pages(api: FakeAPI) -> None:
    with client(api, max_page_size=5, concurrency=2) as c:
        stream = c.customers("")
        assert ids(next(stream) for _ in range(3)) == every_id(3, 250)
        stream.close()
    assert len(api.requests) <= 1 + 2 * 2 + 2  # never the 50 pages


def test_an_error_stops_the_other_pages_retrying(api: FakeAPI) -> None:
    from kql.execute.retry import RetryPolicy

    def hook(seen: Seen) -> Reply | None:
        if seen.page == 2:
            return Reply(400, {"errors": [{"title": "Bad Request"}]}, delay=0.3)
        return Reply(503, b"") if seen.page > 2 else None

    api.hook = hook
    slow = RetryPolicy(max_attempts=6, backoff_base=5, backoff_cap=5, deadline=60)
    c = client(api, retry=slow, max_page_size=10, concurrency=4)
    with pytest.raises(APIError):
        list(c.customers(""))
    pool = c._pool
    c.close()
    started = time.monotonic()
    assert pool is not None
    pool.shutdown(wait=True)
    assert time.monotonic() - started < 3  # the workers gave up their 5-second backoffs at once


def test_a_failed_refresh_is_not_repeated_by_every_waiting_request() -> None:
    with serving(900, token=None, client_id="cid", client_secret="csecret-123") as api:

        def hook(seen: Seen) -> Reply | None:
            if seen.path == "/v1/oauth/token" and api.grants:
                return Reply(401, {"error": "invalid_client", "error_description": "key rotated"})
            if seen.path == "/v1/customers" and seen.page > 1:
                return Reply(401, {"errors": [{"title": "Unauthorized"}]})
            return None

        api.hook = hook
        with (
            Client(api.base_url, client_id="cid", client_secret="csecret-123", retry=FAST) as c,
            pytest.raises(APIError, match="invalid_client: key rotated") as caught,
        ):
            list(c.customers(""))
        assert caught.value.exit_code == 3
        grants = [s for s in api.requests if s.path == "/v1/oauth/token"]
        assert len(grants) == 2  # the first token, one refused refresh: not one per page in flight


def test_debug_logs_never_carry_the_token(api: FakeAPI, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    first_attempt(api, 1, Reply(503, b"", {"Retry-After": "0"}))
    with caplog.at_level(logging.DEBUG), client(api) as c:
        assert len(list(c.customers("limit 5"))) == 5
    assert caplog.records  # httpx and httpcore did log the requests
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("meta", [True, False])
def test_server_capping_page_size_below_the_ask(api: FakeAPI, meta: bool) -> None:
    def hook(seen: Seen) -> Reply:
        capped = {**seen.params, "page[size]": str(min(40, int(seen.params["page[size]"])))}
        doc = api.page_document(capped)
        if not meta:
            del doc["meta"]
        return Reply(200, doc)

    api.hook = hook
    with client(api) as c:
        assert ids(c.customers("limit 150")) == every_id(150, 250)  # asked 2 × 75, served 40 a page
        assert ids(c.customers("")) == every_id(250)


@pytest.mark.parametrize("refresh_accepted", [True, False])
def test_refresh_token_grant_then_client_credentials(refresh_accepted: bool) -> None:
    with serving(300, token=None, client_id="cid", client_secret="csecret-123") as api:
        api.issue_refresh_tokens = True
        if not refresh_accepted:
            api.hook = lambda s: api.refresh_tokens.clear() if s.path == "/v1/oauth/token" else None  # type: ignore[func-returns-value]
        with Client(api.base_url, client_id="cid", client_secret="csecret-123", retry=FAST) as c:
            assert ids(c.customers("limit 5")) == every_id(5, 300)
            api.valid_tokens.clear()  # revoked on the server: the next request gets a 401
            assert ids(c.customers("limit 5")) == every_id(5, 300)
        kinds = [g["grant_type"] for g in api.grants]
        assert kinds == ["client_credentials", "refresh_token" if refresh_accepted else "client_credentials"]
        if not refresh_accepted:  # the refused refresh attempt was made first
            assert [s.body.split("&")[0] for s in api.requests if s.path == "/v1/oauth/token"][1] == (
                "grant_type=refresh_token"
            )


def test_a_body_that_is_never_json_uses_the_retry_budget_once(api: FakeAPI) -> None:
    # Page 2 is decoded by the reader, not the worker that read it: its retries are the same
    # exchange's, so the policy's attempts are all it gets, not twice as many.
    api.hook = lambda s: Reply(200, b"<html>", {"Content-Type": "text/html"}) if s.page == 2 else None
    with client(api, max_page_size=100) as c, pytest.raises(TransportError) as caught:
        list(c.customers(""))
    assert "not valid JSON" in str(caught.value) and "after 6 attempts" in str(caught.value)
    assert api.pages_requested().count(2) == 6

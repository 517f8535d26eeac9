"""Issue 11, items 1–5: nothing lost, nothing leaked — against hostile servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from kql.execute.async_client import AsyncClient
from kql.execute.client import Client
from kql.execute.errors import (
    ConfigError,
    ExecutorError,
    IncompleteResult,
    PaginationError,
    ResponseTooLarge,
    TransportError,
    redact,
)
from kql.execute.pagination import Page, Pager
from kql.execute.retry import RetryPolicy
from tests.executor.conftest import FAST
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen, serving

ONCE = RetryPolicy(max_attempts=1)


def client(api: FakeAPI, **options: Any) -> Client:
    options.setdefault("token", TOKEN)
    options.setdefault("retry", FAST)
    return Client(api.base_url, **options)


def ids(records: Any) -> list[str]:
    return [r["id"] for r in records]


def kql_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAJABI_")}
    return subprocess.run(
        [sys.executable, "-m", "kql", "run", *args],
        capture_output=True, text=True, timeout=60, env={**clean, **(env or {})},
    )  # fmt: skip


# -- 1. short pages ----------------------------------------------------------


def test_a_short_page_is_fetched_again_and_then_an_error(api: FakeAPI) -> None:
    api.scenario("short")
    with client(api) as c, pytest.raises(IncompleteResult) as failed:
        list(c.customers(""))
    assert failed.value.missing == 90 and failed.value.exit_code == 4
    assert "90 customer(s) of the 250 the server counted are missing" in str(failed.value)
    assert "page 2 held 10 of 100" in str(failed.value)
    assert api.pages_requested().count(2) == 2  # asked again once


def test_a_short_page_that_heals_when_asked_again(api: FakeAPI) -> None:
    api.scenario("short", times=1)
    with client(api) as c:
        stream = c.customers("")
        assert ids(stream) == [str(i) for i in range(250, 0, -1)]
        assert c.stats["fault:short-page"] == 1 and stream.warnings == []


def test_a_short_page_async(api: FakeAPI) -> None:
    api.scenario("short")

    async def go() -> None:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST) as c:
            with pytest.raises(IncompleteResult, match="90 customer"):
                _ = [r async for r in c.customers("")]

    asyncio.run(go())


def test_overlapping_pages_say_how_many_are_missing(api: FakeAPI) -> None:
    api.scenario("overlap")
    with client(api) as c, pytest.raises(IncompleteResult) as failed:
        list(c.customers(""))
    assert failed.value.missing == 5 and "5 duplicate(s) were dropped" in str(failed.value)


def test_allow_partial_is_a_warning_and_a_count(api: FakeAPI) -> None:
    api.scenario("short")
    with client(api, allow_partial=True) as c:
        stream = c.customers("")
        assert len(list(stream)) == 160
        assert c.stats["records-missing"] == 90
        assert any("90 customer(s)" in w and "accepted" in w for w in stream.warnings)


def test_a_plan_run_gets_the_same_protection(api: FakeAPI) -> None:
    api.scenario("short")
    with client(api) as c, pytest.raises(IncompleteResult):
        list(c.customers("subscribed or net_revenue > 5"))  # two listings, merged


def test_a_short_page_while_total_count_moves_is_a_warning(api: FakeAPI) -> None:
    def hook(seen: Seen) -> Reply:
        doc = api.page_document(seen.params)
        if seen.page == 2:
            doc["data"] = doc["data"][:10]
            doc["meta"]["total_count"] = 240  # customers deleted meanwhile: missing is not provable
        return Reply(200, doc)

    api.hook = hook
    with client(api) as c:
        stream = c.customers("")
        assert len(list(stream)) == 160
        assert any("cannot be proven" in w for w in stream.warnings)


@pytest.mark.parametrize("query", ["limit 120", "page 2 size 100", "page 3 size 100"])
def test_legitimate_short_answers_pass(api: FakeAPI, query: str) -> None:
    with client(api, max_page_size=50) as c:
        stream = c.customers(query)
        assert len(list(stream)) == {"limit 120": 120, "page 2 size 100": 100, "page 3 size 100": 50}[query]
        assert stream.warnings == []


def test_kql_run_exit_4_then_5_with_allow_partial(api: FakeAPI) -> None:
    api.scenario("short")
    base = ["", "--base-url", api.base_url, "--token", TOKEN, "--retries", "0"]
    failed = kql_run(*base)
    assert failed.returncode == 4 and "90 customer(s)" in failed.stderr and "--allow-partial" in failed.stderr
    partial = kql_run(*base, "--allow-partial")
    assert partial.returncode == 5, partial.stderr
    assert len(partial.stdout.splitlines()) == 160 and "warning: 90 customer(s)" in partial.stderr


# -- 2. absurd pagination metadata ---------------------------------------------


def test_absurd_total_pages_is_refused_naming_both_figures(api: FakeAPI) -> None:
    api.scenario("absurd-pages")
    with client(api) as c, pytest.raises(PaginationError) as failed:
        list(c.customers(""))
    assert "total_pages is 1000000000000" in str(failed.value) and "makes 3 page(s)" in str(failed.value)


def test_the_page_plan_is_lazy() -> None:
    pager = Pager([], limit=10**9)
    first = Page(1, [{"id": str(i)} for i in range(100)], 10**12, None, 1)  # no total_count to check it by
    pager.accept(first)
    rest = pager.rest(first)
    assert rest is not None and pager.last_page() == 10**7  # the limit's pages, never a list
    assert [next(rest) for _ in range(3)] == [2, 3, 4]


def test_a_huge_body_is_refused_before_it_is_all_read(api: FakeAPI) -> None:
    api.scenario("huge")  # 64 MiB, chunked: no Content-Length to refuse it by
    with client(api, max_body_bytes=2 << 20) as c, pytest.raises(ResponseTooLarge, match="larger than 2 MiB"):
        list(c.customers("limit 5"))


def test_a_declared_huge_body_is_refused_from_its_length(api: FakeAPI) -> None:
    api.hook = lambda s: Reply(200, b" " * (3 << 20))
    with client(api, max_body_bytes=1 << 20) as c, pytest.raises(ResponseTooLarge):
        list(c.customers("limit 5"))

    async def go() -> None:
        async with AsyncClient(api.base_url, token=TOKEN, retry=FAST, max_body_bytes=1 << 20) as ac:
            with pytest.raises(ResponseTooLarge):
                _ = [r async for r in ac.customers("limit 5")]

    asyncio.run(go())


def test_kql_run_max_body_mb(api: FakeAPI) -> None:
    api.scenario("huge")
    done = kql_run("limit 5", "--base-url", api.base_url, "--token", TOKEN, "--max-body-mb", "1")
    assert done.returncode == 4 and "larger than 1 MiB" in done.stderr and "--max-body-mb" in done.stderr


# -- 3. a server that trickles ---------------------------------------------------


def test_a_trickling_server_is_cut_off_by_the_timeout(api: FakeAPI) -> None:
    api.scenario("trickle")  # headers at once, then a byte a second: minutes for one page
    done = kql_run("limit 5", "--base-url", api.base_url, "--token", TOKEN, "--timeout", "2", "--retries", "0")
    assert done.returncode == 4 and "timed out" in done.stderr, done.stderr  # and within the 60 s bound


def test_a_trickling_server_async_is_a_retryable_timeout(api: FakeAPI) -> None:
    api.scenario("trickle")

    async def go() -> None:
        retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
        async with AsyncClient(api.base_url, token=TOKEN, retry=retry, timeout=1) as c:
            with pytest.raises(TransportError, match="timed out") as failed:
                _ = [r async for r in c.customers("limit 5")]
            assert failed.value.attempts == 2 and c.stats["fault:timeout"] == 2

    asyncio.run(asyncio.wait_for(go(), 50))


# -- 4. credentials that cannot be sent -------------------------------------------


@pytest.mark.parametrize(
    ("where", "value", "says"),
    [
        ("--token", "abc\r\nX: 1", "the token contains a control character (position 4)"),
        ("KAJABI_TOKEN", "abc\r\nX: 1", "KAJABI_TOKEN: the token contains a control character (position 4)"),
        ("KAJABI_TOKEN", "tökenvalue", "the token contains a non-ASCII character (position 2)"),
        ("KAJABI_CLIENT_SECRET", "sec\nretvalue", "the client secret contains a control character (position 4)"),
    ],
)
def test_unsendable_credentials_are_usage_errors_that_do_not_echo_them(
    api: FakeAPI, where: str, value: str, says: str
) -> None:
    args, env = ["limit 1", "--base-url", api.base_url], {}
    if where == "--token":
        args += ["--token", value]
    elif where == "KAJABI_CLIENT_SECRET":
        env = {"KAJABI_CLIENT_ID": "cid", where: value}
    else:
        env = {where: value}
    done = kql_run(*args, env=env)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and value not in done.stderr and repr(value)[1:-1] not in done.stderr
    assert api.requests == []


def test_a_token_with_a_trailing_newline_still_works(api: FakeAPI) -> None:
    done = kql_run("limit 1", "--base-url", api.base_url, env={"KAJABI_TOKEN": TOKEN + "\r\n"})
    assert done.returncode == 0, done.stderr


def test_the_library_refuses_them_too() -> None:
    with pytest.raises(ConfigError, match="control character"):
        Client("http://127.0.0.1:9", token="abc\r\nX: 1")
    with pytest.raises(ConfigError, match="non-ASCII"):
        Client("http://127.0.0.1:9", client_id="cïd", client_secret="secret-1")


def test_an_access_token_with_a_line_break_is_refused() -> None:
    with serving(10, token=None, client_id="cid", client_secret="csecret-123") as api:
        api.hook = lambda s: Reply(200, {"access_token": "ab\r\ncd-XYZW"}) if s.path == "/v1/oauth/token" else None
        c = Client(api.base_url, client_id="cid", client_secret="csecret-123", retry=FAST)
        with c, pytest.raises(ExecutorError, match="control character") as failed:
            list(c.customers("limit 1"))
        assert "ab\r\ncd" not in str(failed.value) and "cd-XYZW" not in str(failed.value)


# -- 4, 5. redaction ------------------------------------------------------------


def test_every_representation_of_a_secret_is_redacted() -> None:
    secret = "abc\r\nX: 1-tok"
    text = " | ".join([secret, repr(secret), repr(secret.encode()), json.dumps(secret), "a%0D%0A"])
    from urllib.parse import quote, quote_plus

    text += " | " + quote(secret, safe="") + " | " + quote_plus(secret)
    out = redact(text, [secret])
    assert "abc" not in out and out.count("***") == 6


def test_a_word_like_secret_is_redacted_only_as_a_credential() -> None:
    text = 'the sandbox is injecting errors; Authorization: Bearer sandbox; token=sandbox; "access_token": "sandbox"'
    assert redact(text, ["sandbox"]) == (
        'the sandbox is injecting errors; Authorization: Bearer ***; token=***; "access_token": "***"'
    )
    assert redact("token tok-SECRET-0123456789 was revoked", [TOKEN]) == "token *** was revoked"


def test_the_sandbox_token_does_not_garble_messages() -> None:
    with serving(10, token="sandbox") as api:
        api.hook = lambda s: Reply(503, {"errors": [{"title": "the sandbox is injecting errors (--error-rate)"}]})
        done = kql_run("limit 1", "--base-url", api.base_url, "--token", "sandbox", "--retries", "0")
    assert done.returncode == 4 and "the sandbox is injecting errors" in done.stderr, done.stderr


def test_a_catalogue_page_that_comes_back_short_is_an_error(api: FakeAPI) -> None:
    def hook(seen: Seen) -> Reply | None:
        if seen.path != "/v1/contact_tags":
            return None
        number = int(seen.params["page[number]"])
        size = int(seen.params["page[size]"])
        held = size if number == 1 else 3
        data = [{"id": str(number * 1000 + i), "type": "contact_tags", "attributes": {"name": f"t{number}-{i}"}}
                for i in range(held)]  # fmt: skip
        return Reply(200, {"data": data, "meta": {"total_pages": 3, "total_count": 3 * size}})

    api.hook = hook
    with client(api, max_page_size=10) as c, pytest.raises(PaginationError, match="page 2 of 3 held 3 of 10"):
        c.catalogue("tag")


# -- kql run -v: every request on stderr, never a secret (issue 14, item 6) ------------


def test_verbose_shows_each_request_its_status_and_retry_never_the_token(api: FakeAPI) -> None:
    answered: list[int] = []

    def hook(seen: Seen) -> Reply | None:
        if seen.path != "/v1/customers":
            return None
        answered.append(seen.page)
        if len(answered) == 1:  # the first attempt fails once: a retry to show
            return Reply(503, {"errors": [{"status": "503", "title": "Service Unavailable"}]})
        return Reply(200, api.page_document(seen.params))

    api.hook = hook
    done = kql_run("limit 3", "--base-url", api.base_url, "--token", TOKEN, "-v", "--format", "ndjson")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    traced = [line for line in done.stderr.splitlines() if line.startswith("kql: ")]
    assert traced[0].startswith("kql: GET http://127.0.0.1:") and "/v1/customers?" in traced[0]
    assert "page[size]=3" in traced[0] and "-> 503" in traced[0] and "attempt 1" in traced[0]
    assert any("retrying in" in line for line in traced)
    assert any("-> 200" in line and "attempt 2" in line for line in traced)
    assert TOKEN not in done.stderr


def test_run_json_prints_errors_as_json_on_stdout() -> None:
    bad = kql_run("opend(bc_1)", "--json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["errors"][0]["code"] == "E102"
    with serving(0) as gone:
        refused = gone.base_url  # nothing listens there once it has stopped: fails before any record
    failed = kql_run("limit 5", "--base-url", refused, "--token", TOKEN, "--json", "--retries", "0")
    body = json.loads(failed.stdout)
    assert failed.returncode == 4 and body["ok"] is False and body["exit_code"] == 4
    assert TOKEN not in failed.stdout + failed.stderr

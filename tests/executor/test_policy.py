"""Pure logic: retry decisions, Retry-After, token lifetimes, paging plans, id sets, error bodies."""

from __future__ import annotations

import email.utils
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kql.execute.auth import ClientCredentials, StaticToken
from kql.execute.errors import APIError, ConfigError, PaginationError, redact
from kql.execute.idset import IdSet
from kql.execute.origin import check_base_url, same_origin
from kql.execute.pagination import Page, Pager, parse_page
from kql.execute.retry import RetryPolicy, parse_retry_after


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(7, abs=1)
    past = email.utils.formatdate(now - 100, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    for junk in (None, "", "soon", "-5", "1e9x"):
        assert parse_retry_after(junk) is None


def test_backoff_full_jitter_within_cap() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    rng = random.Random(1)
    for retry in range(1, 40):
        wait = policy.backoff(retry, rng)
        assert 0 <= wait <= min(4.0, 0.5 * 2 ** (retry - 1))


def test_retry_after_clamped_and_deadline_respected() -> None:
    policy = RetryPolicy(max_attempts=5, retry_after_cap=10, deadline=30)
    assert policy.delay(1, 0.0, retry_after=3600) == 10  # clamped
    assert policy.delay(1, 25.0, retry_after=10) is None  # would end past the deadline
    assert policy.delay(5, 0.0) is None  # out of attempts


def test_token_margin_scales_with_lifetime() -> None:
    creds = ClientCredentials("id", "secret-value")
    creds.accept({"access_token": "a" * 10, "expires_in": 2}, requested_at=100.0)
    assert creds.current(101.7) is not None  # a 2-second token is reused
    assert creds.current(101.85) is None
    creds.accept({"access_token": "b" * 10, "expires_in": 3600}, requested_at=0.0)
    assert creds.current(3539.0) is not None and creds.current(3541.0) is None  # margin capped at 60 s


def test_invalidate_only_the_generation_that_failed() -> None:
    creds = ClientCredentials("id", "secret-value")
    _, first = creds.accept({"access_token": "one-token", "expires_in": 100}, 0.0)
    _, second = creds.accept({"access_token": "two-token", "expires_in": 100}, 0.0)
    creds.invalidate(first)  # a late 401 for the old token
    assert creds.current(1.0) == ("two-token", second)
    creds.invalidate(second)
    assert creds.current(1.0) is None


def test_refresh_token_grant_preferred_then_dropped() -> None:
    creds = ClientCredentials("id", "secret-value")
    assert creds.grant_form()["grant_type"] == "client_credentials"
    creds.accept({"access_token": "tok-1", "refresh_token": "ref-1", "expires_in": 10}, 0.0)
    assert creds.grant_form() == {"grant_type": "refresh_token", "refresh_token": "ref-1"}
    creds.refresh_rejected()
    assert creds.grant_form()["grant_type"] == "client_credentials"


def test_credentials_never_in_repr() -> None:
    assert "hunter2-token" not in repr(StaticToken("hunter2-token"))
    creds = ClientCredentials("my-id", "hunter2-secret")
    creds.accept({"access_token": "access-abcdef", "expires_in": 10}, 0.0)
    assert "hunter2" not in repr(creds) and "access-abcdef" not in repr(creds)


def test_limit_sizes_pages() -> None:
    assert Pager([], limit=5).size == 5
    assert Pager([], limit=5).max_pages == 1
    pager = Pager([], limit=250, max_page_size=100)
    assert (pager.size, pager.max_pages) == (84, 3)
    assert Pager([], max_page_size=100).size == 100


def test_params_on_the_original_request() -> None:
    pager = Pager([("filter[search]", "a&b")], site_id="7")
    assert pager.params(3) == [
        ("filter[site_id]", "7"),
        ("filter[search]", "a&b"),
        ("page[number]", "3"),
        ("page[size]", "100"),
    ]
    assert ("sort", "-name") in Pager([("sort", "-name")], sort="-name").params(1)
    assert not any(name == "sort" for name, _ in pager.params(1))  # no sort asked: the API's default
    explicit = Pager([("page[number]", "2"), ("page[size]", "25")], page=(2, 25))
    assert explicit.first_number == 2 and explicit.params(2)[-2:] == [("page[number]", "2"), ("page[size]", "25")]


def _page(number: int, ids: list[int], total_pages: int = 3, total: int = 9, current: int | None = None) -> Page:
    records = [{"id": str(i)} for i in ids]
    return Page(number, records, total_pages, total, number if current is None else current)


def test_pager_dedupes_and_warns_on_drift() -> None:
    pager = Pager([], max_page_size=3)
    assert [r["id"] for r in pager.accept(_page(1, [1, 2, 3]))] == ["1", "2", "3"]
    assert [r["id"] for r in pager.accept(_page(2, [3, 4, 5], total=10))] == ["4", "5"]
    assert pager.duplicates == 1
    warnings = " ".join(pager.warnings())
    assert "total_count changed from 9 to 10" in warnings and "1 duplicate" in warnings


def test_pager_refuses_pages_that_do_not_advance() -> None:
    pager = Pager([], max_page_size=3)
    pager.accept(_page(1, [1, 2, 3]))
    with pytest.raises(PaginationError, match="repeats page 1"):
        pager.accept(_page(2, [1, 2, 3]))
    with pytest.raises(PaginationError, match="sent page 1"):
        Pager([], max_page_size=3).accept(_page(2, [4, 5, 6], current=1))


def test_parse_page_flattens_and_checks_shape() -> None:
    page = parse_page(
        1,
        {
            "data": [{"id": 5, "type": "customers", "attributes": {"name": "A", "id": "x"}}],
            "meta": {"total_pages": "2", "total_count": 7},
        },
    )
    assert page.records == [{"id": "5", "name": "A"}] and page.total_pages == 2 and page.total_count == 7
    with pytest.raises(PaginationError):
        parse_page(1, {"errors": []})


def test_idset_numeric_and_other_ids() -> None:
    ids = IdSet(bucket=2)  # tiny buckets: the table doubles many times on the way
    assert all(ids.add(str(i)) for i in range(1000))
    assert not any(ids.add(str(i)) for i in range(0, 1000, 7))
    assert ids.add("007") and not ids.add("007") and ids.add("abc")
    assert len(ids) == 1002
    assert all(str(i) in ids for i in range(1000)) and "1000" not in ids and 7 not in ids


@given(st.lists(st.one_of(st.integers(0, 2**63 - 1).map(str), st.text(max_size=4)), max_size=300))
def test_idset_is_a_set_of_strings(keys: list[str]) -> None:
    ids, plain = IdSet(bucket=1), set()
    for key in keys:
        assert ids.add(key) == (key not in plain)
        plain.add(key)
    assert len(ids) == len(plain) and all(k in ids for k in plain)


def test_api_error_shapes() -> None:
    jsonapi = json.dumps(
        {
            "errors": [
                {
                    "status": "400",
                    "title": "Bad Request",
                    "detail": "unknown filter",
                    "source": {"parameter": "filter[nope]"},
                }
            ]
        }
    ).encode()
    error = APIError.from_response(400, "Bad Request", "application/vnd.api+json", jsonapi)
    assert (error.status, error.title, error.detail) == (400, "Bad Request", "unknown filter")
    assert "parameter filter[nope]" in str(error) and error.exit_code == 3
    html = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    error = APIError.from_response(502, "Bad Gateway", "text/html", html)
    assert "HTML page: 502 Bad Gateway" in str(error) and error.exit_code == 4
    assert "empty body" in str(APIError.from_response(503, "Service Unavailable", "", b""))
    oauth = APIError.from_response(401, "Unauthorized", "application/json", b'{"error": "invalid_client"}')
    assert oauth.title == "invalid_client"


def test_secrets_redacted_from_error_bodies() -> None:
    body = json.dumps({"errors": [{"title": "Unauthorized", "detail": "token tok-SECRET-99 is revoked"}]}).encode()
    error = APIError.from_response(401, "Unauthorized", "application/json", body, secrets=["tok-SECRET-99"])
    assert "tok-SECRET-99" not in str(error) and "***" in str(error)
    assert redact("a tok b", ["tok"]) == "a tok b"  # too short to be a credential


def test_base_url_rules() -> None:
    assert str(check_base_url("https://api.kajabi.com/")) == "https://api.kajabi.com"
    check_base_url("http://127.0.0.1:8000")
    check_base_url("http://localhost:8000")
    check_base_url("http://[::1]:8000")
    with pytest.raises(ConfigError, match="plain http"):
        check_base_url("http://api.example.com")
    check_base_url("http://api.example.com", insecure=True)
    with pytest.raises(ConfigError):
        check_base_url("https://user:pw@api.kajabi.com")
    with pytest.raises(ConfigError):
        check_base_url("ftp://api.kajabi.com")
    import httpx

    assert same_origin(httpx.URL("https://a.com/x"), httpx.URL("https://a.com:443/y"))
    assert not same_origin(httpx.URL("http://127.0.0.1:5"), httpx.URL("http://localhost:5"))


def test_render_formats() -> None:
    import io

    from kql.cli.render import write

    records = [
        {"id": "1", "name": "Ann\nLee", "email": "a@x.com", "socials": {"twitter": "@a"}, "net_revenue": None},
        {"id": "2", "name": "B" * 100, "email": "b@x.com", "socials": None, "net_revenue": "5.0"},
    ]
    out = io.StringIO()
    assert write(iter(records), out, "csv") == 2
    lines = out.getvalue().splitlines()
    # The header is every registry attribute (the same for an empty result), not the first record's keys.
    assert lines[0].startswith("id,name,email,avatar,") and '"{""twitter"":""@a""}"' in out.getvalue()
    out = io.StringIO()
    write(iter(records), out, "table")
    table = out.getvalue().splitlines()
    assert table[0].split() == ["id", "name", "email", "net_revenue"]
    assert "Ann Lee" in table[2] and "B" * 100 in table[3] and len(table) == 4  # off a terminal: whole cells
    out = io.StringIO()
    write(iter(records), out, "table", width=60)  # on a 60-column terminal: fitted
    assert "…" in out.getvalue().splitlines()[3]
    out = io.StringIO()
    write(iter(records), out, "json", ["email"])
    assert json.loads(out.getvalue()) == records
    out = io.StringIO()
    write(iter([]), out, "json")
    assert json.loads(out.getvalue()) == []


def test_progress_line() -> None:
    import io

    from kql.cli.progress import ProgressBar

    class Stream:
        total_pages, total_count, pages_fetched, yielded = 10, None, 5, 500

    bar = ProgressBar(Stream(), io.StringIO())
    assert bar.line(1.25) == "[==========          ] 5/10 pages  500 customers  400/s  ETA 0:01  1.2s"
    quiet = io.StringIO()
    with ProgressBar(Stream(), quiet, delay=10):
        pass
    assert quiet.getvalue() == ""  # quick runs never draw


def test_hostile_digit_strings_from_a_server_are_not_numbers() -> None:
    # str.isdigit() is true for '²' and for 5,000 digits; int() refuses the one, chokes on the other.
    page = parse_page(1, {"data": [{"id": "²"}], "meta": {"total_count": "²", "total_pages": "9" * 5000}})
    assert page.total_count is None and page.total_pages is None
    from kql.execute.merging import order_key

    key, _ = order_key("created_at")
    assert key({"id": "²"}) > key({"id": "5"}) and key({"id": "9" * 5000}) > key({"id": "5"})
    ids = IdSet()
    assert ids.add("²") and not ids.add("²") and ids.add("9" * 5000)

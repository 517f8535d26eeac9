"""Hostile requests are 400s (or 414/431) with an error body, never a 500 (issue 11, item 19)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from kql.sandbox import Sandbox
from kql.sandbox.params import MAX_SEARCH_WORDS, MAX_VALUES

from .conftest import get


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    body: dict[str, Any] = response.json()
    assert body["errors"][0]["status"] == str(status)
    return body["errors"][0]


def test_a_search_of_a_thousand_words_is_a_400(client: httpx.Client) -> None:
    words = " ".join(f"w{i}" for i in range(1000))
    error = _error(client.get("/v1/customers", params={"filter[search]": words}))
    assert error["source"] == {"parameter": "filter[search]"}


def test_a_search_up_to_the_limit_is_answered(client: httpx.Client) -> None:
    words = " ".join(["smith"] * 5000 + [f"w{i}" for i in range(MAX_SEARCH_WORDS - 1)])  # repeats count once
    assert get(client, "/v1/customers", {"filter[search]": words})["meta"]["total_count"] == 0


@pytest.mark.parametrize("param", ["has_all_tag_id", "no_sent_email_broadcast_ids"])
def test_too_many_ids_is_a_400(client: httpx.Client, param: str) -> None:
    many = ",".join(str(i) for i in range(1, 1100))
    error = _error(client.get("/v1/customers", params={f"filter[{param}]": many}))
    assert error["source"] == {"parameter": f"filter[{param}]"}


@pytest.mark.parametrize("param", ["has_all_tag_id", "no_sent_email_broadcast_ids"])
def test_ids_up_to_the_limit_are_answered(client: httpx.Client, param: str) -> None:
    many = ",".join(str(i) for i in range(1, MAX_VALUES + 1))
    body = get(client, "/v1/customers", {f"filter[{param}]": many, "page[size]": 1})
    assert body["meta"]["total_count"] >= 0


def test_a_sort_key_given_thousands_of_times_is_a_400(client: httpx.Client) -> None:
    error = _error(client.get("/v1/customers", params={"sort": ",".join(["name"] * 3000)}))
    assert error["source"] == {"parameter": "sort"}


@pytest.mark.parametrize("path", ["/v1/contact_tags", "/v1/offers", "/v1/products", "/v1/sites"])
def test_a_catalogue_filter_repeated_thousands_of_times_is_a_400(client: httpx.Client, path: str) -> None:
    name = "filter[name_cont]" if path == "/v1/contact_tags" else "filter[title_cont]"
    error = _error(client.get(path, params=[(name, "a")] * 2000))
    assert error["source"] == {"parameter": name}


def test_a_deeply_nested_json_token_body_is_a_400(sandbox: Sandbox) -> None:
    for body in ("[" * 100_000 + "]" * 100_000, '{"grant_type": ' + "[" * 100_000 + "]" * 100_000 + "}",
                 '{"grant_type": ' + "[" * 900 + "]" * 900 + "}", '{"client_id": ' + "9" * 5000 + "}"):
        response = httpx.post(f"{sandbox.base_url}/v1/oauth/token", content=body,
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text[:200]
        assert response.json()["error"] == "invalid_request"


def test_a_huge_form_body_is_answered(sandbox: Sandbox) -> None:
    body = "&".join(f"k{i}=v" for i in range(100_000))[: 1 << 20]
    response = httpx.post(f"{sandbox.base_url}/v1/oauth/token", content=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and response.json() == {"error": "invalid_request"}


def _raw(sandbox: Sandbox, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /v1/customers?" + b"filter%5Bsearch%5D=a&" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /v1/version HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
    (b"GET /v1/version HTTP/1.1\r\nAuthorization: Bearer " + b"a" * 70_000 + b"\r\n\r\n", 431),
    (b"POST /v1/oauth/token HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 400),
    (b"BREW /v1/version HTTP/1.1\r\n\r\n", 501),
])
def test_oversized_requests_get_a_json_api_error(sandbox: Sandbox, request_bytes: bytes, status: int) -> None:
    reply = _raw(sandbox, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode()
    assert b'"errors"' in body


def test_a_long_query_string_of_many_parameters_is_a_400(client: httpx.Client) -> None:
    pairs = [("filter[has_tag_id]", "1")] * 2000
    assert _error(client.get("/v1/customers", params=pairs))["source"] == {"parameter": "filter[has_tag_id]"}

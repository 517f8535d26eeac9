"""One sandbox for the whole session (2,000 customers, seed 7) and helpers over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from kql.sandbox import Sandbox, running

CUSTOMERS = 2000
BIG_PAGE = 1000  # the session sandbox allows big pages so set-valued checks need few requests


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kql sandbox` caches generated data in the user's cache directory: tests use a temporary one."""
    monkeypatch.setenv("KQL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kql-cache"))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with running(customers=CUSTOMERS, seed=7, max_page_size=BIG_PAGE) as sb:
        yield sb


@pytest.fixture(scope="session")
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.token}"}) as c:
        yield c


def get(client: httpx.Client, path: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        status: int = 200) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def count(client: httpx.Client, params: Mapping[str, Any]) -> int:
    body = get(client, "/v1/customers", {**params, "page[size]": 1})
    total: int = body["meta"]["total_count"]
    return total


def ids(client: httpx.Client, params: Mapping[str, Any]) -> set[int]:
    """Every customer id matching the filters, walking all pages."""
    found: set[int] = set()
    page = 1
    while True:
        body = get(client, "/v1/customers",
                   {**params, "fields[customers]": "", "page[size]": BIG_PAGE, "page[number]": page})
        found |= {int(item["id"]) for item in body["data"]}
        if body["links"]["next"] is None:
            return found
        page += 1

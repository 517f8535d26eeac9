"""Faults on request, over HTTP: 429 + Retry-After, 503s, dropped bodies, latency, determinism."""

from __future__ import annotations

import time

import httpx
import pytest

from kql.sandbox import running

AUTH = {"Authorization": "Bearer sandbox"}


def test_rate_limit_yields_429_with_retry_after() -> None:
    # 0.01 requests per second: a burst of one, then nothing for 100 s, so no timing luck is involved.
    with running(customers=20, rate_limit=0.01) as sb:
        statuses = []
        for _ in range(4):
            response = httpx.get(f"{sb.base_url}/v1/customers", headers=AUTH)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["errors"][0]["status"] == "429"
        assert statuses == [200, 429, 429, 429]
        assert sb.stats.rate_limited == 3 and sb.stats.requests == 4


def test_error_rate_yields_503s() -> None:
    with running(customers=20, error_rate=1.0) as sb:
        response = httpx.get(f"{sb.base_url}/v1/customers", headers=AUTH)
        assert response.status_code == 503 and response.json()["errors"][0]["status"] == "503"
        assert sb.stats.unavailable == 1


def _statuses(seed: int) -> list[int]:
    with running(customers=20, seed=seed, error_rate=0.3) as sb, httpx.Client(headers=AUTH) as c:
        return [c.get(f"{sb.base_url}/v1/customers").status_code for _ in range(40)]


def test_faults_are_deterministic_under_a_seed() -> None:
    first = _statuses(1)
    assert set(first) == {200, 503}
    assert _statuses(1) == first


def test_dropped_connections_cut_the_body() -> None:
    with running(customers=50, drop_rate=1.0) as sb:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{sb.base_url}/v1/customers", headers=AUTH)
        assert sb.stats.dropped == 1


def test_latency_is_added() -> None:
    with running(customers=10, latency_ms=150, jitter_ms=50) as sb:
        start = time.perf_counter()
        assert httpx.get(f"{sb.base_url}/v1/version").status_code == 200
        assert time.perf_counter() - start >= 0.15  # a lower bound only: never flaky


def test_bad_fault_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="error_rate"), running(customers=1, error_rate=2.0):
        pass
    with pytest.raises(ValueError, match="rate_limit"), running(customers=1, rate_limit=0):
        pass

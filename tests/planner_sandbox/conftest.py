"""The world both sandbox differential tests run in: one sandbox, its ground truth, a client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kql.execute.client import Client
from kql.execute.retry import RetryPolicy
from tests.planner_sandbox.groundtruth import Truth

sandbox = pytest.importorskip("kql.sandbox")

CUSTOMERS = 400
SEED = 11
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05, retry_after_cap=1.0, deadline=10.0)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Truth, Client, Any]]:
    with sandbox.running(customers=CUSTOMERS, seed=SEED) as sb:
        truth = Truth(sb.base_url, sb.token)
        client = Client(sb.base_url, token=sb.token, retry=FAST)
        try:
            yield truth, client, sb
        finally:
            client.close()
            truth.close()

"""Fixtures for the executor tests: fast retry policies and servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kql.execute.retry import RetryPolicy
from tests.executor.fakeapi import FakeAPI, serving

# Short waits: the tests exercise the retry paths, not the clock.
FAST = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_cap=0.05, retry_after_cap=2.0, deadline=20.0)


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    with serving(250) as server:
        yield server


@pytest.fixture
def other() -> Iterator[FakeAPI]:
    """A second server, for cross-origin checks: it must never see a request."""
    with serving(0) as server:
        yield server

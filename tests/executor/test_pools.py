"""kql.Client's connection pool per thread (kql.execute.pools), against a real server on 127.0.0.1."""

from __future__ import annotations

import threading

from kql.execute.client import Client
from kql.execute.pools import PerThreadPool
from tests.executor.conftest import FAST
from tests.executor.fakeapi import TOKEN, FakeAPI


def _pools(client: Client) -> PerThreadPool:
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, PerThreadPool)
    return pool


def test_every_sending_thread_has_a_pool_of_its_own(api: FakeAPI) -> None:
    with Client(api.base_url, token=TOKEN, retry=FAST, max_page_size=10, concurrency=4) as client:
        assert len(list(client.customers(""))) == 250
        made = _pools(client).pools()
        threads = {thread for thread, _ in made}
        # The reader (page 1) and the workers (pages 2..25): one pool each, none shared.
        assert threading.current_thread() in threads and 2 <= len(threads) <= 5
        assert len({id(pool) for _, pool in made}) == len(made) == len(threads)
        assert all(len(pool.connections) <= 1 for _, pool in made)  # one request at a time per thread
    assert all(pool.connections == [] for _, pool in made)  # closing the client closed them


def test_the_pool_of_a_thread_that_ended_is_closed(api: FakeAPI) -> None:
    with Client(api.base_url, token=TOKEN, retry=FAST) as client:
        done: list[int] = []
        other = threading.Thread(target=lambda: done.append(len(list(client.customers("limit 5")))))
        other.start()
        other.join()
        (ended,) = [pool for thread, pool in _pools(client).pools() if thread is other]
        assert done == [5] and len(ended.connections) == 1  # kept alive for the thread's next request
        assert len(list(client.customers("limit 5"))) == 5  # this thread's first pool: the ended one goes
        assert ended.connections == []
        assert [thread for thread, _ in _pools(client).pools()] == [threading.current_thread()]

"""The sandbox serves requests concurrently and drops clients that stall (issue 11, item 20).

No wall-clock thresholds: a heavy request is held *inside* SQLite (its text-folding function
waits on an event) while a light one must complete; timeouts below only bound the test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

import kql.sandbox.store
from kql.sandbox import Sandbox, running

BOUND = 30.0  # seconds: only so that a broken sandbox fails the test instead of hanging it


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(entered, release): a non-ASCII search enters SQLite's kql_fold and waits there for release."""
    entered, release = threading.Event(), threading.Event()
    fold = kql.sandbox.store._fold

    def held_fold(value: object) -> str | None:
        entered.set()
        release.wait(BOUND)
        return fold(value)

    monkeypatch.setattr(kql.sandbox.store, "_fold", held_fold)
    yield entered, release
    release.set()


def test_a_heavy_request_in_flight_does_not_block_light_ones(held: tuple[threading.Event, threading.Event]) -> None:
    entered, release = held
    with running(customers=300) as sb:
        auth = {"Authorization": f"Bearer {sb.token}"}
        heavy: list[int] = []

        def search() -> None:
            reply = httpx.get(f"{sb.base_url}/v1/customers", params={"filter[search]": "zoë"}, headers=auth,
                              timeout=BOUND)
            heavy.append(reply.status_code)

        worker = threading.Thread(target=search)
        worker.start()
        assert entered.wait(BOUND), "the heavy request never reached SQLite"
        # The heavy query is now stopped halfway through, inside SQLite. Light requests of every
        # kind must still be answered, one after another, on new connections.
        with httpx.Client(base_url=sb.base_url, headers=auth, timeout=BOUND / 3) as client:
            for path, params in [("/v1/customers", {"filter[search]": "smith"}), ("/v1/customers/1", {}),
                                 ("/v1/contact_tags", {}), ("/v1/customers", {"filter[has_tag_id]": "2"})]:
                assert client.get(path, params=params).status_code == 200
        assert heavy == []  # still held: the light ones did not wait for it
        release.set()
        worker.join(BOUND)
        assert heavy == [200]


def test_writes_wait_for_no_reader_and_are_seen_next(sandbox: Sandbox, client: httpx.Client) -> None:
    before = client.get("/v1/customers", params={"filter[has_tag_id]": "40", "page[size]": 1}).json()
    with sandbox.store.reading() as conn:
        holders = {r[0] for r in conn.execute("SELECT customer_id FROM customer_tags WHERE tag_id = 40")}
    newcomer = next(i for i in range(1, 2001) if i not in holders)
    with sandbox.store.writing() as conn:
        conn.execute("INSERT INTO customer_tags VALUES (40, ?)", (newcomer,))
    try:
        after = client.get("/v1/customers", params={"filter[has_tag_id]": "40", "page[size]": 1}).json()
        assert after["meta"]["total_count"] == before["meta"]["total_count"] + 1
    finally:
        with sandbox.store.writing() as conn:
            conn.execute("DELETE FROM customer_tags WHERE tag_id = 40 AND customer_id = ?", (newcomer,))
    again = client.get("/v1/customers", params={"filter[has_tag_id]": "40", "page[size]": 1}).json()
    assert again["meta"]["total_count"] == before["meta"]["total_count"]


def _closed_by_server(conn: socket.socket) -> bytes:
    """What the server sends before closing (b"" or an error response); raises if it never closes."""
    conn.settimeout(BOUND)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("partial", [
    b"GET /v1/vers",  # half a request line
    b"GET /v1/version HTTP/1.1\r\nHost: x\r\n",  # headers never finished
    b"POST /v1/oauth/token HTTP/1.1\r\nContent-Length: 100\r\n\r\ngrant_type",  # a body cut short
    b"",  # connected, never said anything
])
def test_a_stalled_client_is_dropped(partial: bytes) -> None:
    with running(customers=10, read_timeout=0.2) as sb:
        conns = [socket.create_connection(("127.0.0.1", sb.port)) for _ in range(20)]
        try:
            for conn in conns:
                conn.sendall(partial)
            for conn in conns:
                assert b"200 OK" not in _closed_by_server(conn)
            # Still serving afterwards.
            assert httpx.get(f"{sb.base_url}/v1/version", timeout=BOUND).status_code == 200
        finally:
            for conn in conns:
                conn.close()


def test_an_idle_keep_alive_connection_is_answered_then_dropped() -> None:
    with running(customers=10, read_timeout=0.2) as sb, socket.create_connection(("127.0.0.1", sb.port)) as conn:
        conn.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in _closed_by_server(conn)  # answered, then closed when idle

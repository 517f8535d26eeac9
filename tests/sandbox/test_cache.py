"""The cache of generated data (issue 12, item 6): reused, rebuilt when stale or damaged, safe
when starts race; and the port is taken before any data is built."""

from __future__ import annotations

import socket
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

import kql.sandbox.store
from kql.sandbox import Sandbox, default_cache_dir, running
from kql.sandbox.cli import main
from kql.sandbox.store import Store, cache_file

SETTINGS = {"customers": 300, "seed": 4, "sites": 2}


def _page(sb: Sandbox) -> object:
    reply = httpx.get(f"{sb.base_url}/v1/customers", params={"filter[site_id]": "1", "page[size]": "100",
                                                               "sort": "name"},
                      headers={"Authorization": "Bearer sandbox"})
    body = reply.json()
    return [(i["id"], i["attributes"]["name"], i["attributes"]["net_revenue"]) for i in body["data"]]


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the times data is generated."""
    calls: list[int] = []
    generate = kql.sandbox.data.generate

    def counted(conn: sqlite3.Connection, **kwargs: int) -> None:
        calls.append(kwargs["customers"])
        generate(conn, **kwargs)

    monkeypatch.setattr(kql.sandbox.data, "generate", counted)
    return calls


def test_the_second_start_loads_the_first_ones_data(tmp_path: Path, generations: list[int]) -> None:
    with running(**SETTINGS, cache=tmp_path) as first:
        built = _page(first)
        assert not first.store.loaded_from_cache
    assert [p.name for p in tmp_path.iterdir()] == [cache_file(tmp_path, **SETTINGS).name]
    with running(**SETTINGS, cache=tmp_path) as second:
        assert second.store.loaded_from_cache
        assert _page(second) == built
        second.insert_customers(3)  # changes while serving stay out of the cache
    with running(**SETTINGS, cache=tmp_path) as third:
        assert third.store.loaded_from_cache
        assert third.store.query("SELECT count(*) FROM customers")[0][0] == 300
    assert generations == [300]
    with running(**{**SETTINGS, "seed": 5}, cache=tmp_path) as other:  # other settings, other file
        assert not other.store.loaded_from_cache
    assert generations == [300, 300] and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncated", "foreign", "empty", "stale", "directory"])
def test_a_damaged_or_stale_cache_file_is_rebuilt(tmp_path: Path, damage: str, generations: list[int]) -> None:
    with running(**SETTINGS, cache=tmp_path) as sb:
        built = _page(sb)
    path = cache_file(tmp_path, **SETTINGS)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "foreign":
        path.write_bytes(b"not a database at all\n" * 1000)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "stale":
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = '0' WHERE key = 'version'")
    else:
        path.unlink()
        path.mkdir()
    with running(**SETTINGS, cache=tmp_path) as again:
        assert not again.store.loaded_from_cache
        assert _page(again) == built
    assert len(generations) == 2
    if damage != "directory":  # repaired: the next start loads it
        with running(**SETTINGS, cache=tmp_path) as repaired:
            assert repaired.store.loaded_from_cache


def test_concurrent_starts_leave_one_good_file(tmp_path: Path) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(Store(**SETTINGS, cache_dir=tmp_path))
        except BaseException as error:  # pragma: no cover - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    for store in stores:
        assert store.query("SELECT count(*) FROM customers")[0][0] == 300
        store.close()
    assert [p.name for p in tmp_path.iterdir()] == [cache_file(tmp_path, **SETTINGS).name]  # no temp files
    assert Store(**SETTINGS, cache_dir=tmp_path).loaded_from_cache


def test_an_unwritable_cache_directory_only_means_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with running(customers=20, cache=blocker / "cache") as sb:
        assert sb.store.query("SELECT count(*) FROM customers")[0][0] == 20


def test_the_cache_directory_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KQL_CACHE_DIR", str(tmp_path / "chosen"))
    assert default_cache_dir() == tmp_path / "chosen"
    monkeypatch.delenv("KQL_CACHE_DIR")
    assert default_cache_dir().name == "kql"


def _serve_once(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `kql sandbox` until it would serve, then stop it."""
    monkeypatch.setattr(Sandbox, "serve_forever", lambda self: None)
    assert main(["--port", "0", *argv]) == 0


def test_kql_sandbox_caches_unless_told_not_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KQL_CACHE_DIR", str(tmp_path / "env"))
    _serve_once(["--customers", "30"], monkeypatch)
    assert "built in" in capsys.readouterr().err
    _serve_once(["--customers", "30"], monkeypatch)
    assert "loaded from the cache" in capsys.readouterr().err
    assert len(list((tmp_path / "env").iterdir())) == 1
    _serve_once(["--customers", "31", "--no-cache"], monkeypatch)
    _serve_once(["--customers", "32", "--db", str(tmp_path / "own.db")], monkeypatch)
    assert len(list((tmp_path / "env").iterdir())) == 1
    _serve_once(["--customers", "30", "--cache-dir", str(tmp_path / "option")], monkeypatch)
    assert len(list((tmp_path / "option").iterdir())) == 1


def test_a_busy_port_fails_before_any_data_is_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   generations: list[int],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            Sandbox(customers=100_000, port=port)
        assert main(["--port", str(port), "--customers", "100000", "--cache-dir", str(tmp_path)]) == 2
    assert generations == []
    assert "cannot listen" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_writes_through_another_connection_are_seen(tmp_path: Path) -> None:
    """A --db file changed by some other connection: remembered counts do not hide the change."""
    db = tmp_path / "s.db"
    with running(customers=200, db=db) as sb:
        params = {"filter[has_tag_id]": "3", "page[size]": "1"}
        auth = {"Authorization": "Bearer sandbox"}
        before = httpx.get(f"{sb.base_url}/v1/customers", params=params, headers=auth).json()["meta"]["total_count"]
        with sqlite3.connect(db, timeout=30) as other:
            other.execute("DELETE FROM customer_tags WHERE tag_id = 3 AND customer_id = "
                          "(SELECT min(customer_id) FROM customer_tags WHERE tag_id = 3)")
        after = httpx.get(f"{sb.base_url}/v1/customers", params=params, headers=auth).json()["meta"]["total_count"]
        assert after == before - 1

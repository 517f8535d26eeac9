"""The database: built (or loaded from the cache) once, then read by many request threads at once.

Where it lives: without `--db`, an in-memory SQLite database shared by name between this
store's connections (the `memdb` VFS); with `--db FILE`, that file. Requests read through
a pool of read-only connections, so a slow query never holds up another request (SQLite
lets any number of readers in at once). Writes — `insert_customers`, and whatever a test
does through `writing()` — go through one writer connection behind `lock`; readers wait for
a write to commit (the busy timeout), never see half of one.

Listings are answered from an index of the data (kql.sandbox.index: each filter's set of
customers as a bitset, sorted columns, sort orders), built as requests need it and dropped
whenever the database changes, whoever changed it: the store watches SQLite's
`data_version`. `invalidate()` drops it by hand.

The cache: generated databases are kept in a cache directory (`cache_dir`), one file per
(generator version, schema version, seed, customers, sites). A start with a fresh file
copies it into memory (`backup`) instead of generating; a missing, stale, truncated or
foreign file is generated again and replaced — written to a temporary file in the same
directory and renamed over the old one, so concurrent starts never see half a file.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kql.sandbox import data
from kql.sandbox.index import Index
from kql.sandbox.params import ListQuery
from kql.sandbox.rules import Context
from kql.sandbox.schema import CUSTOMER_COLUMNS, SCHEMA_VERSION

_IDLE_READERS = 8  # connections kept open for the next requests; more are opened under load
BUSY_TIMEOUT = 30.0  # seconds a reader waits for a write to commit (and a writer for readers)


def _fold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def cache_file(cache_dir: str | Path, *, customers: int, seed: int, sites: int) -> Path:
    """The cached database for these settings (the name holds everything that determines the data)."""
    name = f"sandbox-g{data.GENERATOR_VERSION}-s{SCHEMA_VERSION}-seed{seed}-c{customers}-x{sites}.sqlite3"
    return Path(cache_dir) / name


class Store:
    def __init__(self, *, customers: int, seed: int, sites: int, db: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> None:
        if customers < 0 or sites < 1:  # before a mismatched --db file is replaced, not after
            raise ValueError("customers must be >= 0 and sites >= 1")
        self.seed, self.sites = seed, sites
        self.lock = threading.Lock()  # held by the one writer
        self.loaded_from_cache = False
        self._wanted = {"version": data.GENERATOR_VERSION, "schema": SCHEMA_VERSION, "seed": str(seed),
                        "customers": str(customers), "sites": str(sites)}
        if db is not None:
            self._target, self._uri = str(db), False
        else:
            self._target, self._uri = f"file:/kql-sandbox-{uuid.uuid4().hex}?vfs=memdb", True
        self.conn = self._open(customers, seed, sites, db, cache_dir)
        self.conn.row_factory = sqlite3.Row
        self.conn.create_function("kql_fold", 1, _fold, deterministic=True)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._idle_count = 0
        self._closed = False
        self._cache_lock = threading.Lock()  # guards the index, the watcher and the pool's count
        self._watcher = self._connect()
        self._version: int | None = None
        self._index: Index | None = None

    # ---- opening ------------------------------------------------------------------------------

    def _connect(self, *, writer: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self._target, uri=self._uri, check_same_thread=False, timeout=BUSY_TIMEOUT)
        conn.row_factory = sqlite3.Row
        conn.create_function("kql_fold", 1, _fold, deterministic=True)
        if not writer:
            conn.execute("PRAGMA query_only = 1")
        return conn

    def _open(self, customers: int, seed: int, sites: int, db: str | Path | None,
              cache_dir: str | Path | None) -> sqlite3.Connection:
        if db is not None and Path(db).exists():
            conn = sqlite3.connect(db, check_same_thread=False, timeout=BUSY_TIMEOUT)
            meta = self._meta(conn)
            if self._matches(meta):
                data.shift_to_now(conn, int(meta["now"]), int(time.time()))  # reuse: same generator, seed, size
                return conn
            conn.close()
            if "version" not in meta and Path(db).stat().st_size > 0:
                raise ValueError(f"{db} is not a sandbox database: refusing to overwrite it")
            Path(db).unlink()
        conn = self._connect(writer=True)
        if db is None and cache_dir is not None:
            path = cache_file(cache_dir, customers=customers, seed=seed, sites=sites)
            then = self._load(path, conn)
            if then is not None:
                self.loaded_from_cache = True
                data.shift_to_now(conn, then, int(time.time()))
                conn.execute("PRAGMA journal_mode = MEMORY")
                return conn
            data.generate(conn, customers=customers, seed=seed, sites=sites, now=int(time.time()))
            _save(conn, path)
        else:
            data.generate(conn, customers=customers, seed=seed, sites=sites, now=int(time.time()))
        # Generation runs without a journal; serving writes (inserts, tests' updates) keep one.
        conn.execute("PRAGMA journal_mode = MEMORY" if db is None else "PRAGMA journal_mode = DELETE")
        return conn

    @staticmethod
    def _meta(conn: sqlite3.Connection) -> dict[str, str]:
        try:
            return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta").fetchall()}
        except sqlite3.DatabaseError:
            return {}

    def _matches(self, meta: dict[str, str]) -> bool:
        return all(meta.get(k) == v for k, v in self._wanted.items()) and meta.get("now", "").isdigit()

    def _load(self, path: Path, conn: sqlite3.Connection) -> int | None:
        """Copy a cached database into conn; its build time, or None when it is missing, stale or damaged."""
        try:
            source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except (sqlite3.Error, OSError, ValueError):
            return None
        try:
            meta = self._meta(source)
            if not self._matches(meta):
                return None
            source.backup(conn)
            if not self._matches(self._meta(conn)) or conn.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok":
                return None
            return int(meta["now"])
        except sqlite3.Error:  # a truncated or corrupt file: build it again
            return None
        finally:
            source.close()

    # ---- reading and writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of the pool, for the block's duration."""
        try:
            conn = self._idle.get_nowait()
            with self._cache_lock:
                self._idle_count -= 1
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._cache_lock:
                keep = not self._closed and self._idle_count < _IDLE_READERS
                if keep:
                    self._idle_count += 1
            if keep:
                self._idle.put(conn)
            else:
                conn.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The writer connection, one writer at a time; committed at the end of the block (rolled back
        on an exception). Tests that change the data while serving use this, e.g.

            with sandbox.store.writing() as conn:
                conn.execute("INSERT INTO customer_tags VALUES (?, ?)", (3, 17))

        Every index is kept up to date by SQLite and what the store remembers is dropped at the
        next request, so the next answer reflects the change."""
        with self.lock:
            try:
                yield self.conn
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()
        self.invalidate()

    def invalidate(self) -> None:
        """Drop the index (kql.sandbox.index). Not needed after writes through this store's own
        connections or any other connection to the database (they are noticed); it is the manual
        way to start afresh, and what benchmarks use to measure building it."""
        with self._cache_lock:
            self._index = None
            self._version = None

    def _check_version(self) -> None:
        """Drop the index if anybody committed a change since the last request."""
        with self._cache_lock:
            version = int(self._watcher.execute("PRAGMA data_version").fetchone()[0])
            if version != self._version:
                self._index = None
                self._version = version

    def index(self, conn: sqlite3.Connection) -> Index:
        """The index of the data as of the last version check, built by the first request needing it."""
        with self._cache_lock:
            index = self._index
        if index is None:
            index = Index(conn)  # outside the lock: other requests go on meanwhile
            with self._cache_lock:
                self._index = self._index or index
        return index

    def close(self) -> None:
        with self._cache_lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        with self._cache_lock:
            self._watcher.close()
        with self.lock:
            self.conn.close()

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self.reading() as conn:
            return conn.execute(sql, params).fetchall()

    # ---- customers -----------------------------------------------------------------------------

    def list_customers(self, query: ListQuery, now: int | None = None) -> tuple[list[sqlite3.Row], int]:
        """A page of the customers matching every filter, and how many match."""
        offset = (query.page - 1) * query.size
        ctx = Context(now=int(time.time()) if now is None else now)
        self._check_version()
        with self.reading() as conn:
            index = self.index(conn)
            found = index.universe
            for f, values in query.filters:
                found &= index.matching(f.param, values, ctx, conn)
                if not found:
                    break
            total = found.bit_count()
            if offset >= total:
                return [], total
            ids = index.page(found, total, tuple(query.sort), offset, query.size, conn)
            if not ids:
                return [], total
            marks = ",".join("?" * len(ids))
            by_id = {row["id"]: row for row in conn.execute(f"SELECT * FROM customers WHERE id IN ({marks})", ids)}
        return [by_id[i] for i in ids if i in by_id], total

    def changed(self) -> None:
        """Forget what was derived from the data (call with the lock held after changing rows: kql.sandbox.admin)."""
        with self._cache_lock:
            self._index = None

    def customer(self, cid: int) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM customers WHERE id = ?", [cid])
        return rows[0] if rows else None

    def related(self, cid: int) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        with self.reading() as conn:
            offers = conn.execute("SELECT o.* FROM offers o JOIN offer_grants g ON g.offer_id = o.id "
                                  "WHERE g.customer_id = ? ORDER BY o.id", [cid]).fetchall()
            products = conn.execute(
                "SELECT p.*, (SELECT count(*) FROM product_access a WHERE a.product_id = p.id) AS members"
                " FROM products p JOIN product_access x ON x.product_id = p.id"
                " WHERE x.customer_id = ? AND x.active = 1 ORDER BY p.id", [cid]).fetchall()
        return offers, products

    def insert_customers(self, n: int) -> list[int]:
        """Add n customers, newest of all (created now, or just after the newest)."""
        with self.writing() as conn:
            last_id, newest = conn.execute("SELECT max(id), max(created_at) FROM customers").fetchone()
            first = (last_id or 0) + 1
            created = max(int(time.time()), (newest or 0) + 1)
            rows = data.new_customers(self.seed, first, n, self.sites, created)
            marks = ",".join("?" * len(CUSTOMER_COLUMNS))
            conn.executemany(f"INSERT INTO customers ({','.join(CUSTOMER_COLUMNS)}) VALUES ({marks})", rows)
        return list(range(first, first + n))

    def catalogue(self, sql_from: str, where: list[str], params: list[Any], order: str, page: int, size: int
                  ) -> tuple[list[sqlite3.Row], int]:
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self.reading() as conn:
            total = conn.execute(f"SELECT count(*) FROM {sql_from}{clause}", params).fetchone()[0]
            rows = conn.execute(f"SELECT * FROM {sql_from}{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                                [*params, size, (page - 1) * size]).fetchall()
        return rows, int(total)


def _save(conn: sqlite3.Connection, path: Path) -> None:
    """Write the database to the cache: a temporary file beside it, renamed over it when complete.
    The cache is an optimisation: a directory that cannot be written only means no cache."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        target = sqlite3.connect(tmp)
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        os.replace(tmp, path)
        tmp = None
    except (OSError, sqlite3.Error):
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

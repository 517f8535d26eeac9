"""The database: built (or loaded from the cache) once, then read by many request threads at once.

Where it lives: without `--db`, an in-memory SQLite database shared by name between this
store's connections (the `memdb` VFS); with `--db FILE`, that file. Requests read through
a pool of read-only connections, so a slow query never holds up another request (SQLite
lets any number of readers in at once). Writes — `insert_customers`, and whatever a test
does through `writing()` — go through one writer connection behind `lock`; readers wait for
a write to commit (the busy timeout), never see half of one.

What is remembered between requests (counts behind `meta.total_count`, sizes of
memberships) is dropped whenever the database changes, whoever changed it: the store
watches SQLite's `data_version`. `invalidate()` drops it by hand.

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
from kql.sandbox.params import ListQuery
from kql.sandbox.rules import RULES, Context
from kql.sandbox.schema import CUSTOMER_COLUMNS, SCHEMA_VERSION

# Sort key → (SQL expression, expression that puts nulls last ascending). Nulls sort as
# the largest value, as in PostgreSQL (last ascending, first descending); ties break on id.
_ORDER = {
    "name": ("c.name COLLATE NOCASE", None),
    "email": ("c.email", None),
    "created_at": ("c.created_at", None),
    "net_revenue": ("c.net_revenue", None),
    "last_request_at": ("c.last_request_at", "(c.last_request_at IS NULL)"),
}
_IDLE_READERS = 8  # connections kept open for the next requests; more are opened under load
BUSY_TIMEOUT = 30.0  # seconds a reader waits for a write to commit (and a writer for readers)
# A membership listed first drives the query (SQLite reads its customers one by one) when it
# holds less than this share of the customers; a bigger one is checked per candidate instead.
_DRIVE_SHARE = 1 / 6


def _fold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def order_by(sort: Sequence[tuple[str, bool]], *, by_index: bool = True) -> str:
    """ORDER BY terms; by_index=False writes them so that SQLite sorts instead of walking a sort index."""
    parts = []
    plus = "" if by_index else "+"
    for name, desc in sort or [("created_at", True)]:
        expr, nulls = _ORDER[name]
        direction = " DESC" if desc else ""
        if nulls:
            parts.append(plus + nulls + direction)
        parts.append(plus + expr + direction)
    tie = " DESC" if (sort or [("created_at", True)])[0][1] else ""
    return ", ".join([*parts, plus + "c.id" + tie])


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
        self._cache_lock = threading.Lock()  # guards the remembered sizes and counts, and the watcher
        self._watcher = self._connect()
        self._version: int | None = None
        self._sizes: dict[tuple[str, tuple[object, ...]], int] = {}
        self._counts: dict[tuple[str, tuple[object, ...]], int] = {}
        self._population = 0

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
        """Drop the remembered counts and sizes. Not needed after writes through this store's own
        connections or any other connection to the database (they are noticed); it is the manual
        way to start afresh."""
        with self._cache_lock:
            self._sizes.clear()
            self._counts.clear()
            self._version = None

    def forget_counts(self) -> None:
        """Drop remembered counts (benchmarks use it to measure a query's first page)."""
        with self._cache_lock:
            self._counts.clear()

    def _check_version(self) -> None:
        """Forget what was remembered if anybody committed a change since the last request."""
        with self._cache_lock:
            version = int(self._watcher.execute("PRAGMA data_version").fetchone()[0])
            if version != self._version:
                self._sizes.clear()
                self._counts.clear()
                self._version = version
                self._population = int(self._watcher.execute("SELECT max(id) FROM customers").fetchone()[0] or 0)

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

    def where(self, query: ListQuery, now: int, conn: sqlite3.Connection | None = None) -> tuple[str, list[object]]:
        """The WHERE clause of a listing. The smallest positive membership, when small enough, is
        written as a list that drives the query; every other condition is checked per candidate,
        column comparisons first (cheapest), then memberships (one lookup each), then text."""
        ctx = Context(now=now)
        built: list[tuple[int, str, list[object]]] = []
        drivers: list[tuple[int, int]] = []  # (size, index into built)
        for f, values in query.filters:
            rule = RULES[f.param]
            sql, params = rule.build(values, ctx)
            if rule.member is not None:
                drivers.append((self._size(rule.member.count(), [values[0]], conn), len(built)))
                built.append((1, sql, params))
            elif "EXISTS" in sql:
                built.append((1, sql, params))
            elif "instr(" in sql:
                built.append((2, sql, params))
            else:
                built.append((0, sql, params))
        if drivers:
            size, at = min(drivers)
            if size <= self._population * _DRIVE_SHARE:
                f, values = query.filters[at]
                member = RULES[f.param].member
                assert member is not None
                built[at] = (-1, member.listing(), built[at][2])
        built.sort(key=lambda item: item[0])
        clauses = [sql for _, sql, _ in built]
        params = [p for _, _, ps in built for p in ps]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _size(self, sql: str, params: list[object], conn: sqlite3.Connection | None) -> int:
        """Rows of a membership (remembered until the data changes)."""
        key = (sql, tuple(params))
        with self._cache_lock:
            if key in self._sizes:
                return self._sizes[key]
        if conn is None:
            with self.reading() as reader:
                size = int(reader.execute(sql, params).fetchone()[0])
        else:
            size = int(conn.execute(sql, params).fetchone()[0])
        with self._cache_lock:
            self._sizes[key] = size
        return size

    def list_customers(self, query: ListQuery, now: int | None = None) -> tuple[list[sqlite3.Row], int]:
        offset = (query.page - 1) * query.size
        self._check_version()
        with self.reading() as conn:
            where, params = self.where(query, int(time.time()) if now is None else now, conn)
            total = self._count(conn, where, params)
            if offset >= total:
                return [], total
            # Few matches: sort them (SQLite reads them all anyway to count). Many: walk the sort
            # key's index and stop after the page, as the matches are dense along it.
            sparse = (offset + query.size) * 8 > total
            ids = [row[0] for row in conn.execute(
                f"SELECT c.id FROM customers c{where} ORDER BY {order_by(query.sort, by_index=not sparse)} "
                "LIMIT ? OFFSET ?", [*params, query.size, offset])]
            if not ids:
                return [], total
            marks = ",".join("?" * len(ids))
            by_id = {row["id"]: row for row in conn.execute(f"SELECT * FROM customers WHERE id IN ({marks})", ids)}
        return [by_id[i] for i in ids if i in by_id], total

    def _count(self, conn: sqlite3.Connection, where: str, params: list[object]) -> int:
        """count(*) of a filter, remembered until the data changes: a client walking the pages of
        one query pays for the count once."""
        key = (where, tuple(params))
        with self._cache_lock:
            if key in self._counts:
                return self._counts[key]
        total = int(conn.execute(f"SELECT count(*) FROM customers c{where}", params).fetchone()[0])
        with self._cache_lock:
            if len(self._counts) > 10_000:
                self._counts.clear()
            self._counts[key] = total
        return total

    def changed(self) -> None:
        """Forget what was derived from the data (call with the lock held after changing rows: kql.sandbox.admin)."""
        self._counts.clear()
        self._sizes.clear()

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

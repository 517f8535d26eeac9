"""The database: built once, then read by request threads one query at a time.

One connection behind a lock keeps SQLite simple (no shared-cache locking, safe
inserts while serving); a filtered page costs milliseconds, so the lock is short.
Injected latency is slept outside it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kql.sandbox import data
from kql.sandbox.params import ListQuery
from kql.sandbox.rules import RULES, Context
from kql.sandbox.schema import CUSTOMER_COLUMNS

# Sort key → (SQL expression, expression that puts nulls last ascending). Nulls sort as
# the largest value, as in PostgreSQL (last ascending, first descending); ties break on id.
_ORDER = {
    "name": ("c.name COLLATE NOCASE", None),
    "email": ("c.email", None),
    "created_at": ("c.created_at", None),
    "net_revenue": ("c.net_revenue", None),
    "last_request_at": ("c.last_request_at", "(c.last_request_at IS NULL)"),
}


_MEMBER = "c.id IN ("


def _fold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def order_by(sort: Sequence[tuple[str, bool]]) -> str:
    parts = []
    for name, desc in sort or [("created_at", True)]:
        expr, nulls = _ORDER[name]
        direction = " DESC" if desc else ""
        if nulls:
            parts.append(nulls + direction)
        parts.append(expr + direction)
    tie = " DESC" if (sort or [("created_at", True)])[0][1] else ""
    return ", ".join([*parts, "c.id" + tie])


class Store:
    def __init__(self, *, customers: int, seed: int, sites: int, db: str | Path | None = None) -> None:
        self.seed, self.sites = seed, sites
        self.lock = threading.Lock()
        self.conn = self._open(customers, seed, sites, db)
        self.conn.row_factory = sqlite3.Row
        self.conn.create_function("kql_fold", 1, _fold, deterministic=True)
        self._sizes: dict[tuple[str, tuple[object, ...]], int] = {}
        self._counts: dict[tuple[str, tuple[object, ...]], int] = {}

    @staticmethod
    def _open(customers: int, seed: int, sites: int, db: str | Path | None) -> sqlite3.Connection:
        if customers < 0 or sites < 1:  # before a mismatched --db file is replaced, not after
            raise ValueError("customers must be >= 0 and sites >= 1")
        wanted = {"version": data.GENERATOR_VERSION, "seed": str(seed), "customers": str(customers),
                  "sites": str(sites)}
        if db is not None and Path(db).exists():
            conn = sqlite3.connect(db, check_same_thread=False)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError:
                meta = {}
            if all(meta.get(k) == v for k, v in wanted.items()):
                data.shift_to_now(conn, int(meta["now"]), int(time.time()))  # reuse: same generator, seed, size
                return conn
            conn.close()
            if "version" not in meta and Path(db).stat().st_size > 0:
                raise ValueError(f"{db} is not a sandbox database: refusing to overwrite it")
            Path(db).unlink()
        conn = sqlite3.connect(":memory:" if db is None else db, check_same_thread=False)
        data.generate(conn, customers=customers, seed=seed, sites=sites, now=int(time.time()))
        return conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def where(self, query: ListQuery, now: int) -> tuple[str, list[object]]:
        ctx = Context(now=now)
        built = [RULES[f.param].build(values, ctx) for f, values in query.filters]
        # SQLite drives the query from the first `c.id IN (…)` it meets: put the smallest first.
        built.sort(key=lambda clause: self._size(*clause))
        clauses = [sql for sql, _ in built]
        params = [p for _, ps in built for p in ps]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _size(self, sql: str, params: list[object]) -> int:
        """Rows of a membership subquery (cached: relations do not change while serving); others last."""
        if not sql.startswith(_MEMBER):
            return 1 << 62
        key = (sql, tuple(params))
        if key not in self._sizes:
            self._sizes[key] = self.conn.execute(f"SELECT count(*) FROM {sql[len(_MEMBER) - 1:]}", params).fetchone()[0]
        return self._sizes[key]

    def list_customers(self, query: ListQuery, now: int | None = None) -> tuple[list[sqlite3.Row], int]:
        offset = (query.page - 1) * query.size
        with self.lock:
            where, params = self.where(query, int(time.time()) if now is None else now)
            page_sql = f"SELECT * FROM customers c{where} ORDER BY {order_by(query.sort)} LIMIT ? OFFSET ?"
            total = self._count(where, params)
            rows = self.conn.execute(page_sql, [*params, query.size, offset]).fetchall() if offset < total else []
        return rows, int(total)

    def forget_counts(self) -> None:
        """Drop remembered counts (benchmarks use it to measure a query's first page)."""
        with self.lock:
            self._counts.clear()

    def _count(self, where: str, params: list[object]) -> int:
        """count(*) of a filter, remembered until customers are inserted: a client walking the
        pages of one query pays for the count once. (Call with the lock held.)"""
        key = (where, tuple(params))
        if key not in self._counts:
            if len(self._counts) > 10_000:
                self._counts.clear()
            self._counts[key] = int(self.conn.execute(f"SELECT count(*) FROM customers c{where}", params).fetchone()[0])
        return self._counts[key]

    def changed(self) -> None:
        """Forget what was derived from the data (call with the lock held after changing rows: kql.sandbox.admin)."""
        self._counts.clear()
        self._sizes.clear()

    def customer(self, cid: int) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM customers WHERE id = ?", [cid])
        return rows[0] if rows else None

    def related(self, cid: int) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        offers = self.query("SELECT o.* FROM offers o JOIN offer_grants g ON g.offer_id = o.id "
                            "WHERE g.customer_id = ? ORDER BY o.id", [cid])
        products = self.query("SELECT p.*, (SELECT count(*) FROM product_access a WHERE a.product_id = p.id) AS members"
                              " FROM products p JOIN product_access x ON x.product_id = p.id"
                              " WHERE x.customer_id = ? AND x.active = 1 ORDER BY p.id", [cid])
        return offers, products

    def insert_customers(self, n: int) -> list[int]:
        """Add n customers, newest of all (created now, or just after the newest)."""
        with self.lock:
            last_id, newest = self.conn.execute("SELECT max(id), max(created_at) FROM customers").fetchone()
            first = (last_id or 0) + 1
            created = max(int(time.time()), (newest or 0) + 1)
            rows = data.new_customers(self.seed, first, n, self.sites, created)
            marks = ",".join("?" * len(CUSTOMER_COLUMNS))
            self.conn.executemany(f"INSERT INTO customers VALUES ({marks})", rows)
            self.conn.commit()
            self._counts.clear()  # totals changed
        return list(range(first, first + n))

    def catalogue(self, sql_from: str, where: list[str], params: list[Any], order: str, page: int, size: int
                  ) -> tuple[list[sqlite3.Row], int]:
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self.lock:
            total = self.conn.execute(f"SELECT count(*) FROM {sql_from}{clause}", params).fetchone()[0]
            rows = self.conn.execute(f"SELECT * FROM {sql_from}{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                                     [*params, size, (page - 1) * size]).fetchall()
        return rows, int(total)

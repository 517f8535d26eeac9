"""The index answers what the rules' SQL answers: every registry filter, every sort, any page.

The reference is SQLite itself running each rule's SQL (`Rule.build`) and each sort's ORDER BY,
over data the generator would never write: a customer whose creation time breaks the order of
ids, a fractional revenue, text in a timestamp column, relation rows of nobody, gaps in ids.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence

import pytest

from kql.registry import registry
from kql.sandbox.index import Index, Sort, order_by
from kql.sandbox.params import filter_values
from kql.sandbox.rules import RULES, Context, Value
from kql.sandbox.store import Store

NOW = int(time.time())
SAMPLES = {"id": ["1", "2", "5", "99999"], "days": ["0", "1", "30", "365", "100000"],
           "money": ["0", "50", "99.5", "100", "1000000"], "flag": ["true"]}
TEXT = ["smith", "a", "zoë", "SMITH", "@example.com", "555", "Berlin", "spring24"]
SORTS: list[Sort] = [(), (("created_at", True),), (("created_at", False),), (("name", False),), (("name", True),),
                     (("email", False),), (("net_revenue", True),), (("last_request_at", False),),
                     (("last_request_at", True),), (("name", False), ("created_at", True))]


def _odd(store: Store) -> None:
    """Rows the generator never writes, each a case the index must hand back to SQL or get right."""
    with store.writing() as conn:
        conn.execute("UPDATE customers SET created_at = ? WHERE id = 5", (NOW + 1000,))  # ids no longer in order
        conn.execute("UPDATE customers SET net_revenue = 9950.5 WHERE id = 7")  # REAL among integers
        conn.execute("UPDATE customers SET last_opened_at = 'soon' WHERE id = 8")  # TEXT in a timestamp
        conn.execute("UPDATE customers SET created_at = 'early' WHERE id = 9")  # … and in the default order's
        conn.execute("UPDATE customers SET last_request_at = NULL WHERE id BETWEEN 10 AND 20")
        conn.execute("DELETE FROM customers WHERE id IN (3, 30, 300)")  # gaps; their relation rows stay
        conn.execute("INSERT OR IGNORE INTO customer_tags VALUES (1, 100000)")  # a customer that does not exist


@pytest.fixture(scope="module", params=["generated", "odd"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    s = Store(customers=600, seed=3, sites=2)
    if request.param == "odd":
        _odd(s)
    try:
        yield s
    finally:
        s.close()


def _members(index: Index, found: int) -> set[int]:
    return set(index.ids_at([p for p in range(index.size) if found >> p & 1]))


def _sql(conn: sqlite3.Connection, param: str, values: Sequence[Value]) -> set[int]:
    sql, params = RULES[param].build(values, Context(now=NOW))
    return {r[0] for r in conn.execute(f"SELECT c.id FROM customers c WHERE {sql}", params)}


def _cases() -> Iterator[tuple[str, list[str]]]:
    for f in registry():
        raws = TEXT if f.value == "string" else SAMPLES[f.value]
        for raw in raws:
            yield f.param, [raw]
        if f.arity == "many":
            yield f.param, [",".join(raws[:2])]
            yield f.param, [",".join(raws)]


def test_every_filter_selects_what_its_sql_selects(store: Store) -> None:
    reg = registry()
    with store.reading() as conn:
        index = Index(conn)
        checked = 0
        for param, raws in _cases():
            f = reg.by_param[param]
            values = filter_values(f, [(f.api_name, raw) for raw in raws])
            found = index.matching(param, values, Context(now=NOW), conn)
            assert found & ~index.universe == 0, (param, raws)
            assert _members(index, found) == _sql(conn, param, values), (param, raws)
            checked += 1
        assert checked > 4 * len(reg)


@pytest.mark.parametrize("sort", SORTS, ids=lambda s: ",".join(("-" if d else "") + k for k, d in s) or "default")
def test_every_sort_and_page_is_sqls(store: Store, sort: Sort) -> None:
    ctx = Context(now=NOW)
    filters: list[list[tuple[str, list[Value]]]] = [
        [], [("subscribed", [1])], [("has_tag_id", [1]), ("net_revenue_greater_than", [0])],
        [("has_tag_id", [40])], [("search", ["smith"])],
    ]
    with store.reading() as conn:
        index = Index(conn)
        for chosen in filters:
            found = index.universe
            clauses, params = ["1"], []
            for param, values in chosen:
                found &= index.matching(param, values, ctx, conn)
                sql, ps = RULES[param].build(values, ctx)
                clauses.append(sql)
                params += ps
            total = found.bit_count()
            where = " AND ".join(clauses)
            assert total == conn.execute(f"SELECT count(*) FROM customers c WHERE {where}", params).fetchone()[0]
            for offset, size in [(0, 25), (25, 25), (max(0, total - 3), 10), (0, 1000), (total, 5)]:
                expected = [r[0] for r in conn.execute(
                    f"SELECT c.id FROM customers c WHERE {where} ORDER BY {order_by(sort)} LIMIT ? OFFSET ?",
                    [*params, size, offset])]
                assert index.page(found, total, sort, offset, size, conn) == expected, (chosen, offset, size)


def test_the_default_order_is_newest_first_then_the_larger_id() -> None:
    assert order_by(()) == "c.created_at DESC, c.id DESC"
    assert order_by((("created_at", True),)) == order_by(())


def test_the_store_notices_a_change_and_builds_the_index_again() -> None:
    s = Store(customers=200, seed=5, sites=1)
    try:
        s._check_version()  # as every listing does first
        with s.reading() as conn:
            first = s.index(conn)
        s._check_version()
        with s.reading() as conn:
            assert s.index(conn) is first  # nothing changed: the same index
        with s.writing() as conn:
            conn.execute("INSERT INTO customer_tags VALUES (1, 199) ON CONFLICT DO NOTHING")
        s._check_version()
        with s.reading() as conn:
            assert s.index(conn) is not first
    finally:
        s.close()

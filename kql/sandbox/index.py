"""An in-memory index over one version of the customers: a listing is AND-ed bitsets.

A set of customers is a Python int with bit i set for the customer of id i (ids are dense
for generated data; other ids are numbered densely instead, see `Index`), so AND of four
filters over 100,000 customers is a few microseconds and `meta.total_count` is
`int.bit_count()`. The default order, newest first (`created_at` descending, ties broken by
`id` descending), is the order of descending ids whenever ids follow creation time (always
for generated and inserted customers; checked when the index is built): its page is the
k-th run of set bits from the top, found by counting bits chunk by chunk. Any other order
(an explicit sort, or a default order that ids do not follow) is a permutation of the
customers cut in 64 blocks, each with its set: a page skips the blocks before it by
counting their matches (one AND and bit_count each) and walks only the blocks holding it.

Where a filter's set comes from (its rule's `form`, kql.sandbox.rules):

- `Compare` (revenue, `*_in_last`): a sorted copy of the column with the set of every 64th
  suffix kept; `col >= v` is the nearest kept suffix plus or minus the few customers between;
- `Holders` (tags, offers, broadcasts, …): the relation's customers for the value(s);
- no form (flags, site, text): the rule's own SQL.

What is read from SQL is remembered (a bounded number, least recently used dropped first).
Everything is built on first use, from the reading connection of the request that needs it;
the store drops the whole index when the data changes (kql.sandbox.store), so nothing here is
ever updated in place.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import itertools
import json
import operator
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from kql.sandbox.rules import RULES, Compare, Context, Holders, Value

Sort = tuple[tuple[str, bool], ...]  # (field, descending), as kql.sandbox.params parses `sort`
# Sort key → (SQL expression, expression that puts nulls last ascending). Nulls sort as
# the largest value, as in PostgreSQL (last ascending, first descending); ties break on id,
# in the direction of the first key.
_ORDER = {
    "name": ("c.name COLLATE NOCASE", None),
    "email": ("c.email", None),
    "created_at": ("c.created_at", None),
    "net_revenue": ("c.net_revenue", None),
    "last_request_at": ("c.last_request_at", "(c.last_request_at IS NULL)"),
}
def order_by(sort: Sort) -> str:
    """ORDER BY terms of a sort; the empty sort is the default order, newest first."""
    parts = []
    for name, desc in sort or (("created_at", True),):
        expr, nulls = _ORDER[name]
        direction = " DESC" if desc else ""
        if nulls:
            parts.append(nulls + direction)
        parts.append(expr + direction)
    tie = " DESC" if (sort or (("created_at", True),))[0][1] else ""
    return ", ".join([*parts, "c.id" + tie])


MARKS = 64  # kept suffixes per sorted column
REMEMBERED = 256  # filter results read from SQL kept at once
SORTS = 12  # sort permutations kept at once
_CHUNK = 256  # bytes of a bitset counted at once when finding the k-th set bit
_UP = tuple(tuple(b for b in range(8) if byte >> b & 1) for byte in range(256))  # set bits, lowest first
_DOWN = tuple(bits[::-1] for bits in _UP)
_FLAGS = bytes.maketrans(b"01", b"\x00\x01")
_FEW = 64  # below 1/_FEW of the positions, a set is built bit by bit; above, as a string of digits


class _Unsupported(Exception):
    """The structure cannot answer this (a column holding text, say): run the rule's SQL instead."""


def _json_ids(conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> list[int]:
    """The first column of a query, as a list: one JSON array from SQLite is cheaper than a row per id."""
    cur = conn.cursor()
    cur.row_factory = None
    found: list[int] = json.loads(cur.execute(f"SELECT json_group_array(x) FROM ({sql})", params).fetchone()[0])
    return found


def _ordered(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    """Rows in the query's ORDER BY order (row by row: an aggregate's order is not SQLite's promise)."""
    cur = conn.cursor()
    cur.row_factory = None
    return cur.execute(sql).fetchall()


class _Column:
    """One column's non-null values in ascending order, with the positions holding them."""

    def __init__(self, index: Index, positions: list[int], values: array[int]) -> None:
        self.values = values
        self.order = array("i", positions)
        step = max(256, -(-len(values) // MARKS))
        self.bounds = [*range(0, len(values), step), len(values)]
        self.index = index
        digits = bytearray(b"0") * max(1, index.size)  # bit p is digit p, reversed when read
        marks: list[int] = []
        at = len(values)
        for bound in reversed(self.bounds):
            collections.deque(map(digits.__setitem__, self.order[bound:at], itertools.repeat(49)), maxlen=0)
            at = bound
            marks.append(int(digits[::-1], 2))
        self.marks = marks[::-1]  # marks[k]: the positions of order[bounds[k]:]

    def from_rank(self, i: int) -> int:
        """The positions of order[i:] (values at or above the i-th smallest)."""
        k = bisect.bisect_right(self.bounds, i) - 1
        if k + 1 < len(self.bounds) and self.bounds[k + 1] - i < i - self.bounds[k]:
            k += 1
        lo, hi = sorted((self.bounds[k], i))
        if lo == hi:
            return self.marks[k]
        return self.marks[k] ^ self.index.bits(self.order[lo:hi])  # add or remove the positions between

    def compare(self, op: str, value: float) -> int:
        if op == ">=":
            return self.from_rank(bisect.bisect_left(self.values, value))
        if op == ">":
            return self.from_rank(bisect.bisect_right(self.values, value))
        if op == "=":
            return self.from_rank(bisect.bisect_left(self.values, value)) ^ self.from_rank(
                bisect.bisect_right(self.values, value))
        assert op == "<", op
        return self.marks[0] ^ self.from_rank(bisect.bisect_left(self.values, value))


class Index:
    def __init__(self, conn: sqlite3.Connection) -> None:
        count, low, top = conn.execute("SELECT count(*), min(id), max(id) FROM customers").fetchone()
        self.n = int(count)
        # Positions are ids when they are dense enough (always, for generated data); other ids
        # (negative, or few and huge) are numbered 0, 1, … in id order instead.
        self._ids: list[int] | None = None
        self._pos: dict[int, int] | None = None
        if not self.n:
            self.size = 0
        elif low >= 0 and top <= 8 * self.n + 4096:
            self.size = top + 1
        else:
            self._ids = _json_ids(conn, "SELECT id AS x FROM customers ORDER BY id")
            self._pos = {cid: p for p, cid in enumerate(self._ids)}
            self.size = self.n
        self.nbytes = (self.size + 7) // 8
        if self._pos is not None or not self.n:
            self.universe = (1 << self.n) - 1
        elif count == top - low + 1:
            self.universe = ((1 << (top + 1)) - 1) ^ ((1 << low) - 1)
        else:
            self.universe = self.bits(_json_ids(conn, "SELECT id AS x FROM customers"))
        # The default order is descending positions when ids follow creation time.
        cur = conn.cursor()
        cur.row_factory = None
        ids_json, created_json = cur.execute("SELECT json_group_array(id), json_group_array(created_at) FROM "
                                             "(SELECT id, created_at FROM customers ORDER BY id)").fetchone()
        ids, created = json.loads(ids_json), json.loads(created_json)
        # (The ids are checked too: SQLite does not promise that an aggregate reads rows in order.)
        try:
            self.natural = (all(map(operator.lt, ids, itertools.islice(ids, 1, None)))
                            and all(map(operator.le, created, itertools.islice(created, 1, None))))
        except TypeError:  # text among the times: SQLite orders it its own way
            self.natural = False
        self._lock = threading.Lock()
        self._columns: dict[str, _Column | None] = {}  # None: the column cannot be indexed
        self._remembered: OrderedDict[tuple[object, ...], int] = OrderedDict()
        self._sorts: OrderedDict[Sort, _Order] = OrderedDict()

    def positions(self, ids: list[int]) -> list[int]:
        """The positions of those ids that are customers of this index (others are skipped)."""
        if self._pos is None:
            if not ids or (min(ids) >= 0 and max(ids) < self.size):
                return ids
            return [i for i in ids if 0 <= i < self.size]
        pos = self._pos
        return [pos[i] for i in ids if i in pos]

    def ids_at(self, positions: list[int]) -> list[int]:
        return positions if self._ids is None else [self._ids[p] for p in positions]

    def bits(self, positions: Sequence[int]) -> int:
        """The set of those positions."""
        if not positions:
            return 0
        if len(positions) * _FEW < self.size:
            buf = bytearray(self.nbytes)
            for p in positions:
                buf[p >> 3] |= 1 << (p & 7)
            return int.from_bytes(buf, "little")
        digits = bytearray(b"0") * self.size  # a C loop sets the digits; int() reads them in linear time
        collections.deque(map(digits.__setitem__, positions, itertools.repeat(49)), maxlen=0)
        return int(digits[::-1], 2)

    # ---- sets -----------------------------------------------------------------------------------

    def matching(self, param: str, values: Sequence[Value], ctx: Context, conn: sqlite3.Connection) -> int:
        """The set of customers one `filter[param]` selects."""
        rule = RULES[param]
        form = rule.form(values, ctx) if rule.form is not None else None
        with contextlib.suppress(_Unsupported):
            if isinstance(form, Compare):
                return self._compare(form, conn)
            if isinstance(form, Holders):
                return self._holders(form, conn)
        sql, params = rule.build(values, ctx)
        return self._remember(("sql", sql, *params), lambda: self.bits(self.positions(
            _json_ids(conn, f"SELECT c.id AS x FROM customers c WHERE {sql}", params))))

    def _compare(self, form: Compare, conn: sqlite3.Connection) -> int:
        column = self._column(form.column, conn)
        if column is None:
            raise _Unsupported
        found = column.compare(form.op, form.value)
        return self.universe ^ (column.marks[0] ^ found) if form.or_null else found

    def _column(self, name: str, conn: sqlite3.Connection) -> _Column | None:
        if name in self._columns:
            return self._columns[name]
        cur = conn.cursor()
        cur.row_factory = None
        ids_json, values_json = cur.execute(
            f"SELECT json_group_array(id), json_group_array(v) FROM "
            f"(SELECT id, {name} AS v FROM customers WHERE {name} IS NOT NULL ORDER BY {name})").fetchone()
        ids: list[int] = json.loads(ids_json)
        column: _Column | None = None
        try:
            values = array("q", json.loads(values_json))
        except (TypeError, OverflowError):  # REAL or TEXT values, or huge ones: SQL compares them its own way
            values = None
        if values is not None:
            if not all(map(operator.le, values, itertools.islice(values, 1, None))):
                pairs = sorted(zip(values, ids, strict=True))  # SQLite does not promise an aggregate's order
                values, ids = array("q", [v for v, _ in pairs]), [i for _, i in pairs]
            positions = self.positions(ids)
            if len(positions) == len(ids):  # else customers were added since the index was built
                column = _Column(self, positions, values)
        with self._lock:
            self._columns[name] = column
        return column

    def _holders(self, form: Holders, conn: sqlite3.Connection) -> int:
        member = form.member

        def holders(values: tuple[Value, ...]) -> int:
            return self._remember(("holders", member, *values), lambda: self.bits(self.positions(
                _json_ids(conn, member.holders(len(values)), values))))

        if form.every:
            found = self.universe
            for value in form.values:
                found &= holders((value,))
                if not found:
                    break
        else:
            found = holders(form.values)
        found &= self.universe  # rows of deleted customers do not count
        return self.universe ^ found if form.negate else found

    def _remember(self, key: tuple[object, ...], build: Callable[[], int]) -> int:
        with self._lock:
            if key in self._remembered:
                self._remembered.move_to_end(key)
                return self._remembered[key]
        found = build()  # outside the lock: a slow query never holds up another request
        with self._lock:
            self._remembered[key] = found
            while len(self._remembered) > REMEMBERED:
                self._remembered.popitem(last=False)
        return found

    # ---- pages ----------------------------------------------------------------------------------

    def page(self, found: int, total: int, sort: Sort, offset: int, size: int, conn: sqlite3.Connection
             ) -> list[int]:
        """The ids of matches offset … offset+size−1 in the order of `sort` (the default order when empty)."""
        if self.natural and (not sort or sort == (("created_at", True),)):
            return self.ids_at(_select_down(found, offset, size, self.nbytes))
        if self.natural and sort == (("created_at", False),):  # the default order reversed (ties: id ascending)
            return self.ids_at(_select_up(found, offset, size, self.nbytes))
        order = self._sort(sort, conn)
        picked: list[int] = []
        flags: bytes | None = None
        for k, block in enumerate(order.blocks):  # skip whole blocks of the order by counting their matches
            here = found & block
            count = here.bit_count()
            if count <= offset:
                offset -= count
                continue
            # Walk the block: one byte per position, 1 for a match, so that the walk is a loop in C.
            if flags is None:
                flags = format(found, f"0{self.size}b").encode().translate(_FLAGS)[::-1]
            part = order.perm[k * order.step:(k + 1) * order.step]
            matches = list(itertools.compress(part, map(flags.__getitem__, part)))
            picked += matches[offset:offset + size - len(picked)]
            offset = 0
            if len(picked) == size:
                break
        return self.ids_at(picked)

    def _sort(self, sort: Sort, conn: sqlite3.Connection) -> _Order:
        with self._lock:
            if sort in self._sorts:
                self._sorts.move_to_end(sort)
                return self._sorts[sort]
        order = _Order(self, self.positions([r[0] for r in _ordered(
            conn, f"SELECT c.id FROM customers c ORDER BY {order_by(sort)}")]))
        with self._lock:
            self._sorts[sort] = order
            while len(self._sorts) > SORTS:
                self._sorts.popitem(last=False)
        return order


class _Order:
    """A sort's permutation of the positions, and the sets of its blocks of `step` consecutive
    ranks: a page skips the blocks before it by counting their matches, and walks only the
    blocks that hold it."""

    def __init__(self, index: Index, perm: list[int]) -> None:
        self.perm = array("i", perm)
        self.step = max(1024, -(-len(perm) // MARKS))
        self.blocks = [index.bits(perm[at:at + self.step]) for at in range(0, len(perm), self.step)]


def _select_down(found: int, offset: int, count: int, nbytes: int) -> list[int]:
    """Positions of set bits number offset … offset+count−1 counted from the highest."""
    return _select(found.to_bytes(nbytes, "big"), offset, count, _DOWN, lambda i: (nbytes - 1 - i) * 8)


def _select_up(found: int, offset: int, count: int, nbytes: int) -> list[int]:
    """Positions of set bits number offset … offset+count−1 counted from the lowest."""
    return _select(found.to_bytes(nbytes, "little"), offset, count, _UP, lambda i: i * 8)


def _select(
    data: bytes, offset: int, count: int, table: tuple[tuple[int, ...], ...], base_of: Callable[[int], int]
) -> list[int]:
    """Set bits number offset … offset+count−1 of ``data`` in its byte order: ``table`` gives a byte's
    bits in that order, ``base_of`` the bit position of byte ``i``."""
    start, offset = _skip(data, offset)
    picked: list[int] = []
    for i in range(start, len(data)):
        byte = data[i]
        if not byte:
            continue
        bits = table[byte]
        if offset >= len(bits):
            offset -= len(bits)
            continue
        base = base_of(i)
        for b in bits[offset:]:
            picked.append(base + b)
            if len(picked) == count:
                return picked
        offset = 0
    return picked


def _skip(data: bytes, offset: int) -> tuple[int, int]:
    """(start, rest): the last chunk boundary before set bit number `offset` (counted from data's
    start), and that bit's number counted from there."""
    start = 0
    while start < len(data):
        here = int.from_bytes(data[start:start + _CHUNK], "little").bit_count()
        if here > offset:
            break
        offset -= here
        start += _CHUNK
    return start, offset

"""Merging a plan's streams into one answer (pure logic; the executor feeds it records).

Every branch of a plan is one listing sorted by the plan's merge order. Merging
compares records the way the API orders them, so that a k-way merge of sorted
streams is itself sorted:

- by the sort attribute, ascending or descending (``-name``);
- a missing value (``null``) sorts after every value ascending and before every
  value descending, as PostgreSQL's default (and the sandbox) place it;
- ``name`` compares case-insensitively (ASCII), as the API sorts it;
- ties are broken by id (numeric ids as numbers), in the sort's direction.

A server that orders differently cannot make the result wrong — duplicates are
removed by id wherever they appear — only its order imperfect; streams are
checked as they are read and a disorder becomes a warning.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from kql.execute.idset import IdSet
from kql.execute.local import convert, matches
from kql.planning.plan import LocalFilter
from kql.registry import registry

Record = dict[str, Any]
SortKey = tuple[Any, ...]

# Sorted case-insensitively by the API (SQL `COLLATE NOCASE`: ASCII letters only).
_CASE_INSENSITIVE = frozenset({"name"})
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def order_key(order: str) -> tuple[Callable[[Record], SortKey], bool]:
    """(key, reverse) for a sort key like ``created_at`` or ``-net_revenue``."""
    reverse = order.startswith("-")
    attribute = order.lstrip("-")
    kind = registry().attributes[attribute].type
    fold = attribute in _CASE_INSENSITIVE

    def key(record: Record) -> SortKey:
        raw = record.get(attribute)
        value = None if raw is None else convert(kind, raw)
        if fold and isinstance(value, str):
            value = value.translate(_ASCII_LOWER)
        ident = record["id"]
        tie = (0, int(ident)) if ident.isascii() and ident.isdigit() and len(ident) <= 19 else (1, ident)
        # (1,) is greater than any (0, value): nulls last ascending, first descending.
        return ((1,) if value is None else (0, value), tie)

    return key, reverse


class OrderCheck:
    """Counts records that arrive out of the merge order within one stream."""

    def __init__(self, key: Callable[[Record], SortKey], reverse: bool) -> None:
        self.key, self.reverse = key, reverse
        self.disorders = 0

    def see(self, record: Record, previous: SortKey | None) -> SortKey:
        """Check ``record`` against the one before it in its stream; returns its key."""
        current = self.key(record)
        if previous is not None and (current > previous if self.reverse else current < previous):
            self.disorders += 1
        return current

    def watch(self, records: Iterable[Record]) -> Iterator[Record]:
        previous: SortKey | None = None
        for record in records:
            previous = self.see(record, previous)
            yield record


def merge(streams: Sequence[Iterable[Record]], order: str, check: OrderCheck | None = None) -> Iterator[Record]:
    """One stream in ``order`` from streams each already in ``order`` (duplicates kept)."""
    key, reverse = order_key(order)
    check = check or OrderCheck(key, reverse)
    watched = [check.watch(s) for s in streams]
    if len(watched) == 1:
        return iter(watched[0])
    return heapq.merge(*watched, key=key, reverse=reverse)


class Window:
    """De-duplication by id, then ``page``/``limit`` over the merged stream, then field stripping."""

    def __init__(
        self,
        *,
        limit: int | None,
        page: tuple[int, int] | None,
        strip: Sequence[str] = (),
    ) -> None:
        self.offset = 0
        self.count = limit
        if page is not None:
            size = page[1]
            self.offset = (page[0] - 1) * size
            self.count = size if limit is None else min(size, limit)
        self.strip = tuple(strip)
        self.duplicates = 0
        self.yielded = 0
        self._skipped = 0
        self._seen = IdSet()

    @property
    def needed(self) -> int | None:
        """At most this many records from any one stream can matter (None: all of them)."""
        return None if self.count is None else self.offset + self.count

    @property
    def finished(self) -> bool:
        return self.count is not None and self.yielded >= self.count

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        if self.finished:
            return
        for record in records:
            if not self._seen.add(record["id"]):
                self.duplicates += 1
                continue
            if self._skipped < self.offset:
                self._skipped += 1
                continue
            for name in self.strip:
                record.pop(name, None)
            self.yielded += 1
            yield record
            if self.finished:
                return


class Narrowing:
    """A branch's id sets and local filters, applied to each record of its stream."""

    def __init__(self, excluded: Sequence[IdSet], required: Sequence[IdSet], local: Sequence[LocalFilter]) -> None:
        self._excluded, self._required, self._local = excluded, required, local

    def keeps(self, record: Record) -> bool:
        ident = record["id"]
        if any(ident in ids for ids in self._excluded):
            return False
        if not all(ident in ids for ids in self._required):
            return False
        return all(matches(f, record) for f in self._local)

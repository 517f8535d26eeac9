"""A set of customer ids that stays small when a run streams 100,000 of them.

Numeric ids (what Kajabi uses) are kept in a sorted ``array('q')`` at 8 bytes
each, with a small set in front of it that is merged in now and then; any other
id goes into an ordinary set. Dedupe then costs little next to the pages in flight.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left


class IdSet:
    def __init__(self, flush_at: int = 4096) -> None:
        self._sorted = array("q")
        self._recent: set[int] = set()
        self._other: set[str] = set()
        self._flush_at = flush_at

    def add(self, key: str) -> bool:
        """Add ``key``; True if it was not there before."""
        number = _number(key)
        if number is not None:
            if number in self._recent or self._in_sorted(number):
                return False
            self._recent.add(number)
            if len(self._recent) >= self._flush_at:
                self._flush()
            return True
        if key in self._other:
            return False
        self._other.add(key)
        return True

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        number = _number(key)
        if number is not None:
            return number in self._recent or self._in_sorted(number)
        return key in self._other

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent) + len(self._other)

    def _in_sorted(self, number: int) -> bool:
        i = bisect_left(self._sorted, number)
        return i < len(self._sorted) and self._sorted[i] == number

    def _flush(self) -> None:
        # heapq.merge streams into the new array: no list of every id on the way.
        self._sorted = array("q", heapq.merge(self._sorted, sorted(self._recent)))
        self._recent.clear()


def _number(key: str) -> int | None:
    # "007" and "7" are different ids: only canonical digit strings become ints.
    if key.isdigit() and len(key) < 19 and (key == "0" or key[0] != "0"):
        return int(key)
    return None

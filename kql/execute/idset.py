"""A set of customer ids that stays small and fast when a run streams a million of them.

Numeric ids (what Kajabi uses) live in a table of small sorted ``array('q')``
buckets, 8 bytes an id. A mixed hash of the id picks its bucket; a bucket is kept
short (``BUCKET`` ids on average), so a lookup is one bisect and an insert one short
``memmove``, whatever the size of the set. When the average bucket fills up, the
table doubles: each bucket splits in two by the next bit of the hash, which keeps
both halves sorted — linear work, paid once per doubling, so every ``add`` costs
the same amortised O(1) at 10k ids as at 1M. Any other id goes into a plain set.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable

# Ids per bucket on average before the table doubles: short enough for a cheap insert.
BUCKET = 256
_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: consecutive or strided ids still spread
_MASK64 = (1 << 64) - 1


class IdSet:
    def __init__(self, bucket: int = BUCKET) -> None:
        self._bucket = bucket  # small in tests, to split often
        self._bits = 4
        self._shift = 64 - self._bits
        self._buckets: list[array[int]] = [array("q") for _ in range(1 << self._bits)]
        self._numbers = 0
        self._other: set[str] = set()

    def add(self, key: str) -> bool:
        """Add ``key``; True if it was not there before."""
        number = _number(key)
        if number is None:
            if key in self._other:
                return False
            self._other.add(key)
            return True
        bucket = self._buckets[(number * _MIX & _MASK64) >> self._shift]
        i = bisect_left(bucket, number)
        if i < len(bucket) and bucket[i] == number:
            return False
        bucket.insert(i, number)
        self._numbers += 1
        if self._numbers > self._bucket << self._bits:
            self._double()
        return True

    def add_many(self, keys: Iterable[str]) -> list[int]:
        """Add every key in order; the positions of those that were there already (usually none).

        ``add`` for a whole page at once, its loop inlined: this runs once per customer of a run."""
        repeated: list[int] = []
        buckets, shift, mix, mask = self._buckets, self._shift, _MIX, _MASK64
        for position, key in enumerate(keys):
            if key.isascii() and key.isdigit() and len(key) < 19 and (key[0] != "0" or key == "0"):
                number = int(key)
                bucket = buckets[(number * mix & mask) >> shift]
                i = bisect_left(bucket, number)
                if i < len(bucket) and bucket[i] == number:
                    repeated.append(position)
                    continue
                bucket.insert(i, number)
                self._numbers += 1
                if self._numbers > self._bucket << self._bits:
                    self._double()
                    buckets, shift = self._buckets, self._shift
            elif key in self._other:
                repeated.append(position)
            else:
                self._other.add(key)
        return repeated

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        number = _number(key)
        if number is None:
            return key in self._other
        bucket = self._buckets[(number * _MIX & _MASK64) >> self._shift]
        i = bisect_left(bucket, number)
        return i < len(bucket) and bucket[i] == number

    def __len__(self) -> int:
        return self._numbers + len(self._other)

    def _double(self) -> None:
        # Bucket i holds the ids whose top `bits` hash bits are i; the next bit sends each
        # to 2i or 2i+1. Filtering keeps the order, so both halves stay sorted.
        shift = 64 - (self._bits + 1)
        doubled: list[array[int]] = []
        for bucket in self._buckets:
            low, high = array("q"), array("q")
            for number in bucket:
                (high if (((number * _MIX) & _MASK64) >> shift) & 1 else low).append(number)
            doubled += (low, high)
        self._buckets = doubled
        self._bits += 1
        self._shift -= 1


def _number(key: str) -> int | None:
    # "007" and "7" are different ids: only canonical digit strings become ints (add_many inlines this).
    if key.isascii() and key.isdigit() and len(key) < 19 and (key == "0" or key[0] != "0"):
        return int(key)
    return None

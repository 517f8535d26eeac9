"""Dedupe cost per id at 10k, 100k and 1M ids: kql's IdSet against a plain ``set`` of ints.

    python bench/dedupe.py [--rounds 5]

Ids arrive as the API sends them: decimal strings, mostly increasing (a listing sorted
by creation time) with a share out of order, a page of 100 at a time, each page's
strings freshly made (as ``json.loads`` hands them to the client) and only the adding
timed. (Timing one prebuilt list of a million strings would time the input as well:
60 MB of string objects read once, cache-cold at 1M and not at 10k, which slows a
plain set by 2x.) Three sides: ``IdSet.add_many`` per page (what the client calls),
``IdSet.add`` per id, and ``set.add(int(id))``. Each round times every size for every
side, interleaved; medians are printed with the per-id cost at 1M over the cost at
10k (target ≤ 1.5 for IdSet) and IdSet's memory per id next to the set's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kql.execute.idset import IdSet

SIZES = (10_000, 100_000, 1_000_000)


def ids(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    base = 2_000_000_000
    out = [base + i * 3 + rng.randrange(3) for i in range(n)]
    for _ in range(n // 10):  # a tenth swapped far apart: pages of other branches, shifted pages
        a, b = rng.randrange(n), rng.randrange(n)
        out[a], out[b] = out[b], out[a]
    return out


PAGE = 100


def pages(numbers: list[int]) -> Iterator[list[str]]:
    for start in range(0, len(numbers), PAGE):
        yield [str(n) for n in numbers[start : start + PAGE]]


def with_add_many(numbers: list[int]) -> tuple[float, object]:
    seen = IdSet()
    spent = 0.0
    for keys in pages(numbers):
        start = time.perf_counter()
        seen.add_many(keys)
        spent += time.perf_counter() - start
    return spent, seen


def with_add(numbers: list[int]) -> tuple[float, object]:
    seen = IdSet()
    add = seen.add
    spent = 0.0
    for keys in pages(numbers):
        start = time.perf_counter()
        for key in keys:
            add(key)
        spent += time.perf_counter() - start
    return spent, seen


def with_set(numbers: list[int]) -> tuple[float, object]:
    seen: set[int] = set()
    add = seen.add
    spent = 0.0
    for keys in pages(numbers):
        start = time.perf_counter()
        for key in keys:
            add(int(key))
        spent += time.perf_counter() - start
    return spent, seen


Side = Callable[[list[int]], tuple[float, object]]
SIDES: dict[str, Side] = {"IdSet.add_many": with_add_many, "IdSet.add": with_add, "set[int]": with_set}


def per_id(fn: Side, numbers: list[int]) -> float:
    spent, _ = fn(numbers)
    return spent / len(numbers) * 1e6


def memory(fn: Side, numbers: list[int]) -> float:
    """Bytes per id the set holds once built (tracemalloc: the set's own allocations; each
    page's strings are garbage by the end)."""
    tracemalloc.start()
    _, kept = fn(numbers)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return size / len(numbers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    data = {n: ids(n) for n in SIZES}
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for n in SIZES:  # interleaved: each round times both sides at every size
            for name, fn in SIDES.items():
                times.setdefault((name, n), []).append(per_id(fn, data[n]))
    print(f"dedupe, µs per id (median of {rounds})")
    for name in SIDES:
        cells = "  ".join(f"{n:>9,}: {statistics.median(times[(name, n)]):.3f}" for n in SIZES)
        growth = statistics.median(times[(name, SIZES[-1])]) / statistics.median(times[(name, SIZES[0])])
        target = "  (target <= 1.5x)" if name.startswith("IdSet") else ""
        print(f"  {name:<14} {cells}   1M/10k = {growth:.2f}x{target}")
    ratio = statistics.median(times[("IdSet.add_many", SIZES[-1])]) / statistics.median(times[("set[int]", SIZES[-1])])
    print(f"  IdSet.add_many / set[int] at 1M: {ratio:.2f}x")
    big = data[SIZES[-1]]
    print(f"memory at 1M: IdSet {memory(with_add_many, big):.1f} B/id, set[int] {memory(with_set, big):.1f} B/id")


if __name__ == "__main__":
    main()

"""Dedupe cost per id at 10k, 100k and 1M ids: kql's IdSet against a plain ``set`` of ints.

    python bench/dedupe.py [--rounds 5]

Ids arrive as the API sends them: decimal strings, mostly increasing (a listing sorted
by creation time) with a share out of order. Each round times every size for both
sides, interleaved; medians are printed with the per-id cost at 1M over the cost at
10k (target ≤ 1.5 for IdSet) and IdSet's memory per id next to the set's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kql.execute.idset import IdSet

SIZES = (10_000, 100_000, 1_000_000)


def ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    base = 2_000_000_000
    out = [base + i * 3 + rng.randrange(3) for i in range(n)]
    for _ in range(n // 10):  # a tenth swapped far apart: pages of other branches, shifted pages
        a, b = rng.randrange(n), rng.randrange(n)
        out[a], out[b] = out[b], out[a]
    return [str(x) for x in out]


def with_idset(keys: list[str]) -> object:
    seen = IdSet()
    add = seen.add
    for key in keys:
        add(key)
    return seen


def with_set(keys: list[str]) -> object:
    seen: set[int] = set()
    add = seen.add
    for key in keys:
        add(int(key))
    return seen


def per_id(fn: Callable[[list[str]], object], keys: list[str]) -> float:
    start = time.perf_counter()
    fn(keys)
    return (time.perf_counter() - start) / len(keys) * 1e6


def memory(fn: Callable[[list[str]], object], keys: list[str]) -> float:
    tracemalloc.start()
    kept = fn(keys)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return size / len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    data = {n: ids(n) for n in SIZES}
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for n in SIZES:  # interleaved: each round times both sides at every size
            for name, fn in (("IdSet", with_idset), ("set[int]", with_set)):
                times.setdefault((name, n), []).append(per_id(fn, data[n]))
    print(f"dedupe, µs per id (median of {rounds})")
    for name in ("IdSet", "set[int]"):
        cells = "  ".join(f"{n:>9,}: {statistics.median(times[(name, n)]):.3f}" for n in SIZES)
        growth = statistics.median(times[(name, SIZES[-1])]) / statistics.median(times[(name, SIZES[0])])
        print(f"  {name:<9} {cells}   1M/10k = {growth:.2f}x" + ("  (target <= 1.5x)" if name == "IdSet" else ""))
    ratio = statistics.median(times[("IdSet", SIZES[-1])]) / statistics.median(times[("set[int]", SIZES[-1])])
    print(f"  IdSet / set[int] at 1M: {ratio:.2f}x")
    big = data[SIZES[-1]]
    print(f"memory at 1M: IdSet {memory(with_idset, big):.1f} B/id, set[int] {memory(with_set, big):.1f} B/id")


if __name__ == "__main__":
    main()

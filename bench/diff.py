"""Benchmark the snapshot diff (issue 13): peak Python memory and time per member, 100k vs 10k.

A diff streams the current members into the state store in batches and lets SQLite compute
entered / left / changed, so Python's peak memory should not grow with the segment. Each round
takes a baseline snapshot of N members, then a second one in which 1% left, 1% entered and 1%
changed a selected attribute, and reads every event. Members come from a generator shaped like
``client.customers`` records (the HTTP side is measured by bench/executor.py; here the question
is the store). Sizes are interleaved over several rounds; medians, and ratios within this run.

Peak memory is tracemalloc's (Python allocations; SQLite's own page cache is bounded by its
cache_size and not counted). Usage: python bench/diff.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kql.execute.state import StateStore

SMALL, LARGE = 10_000, 100_000


def members(n: int, second: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Ids 1..n; the second snapshot drops the first 1%, adds 1% past n, renames every 100th."""
    step = 100
    start = n // step + 1 if second else 1
    stop = n + n // step if second else n
    for i in range(start, stop + 1):
        name = f"Renamed {i}" if second and i % step == 50 and i <= n else f"Customer {i}"
        yield str(i), {"name": name, "net_revenue": f"{i % 997}.00"}


def one(n: int, folder: Path) -> tuple[float, float, int]:
    """(peak bytes, seconds, events) for snapshot + changed snapshot + reading every event."""
    path = folder / f"state-{n}-{time.monotonic_ns()}.sqlite3"
    tracemalloc.start()
    started = time.perf_counter()
    with StateStore(path) as store:
        base = store.begin("bench", "q", ["name", "net_revenue"])
        store.add(base, members(n, False))
        store.commit(base, None)
        new = store.begin("bench", "q", ["name", "net_revenue"])
        store.add(new, members(n, True))
        events = sum(1 for _ in store.diff(base, new))
        store.commit(new, base)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, elapsed, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    peaks: dict[int, list[float]] = {SMALL: [], LARGE: []}
    times: dict[int, list[float]] = {SMALL: [], LARGE: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for n in (SMALL, LARGE):  # interleaved: drift in the machine hits both sizes
                peak, elapsed, events = one(n, Path(tmp))
                renamed = sum(1 for i in range(n // 100 + 1, n + 1) if i % 100 == 50)
                assert events == 2 * (n // 100) + renamed, events  # 1% left, 1% entered, the renamed
                peaks[n].append(peak)
                times[n].append(elapsed)
    for n in (SMALL, LARGE):
        peak, seconds = statistics.median(peaks[n]), statistics.median(times[n])
        print(f"{n:>7} members: peak {peak / 1e6:6.2f} MB   {seconds:6.2f} s   {seconds / n * 1e6:5.2f} µs/member")
    memory = statistics.median(peaks[LARGE]) / statistics.median(peaks[SMALL])
    per_member = (statistics.median(times[LARGE]) / LARGE) / (statistics.median(times[SMALL]) / SMALL)
    print(f"peak memory, 100k / 10k: {memory:.2f}x  (target <= 1.5x)")
    print(f"time per member, 100k / 10k: {per_member:.2f}x")


if __name__ == "__main__":
    main()

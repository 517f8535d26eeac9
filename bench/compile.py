"""Benchmark the language core. Prints medians and ratios measured in the same run.

1. ``kql.compile`` (parse + validate + plan + encode, the in-process pipeline) of realistic,
   satisfiable one-request queries of 3, 8, 40 and 400 clauses (bench/compile_queries.py),
   against, on the same sizes and interleaved round by round:
   - luqum parsing a Lucene query of the same shape (as many ``field:value`` terms, AND-joined,
     ``NOT`` where KQL has ``not``) and about the same length: parse only, no validation;
   - a floor: the least a KQL compiler must do, hand-written (bench/compile_floor.py: a regex
     tokenizer, a recursive-descent parser building tuples, an encoder to a query string).
   Targets at 8 and 40 clauses: kql.compile at or below luqum's parse alone, and at most
   3x the floor. Every side's output is checked first, so no side measures a shortcut.
2. wall time of `kql compile '<3-clause query>'` against `python -c "import httpx"`
   (target: kql at or below it).

Usage: python bench/compile.py [--runs N] [--pipeline-only]   (needs `pip install luqum`)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from compile_floor import Floor
from compile_queries import bench_query

import kql

SIZES = (3, 8, 40, 400)
# (kql/luqum, kql/floor) targets, where the issue sets them.
TARGETS = {8: (1.0, 3.0), 40: (1.0, 3.0)}


def _luqum_terms(tree: object) -> int:
    """The number of operands of the top-level AND (a single term is one)."""
    from luqum.tree import AndOperation

    return len(tree.children) if isinstance(tree, AndOperation) else 1


def pipeline(rounds: int) -> None:
    from luqum.parser import parser as luqum_parser

    floor = Floor()
    sides: dict[int, dict[str, Callable[[], object]]] = {}
    lengths: dict[int, tuple[int, int]] = {}
    for n in SIZES:
        query = bench_query(n)
        expected = query.expected_params()
        # Each side does its whole job on this query, or the bench stops here.
        compiled = kql.compile(query.kql)
        assert sorted(compiled.params) == expected, f"{n} clauses: kql.compile sent {compiled.params}"
        assert sorted(floor.params(query.kql)) == expected, f"{n} clauses: the floor disagrees"
        assert floor.compile(query.kql) == compiled.query_string, f"{n} clauses: the floor encodes differently"
        assert _luqum_terms(luqum_parser.parse(query.lucene)) == n, f"{n} clauses: luqum read another shape"
        assert abs(len(query.lucene) - len(query.kql)) <= 0.1 * len(query.kql), "Lucene text not within 10%"
        lengths[n] = (len(query.kql), len(query.lucene))
        sides[n] = {
            "kql": lambda text=query.kql: kql.compile(text),
            "luqum": lambda text=query.lucene: luqum_parser.parse(text),
            "floor": lambda text=query.kql: floor.compile(text),
        }

    # Calls per sample: enough that one sample takes about a millisecond of kql.
    batch = {n: max(1, round(1e-3 / _once(fns["kql"]))) for n, fns in sides.items()}
    samples: dict[tuple[int, str], list[float]] = {(n, s): [] for n in SIZES for s in ("kql", "luqum", "floor")}
    names = ["kql", "luqum", "floor"]
    # CPU time of this process: on a shared, loaded machine wall time also counts the time spent
    # waiting for a core, which says nothing about either side. (Start-up, below, is wall time.)
    clock = time.process_time
    for r in range(rounds):  # interleaved and rotated, so machine noise hits every side alike
        for n in SIZES:
            fns, calls = sides[n], batch[n]
            for name in names[r % 3 :] + names[: r % 3]:
                fn = fns[name]
                # One untimed call first: the sample before may have been another size's (the 400
                # clauses' ~15 ms evict what a 3-clause compile keeps warm), which would add the same
                # re-warming cost to every side's first call and so pull the small sizes' ratios to 1.
                fn()
                start = clock()
                for _ in range(calls):
                    fn()
                samples[n, name].append((clock() - start) / calls)

    print(f"1. kql.compile vs luqum's parse and a hand-written floor: medians of {rounds} interleaved rounds")
    print(
        f"   {'clauses':>7} {'kql chars':>9} {'lucene':>6}  {'kql µs':>8} {'luqum µs':>8} {'floor µs':>8}"
        f"  {'kql/luqum':>9} {'target':>9}  {'kql/floor':>9} {'target':>9}"
    )
    for n in SIZES:
        kql_s, luqum_s, floor_s = (statistics.median(samples[n, s]) for s in names)
        to_luqum, to_floor = kql_s / luqum_s, kql_s / floor_s
        target = TARGETS.get(n)
        print(
            f"   {n:>7} {lengths[n][0]:>9} {lengths[n][1]:>6}  {kql_s * 1e6:>8.0f} {luqum_s * 1e6:>8.0f}"
            f" {floor_s * 1e6:>8.0f}  {to_luqum:>9.2f} {_target(to_luqum, target and target[0]):>9}"
            f"  {to_floor:>9.2f} {_target(to_floor, target and target[1]):>9}"
        )


def _once(fn: Callable[[], object]) -> float:
    fn()
    start = time.process_time()
    fn()
    return max(time.process_time() - start, 1e-6)


def _target(ratio: float, target: float | None) -> str:
    if not target:
        return "-"
    return f"≤{target:.0f} {'met' if ratio <= target else 'MISSED'}"


def startup(runs: int) -> None:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with bytecode caches, as users run it
    kql_cmd = [sys.executable, "-m", "kql", "compile", "site = 123 and net_revenue > 100 and opened(bc_9)"]
    commands = {
        "kql compile '<3 clauses>'": kql_cmd,
        "python -c 'import httpx'": [sys.executable, "-c", "import httpx"],
        # For scale: the interpreter alone, and the two runtime dependencies the
        # compile path cannot do without.
        "python -c 'pass'": [sys.executable, "-c", "pass"],
        "python -c 'import attrs, lark'": [sys.executable, "-c", "import attrs, lark"],
    }
    for cmd in commands.values():  # fill bytecode and Lark caches first
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, so machine noise hits all alike
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(samples) * 1e3 for name, samples in times.items()}
    print(f"2. start-up, median of {runs} runs")
    for name, value in ms.items():
        print(f"   {name:<32} {value:7.1f} ms")
    kql_ms, httpx_ms = ms["kql compile '<3 clauses>'"], ms["python -c 'import httpx'"]
    print(f"   ratio kql/httpx-import           {kql_ms / httpx_ms:7.2f}")


def main() -> None:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 200
    os.chdir(Path(__file__).resolve().parent.parent)
    pipeline(runs)
    if "--pipeline-only" not in sys.argv:
        startup(max(10, runs // 10))


if __name__ == "__main__":
    main()

"""Benchmark the planner and plan execution. Ratios are against baselines measured in the same run.

1. planning time (`kql.plan`) of 5- and 40-clause expressions mixing `or`, `not` without
   an API complement (anti-joins), a repeated parameter (intersections) and local
   predicates, against `kql.compile` of a single-request query of the same size;
2. merge overhead per customer: a 4-way `or` (disjoint branches, merged by created_at,
   deduplicated by id) against one stream of the same number of customers, both from a
   sandbox in its own process; and the same merge in memory alone (no HTTP), against
   iterating one list.

Medians of --runs, baseline and subject interleaved (this is a shared, noisy machine).
Usage: python bench/planner.py [--runs N] [--customers N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kql
from kql.registry import registry

SERVE = """
import json, sys
from kql.sandbox import running
options = json.loads(sys.argv[1])
with running(**options) as sb:
    print(sb.base_url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
"""

# ---- 1. planning -------------------------------------------------------------------------

# One disjunct of four clauses: `opened` twice (the second an intersection), an anti-join
# (`not` without an API complement) and a local predicate; the ids vary so no two disjuncts
# simplify away. Each disjunct is one branch of three listings.
DISJUNCT = "(opened(bc_{c}) and opened(bc_{d}) and not passed_assessment(asmt_{b}) and sign_in_count > {a})"


def planner_query(clauses: int) -> str:
    """An expression with ``clauses`` atoms: `or` of 4-clause disjuncts, plus a remainder."""
    parts = [DISJUNCT.format(a=i + 1, b=i % 6 + 1, c=i % 11 + 1, d=i % 11 + 2) for i in range(clauses // 4)]
    rest = ['email ends_with "@gmail.com"', "not bounced(bc_3)", "created_at >= 2024-01-01"][: clauses % 4]
    if rest:
        parts.append("(" + " and ".join(rest) + ")")
    return " or ".join(parts)


def compile_query(clauses: int) -> str:
    """A single-request query of ``clauses`` atoms (as bench/compile.py builds them)."""
    reg = registry()
    picked = [f for f in reg if not f.negated and f.form != "text"][:clauses]
    return " and ".join(f.example(reg.id_prefixes) for f in picked)


def interleaved(fns: dict[str, Callable[[], object]], runs: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each function; rounds alternate between them."""
    for fn in fns.values():
        fn()  # warm up: parser tables, registry, caches
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in samples.items()}


def planning(runs: int) -> None:
    print(f"1. kql.plan vs kql.compile of a same-size single-request query (median of {runs} rounds)")
    print(f"   {'clauses':>7}  {'plan µs':>9}  {'compile µs':>10}  {'plan/compile':>12}  plan shape")
    for n in (5, 40):
        text, single = planner_query(n), compile_query(n)
        assert len(kql.parse(single).filter.items) == n  # type: ignore[union-attr]
        kql.compile(single)
        plan = kql.plan(text)
        atoms = text.count(" and ") + text.count(" or ") + 1
        assert atoms == n, (atoms, text)
        subjects: dict[str, Callable[[], object]] = {
            "plan": lambda t=text: kql.plan(t),  # type: ignore[misc]
            "compile": lambda s=single: kql.compile(s),  # type: ignore[misc]
        }
        ms = interleaved(subjects, runs, inner=max(1, 200 // n))
        shape = f"{len(plan.branches)} branches, {plan.requests} listings"
        print(f"   {n:>7}  {ms['plan'] * 1e6:>9.0f}  {ms['compile'] * 1e6:>10.0f}  "
              f"{ms['plan'] / ms['compile']:>12.2f}  {shape}")


# ---- 2. merging --------------------------------------------------------------------------

FOUR_WAY = "engagement = healthy or engagement = passive or engagement = unengaged or engagement = inactive"


@contextmanager
def sandbox(**options: Any) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, json.dumps(options)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def merging(runs: int, customers: int) -> None:
    from kql.execute.client import Client
    from kql.execute.merging import Window, merge

    with sandbox(customers=customers, seed=1) as base_url, Client(base_url, token="sandbox") as client:
        plan = kql.plan(FOUR_WAY)
        assert len(plan.branches) == 4 and plan.requests == 4
        merged = [r["id"] for r in client.customers(plan)]
        n = len(merged)
        assert len(set(merged)) == n
        single = f"limit {n}"
        assert kql.plan(single).single_request
        assert sum(1 for _ in client.customers(single)) == n

        def run_or() -> int:
            return sum(1 for _ in client.customers(plan))

        def run_single() -> int:
            return sum(1 for _ in client.customers(single))

        parts = [kql.compile(b.text) for b in plan.branches]

        def run_parts() -> int:  # the plan's own four listings, one after another, not merged
            return sum(1 for part in parts for _ in client.customers(part))

        assert run_parts() == n
        ms = interleaved({"or": run_or, "single": run_single, "parts": run_parts}, runs, inner=1)
        # The same merge in memory: the branches' records, fetched once.
        branches = [list(client.customers(part)) for part in parts]
        one = [r for b in branches for r in b]

    def merged_four() -> int:
        window = Window(limit=None, page=None)
        return sum(1 for _ in window.apply(merge([iter(b) for b in branches], plan.merge_order)))

    def window_one() -> int:  # the same machinery over one stream: dedupe only, no heap
        window = Window(limit=None, page=None)
        return sum(1 for _ in window.apply(merge([iter(one)], plan.merge_order)))

    def iterate_only() -> int:
        return sum(1 for _ in one)

    assert merged_four() == window_one() == n
    memory = interleaved({"merge": merged_four, "one": window_one, "iterate": iterate_only}, runs, inner=3)
    per = {name: seconds / n * 1e6 for name, seconds in ms.items()}
    print(f"2. merge overhead: {n:,} customers of a {customers:,}-customer sandbox, sorted by created_at "
          f"(median of {runs})")
    print(f"   4-way or (4 listings, merged):  {ms['or']:6.3f} s  {per['or']:6.2f} µs/customer")
    print(f"   one listing (limit {n}):       {ms['single']:6.3f} s  {per['single']:6.2f} µs/customer")
    print(f"   the same 4 listings read one after another, not merged: {ms['parts']:6.3f} s  "
          f"{per['parts']:6.2f} µs/customer")
    print(f"   ratio or/single: {ms['or'] / ms['single']:.2f}×  ({per['or'] - per['single']:+.2f} µs/customer); "
          f"or/unmerged listings: {ms['or'] / ms['parts']:.2f}×  ({per['or'] - per['parts']:+.2f} µs/customer)")
    us = {name: seconds / n * 1e6 for name, seconds in memory.items()}
    print(f"   in memory, no HTTP: 4-way heap merge + dedupe {us['merge']:.2f} µs/customer; one stream through "
          f"the same merge + dedupe {us['one']:.2f} µs/customer (ratio {us['merge'] / us['one']:.2f}×); "
          f"bare iteration {us['iterate']:.3f} µs/customer")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    planning(args.runs)
    merging(args.runs, args.customers)


if __name__ == "__main__":
    main()

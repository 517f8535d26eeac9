"""Benchmark exact counts: inclusion–exclusion terms against listing, on a sandbox.

For each query, ``Client.count`` by terms (kql/execute/counting.py: one ``page[size]=1``
request per term) against the listing count it replaces (``count_plan``: every page of
every listing, ids only), from a sandbox in its own process. The two alternate, round
after round; the sandbox drops its index (the filter sets it has built) before every
measurement, so neither method profits from the other's (or its own earlier) work. Requests are the
client's own tally; times are medians of --runs.

Usage: python bench/count.py [--customers N] [--runs N] [--latency-ms MS]
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
from kql.execute.client import Client
from kql.execute.counting import count_exact
from kql.execute.planrun import count_plan

# One line on stdin, "forget", makes the sandbox drop its index (kql.sandbox.index).
SERVE = """
import json, sys
from kql.sandbox import running
options = json.loads(sys.argv[1])
with running(**options) as sb:
    print(sb.base_url, flush=True)
    for line in sys.stdin:  # until the parent closes our stdin
        sb.store.invalidate()
        print("ok", flush=True)
"""

QUERIES = [
    "opened(bc_9) or clicked(bc_10)",
    "(opened(bc_9) or clicked(bc_10)) and not passed_assessment(asmt_1)",
    "not completed_assessment(asmt_1)",
]


@contextmanager
def sandbox(**options: Any) -> Iterator[tuple[str, Callable[[], None]]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, json.dumps(options)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    stdin, stdout = process.stdin, process.stdout

    def forget() -> None:
        stdin.write("forget\n")
        stdin.flush()
        assert stdout.readline().strip() == "ok"

    try:
        yield stdout.readline().strip(), forget
    finally:
        stdin.close()
        process.wait(timeout=60)


def measure(client: Client, fn: Callable[[], int], forget: Callable[[], None]) -> tuple[int, int, float]:
    """(count, requests, seconds) of one call, with the sandbox's index dropped first."""
    forget()
    before = client.stats["requests"]
    start = time.perf_counter()
    counted = fn()
    return counted, client.stats["requests"] - before, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added by the sandbox to every request")
    args = parser.parse_args()
    started = time.perf_counter()
    options = {"customers": args.customers, "seed": 1, "latency_ms": args.latency_ms}
    with sandbox(**options) as (base_url, forget), Client(base_url, token="sandbox") as client:
        print(f"sandbox of {args.customers:,} customers ready in {time.perf_counter() - started:.1f} s; "
              f"latency {args.latency_ms:g} ms; medians of {args.runs} interleaved rounds")
        print(f"{'query':<70} {'count':>8} {'terms':>14} {'listing':>16} {'time ratio':>10} {'req. ratio':>10}")
        for query in QUERIES:
            plan = kql.plan(query)
            methods: dict[str, Callable[[], int]] = {
                "terms": lambda plan=plan: count_exact(client, plan).count,
                "listing": lambda plan=plan: count_plan(client, plan),
            }
            samples: dict[str, list[float]] = {name: [] for name in methods}
            sent: dict[str, int] = {}
            counts: dict[str, int] = {}
            for _ in range(args.runs):
                for name, fn in methods.items():
                    counts[name], sent[name], seconds = measure(client, fn, forget)
                    samples[name].append(seconds)
            assert counts["terms"] == counts["listing"], (query, counts)
            assert count_exact(client, plan).method == "terms", query
            terms, listing = (statistics.median(samples[n]) for n in ("terms", "listing"))
            print(
                f"{query:<70} {counts['terms']:>8,} {sent['terms']:>4} in {terms * 1000:>6.1f} ms"
                f" {sent['listing']:>5} in {listing * 1000:>7.1f} ms {listing / terms:>9.1f}×"
                f" {sent['listing'] / max(1, sent['terms']):>9.1f}×"
            )


if __name__ == "__main__":
    main()

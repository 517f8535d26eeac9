"""Soak: faults survived and customers lost, per scenario, in one run.

Against the sandbox with faults on (503s, 429s from a rate limit, dropped connections,
all together) and against the fake API of the tests for what the sandbox never does
(short pages, pages overlapping their neighbours, customers shifting mid-run). Each
scenario lists every customer and is compared with what the server holds:

- ``faults``: faults the client met and survived (from ``client.stats``);
- ``reported``: customers the run said were missing (an ``IncompleteResult``);
- ``warned``: customers not delivered while the run warned that ``total_count`` moved
  (customers created or deleted mid-run: missing cannot be told from deleted);
- ``lost``: customers neither delivered nor reported nor warned about — **must be 0**
  (customers created during the run may or may not be delivered: only those there at the
  start are counted);
- ``×``: the time against the same server without faults.

Usage: python bench/soak.py [--customers N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kql.execute.client import Client
from kql.execute.errors import IncompleteResult
from kql.execute.retry import RetryPolicy
from kql.sandbox import running
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen, serving

POLICY = RetryPolicy(max_attempts=10, backoff_base=0.05, backoff_cap=0.5, retry_after_cap=2.0, deadline=120.0)


def _faults(stats: Any) -> int:
    return sum(n for k, n in stats.items() if k.startswith("fault:"))


def run(base_url: str, token: str, truth: int | set[str], query: str = "") -> dict[str, Any]:
    started = time.perf_counter()
    seen: set[str] = set()
    reported, duplicates, moved = 0, 0, False
    with Client(base_url, token=token, concurrency=8, retry=POLICY) as client:
        stream = client.customers(query)
        try:
            for record in stream:
                if record["id"] in seen:
                    duplicates += 1  # a duplicate that reached the reader: must never happen
                seen.add(record["id"])
        except IncompleteResult as error:
            reported = error.missing
        moved = any("total_count changed" in w for w in stream.warnings)
        faults = _faults(client.stats)
    seconds = time.perf_counter() - started
    absent = truth - len(seen) if isinstance(truth, int) else len(truth - seen)  # a set: those there at the start
    short = max(0, absent - reported)
    return {
        "warned": short if moved else 0,
        "yielded": len(seen),
        "dupes_out": duplicates,
        "reported": reported,
        "lost": 0 if moved else short,
        "faults": faults,
        "seconds": seconds,
    }


def sandbox_scenarios(customers: int, seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    common = {"customers": customers, "seed": seed, "latency_ms": 2}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("sandbox, no faults", {}),
        ("sandbox, 10% 503", {"error_rate": 0.10}),
        ("sandbox, 429 (rate limit 15/s)", {"rate_limit": 15}),
        ("sandbox, 3% dropped", {"drop_rate": 0.03}),
        ("sandbox, all of them", {"error_rate": 0.10, "rate_limit": 15, "drop_rate": 0.03}),
    ]
    for name, faults in cases:
        with running(**common, **faults) as sb:
            yield name, run(sb.base_url, sb.token or "sandbox", customers)


def _shifting(api: FakeAPI, seed: int) -> Callable[[Seen], Reply | None]:
    """Newest first (the default), with customers created while the run pages: records shift onto
    later pages, past the first page's total_pages, and pages answered late come from a newer state."""
    inserted = {"n": 0}
    rng = random.Random(seed)

    def hook(seen: Seen) -> Reply | None:
        if seen.path != "/v1/customers" or seen.page == 1:
            return None
        late = Reply(200, api.page_document(seen.params), delay=rng.random() * 0.02) if rng.random() < 0.3 else None
        if inserted["n"] < 300 and rng.random() < 0.5:
            k = rng.randint(1, 12)
            inserted["n"] += k
            api.insert(k)
        return late

    return hook


def fake_scenarios(customers: int) -> Iterator[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, str, int | None, str]] = [
        ("fake, no faults", "none", None, ""),
        ("fake, short page (heals on re-fetch)", "short", 1, ""),
        ("fake, short page (stays short)", "short", None, ""),
        ("fake, page 2 overlaps page 1 by 5", "overlap", None, ""),
        ("fake, customers created mid-run, newest first", "shift", None, ""),
    ]
    for name, scenario, times, query in cases:
        with serving(customers) as api:
            if scenario == "shift":
                api.hook = _shifting(api, customers)
            else:
                api.scenario(scenario, times)
            result = run(api.base_url, TOKEN, {str(i) for i in range(1, customers + 1)}, query)
            yield name, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--fake-customers", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    columns = ("yielded", 8), ("faults", 7), ("reported", 9), ("warned", 7), ("lost", 5), ("dupes", 6), ("s", 7)
    print(f"{'scenario':44} " + " ".join(f"{name:>{width}}" for name, width in columns) + f" {'×':>6}")
    failed = False
    for group in (sandbox_scenarios(args.customers, args.seed), fake_scenarios(args.fake_customers)):
        baseline: float | None = None
        for name, r in group:
            baseline = baseline or r["seconds"]
            ratio = r["seconds"] / baseline
            print(
                f"{name:44} {r['yielded']:>8} {r['faults']:>7} {r['reported']:>9} {r['warned']:>7} {r['lost']:>5} "
                f"{r['dupes_out']:>6} {r['seconds']:>7.2f} {ratio:>6.2f}",
                flush=True,
            )
            failed |= r["lost"] != 0 or r["dupes_out"] != 0
    print("every customer delivered once or reported missing" if not failed else "CUSTOMERS LOST SILENTLY")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

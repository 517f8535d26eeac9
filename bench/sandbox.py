"""Benchmark the sandbox. Prints medians, and ratios against a baseline measured in the same run
(the two sides interleaved, run by run, so a busy machine slows both alike).

1. start-up with 100,000 customers: a warm start (the cached data copied into memory) against a
   cold one (generated, then written to the cache); target: warm ≤ 2 s;
2. a filtered page (4 filters, page[size]=100) out of 100,000 customers over HTTP with a
   keep-alive client, as a new query (its count computed), against the unfiltered page of the
   same size, and GET /v1/version as the HTTP floor; target: ≤ 20 ms;
3. ten light clients with and without one client looping a heavy search: requests per second and
   p99 latency of the light ones, loaded against unloaded.

Usage: python bench/sandbox.py [--runs N] [--customers N] [--starts N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

import httpx

from kql.sandbox import Sandbox
from kql.sandbox.store import Store

QUERIES = {
    "tag + revenue + opened + subscribed": {
        "filter[has_tag_id]": "1", "filter[net_revenue_greater_than]": "100",
        "filter[opened_email_broadcast_id]": "9", "filter[subscribed]": "true"},
    "rare tag + offer + subscribed + active": {
        "filter[has_tag_id]": "37", "filter[has_offer_id]": "2", "filter[subscribed]": "true",
        "filter[active_in_last]": "90"},
    "offer + created + subscribed + no tag": {
        "filter[has_offer_id]": "1", "filter[created_in_last]": "365", "filter[subscribed]": "true",
        "filter[has_no_tag_id]": "2"},
    "product + negations: no tag, not opened, < 50": {
        "filter[has_product_id]": "1", "filter[has_no_tag_id]": "1", "filter[not_opened_email_in_last]": "30",
        "filter[net_revenue_less_than]": "50"},
    "contains + search + subscribed, sort name": {
        "filter[email_contains]": "gmail", "filter[search]": "smith", "filter[address_country_contains]": "US",
        "filter[subscribed]": "true", "sort": "name"},
}


def interleaved(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds of each function, calling them in turn once per run (after one warm-up round)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def startup(customers: int, starts: int) -> None:
    cold_s: list[float] = []
    warm_s: list[float] = []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            Store(customers=customers, seed=1, sites=1, cache_dir=cache).close()
            cold_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            store = Store(customers=customers, seed=1, sites=1, cache_dir=cache)
            warm_s.append(time.perf_counter() - start)
            assert store.loaded_from_cache
            store.close()
    cold, warm = statistics.median(cold_s), statistics.median(warm_s)
    print(f"1. start-up with {customers:,} customers (median of {starts} cold/warm pairs)")
    print(f"   cold (generate, write the cache): {cold:6.2f} s")
    print(f"   warm (load the cache):            {warm:6.2f} s   target ≤ 2 s: {'met' if warm <= 2 else 'NOT met'}")
    print(f"   warm ÷ cold: {warm / cold:.3f}")


def latency(sandbox: Sandbox, customers: int, runs: int) -> None:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer sandbox"}) as client:
        def page(params: dict[str, str], *, first: bool = True) -> Callable[[], object]:
            def get() -> None:
                if first:  # the count behind meta.total_count is computed, not remembered
                    sandbox.store.forget_counts()
                client.get("/v1/customers", params={**params, "page[size]": "100"}).raise_for_status()
            return get

        fns: dict[str, Callable[[], object]] = {"version": lambda: client.get("/v1/version"), "plain": page({})}
        for name, params in QUERIES.items():
            fns[name] = page(params)
            fns[name + " again"] = page(params, first=False)
        medians = interleaved(fns, runs)
        floor, plain = medians["version"], medians["plain"]
        print(f"2. a page of 100 out of {customers:,} customers over HTTP (median of {runs} interleaved runs)")
        print(f"   GET /v1/version (HTTP floor): {floor * 1e3:6.2f} ms")
        print(f"   unfiltered page:             {plain * 1e3:6.2f} ms")
        print("   first: a new query (its count computed); again: the same query (count remembered, as when")
        print("   a client walks its pages)")
        header = ("4 filters", "first ms", "÷ unfiltered", "target", "again ms", "matches")
        print("   {:<46} {:>8} {:>12} {:>7} {:>8} {:>8}".format(*header))
        for name, params in QUERIES.items():
            first, again = medians[name], medians[name + " again"]
            total = client.get("/v1/customers", params={**params, "page[size]": "1"}).json()["meta"]["total_count"]
            met = "met" if first <= 0.020 else "NOT met"
            print(f"   {name:<46} {first * 1e3:8.2f} {first / plain:12.2f} {met:>7} {again * 1e3:8.2f} {total:8,}")


def contention(sandbox: Sandbox, requests: int) -> None:
    """Ten light clients (a page of 25, a rare tag), with no heavy client and with one looping a heavy search."""
    auth = {"Authorization": "Bearer sandbox"}

    def light(latencies: list[float]) -> None:
        with httpx.Client(base_url=sandbox.base_url, headers=auth, timeout=60) as client:
            for _ in range(requests):
                start = time.perf_counter()
                client.get("/v1/customers", params={"filter[has_tag_id]": "37"}).raise_for_status()
                latencies.append(time.perf_counter() - start)

    def round_(heavy: bool) -> tuple[float, float, int]:
        stop = threading.Event()
        heavy_done = [0]

        def loop() -> None:
            with httpx.Client(base_url=sandbox.base_url, headers=auth, timeout=120) as client:
                while not stop.is_set():
                    client.get("/v1/customers", params={"filter[search]": "zoë", "sort": "name"})
                    heavy_done[0] += 1

        heavy_thread = threading.Thread(target=loop) if heavy else None
        if heavy_thread:
            heavy_thread.start()
        latencies: list[float] = []
        start = time.perf_counter()
        threads = [threading.Thread(target=light, args=(latencies,)) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        stop.set()
        if heavy_thread:
            heavy_thread.join()
        p99 = statistics.quantiles(latencies, n=100)[98]
        return len(latencies) / elapsed, p99, heavy_done[0]

    results = {"alone": [], "with heavy": []}  # type: dict[str, list[tuple[float, float, int]]]
    for _ in range(3):
        results["alone"].append(round_(False))
        results["with heavy"].append(round_(True))
    print(f"3. ten light clients × {requests} requests, alone and beside one client looping a heavy search "
          "(median of 3 interleaved rounds)")
    rates = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    p99s = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    heavy_n = statistics.median(r[2] for r in results["with heavy"])
    for k in results:
        print(f"   {k:<11} {rates[k]:7.1f} requests/s   p99 {p99s[k] * 1e3:7.1f} ms")
    print(f"   loaded ÷ alone: throughput {rates['with heavy'] / rates['alone']:.2f}×, "
          f"p99 {p99s['with heavy'] / p99s['alone']:.2f}× (the heavy client completed {heavy_n:.0f} searches)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--starts", type=int, default=3, help="cold/warm start pairs")
    parser.add_argument("--requests", type=int, default=50, help="requests per light client in part 3")
    args = parser.parse_args()
    startup(args.customers, args.starts)
    with tempfile.TemporaryDirectory() as cache:
        sandbox = Sandbox(customers=args.customers, seed=1, cache=cache).start()
        try:
            latency(sandbox, args.customers, args.runs)
            contention(sandbox, args.requests)
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main()

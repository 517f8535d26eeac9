"""Benchmark the sandbox. Prints medians, and ratios against a baseline measured in the same run.

1. generation time for 100,000 customers (baseline: 10,000, as cost per customer);
2. latency of a filtered page (3 filters, page[size]=100) out of 100,000 customers, over
   HTTP with a keep-alive client (baselines: the unfiltered page of 100, and GET /v1/version
   as the HTTP floor), and the same query in process (SQL only, no HTTP or JSON).

Usage: python bench/sandbox.py [--runs N] [--customers N]
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable

import httpx
from timing import median_seconds

from kql.registry import registry
from kql.sandbox import Sandbox
from kql.sandbox.data import generate
from kql.sandbox.params import ListQuery, parse_list

QUERIES = {
    "tag + revenue + opened": {"filter[has_tag_id]": "1", "filter[net_revenue_greater_than]": "100",
                               "filter[opened_email_broadcast_id]": "9"},
    "rare tag + subscribed + active": {"filter[has_tag_id]": "37", "filter[subscribed]": "true",
                                       "filter[active_in_last]": "90"},
    "negations: no tag, not opened, < 50": {"filter[has_no_tag_id]": "1", "filter[not_opened_email_in_last]": "30",
                                            "filter[net_revenue_less_than]": "50"},
    "contains + search + sort name": {"filter[email_contains]": "gmail", "filter[search]": "smith",
                                      "filter[address_country_contains]": "US", "sort": "name"},
}


def generation(customers: int, runs: int) -> None:
    def build(n: int) -> Callable[[], object]:
        return lambda: generate(sqlite3.connect(":memory:"), customers=n, seed=1, sites=1, now=1_760_000_000)

    small = customers // 10
    big_s = median_seconds(build(customers), max(1, runs // 10))
    small_s = median_seconds(build(small), max(3, runs // 5))
    print(f"1. generation (median of {max(1, runs // 10)} / {max(3, runs // 5)} runs)")
    print(f"   {customers:>9,} customers: {big_s:6.2f} s  ({big_s / customers * 1e6:5.1f} µs per customer)")
    print(f"   {small:>9,} customers: {small_s:6.2f} s  ({small_s / small * 1e6:5.1f} µs per customer)")
    print(f"   cost per customer, {customers:,} vs {small:,}: {big_s / customers / (small_s / small):.2f}×")


def latency(customers: int, runs: int) -> None:
    sandbox = Sandbox(customers=customers, seed=1).start()
    reg = registry()
    try:
        with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer sandbox"}) as client:
            def page(params: dict[str, str], *, first: bool = True) -> Callable[[], object]:
                def get() -> None:
                    if first:  # the count behind meta.total_count is computed, not remembered
                        sandbox.store.forget_counts()
                    response = client.get("/v1/customers", params={**params, "page[size]": "100"})
                    response.raise_for_status()
                return get

            floor = median_seconds(lambda: client.get("/v1/version"), runs)
            plain = median_seconds(page({}), runs)
            print(f"2. a page of 100 out of {customers:,} customers (median of {runs} runs)")
            print(f"   GET /v1/version (HTTP floor): {floor * 1e3:6.2f} ms")
            print(f"   unfiltered page:             {plain * 1e3:6.2f} ms")
            print("   first: a new query (its count computed); again: the same query (count remembered, as when")
            print("   a client walks its pages); SQL: the first, in process without HTTP and JSON")
            header = ("3 filters", "first ms", "÷ unfiltered", "SQL ms", "again ms", "matches")
            print("   {:<38} {:>8} {:>12} {:>7} {:>8} {:>8}".format(*header))
            for name, params in QUERIES.items():
                http_s = median_seconds(page(params), runs)
                next_s = median_seconds(page(params, first=False), runs)
                query = parse_list(list({**params, "page[size]": "100"}.items()), reg, default_size=25,
                                   max_size=100)

                def sql(query: ListQuery = query) -> object:
                    sandbox.store.forget_counts()
                    return sandbox.store.list_customers(query)

                sql_s = median_seconds(sql, runs)
                total = sandbox.store.list_customers(query)[1]
                print(f"   {name:<38} {http_s * 1e3:8.2f} {http_s / plain:12.2f} {sql_s * 1e3:7.2f} "
                      f"{next_s * 1e3:8.2f} {total:8,}")
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    generation(args.customers, args.runs)
    latency(args.customers, args.runs)


if __name__ == "__main__":
    main()

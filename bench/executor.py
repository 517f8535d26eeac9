"""Benchmark the executor against the sandbox. Ratios are measured in the same run.

1. export 10,000 customers (100 pages of 100) with 50 ms latency per request:
   kql.Client at concurrency 8 vs a plain sequential httpx loop following links.next,
   and vs the bound ceil(pages / concurrency) × latency;
2. peak memory of a process streaming 100,000 customers to NDJSON vs 10,000
   (each in a fresh subprocess: peak RSS (VmHWM), and tracemalloc's peak in a second run);
3. soak: 100,000 customers with 10% 503s, ~5% 429s (a 33 req/s rate limit) and 1% dropped
   connections: every customer exactly once.

The sandbox runs in its own process (as the real API would), so the client is
measured alone. Usage: python bench/executor.py [--runs N] [--skip-soak]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from timing import median_seconds

SERVE = """
import json, sys
from kql.sandbox import running
options = json.loads(sys.argv[1])
with running(**options) as sb:
    print(sb.base_url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    print(json.dumps(sb.stats.as_dict()), flush=True)
"""

CHILD = """
import json, os, resource, sys, time
trace = sys.argv[3] == "trace"
if trace:
    import tracemalloc
    tracemalloc.start()
from kql.execute.client import Client
from kql.cli.render import write
started = time.perf_counter()
with Client(sys.argv[1], token="sandbox", concurrency=8) as client, open(os.devnull, "w") as out:
    n = write(client.customers(f"limit {sys.argv[2]}"), out, "ndjson")
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would include the parent's copy.
with open("/proc/self/status") as status:
    hwm = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), None)
result = {"records": n, "seconds": time.perf_counter() - started,
          "maxrss_kb": hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
if trace:
    result["traced_peak"] = tracemalloc.get_traced_memory()[1]
print(json.dumps(result))
"""


class Sandbox:
    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process, self.base_url = process, base_url
        self.stats: dict[str, int] = {}


@contextmanager
def sandbox(**options: Any) -> Iterator[Sandbox]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, json.dumps(options)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    box = Sandbox(process, process.stdout.readline().strip())
    try:
        yield box
    finally:
        process.stdin.close()
        last = process.stdout.readline().strip()
        box.stats = json.loads(last) if last else {}
        process.wait(timeout=30)


def naive_export(base_url: str) -> int:
    """What people write by hand: one page after another, following links.next."""
    n = 0
    with httpx.Client(headers={"Authorization": "Bearer sandbox"}) as http:
        url: str | None = f"{base_url}/v1/customers?page[size]=100&sort=created_at"
        while url:
            doc = http.get(url).raise_for_status().json()
            n += len(doc["data"])
            url = doc["links"].get("next")
    return n


@contextmanager
def replay(pages: dict[str, bytes], latency: float) -> Iterator[str]:
    """The sandbox's own page bytes served again with the same latency and no server-side work:
    what is left above the bound there is the client's own cost."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = dict(parse_qsl(urlsplit(self.path).query))
            body = pages[query.get("page[number]", "1")]
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.api+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def export(runs: int) -> None:
    from kql.execute.client import Client

    latency, customers, concurrency = 0.050, 10_000, 8
    pages = customers // 100

    def run(client: Client) -> int:
        return sum(1 for _ in client.customers(""))

    with sandbox(customers=customers, latency_ms=latency * 1000) as sb:
        assert naive_export(sb.base_url) == customers
        with Client(sb.base_url, token="sandbox", concurrency=concurrency) as client:
            assert run(client) == customers
            kql_s = median_seconds(lambda: run(client), runs)
        naive_s = median_seconds(lambda: naive_export(sb.base_url), max(1, runs // 2))
        with httpx.Client(headers={"Authorization": "Bearer sandbox"}) as http:
            recorded = {
                str(n): http.get(f"{sb.base_url}/v1/customers",
                                 params={"sort": "created_at", "page[number]": n, "page[size]": 100}).content
                for n in range(1, pages + 1)
            }
    with replay(recorded, latency) as base, Client(base, token="sandbox", concurrency=concurrency) as client:
        assert run(client) == customers
        replay_s = median_seconds(lambda: run(client), runs)
    bound = math.ceil(pages / concurrency) * latency
    floor = (1 + math.ceil((pages - 1) / concurrency)) * latency
    print(f"1. export {customers:,} customers ({pages} pages), {latency * 1000:.0f} ms latency per request "
          f"(median of {runs})")
    print(f"   sequential httpx loop following links.next: {naive_s:6.3f} s")
    print(f"   kql.Client, concurrency {concurrency}:             {kql_s:6.3f} s")
    print(f"   speed-up: {naive_s / kql_s:.1f}×  (target ≥ 5×)")
    print(f"   vs the bound ceil({pages}/{concurrency}) × {latency * 1000:.0f} ms = {bound:.3f} s: "
          f"{kql_s / bound:.2f}×  (target ≤ 1.3×)")
    print(f"   the same pages replayed with no server work: {replay_s:6.3f} s = {replay_s / bound:.2f}× the bound "
          f"(the first page goes alone, so the floor is {floor:.3f} s = {floor / bound:.2f}×); the rest above it "
          "with the sandbox is the sandbox's CPU per page, serialised in its process")


def child(base_url: str, count: int, mode: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, base_url, str(count), mode],
                          capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def memory() -> None:
    with sandbox(customers=100_000) as sb:
        small, big = child(sb.base_url, 10_000, "rss"), child(sb.base_url, 100_000, "rss")
        small_t, big_t = child(sb.base_url, 10_000, "trace"), child(sb.base_url, 100_000, "trace")
    assert small["records"] == 10_000 and big["records"] == 100_000
    print("2. peak memory streaming to NDJSON (fresh process each)")
    print(f"   peak RSS:         10,000 → {small['maxrss_kb'] / 1024:6.1f} MiB   100,000 → "
          f"{big['maxrss_kb'] / 1024:6.1f} MiB   ratio {big['maxrss_kb'] / small['maxrss_kb']:.2f}×  (target < 1.5×)")
    print(f"   tracemalloc peak: 10,000 → {small_t['traced_peak'] / 2**20:6.1f} MiB   100,000 → "
          f"{big_t['traced_peak'] / 2**20:6.1f} MiB   ratio {big_t['traced_peak'] / small_t['traced_peak']:.2f}×")
    print(f"   (100,000 customers streamed in {big['seconds']:.1f} s without latency)")


def soak() -> None:
    from kql.execute.client import Client

    customers = 100_000
    with sandbox(customers=customers, error_rate=0.10, drop_rate=0.01, rate_limit=33, latency_ms=5) as sb, \
            Client(sb.base_url, token="sandbox", concurrency=8) as client:
        started = time.perf_counter()
        ids = [record["id"] for record in client.customers("")]
        seconds = time.perf_counter() - started
        stats = dict(client.stats)
    unique = set(ids)
    lost = len({str(i) for i in range(1, customers + 1)} - unique)
    served = sb.stats
    total = served.get("requests", 0) or 1
    print(f"3. soak: {customers:,} customers, 10% 503s, rate limit (429s), 1% dropped connections")
    print(f"   sandbox served {total} requests: {served.get('unavailable', 0)} × 503 "
          f"({served.get('unavailable', 0) / total:.1%}), {served.get('rate_limited', 0)} × 429 "
          f"({served.get('rate_limited', 0) / total:.1%}), {served.get('dropped', 0)} dropped "
          f"({served.get('dropped', 0) / total:.1%})")
    faults = {k.removeprefix("fault:"): v for k, v in sorted(stats.items()) if k.startswith("fault:")}
    print(f"   faults survived by the client: {sum(faults.values())} {faults}; retries {stats.get('retries', 0)}")
    print(f"   records: {len(ids):,} yielded, {len(unique):,} unique, {len(ids) - len(unique)} duplicates, "
          f"{lost} lost  ({seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-soak", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}")
    export(args.runs)
    memory()
    if not args.skip_soak:
        soak()


if __name__ == "__main__":
    main()

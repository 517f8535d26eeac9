"""The client's own cost: kql against a minimal httpx client on replayed pages. Same run, interleaved.

The server (bench/replay.py) runs in its own process and serves pre-rendered pages of real
sandbox customers (15 fields each: id and 14 attributes), page size 100, so nothing measured
here is server work.

a. CPU time of this process per customer, exporting 100,000 customers (1,000 pages), no latency:
   - records: ``kql.Client(...).customers("")`` iterated, vs the minimal client yielding the
     same flat dicts ``{"id": …, **attributes}``;
   - NDJSON: the same records written as NDJSON to /dev/null (kql: ``kql.cli.render.write``;
     minimal: ``json.dumps`` per record with the same options);
   - ``kql run`` as a subprocess writing NDJSON to /dev/null, vs the minimal client as a script:
     user + system CPU of the child per customer, less each side's start-up (the same command
     against a one-page server), with bytecode caching on as on a user's machine.
   The minimal client is ~15 lines: one ``httpx.Client``, page 1 for ``meta.total_pages``, then
   pages 2.. on a thread pool of the same concurrency as kql's (8), in a window of the same
   width (32 pages ahead), in page order; ``response.json()`` and one dict per record. It does
   none of kql's checks (retries, body cap, dedupe, short pages, page order, total_count).
   A sequential minimal client (one page after another) is shown too: less CPU still, as it
   pays no thread hand-offs, but not the same work shape as a concurrent client.
b. Wall time of 10,000 customers (100 pages) at 50 ms latency, concurrency 8, against the bound
   ceil(pages / concurrency) × latency, and against the floor (1 + ceil((pages - 1) / concurrency))
   × latency: the first page must come back before the client knows how many pages there are.
   kql.Client, kql.AsyncClient (one event loop and client for every run, as the synchronous
   client is one for every run) and the minimal client, interleaved; and, in the same rounds, the
   round trip of one request at a time (a page, one httpx GET after another): (1 + ceil((pages - 1)
   / concurrency)) round trips is the floor this machine and server give now, whatever the client.

Usage: python bench/client.py [--runs N] [--customers N] [--skip-cli] [--only a|b]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import httpx
from replay import PAGE_SIZE, record_template, replaying

CONCURRENCY = 8
WINDOW = 4 * CONCURRENCY  # kql's default lookahead


# ---- the minimal client ----------------------------------------------------------------


def minimal(base: str, concurrency: int = CONCURRENCY) -> Iterator[dict[str, Any]]:
    """What a careful hand-written exporter does: page 1, then the rest concurrently, in order."""
    url = f"{base}/v1/customers"
    with httpx.Client(headers={"Authorization": "Bearer replay"}) as http:

        def get(n: int) -> Any:
            params = {"sort": "created_at", "page[number]": n, "page[size]": PAGE_SIZE}
            return http.get(url, params=params).raise_for_status().json()

        first = get(1)
        for item in first["data"]:
            yield {"id": item["id"], **item["attributes"]}
        numbers = iter(range(2, first["meta"]["total_pages"] + 1))
        if concurrency == 1:
            docs: Iterator[Any] = (get(n) for n in numbers)
        else:
            docs = _windowed(get, numbers, concurrency)
        for doc in docs:
            for item in doc["data"]:
                yield {"id": item["id"], **item["attributes"]}


def _windowed(get: Callable[[int], Any], numbers: Iterator[int], concurrency: int) -> Iterator[Any]:
    with ThreadPoolExecutor(concurrency) as pool:
        window: deque[Future[Any]] = deque(pool.submit(get, n) for n in islice(numbers, WINDOW))
        while window:
            doc = window.popleft().result()
            following = next(numbers, None)
            if following is not None:
                window.append(pool.submit(get, following))
            yield doc


def minimal_ndjson(records: Iterator[dict[str, Any]], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        n += 1
    return n


MINIMAL_SCRIPT = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from client import minimal, minimal_ndjson
with open(os.devnull, "w") as out:
    minimal_ndjson(minimal(sys.argv[1]), out)
"""


# ---- measuring ---------------------------------------------------------------------------


def cpu(fn: Callable[[], int], expected: int) -> float:
    """CPU seconds of this process (every thread) for one call of ``fn``."""
    start = time.process_time()
    n = fn()
    spent = time.process_time() - start
    assert n == expected, (n, expected)
    return spent


def child_cpu(argv: list[str]) -> float:
    """User + system CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "KAJABI_TOKEN": "replay"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up as users see it: .pyc files cached
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=env, timeout=600, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:4])}… failed ({done.returncode}): {done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved(variants: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Each variant once per round (the order rotating), after one warm-up round."""
    names = list(variants)
    for name in names:
        variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            samples[name].append(variants[name]())
    return samples


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the per-round ratios: each pair ran back to back, under the same load."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def cpu_per_customer(template: Path, customers: int, runs: int, cli: bool) -> None:
    from kql.cli.render import write
    from kql.execute.client import Client

    with ExitStack() as stack:
        base = stack.enter_context(replaying(template, customers))
        client = stack.enter_context(Client(base, token="replay", concurrency=CONCURRENCY))
        devnull = stack.enter_context(open(os.devnull, "w"))
        variants: dict[str, Callable[[], float]] = {
            "kql records": lambda: cpu(lambda: sum(1 for _ in client.customers("")), customers),
            "minimal records": lambda: cpu(lambda: sum(1 for _ in minimal(base)), customers),
            "minimal records, sequential": lambda: cpu(lambda: sum(1 for _ in minimal(base, 1)), customers),
            "kql NDJSON": lambda: cpu(lambda: write(client.customers(""), devnull, "ndjson"), customers),
            "minimal NDJSON": lambda: cpu(lambda: minimal_ndjson(minimal(base), devnull), customers),
        }
        if cli:
            one = stack.enter_context(replaying(template, PAGE_SIZE))
            for name, server in (("kql run (process)", base), ("kql run, 1 page", one)):
                argv = [sys.executable, "-m", "kql", "run", "", "--base-url", server, "--format", "ndjson",
                        "--output", os.devnull, "--no-progress"]
                variants[name] = lambda argv=argv: child_cpu(argv)
            for name, server in (("minimal script (process)", base), ("minimal script, 1 page", one)):
                argv = [sys.executable, "-c", MINIMAL_SCRIPT, server]
                variants[name] = lambda argv=argv: child_cpu(argv)
        samples = interleaved(variants, runs)
    median = {name: statistics.median(s) for name, s in samples.items()}
    print(f"a. client CPU per customer, {customers:,} customers ({customers // PAGE_SIZE} pages of {PAGE_SIZE}), "
          f"replayed, no latency (median of {runs}, µs per customer)")
    if cli:  # the start-up (a one-page run) taken out of both sides, round by round
        for name in ("kql run (process)", "minimal script (process)"):
            short = name.replace(" (process)", ", 1 page")
            startup = median[short]
            samples[name] = [(a - b) * customers / (customers - PAGE_SIZE)
                             for a, b in zip(samples[name], samples[short], strict=True)]
            median[name] = statistics.median(samples[name])
            print(f"   {name.split(' (')[0]}: start-up and one page {startup:.3f} s CPU, taken out below")
    pairs = [("kql records", "minimal records"), ("kql records", "minimal records, sequential"),
             ("kql NDJSON", "minimal NDJSON")]
    if cli:
        pairs.append(("kql run (process)", "minimal script (process)"))
    for ours, theirs in pairs:
        a, b = median[ours] / customers * 1e6, median[theirs] / customers * 1e6
        print(f"   {ours:20} {a:6.2f}   {theirs:28} {b:6.2f}   ratio {a / b:.2f}×  "
              f"(per round: {paired(samples[ours], samples[theirs]):.2f}×)")
    print("   (target ≤ 1.2× against the minimal client at the same concurrency)")


def bound(template: Path, runs: int) -> None:
    from kql.execute.async_client import AsyncClient
    from kql.execute.client import Client

    customers, latency_ms = 10_000, 50.0
    pages = customers // PAGE_SIZE
    latency = latency_ms / 1000

    cpu_used: dict[str, list[float]] = {"kql": [], "kql async": [], "minimal": []}

    def wall(name: str, fn: Callable[[], int]) -> float:
        start, start_cpu = time.perf_counter(), time.process_time()
        assert fn() == customers
        cpu_used[name].append(time.process_time() - start_cpu)
        return time.perf_counter() - start

    async def stream(client: AsyncClient) -> int:
        return sum([1 async for _ in client.customers("")])

    def round_trip(base: str) -> float:
        """The median of a few requests for a page, one at a time: latency plus what the server and
        the machine add to each request when nothing else of the client runs."""
        url = f"{base}/v1/customers?sort=created_at&page[number]=2&page[size]={PAGE_SIZE}"
        took = []
        with httpx.Client(headers={"Authorization": "Bearer replay"}) as http:
            for _ in range(9):
                start = time.perf_counter()
                http.get(url).raise_for_status()
                took.append(time.perf_counter() - start)
        return statistics.median(took[1:])  # the first one connects

    with replaying(template, customers, latency_ms) as base, \
            Client(base, token="replay", concurrency=CONCURRENCY) as client, asyncio.Runner() as loop:
        aclient = AsyncClient(base, token="replay", concurrency=CONCURRENCY)
        try:
            samples = interleaved({
                "kql": lambda: wall("kql", lambda: sum(1 for _ in client.customers(""))),
                "kql async": lambda: wall("kql async", lambda: loop.run(stream(aclient))),
                "minimal": lambda: wall("minimal", lambda: sum(1 for _ in minimal(base))),
                "round trip": lambda: round_trip(base),
            }, runs)
        finally:
            loop.run(aclient.aclose())
    median = {name: statistics.median(s) for name, s in samples.items()}
    minimal_s = median["minimal"]
    ceiling = math.ceil(pages / CONCURRENCY) * latency
    floor = (1 + math.ceil((pages - 1) / CONCURRENCY)) * latency
    print(f"b. wall time, {customers:,} customers ({pages} pages), {latency_ms:.0f} ms latency, "
          f"concurrency {CONCURRENCY} (median of {runs})")
    print(f"   bound ceil({pages}/{CONCURRENCY}) × {latency_ms:.0f} ms = {ceiling:.3f} s (target ≤ 1.3×); "
          f"floor (1 + ceil({pages - 1}/{CONCURRENCY})) × {latency_ms:.0f} ms = {floor:.3f} s (page 1 alone first)")
    trip = median["round trip"]
    measured_floor = floor / latency * trip
    print(f"   one request at a time: {trip * 1000:.1f} ms a round trip, so the floor with this server on this "
          f"machine now is {floor / latency:.0f} × {trip * 1000:.1f} ms = {measured_floor:.3f} s "
          f"= {measured_floor / ceiling:.2f}× the bound")
    # What the wall time is made of: the floor, plus whatever of the client's CPU (GIL-bound: one
    # core at most) does not overlap the waits. On a busy machine that CPU also waits for a core.
    for name, label in (("kql", "kql.Client"), ("kql async", "kql.AsyncClient"), ("minimal", "minimal client")):
        s, used = median[name], statistics.median(cpu_used[name])
        versus = "" if name == "minimal" else \
            f"; {s / minimal_s:.2f}× the minimal client (per round {paired(samples[name], samples['minimal']):.2f}×)"
        fastest = min(samples[name]) / ceiling
        print(f"   {label:16} {s:.3f} s = {s / ceiling:.2f}× the bound (fastest run {fastest:.2f}×), "
              f"{s / floor:.2f}× the floor, {s / measured_floor:.2f}× the measured floor; "
              f"CPU {used / pages * 1000:.2f} ms a page{versus}")
    print(f"   load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--skip-cli", action="store_true", help="leave out the kql run subprocess pair")
    parser.add_argument("--only", choices=["a", "b"], help="run one part")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "pages.json"
        record_template(template)
        if args.only != "a":
            bound(template, args.runs)
        if args.only != "b":
            cpu_per_customer(template, args.customers, args.runs, not args.skip_cli)


if __name__ == "__main__":
    main()

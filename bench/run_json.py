"""``kql run --json``'s document streams: memory does not grow with the result.

1. the writer alone: tracemalloc's peak while ``Envelope.write`` writes N synthetic
   customers (sandbox-shaped records, made one at a time) to /dev/null, at 10,000 and at
   1,000,000 — against ``--format json``'s writer (``kql.cli.render.write``) on the same
   records, interleaved;
2. the whole command: peak RSS (``/usr/bin/time -f %M``) of ``kql run --json`` listing
   every customer of a sandbox (in its own process, built once and cached) of 10,000 and
   of 100,000 customers, against ``kql run --format ndjson`` on the same server, interleaved,
   medians of ``--runs``; and the time of ``--json`` over ``--format json``.

Usage: python bench/run_json.py [--runs N] [--big N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kql.cli.envelope import Envelope
from kql.cli.render import write

SERVE = """
import sys
from kql.sandbox import running
with running(customers=int(sys.argv[1]), cache=True) as sb:
    print(sb.base_url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
"""


def records(n: int) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        yield {"id": str(i), "name": f"Customer {i}", "email": f"customer{i}@example.com", "avatar": None,
               "external_user_id": f"cust_{i}", "public_bio": None, "public_location": None, "public_website": None,
               "socials": None, "net_revenue": f"{i % 997}.0", "sign_in_count": i % 13, "last_request_at": None,
               "bounced_at": None, "created_at": "2021-12-31T17:23:51Z",
               "updated_at": "2023-02-16T20:58:27Z"}  # fmt: skip


def traced_peak(kind: str, n: int) -> int:
    with open(os.devnull, "w") as out:
        tracemalloc.start()
        if kind == "envelope":
            envelope = Envelope(out)
            envelope.write(records(n))
            envelope.close(0)
        else:
            write(records(n), out, "json")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def writer(big: int) -> None:
    print(f"1. the writer alone, tracemalloc peak (10,000 vs {big:,} records):")
    for kind in ("envelope", "render json"):
        small_peak, big_peak = traced_peak(kind, 10_000), traced_peak(kind, big)
        print(f"   {kind:<12} {small_peak / 1024:8.1f} KiB  {big_peak / 1024:8.1f} KiB  ×{big_peak / small_peak:.2f}")


def kql_run(base_url: str, *args: str) -> tuple[int, float]:
    """Peak RSS in KiB and seconds of one ``kql run`` listing every customer."""
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "kql", "run", "--base-url", base_url,
               "--token", "sandbox", "--no-progress", *args, ""]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"kql run {' '.join(args)} failed: {done.stderr}")
    return int(done.stderr.strip().splitlines()[-1]), seconds


def whole(runs: int) -> None:
    print(f"2. kql run listing every customer, peak RSS and time, medians of {runs} interleaved runs:")
    modes = {"--json": ["--json"], "--format json": ["--format", "json"], "--format ndjson": ["--format", "ndjson"]}
    peaks: dict[int, dict[str, float]] = {}
    for size in (10_000, 100_000):
        server = subprocess.Popen([sys.executable, "-c", SERVE, str(size)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert server.stdout is not None and server.stdin is not None
        base_url = server.stdout.readline().strip()
        seen: dict[str, list[tuple[int, float]]] = {mode: [] for mode in modes}
        for _ in range(runs):
            for mode, args in modes.items():
                seen[mode].append(kql_run(base_url, *args))
        server.stdin.close()
        server.wait()
        peaks[size] = {mode: statistics.median(r for r, _ in results) / 1024 for mode, results in seen.items()}
        secs = {mode: statistics.median(s for _, s in results) for mode, results in seen.items()}
        shown = ", ".join(f"{mode} {peaks[size][mode]:.1f} MiB" for mode in modes)
        ratio = secs["--json"] / secs["--format json"]
        print(f"   {size:>7,} customers: {shown}; time --json / --format json ×{ratio:.2f}")
    for mode in modes:
        print(f"   {mode:<15} peak RSS at 100,000 / at 10,000: ×{peaks[100_000][mode] / peaks[10_000][mode]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()
    writer(args.big)
    whole(args.runs)


if __name__ == "__main__":
    main()

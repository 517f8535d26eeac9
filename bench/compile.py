"""Benchmark the language core. Prints medians and ratios measured in the same run.

1. parse + validate + compile of 3-, 8- and 40-clause queries, against luqum
   parsing an equivalent Lucene query (target: kql's whole pipeline at or below
   luqum's parse alone at 8 and 40 clauses);
2. wall time of `kql compile '<3-clause query>'` against `python -c "import httpx"`
   (target: kql at or below it).

Usage: python bench/compile.py [--runs N]   (needs `pip install luqum`)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import median_seconds

import kql
from kql.registry import registry


def queries(n: int) -> tuple[str, str]:
    """An n-clause KQL query (all one request) and an equivalent Lucene query."""
    reg = registry()
    picked = [f for f in reg if not f.negated and f.form != "text"][:n]
    kql_text = " and ".join(f.example(reg.id_prefixes) for f in picked)
    lucene = " AND ".join(f'{f.param}:"{f.example(reg.id_prefixes).split("(")[-1].rstrip(")")}"' for f in picked)
    return kql_text, lucene


def pipeline(runs: int) -> None:
    from luqum.parser import parser as luqum_parser

    print("1. parse + validate + compile vs luqum parse (median of", runs, "runs)")
    print(f"   {'clauses':>7}  {'kql µs':>9}  {'luqum µs':>9}  {'kql/luqum':>9}")
    for n in (3, 8, 40):
        text, lucene = queries(n)
        assert len(kql.parse(text).filter.items) == n  # type: ignore[union-attr]
        kql_s = median_seconds(lambda text=text: kql.compile(text), runs)
        luqum_s = median_seconds(lambda lucene=lucene: luqum_parser.parse(lucene), runs)
        print(f"   {n:>7}  {kql_s * 1e6:>9.0f}  {luqum_s * 1e6:>9.0f}  {kql_s / luqum_s:>9.2f}")


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
    startup(max(10, runs // 10))


if __name__ == "__main__":
    main()

"""Benchmark completion and segments (issue 6). Prints medians and worst cases.

1. completion latency per keystroke while typing a 40-clause query, one
   character at a time (median and worst), beside a full parse of the same
   query for scale;
2. `kql segments check` over a file of 1,000 segments (in-process and as a
   command), beside compiling the same 1,000 queries one by one.

Usage: python bench/segments_complete.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kql
from kql.language.completion import complete
from kql.planning.segments_file import from_text
from kql.registry import registry


def forty_clauses() -> str:
    reg = registry()
    picked = [f for f in reg if not f.negated and f.form != "text"][:40]
    return " and ".join(f.example(reg.id_prefixes) for f in picked) + " sort -created_at"


def keystrokes() -> None:
    text = forty_clauses()
    complete(text[:1])  # warm up the parser
    samples = []
    for cursor in range(len(text) + 1):
        start = time.perf_counter()
        complete(text[:cursor])
        samples.append(time.perf_counter() - start)
    parse = []
    for _ in range(50):
        start = time.perf_counter()
        kql.parse(text)
        parse.append(time.perf_counter() - start)
    print(f"1. completion per keystroke, {len(samples)} keystrokes along a 40-clause query ({len(text)} chars)")
    print(f"   median {statistics.median(samples) * 1e3:6.2f} ms   worst {max(samples) * 1e3:6.2f} ms")
    print(f"   (a full parse of the whole query: median {statistics.median(parse) * 1e3:.2f} ms)")


def segments_file(count: int) -> str:
    reg = registry()
    examples = [f.example(reg.id_prefixes) for f in reg if not f.negated]
    lines = []
    for i in range(count):
        query = f"{examples[i % len(examples)]} and {examples[(i * 7 + 3) % len(examples)]}"
        if i >= 10 and i % 10 == 0:
            query = f"@seg_{i % 10 + 1} and {query}"  # some segments build on others
        lines.append(f'[segments.seg_{i}]\nquery = {kql_quote(query)}\ndescription = "segment {i}"\n')
    return "\n".join(lines)


def kql_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def segments_check(count: int = 1000) -> None:
    text = segments_file(count)
    segments = from_text(text, "bench.toml")
    start = time.perf_counter()
    problems = segments.check()
    in_process = time.perf_counter() - start
    assert not problems, problems[0]
    start = time.perf_counter()
    for segment in segments:
        kql.compile("@" + segment.name, segments=segments)
    compile_all = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "kql.toml")
        path.write_text(text)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "kql", "segments", "--segments", str(path), "check"],
                capture_output=True,
                text=True,
                env=env,
            )
            runs.append(time.perf_counter() - start)
            assert done.returncode == 0, done.stderr
    print(f"2. segments check over {count} segments")
    print(f"   in process: {in_process * 1e3:7.1f} ms  ({in_process / count * 1e6:.0f} µs per segment)")
    print(f"   kql segments check (command, median of 5): {statistics.median(runs) * 1e3:7.1f} ms")
    print(f"   for scale, compiling every @segment once: {compile_all * 1e3:7.1f} ms")


if __name__ == "__main__":
    keystrokes()
    segments_check()

"""Start-up of the commands a shell runs on every TAB, and of ``kql compile``.

Each is a fresh process, timed wall-clock; the baseline is ``python -c "import attrs, lark"``
(the two libraries kql's compile path was built on) measured in the same run. Runs are
interleaved (one of each command per round) so that a busy machine slows all alike, and every
figure is a median. Byte-code caches are on as a user has them: PYTHONDONTWRITEBYTECODE is
removed from the environment, and every command runs once before timing starts.

The CPU column (user + system time of the child, from ``os.wait4``) is less sensitive than
wall time to other work on the machine; both ratios are against the baseline's own.

Usage: python bench/startup.py [RUNS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

KQL = shutil.which("kql", path=str(Path(sys.executable).parent)) or "kql"
LINE = "kql compile 'site = 1 and has_t"
CASES = {
    "python -c 'import attrs, lark' (baseline)": [sys.executable, "-c", "import attrs, lark"],
    "kql complete 'has_t'": [KQL, "complete", "has_t"],
    "kql complete --shell bash (one TAB)": [KQL, "complete", "--shell", "bash", "--word", LINE[13:], "--", LINE],
    "kql compile 'has_tag(5)'": [KQL, "compile", "has_tag(5)"],
    "kql compile '<3 clauses>'": [KQL, "compile", "site = 123 and net_revenue > 100 and opened(bc_9)"],
    "kql --help": [KQL, "--help"],
}


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in CASES.values():  # byte-code and parser caches, as after the first use
        _run(argv, env)
    walls: dict[str, list[float]] = {name: [] for name in CASES}
    cpus: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):
        for name, argv in CASES.items():
            wall, cpu = _run(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    wall_ms = {name: statistics.median(s) * 1000 for name, s in walls.items()}
    cpu_ms = {name: statistics.median(s) * 1000 for name, s in cpus.items()}
    base = next(iter(CASES))
    print(f"{'command':<45} {'wall':>9} {'ratio':>6} {'cpu':>9} {'ratio':>6}   (median of {runs}, interleaved)")
    for name in CASES:
        print(
            f"{name:<45} {wall_ms[name]:>7.1f}ms {wall_ms[name] / wall_ms[base]:>5.2f}x"
            f" {cpu_ms[name]:>7.1f}ms {cpu_ms[name] / cpu_ms[base]:>5.2f}x"
        )


if __name__ == "__main__":
    main()

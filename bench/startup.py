"""Start-up of the commands a shell runs on every TAB, and of ``kql compile``.

Each is a fresh process, timed wall-clock; the baseline is ``python -c "import attrs, lark"``
(kql's two runtime imports) measured in the same run, and every figure is a median. Byte-code
caches are on as a user has them: PYTHONDONTWRITEBYTECODE is removed from the environment.

Usage: python bench/startup.py [RUNS]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from timing import median_seconds

KQL = shutil.which("kql", path=str(Path(sys.executable).parent)) or "kql"
LINE = "kql compile 'site = 1 and has_t"
CASES = {
    "python -c 'import attrs, lark' (baseline)": [sys.executable, "-c", "import attrs, lark"],
    "kql complete 'has_t'": [KQL, "complete", "has_t"],
    "kql complete --shell bash (one TAB)": [KQL, "complete", "--shell", "bash", "--word", LINE[13:], "--", LINE],
    "kql compile 'has_tag(5)'": [KQL, "compile", "has_tag(5)"],
    "kql --help": [KQL, "--help"],
}


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def timed(argv: list[str]) -> float:
        return median_seconds(lambda: subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True), runs)

    results = {name: timed(argv) for name, argv in CASES.items()}
    base = next(iter(results.values()))
    print(f"{'command':<45} {'median':>9} {'vs baseline':>12}   ({runs} runs each)")
    for name, seconds in results.items():
        print(f"{name:<45} {seconds * 1000:>7.1f}ms {seconds / base:>11.2f}x")


if __name__ == "__main__":
    main()

"""A small sandbox served on 127.0.0.1, a segments file and a state file per test."""

from __future__ import annotations

import shlex
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kql.sandbox import Sandbox, running

TAG = 3  # @vip is everyone holding tag 3 (about a sixth of the sandbox)
SEGMENTS = f"""
[segments.vip]
query = "has_tag(tag_{TAG}) select name, net_revenue"
"""

# A consumer: appends each event line to LOG; MODE fail exits 1 after reading, kill SIGKILLs itself on
# the first event of batch 2, block waits (bounded) for a RELEASE file after announcing it started.
CONSUMER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path

    mode, log = sys.argv[1], Path(sys.argv[2])
    if mode == "block":
        Path(str(log) + ".started").write_text(os.environ["KQL_BATCH"])
        deadline = time.monotonic() + 120
        while not Path(str(log) + ".release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    for line in sys.stdin:
        if mode == "kill" and os.environ["KQL_BATCH"] == "2":
            os.kill(os.getpid(), signal.SIGKILL)
        with log.open("a") as out:
            out.write(line)
    sys.exit(1 if mode == "fail" else 0)
    """
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running(customers=300, seed=7) as sb:
        yield sb


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "kql.toml").write_text(SEGMENTS)
    (tmp_path / "consumer.py").write_text(CONSUMER)
    return tmp_path


def options(sandbox: Sandbox, workdir: Path) -> list[str]:
    return [
        "--base-url", sandbox.base_url, "--token", "sandbox",
        "--state", str(workdir / "state.sqlite3"), "--segments", str(workdir / "kql.toml"),
    ]  # fmt: skip


def consumer(workdir: Path, mode: str, log: str = "events.ndjson") -> str:
    return shlex.join([sys.executable, str(workdir / "consumer.py"), mode, str(workdir / log)])

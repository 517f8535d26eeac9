"""kql run --output: atomic for files, direct for streams, never destructive (kql/output.py)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kql.cli.output import OutputError, check_output, open_output
from kql.sandbox import Sandbox, running


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running(customers=200, seed=2) as server:
        yield server


def kql_run(sb: Sandbox, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kql", "run", "--base-url", sb.base_url, "--token", sb.token or "x", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_existing_file_keeps_its_permissions(sb: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "pii.csv"
    target.write_text("old\n")
    target.chmod(0o600)
    assert kql_run(sb, "limit 3", "-o", "pii.csv", cwd=tmp_path).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text().count("\n") == 4  # header and three customers


def test_symlink_stays_and_its_target_is_written(sb: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "real.ndjson").write_text("old\n")
    (tmp_path / "link.ndjson").symlink_to("real.ndjson")
    assert kql_run(sb, "limit 2", "-o", "link.ndjson", cwd=tmp_path).returncode == 0
    assert (tmp_path / "link.ndjson").is_symlink()
    assert (tmp_path / "real.ndjson").read_text().count("\n") == 2


def test_a_fifo_is_written_not_replaced(sb: Sandbox, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.ndjson"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    assert kql_run(sb, "limit 2", "-o", "pipe.ndjson", cwd=tmp_path).returncode == 0
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received[0].count("\n") == 2


def test_dev_null_is_a_stream() -> None:
    with open_output(os.devnull) as out:
        out.write("nothing\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize(("make", "path", "says"), [
    (lambda p: (p / "d").mkdir(), "d", "is a directory"),
    (lambda p: None, "missing/x.csv", "no such directory missing"),
])  # fmt: skip
def test_unwritable_output_fails_before_the_run(
    sb: Sandbox, tmp_path: Path, make: object, path: str, says: str
) -> None:
    make(tmp_path)  # type: ignore[operator]
    before = sb.stats["requests"]
    done = kql_run(sb, "limit 2", "-o", path, cwd=tmp_path)
    assert done.returncode == 2 and f"--output {path}: {says}" in done.stderr and ".part" not in done.stderr
    assert sb.stats["requests"] == before
    with pytest.raises(OutputError):
        check_output(str(tmp_path / path))


def test_sigterm_leaves_no_temporary_file(tmp_path: Path) -> None:
    with running(customers=3000, seed=2, latency_ms=100) as slow:
        command = [sys.executable, "-m", "kql", "run", "--base-url", slow.base_url, "--token", slow.token or "x",
                   "--concurrency", "1", "", "-o", "all.ndjson"]  # fmt: skip
        proc = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob(".all.ndjson.*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []

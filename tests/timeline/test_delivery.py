"""At-least-once delivery: failed or killed consumers get the same events; two watchers never both deliver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kql.cli.app import main
from kql.sandbox import Sandbox, admin
from tests.timeline.conftest import TAG, consumer, options

BOUND = 120.0  # generous: a busy CI machine


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def logged(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [(e["event"], e["id"]) for e in map(json.loads, path.read_text().splitlines())]


def expected_entries(sandbox: Sandbox) -> list[tuple[str, str]]:
    return sorted(("entered", str(cid)) for cid in admin.tagged(sandbox.store, TAG))


@pytest.mark.parametrize("mode", ["fail", "kill"])
def test_failed_or_killed_consumer_gets_the_same_events(
    mode: str, sandbox: Sandbox, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = [*options(sandbox, workdir), "--batch", "5"]
    assert main(["diff", "@vip", "--exec", consumer(workdir, mode, "bad.ndjson"), *opts]) == 5
    err = capsys.readouterr().err
    assert "nothing was committed" in err and ("signal 9" in err if mode == "kill" else "exited 1" in err)
    # fail: batch 1 read, then exit 1 (delivery stops there); kill: batch 1 ok, killed on batch 2's first event.
    # Either way five events reached the consumer, and nothing was committed.
    assert len(logged(workdir / "bad.ndjson")) == 5
    assert main(["diff", "@vip", "--exec", consumer(workdir, "ok", "good.ndjson"), *opts]) == 0
    good = logged(workdir / "good.ndjson")
    assert sorted(good) == expected_entries(sandbox) and len(set(good)) == len(good)  # nothing lost or twice
    assert main(["diff", "@vip", "--exec", consumer(workdir, "ok", "after.ndjson"), *opts]) == 0
    assert logged(workdir / "after.ndjson") == []  # delivered and committed: not again


def _watch(sandbox: Sandbox, workdir: Path, log: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = workdir / f"{log}.stderr"
    command = [sys.executable, "-m", "kql", "watch", "@vip", "--every", "1h", *options(sandbox, workdir)]
    process = subprocess.Popen(
        [*command, "--exec", consumer(workdir, "block", log), *extra],
        stdout=subprocess.DEVNULL,
        stderr=err.open("wb"),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    return process, err


def test_two_watchers_do_not_both_deliver_and_sigterm_stops_cleanly(sandbox: Sandbox, workdir: Path) -> None:
    first, first_err = _watch(sandbox, workdir, "a.ndjson")
    try:
        wait_for((workdir / "a.ndjson.started").exists, "the first watcher's consumer to start")
        second, second_err = _watch(sandbox, workdir, "b.ndjson", "--cycles", "1")
        assert second.wait(timeout=BOUND) == 0
        assert "busy" in second_err.read_text() and not (workdir / "b.ndjson.started").exists()
        (workdir / "a.ndjson.release").write_text("")
        wait_for(lambda: "recorded" in first_err.read_text(), "the first watcher to commit")
        first.send_signal(signal.SIGTERM)  # idle now, sleeping until the next cycle
        assert first.wait(timeout=BOUND) == 0
        text = first_err.read_text()
        assert "stopped" in text and "Traceback" not in text
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    delivered = logged(workdir / "a.ndjson")
    assert sorted(delivered) == expected_entries(sandbox) and logged(workdir / "b.ndjson") == []


def test_sigterm_while_delivering_commits_nothing(sandbox: Sandbox, workdir: Path) -> None:
    watcher, err = _watch(sandbox, workdir, "a.ndjson")
    try:
        wait_for((workdir / "a.ndjson.started").exists, "the consumer to start")
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=BOUND) == 0
        assert "stopped" in err.read_text() and "Traceback" not in err.read_text()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert main(["diff", "@vip", "--exec", consumer(workdir, "ok", "again.ndjson"), *options(sandbox, workdir)]) == 0
    assert sorted(logged(workdir / "again.ndjson")) == expected_entries(sandbox)

"""`kql sandbox` refuses bad options up front: a usage error (exit 2) saying what is allowed, never a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kql.sandbox import cli

BASE = [sys.executable, "-m", "kql", "sandbox", "--port", "0", "--customers", "5"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("args", "expected"), [
    (["--port", "99999"], "argument --port: must be in the range 0-65535"),
    (["--port", "-1"], "argument --port: must be in the range 0-65535"),
    (["--port", "http"], "argument --port: expected a whole number"),
    (["--latency-ms", "-5"], "argument --latency-ms: must be between 0 and 3,600,000"),
    (["--latency-ms", "1e308"], "argument --latency-ms: must be between 0 and 3,600,000"),
    (["--latency-ms", "inf"], "argument --latency-ms: expected a finite number"),
    (["--jitter-ms", "-1"], "argument --jitter-ms: must be between 0 and 3,600,000"),
    (["--token", ""], "argument --token: must be a non-empty string of printable ASCII without whitespace"),
    (["--token", "two words"], "argument --token: must be a non-empty"),
    (["--token", "caf\u00e9"], "argument --token: must be a non-empty"),
    (["--links-host", "notaurl"], "argument --links-host: must be an absolute http(s) URL"),
    (["--links-host", "ftp://example.com"], "argument --links-host: must be an absolute http(s) URL"),
    (["--links-host", "https://"], "argument --links-host: must be an absolute http(s) URL"),
    (["--links-host", "https://example.com/api?x=1"], "argument --links-host: must be an absolute http(s) URL"),
    (["--links-host", "http://example.com:99999"], "argument --links-host: 'http://example.com:99999' is not a valid"),
    (["--expires-in", "0"], "argument --expires-in: must be > 0 (seconds)"),
    (["--expires-in", "-60"], "argument --expires-in: must be > 0 (seconds)"),
    (["--customers", "-1"], "argument --customers/--sites: customers must be >= 0 and sites >= 1"),
    (["--customers", "1e3"], "argument --customers: expected a whole number"),
    (["--sites", "0"], "argument --customers/--sites: customers must be >= 0 and sites >= 1"),
    (["--seed", "1.5"], "argument --seed: expected a whole number"),
    (["--error-rate", "1.5"], "argument --error-rate: error_rate must be between 0 and 1"),
    (["--error-rate", "nan"], "argument --error-rate: expected a finite number"),
    (["--drop-rate", "-0.1"], "argument --drop-rate: drop_rate must be between 0 and 1"),
    (["--rate-limit", "0"], "argument --rate-limit: rate_limit must be positive"),
    (["--rate-limit", "inf"], "argument --rate-limit: expected a finite number"),
    (["--page-size", "0"], "argument --page-size/--max-page-size: need 1 <= default_page_size"),
    (["--page-size", "101"], "argument --page-size/--max-page-size: need 1 <= default_page_size"),
    (["--max-page-size", "0"], "argument --page-size/--max-page-size: need 1 <= default_page_size"),
])
def test_bad_option_is_a_usage_error(args: list[str], expected: str) -> None:
    done = _run(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: kql sandbox")
    assert f"kql sandbox: error: {expected}" in done.stderr


def _one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("kql sandbox: ")
    return done.stderr


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*BASE, "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert f"cannot listen on 127.0.0.1:{port}:" in _one_line_exit_2(done)


def test_an_unusable_db_is_one_line(tmp_path: Path) -> None:
    assert "--db " in _one_line_exit_2(_run("--db", str(tmp_path / "missing" / "x.db")))
    assert "--db " in _one_line_exit_2(_run("--db", str(tmp_path)))  # a directory
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    assert "is not a sandbox database" in _one_line_exit_2(_run("--db", str(notes)))
    assert notes.read_text() == "not a database\n"


def test_an_unexpected_startup_error_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def broken(**kwargs: object) -> None:
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cli, "Sandbox", broken)
    assert cli.main(["--port", "0", "--customers", "5"]) == 2
    assert capsys.readouterr().err == "kql sandbox: internal error (RuntimeError): something broke\n"


def test_boundary_values_are_accepted() -> None:
    """The edges of every range start a server (stopped as soon as it prints its URL)."""
    process = subprocess.Popen(
        [*BASE, "--latency-ms", "0", "--jitter-ms", "0", "--error-rate", "0", "--drop-rate", "0",
         "--rate-limit", "0.5", "--page-size", "1", "--max-page-size", "1", "--expires-in", "1", "--seed", "-7",
         "--sites", "1", "--token", "t0k3n-._~+/=", "--links-host", "https://app.kajabi.com/api/"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        body = httpx.get(f"{base}/v1/customers", headers={"Authorization": "Bearer t0k3n-._~+/="}, timeout=10).json()
        assert len(body["data"]) == 1
        assert body["links"]["next"].startswith("https://app.kajabi.com/api/v1/customers?")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["--customers", "0"], ["--error-rate", "1", "--drop-rate", "1"], ["--links-host", "http://localhost:9000"],
])
def test_other_edges_are_accepted(args: list[str]) -> None:
    process = subprocess.Popen([*BASE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err

"""``kql run --json`` is one JSON document whatever happens, and "nothing matched" is exit 1 (issue 14, item 5).

Against the sandbox and the fake API on 127.0.0.1, in real processes where the point is
stdout as a script reads it (a failure mid-stream, SIGTERM, Ctrl-C).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kql.cli.envelope import Envelope, SignalGuard
from kql.cli.run import Terminated, main, terminate_as_interrupt
from kql.sandbox import Sandbox, running
from tests.executor.fakeapi import TOKEN, FakeAPI

NONE_MATCH = "net_revenue > 100000000"  # the sandbox's customers have far less
CONTRADICTION = "has_tag(tag_1) and not has_tag(tag_1)"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running(customers=120, seed=3) as server:
        yield server


def run(sb: Sandbox, *args: str) -> int:
    return main([*args, "--base-url", sb.base_url, "--token", sb.token or "x", "--retries", "0"])


def kql_run(base_url: str, token: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAJABI_")}
    command = [sys.executable, "-m", "kql", "run", "--base-url", base_url, "--token", token, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=clean, cwd=cwd)


def without_customers(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "customers"}


# -- nothing matched: exit 1, output still well-formed ----------------------------------


@pytest.mark.parametrize(
    ("fmt", "select", "expected"),
    [("json", "", "[]\n"), ("ndjson", "", ""), ("csv", " select name, email", "id,name,email\n")],
)
def test_no_customer_matched_is_exit_1_and_well_formed(
    sb: Sandbox, capsys: pytest.CaptureFixture[str], fmt: str, select: str, expected: str
) -> None:
    assert run(sb, NONE_MATCH + select, "--format", fmt) == 1
    assert capsys.readouterr().out == expected


def test_no_customer_matched_as_a_table_is_exit_1_with_its_header(
    sb: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sb, f"{NONE_MATCH} select name", "--format", "table") == 1
    assert capsys.readouterr().out.split() == ["id", "name", "--", "----"]


def test_no_customer_matched_with_json_says_count_0_and_exit_1(sb: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sb, NONE_MATCH, "--json") == 1
    assert json.loads(capsys.readouterr().out) == {
        "customers": [], "count": 0, "complete": True, "ok": True, "exit_code": 1, "errors": [],
    }  # fmt: skip


def test_a_contradiction_is_exit_1_without_a_request(sb: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    before = sb.stats["requests"]
    assert run(sb, CONTRADICTION, "--json") == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["exit_code"] == 1 and "contradict" in err
    assert sb.stats["requests"] == before


def test_some_customers_is_exit_0_and_a_count_of_0_is_an_answer(
    sb: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sb, "limit 2 select name") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    from kql.cli.app import main as kql_main

    # kql count prints the answer, and 0 is one: exit 0 (a script compares the number).
    assert kql_main(["count", NONE_MATCH, "--base-url", sb.base_url, "--token", sb.token or "x"]) == 0
    assert capsys.readouterr().out == "0\n"


# -- --json: one document, streamed ------------------------------------------------------


def test_json_document_streams_the_customers_then_says_how_it_ended(
    sb: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sb, "limit 3 select name sort created_at", "--json") == 0
    out = capsys.readouterr().out
    assert out.startswith('{"customers": [\n{"id": "1", "name": ')  # the array first: it streams
    document = json.loads(out)
    assert [c["id"] for c in document["customers"]] == ["1", "2", "3"]
    assert without_customers(document) == {"count": 3, "complete": True, "ok": True, "exit_code": 0, "errors": []}


def test_json_errors_before_a_run_are_the_same_document(sb: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sb, "opend(bc_1) and sort_of(", "--json") == 2
    document = json.loads(capsys.readouterr().out)
    assert document["customers"] == [] and document["ok"] is False and document["exit_code"] == 2
    assert document["errors"][0]["code"].startswith("E") and set(document["errors"][0]) == {
        "code", "message", "span", "hint",
    }  # fmt: skip
    assert run(sb, "-f", "/nonexistent/vip.kql", "--json") == 2  # a usage mistake too
    assert json.loads(capsys.readouterr().out)["errors"][0]["code"] == "usage"


def test_json_with_output_writes_the_file_in_its_format_and_the_document_on_stdout(
    sb: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "two.csv"
    assert run(sb, "limit 2 select email sort created_at", "--json", "-o", str(target)) == 0
    assert json.loads(capsys.readouterr().out) == {
        "output": str(target), "count": 2, "complete": True, "ok": True, "exit_code": 0, "errors": [],
    }  # fmt: skip
    assert [row[0] for row in csv.reader(target.open())] == ["id", "1", "2"]
    assert run(sb, "limit 2", "--json", "--format", "csv") == 2  # stdout is the document: CSV needs -o
    assert "needs --output" in json.loads(capsys.readouterr().out)["errors"][0]["message"]


def test_a_failure_mid_stream_closes_the_document_and_names_the_error() -> None:
    # Faults are drawn in arrival order, so one page at a time sees the same ones every run:
    # with seed 2, page 1 arrives and page 2 is a 503, which --retries 0 does not retry.
    with running(customers=300, error_rate=0.3, seed=2) as faulty:
        done = kql_run(faulty.base_url, faulty.token or "x", "--json", "--retries", "0", "--concurrency", "1",
                       "--max-page-size", "10", "select name")  # fmt: skip
    document = json.loads(done.stdout)
    assert done.returncode == 4 and document["exit_code"] == 4
    assert 0 < document["count"] == len(document["customers"]) < 300
    assert document["ok"] is False and document["complete"] is False
    assert document["errors"][0]["code"] == "APIError" and "503" in document["errors"][0]["message"]


def test_missing_customers_mid_stream_fail_or_are_accepted_in_the_document(api: FakeAPI) -> None:
    api.scenario("short")  # page 2 of 3 holds 10 customers instead of 100, every time
    failed = kql_run(api.base_url, TOKEN, "--json", "--retries", "0", "--concurrency", "1", "select name")
    document = json.loads(failed.stdout)
    assert failed.returncode == 4 and document["errors"][0]["code"] == "IncompleteResult"
    assert document["count"] == len(document["customers"]) > 0 and document["complete"] is False
    accepted = kql_run(api.base_url, TOKEN, "--json", "--retries", "0", "--allow-partial", "select name")
    document = json.loads(accepted.stdout)
    assert accepted.returncode == 5 and document["count"] == 160
    assert without_customers(document) | {"count": 0} == {
        "count": 0, "complete": False, "ok": True, "exit_code": 5, "errors": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("signum", "code", "name"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_signal_mid_stream_still_closes_the_document(signum: int, code: int, name: str) -> None:
    with running(customers=400, seed=2, latency_ms=100) as slow:
        command = [sys.executable, "-m", "kql", "run", "--base-url", slow.base_url, "--token", slow.token or "x",
                   "--json", "--concurrency", "1", "--max-page-size", "10", "select name"]  # fmt: skip
        # SIG_DFL first: a test runner started in the background hands its children SIGINT ignored.
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        deadline = time.monotonic() + 30
        while slow.stats["requests"] < 3 and time.monotonic() < deadline:  # two pages in: mid-stream
            time.sleep(0.02)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    document = json.loads(out)
    assert proc.returncode == code and document["exit_code"] == code and "Traceback" not in err
    assert document["errors"][0]["code"] == name and document["complete"] is False
    assert 0 < document["count"] == len(document["customers"]) < 400


# -- the guard: a signal never cuts a record in half (pure logic) -------------------------


class _SignalledMidWrite(io.StringIO):
    """A stream that receives SIGTERM half-way through writing a record."""

    def write(self, text: str) -> int:
        if '"id": "2"' in text:
            half = len(text) // 2
            super().write(text[:half])
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside write()
            return super().write(text[half:]) + half
        return super().write(text)


def test_a_signal_inside_a_write_waits_for_the_record_to_be_whole() -> None:
    out = _SignalledMidWrite()
    guard = SignalGuard()
    envelope = Envelope(out, guard=guard)
    with terminate_as_interrupt(guard), pytest.raises(Terminated):
        envelope.write({"id": str(i)} for i in range(1, 5))
    assert envelope.count == 2  # the second record was written whole, then the signal took effect
    envelope.close(143, [{"code": "terminated", "message": "terminated", "span": None, "hint": None}])
    document = json.loads(out.getvalue())
    assert document["customers"] == [{"id": "1"}, {"id": "2"}] and document["exit_code"] == 143

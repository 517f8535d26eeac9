"""``kql run`` on a real pseudo-terminal: tables fitted to 60, 80 and 200 columns, the pager, and a
progress bar that never tears the rows. The API is the sandbox on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kql.cli.render import display_width
from kql.sandbox import Sandbox, running

pexpect = pytest.importorskip("pexpect")

ROWS = 250  # more than the 200 rows the old table sized its columns from


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running(customers=300, seed=3) as server:
        yield server


@pytest.fixture(scope="module")
def slow() -> Iterator[Sandbox]:
    """Slow enough that a run outlasts the bar's half-second delay on any machine."""
    with running(customers=1500, seed=4, latency_ms=60) as server:
        yield server


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAJABI_", "KQL_", "PAGER", "LESS"))}
    return {**env, "TERM": "xterm", **extra}


def on_terminal(
    *args: str, columns: int = 80, lines: int = 40, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[str, int]:
    """Run ``kql ARGS`` with stdin, stdout and stderr on one pseudo-terminal; its output and exit status."""
    child = pexpect.spawn(sys.executable, ["-m", "kql", *args], env=env or _env(), dimensions=(lines, columns),
                          encoding="utf-8", timeout=60, cwd=str(cwd) if cwd else None)  # fmt: skip
    child.expect(pexpect.EOF, timeout=120)
    child.close()
    return child.before.replace("\r\n", "\n"), child.exitstatus


def run_args(server: Sandbox, query: str, *more: str, progress: bool = False) -> list[str]:
    # The bar appears once a run takes half a second, which a busy machine can make of any run:
    # only the tests about the bar let it draw, so the others read the same screen on any machine.
    quiet = [] if progress else ["--no-progress"]
    return ["run", "--base-url", server.base_url, "--token", server.token or "sandbox", query, *quiet, *more]


def records(server: Sandbox, query: str) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "kql", *run_args(server, query)], capture_output=True, text=True,
                          timeout=60, env=_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_a_long_table_fits_the_terminal_and_never_cuts_an_id(sb: Sandbox, columns: int) -> None:
    query = f"sort -net_revenue limit {ROWS}"
    out, status = on_terminal(*run_args(sb, query, "--no-pager"), columns=columns)
    assert status == 0, out
    lines = out.rstrip("\n").split("\n")
    header, rule, rows = lines[0], lines[1], lines[2:]
    assert header.split() == ["id", "name", "email", "net_revenue", "created_at"]
    assert len(rows) == ROWS
    assert all(display_width(line) <= columns for line in lines), max(lines, key=display_width)
    expected = records(sb, query)
    assert [row.split()[0] for row in rows] == [r["id"] for r in expected]  # every id whole, in order
    # Money is right-aligned: every value ends where its header ends.
    end = header.index("net_revenue") + len("net_revenue")
    for row, record in zip(rows, expected, strict=True):
        assert row[:end].endswith(str(record["net_revenue"])), row
    emails = [str(r["email"]) for r in expected]
    widest = max(len(e) for e in emails)
    if columns == 200:  # room for everything: nothing is cut
        assert "…" not in out and all(email in row for email, row in zip(emails, rows, strict=True))
    else:  # the text columns gave way, with an ellipsis
        assert "…" in out and len(rule.split()[2]) < widest


def test_selected_fields_are_the_header(sb: Sandbox) -> None:
    out, status = on_terminal(*run_args(sb, "select email, sign_in_count limit 3"), columns=80)
    assert status == 0
    header, *_ = out.split("\n")
    assert header.split() == ["id", "email", "sign_in_count"]


def test_a_table_taller_than_the_screen_goes_through_the_pager(sb: Sandbox, tmp_path: Path) -> None:
    seen = tmp_path / "paged.txt"
    pager = f"cat > {seen}"
    out, status = on_terminal(*run_args(sb, f"limit {ROWS}"), lines=24, env=_env(PAGER=pager))
    assert status == 0
    assert out.strip() == ""  # everything went to the pager
    assert len(seen.read_text().splitlines()) == ROWS + 2
    # KQL_PAGER wins over PAGER; a short table and --no-pager are written directly.
    seen.unlink()
    out, _ = on_terminal(*run_args(sb, "limit 5"), lines=24, env=_env(KQL_PAGER=pager))
    assert not seen.exists() and len(out.strip().split("\n")) == 7
    out, _ = on_terminal(*run_args(sb, f"limit {ROWS}", "--no-pager"), lines=24, env=_env(KQL_PAGER=pager))
    assert not seen.exists() and len(out.strip().split("\n")) == ROWS + 2


def test_less_pages_and_quits(sb: Sandbox) -> None:
    if shutil.which("less") is None:
        pytest.skip("less is not installed")
    child = pexpect.spawn(sys.executable, ["-m", "kql", *run_args(sb, f"limit {ROWS}")], env=_env(),
                          dimensions=(24, 100), encoding="utf-8", timeout=60)  # fmt: skip
    child.expect(r"\n:")  # less's prompt under the first screen: it waits for the reader
    first = child.before
    assert "email" in first and "net_revenue" in first
    assert len(first.split("\n")) < 30  # one screen, not 252 lines
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_the_progress_bar_is_cleared_before_the_table(slow: Sandbox) -> None:
    out, status = on_terminal(*run_args(slow, "", "--concurrency", "1", "--no-pager", progress=True), columns=100)
    assert status == 0
    # The bar was drawn (with its rate and ETA) and erased; the table comes after the last erase.
    bar, _, table = out.rpartition("\r\x1b[2K")
    assert "customers" in bar and "/s" in bar and "ETA" in bar
    lines = table.lstrip("\n").rstrip("\n").split("\n")
    assert lines[0].split()[0] == "id" and len(lines) == 1502
    assert not any("ETA" in line or "\x1b" in line for line in lines)


def test_rows_streamed_to_the_terminal_get_no_bar(slow: Sandbox) -> None:
    args = run_args(slow, "", "--concurrency", "1", "--format", "ndjson", progress=True)
    out, status = on_terminal(*args, columns=100)
    assert status == 0
    assert "\x1b[2K" not in out and "ETA" not in out
    assert len([json.loads(line) for line in out.strip().split("\n")]) == 1500


def test_output_file_shows_the_bar_then_a_summary(slow: Sandbox, tmp_path: Path) -> None:
    out, status = on_terminal(*run_args(slow, "", "--concurrency", "1", "-o", "all.csv", progress=True), cwd=tmp_path)
    assert status == 0
    assert "ETA" in out
    summary = out.rpartition("\r\x1b[2K")[2].strip()
    assert re.fullmatch(r"kql run: wrote 1,500 customers to all\.csv in \d+\.\ds", summary), summary
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 1501


def test_the_bar_fits_a_narrow_terminal(slow: Sandbox, tmp_path: Path) -> None:
    args = run_args(slow, "", "--concurrency", "1", "-o", "x.ndjson", progress=True)
    out, _ = on_terminal(*args, columns=40, cwd=tmp_path)
    drawn = [piece for piece in out.split("\r\x1b[2K") if piece and "kql run" not in piece]
    assert drawn and all(display_width(piece) < 40 for piece in drawn)


def test_compile_without_a_query_on_a_terminal_exits_2() -> None:
    out, status = on_terminal("compile")
    assert status == 2
    assert "give a query as an argument, with -f FILE, or on stdin" in out and "Traceback" not in out


def test_quitting_the_pager_early_is_not_an_error(sb: Sandbox) -> None:
    out, status = on_terminal(*run_args(sb, f"limit {ROWS}"), lines=24, env=_env(PAGER="head -3"))
    assert status == 0 and "Traceback" not in out and "Broken pipe" not in out
    assert len(out.strip().split("\n")) == 3


def test_a_missing_pager_is_named_and_the_table_written(sb: Sandbox) -> None:
    out, status = on_terminal(*run_args(sb, f"limit {ROWS}"), lines=24, env=_env(PAGER="no-such-pager -x"))
    assert status == 0
    assert out.startswith("kql: pager 'no-such-pager' not found; writing directly\n")
    assert len(out.strip().split("\n")) == ROWS + 3

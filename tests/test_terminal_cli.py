"""The small things of the command line (issue 14): did-you-mean for commands, a subcommand's own
usage, -f FILE, kql.toml in parents, -o extensions, CSV headers, kql help; and the table's layout."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from kql.cli import help as kql_help
from kql.cli.completion_scripts import last_word
from kql.cli.progress import ProgressBar, format_seconds
from kql.cli.render import Table, clip, csv_columns, display_width, write
from kql.registry import registry
from tests.conftest import ROOT


def kql(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kql", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, input=stdin)  # fmt: skip


def test_a_mistyped_command_gets_did_you_mean() -> None:
    done = kql("compil", "x")
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first == "kql: unknown command 'compil'; did you mean 'compile', 'decompile' or 'complete'?"


def test_a_bad_flag_shows_the_subcommands_usage() -> None:
    done = kql("fmt", "--jsn", "x")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: kql fmt ") and "kql fmt: error: unrecognized arguments: --jsn" in done.stderr


def test_query_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "vip.kql").write_text("# the best customers\nhas_tag(tag_5)\n  and net_revenue > 100\n")
    for command, says in [("compile", "filter[has_tag_id]=5"), ("fmt", "has_tag(tag_5) and net_revenue > 100"),
                          ("check", "ok"), ("explain", "filter[has_tag_id]=5")]:  # fmt: skip
        done = kql(command, "-f", "vip.kql", cwd=tmp_path)
        assert done.returncode == 0 and says in done.stdout, (command, done.stderr)
    assert kql("compile", "-f", "-", stdin="hidden").stdout.strip() == "filter[is_hidden]=true"
    missing = kql("compile", "-f", "nope.kql", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == "kql compile: -f nope.kql: no such file"
    both = kql("run", "--sandbox", "hidden", "-f", "vip.kql", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr


def test_segments_file_in_a_parent_directory(tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text('[segments.vip]\nquery = "net_revenue > 500"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert kql("compile", "@vip", cwd=deep).stdout.strip() == "filter[net_revenue_greater_than]=500"


def test_an_unknown_output_extension_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    done = kql("run", "--sandbox", "limit 1", "-o", "out.xlsx", cwd=tmp_path)
    assert done.returncode == 2
    assert ".csv, .json, .ndjson, .jsonl" in done.stderr and "--format" in done.stderr
    assert list(tmp_path.iterdir()) == []
    assert kql("run", "--sandbox", "limit 1", "-o", "out.txt", "--format", "table", cwd=tmp_path).returncode == 0


def test_csv_header_is_the_same_for_empty_and_full_results() -> None:
    full, empty = io.StringIO(), io.StringIO()
    write([{"id": "1", "name": "A", "email": "a@x"}], full, "csv")
    write([], empty, "csv")
    header = next(csv.reader(io.StringIO(full.getvalue())))
    assert header == next(csv.reader(io.StringIO(empty.getvalue()))) == ["id", *registry().attributes]
    assert csv_columns(["email", "id", "name"]) == ["id", "email", "name"]


def test_help_topics_are_the_docs() -> None:
    done = kql("help", "language")
    assert done.returncode == 0
    assert done.stdout == kql_help.text("language")
    assert done.stdout.startswith((ROOT / "docs" / "language.md").read_text().split("\n")[0])
    assert "language" in kql("help").stdout
    wrong = kql("help", "langage")
    assert wrong.returncode == 2 and "did you mean 'language'?" in wrong.stderr
    # Links between guides become commands a pip user can run.
    assert "(kql help planner)" in kql_help.text("executor")


@pytest.mark.parametrize("command", [[], ["compile"], ["run"], ["explain"]])
def test_help_has_examples_and_no_docs_paths(command: list[str]) -> None:
    done = kql(*command, "--help")
    assert done.returncode == 0 and "examples:" in done.stdout
    assert "docs/" not in done.stdout


def test_complete_does_not_build_every_parser_nor_import_httpx() -> None:
    code = (
        "import sys, io, contextlib; from kql.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): rc = main(['complete', 'has_t'])\n"
        "assert 'httpx' not in sys.modules and 'kql.cli.run' not in sys.modules, sorted(sys.modules)\n"
        "raise SystemExit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---- layout, without a terminal ---------------------------------------------------------------


def _lines(records: list[dict[str, object]], width: int | None, fields: list[str] | None = None) -> list[str]:
    table = Table(fields)
    table.extend(records)
    return [line.rstrip("\n") for line in table.lines(width)]


LONG = [
    {"id": str(374_512_000 + i), "name": "Björn Smith-Longername " * 3, "email": f"someone.long{i}@outlook.com",
     "net_revenue": "1234.50" if i else "5", "created_at": "2021-12-07T09:26:20Z"}
    for i in range(300)
]  # fmt: skip


@pytest.mark.parametrize("width", [60, 80, 200])
def test_widths_come_from_every_row_and_ids_are_never_cut(width: int) -> None:
    records = [*LONG, {"id": "123456789012", "name": "late", "email": "x@y", "net_revenue": "1", "created_at": ""}]
    lines = _lines(records, width)
    assert all(display_width(line) <= width for line in lines)
    assert [line.split()[0] for line in lines[2:]] == [r["id"] for r in records]  # the 301st id too


def test_text_gives_way_before_dates_and_numbers_never() -> None:
    _, _, first, *_ = _lines(LONG, 80)
    assert "2021-12-07T09:26:20Z" in first and "1234.50" not in first and first.split()[-2] == "5"
    assert "…" in first
    _, _, first, *_ = _lines(LONG, 55)
    assert first.endswith("2021-12-07…")  # the date part is kept
    _, _, first, *_ = _lines(LONG, 40)  # too narrow even then: wider, never an id cut
    assert first.startswith("374512000  ") and first.split()[-2] == "5"


def test_wide_characters_and_control_characters() -> None:
    lines = _lines([{"id": "1", "name": "日本語の名前です\x1b[31m", "email": "a\nb"}], 200, ["name", "email"])
    assert "\x1b" not in "".join(lines) and "a b" in lines[2]
    assert clip("日本語の名前", 7) == "日本語…" and display_width(clip("日本語の名前", 7)) == 7


def test_an_empty_table_has_its_header() -> None:
    assert _lines([], 80)[0].split() == ["id", "name", "email", "net_revenue", "created_at"]
    assert _lines([], 80, ["email"])[0].split() == ["id", "email"]


def test_spooled_rows_beyond_memory_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kql.cli.render.SPOOL_BYTES", 1024)  # force the temporary file
    lines = _lines(LONG, None)
    assert [line.split()[0] for line in lines[2:]] == [r["id"] for r in LONG]


def test_shell_words() -> None:
    word = last_word("kql compile 'site = 1 and has_t")
    assert (word.text, word.quote, word.before) == ("site = 1 and has_t", "'", "")
    word = last_word('kql run x"name ~ \\"sm')
    assert (word.text, word.quote, word.before) == ('xname ~ "sm', '"', "x")
    assert last_word("kql compile has_tag\\(5\\) ").text == ""
    assert last_word("kql compile has_tag\\(5").text == "has_tag(5"


class _Stream:
    total_pages, total_count, pages_fetched, yielded = 10, 1000, 5, 500


def test_progress_line_has_rate_and_eta() -> None:
    bar = ProgressBar(_Stream(), io.StringIO())
    line = bar.line(2.0)
    assert "5/10 pages" in line and "500 customers" in line and "250/s" in line and "ETA 0:02" in line
    assert ProgressBar(_Stream(), io.StringIO(), limit=600).eta(2.0, 250.0) == pytest.approx(0.4)
    assert format_seconds(3725) == "1:02:05" and format_seconds(7) == "0:07"

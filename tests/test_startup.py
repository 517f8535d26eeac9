"""Start-up: what the commands a shell runs often import, and kql's cache of derived data.

No timings here (bench/startup.py measures those): these tests check the mechanisms, that a
segment-free ``kql compile`` and a TAB's ``kql complete`` do not import what they do not use,
and that a missing, stale, corrupt or unwritable cache is never an error.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kql import _cache
from kql.registry.loader import load_registry, registry

# Imported by neither command once the cache is warm (lark generates the parser the first time).
NOT_FOR_COMPILE = {
    "lark",  # the parser's tables are plain data, loaded from the cache and run by kql.language.lalr
    "logging",  # imported by Lark's runtime (standalone or not): its code never runs on a warm start
    "pickle",
    "tomllib",  # the registry's parsed TOML is cached
    "pathlib",
    "platformdirs",
    "httpx",
    "json",  # only --json prints JSON
    "kql.planning.segments",  # no @name in the query: no segments file
    "kql.planning.segments_file",
    "kql.planning.names",  # names are resolved by kql run, not kql compile
    "kql.cli.run",  # kql run's options are not built for kql compile
    "kql.cli.completion_scripts",
    "urllib.parse",  # only a value that needs escaping is quoted
    "ipaddress",  # (urllib.parse imports it)
    "datetime",  # only a query with a date reads one, or asks what day it is
    "shutil",  # argparse's formatter would import it for the terminal's width (kql.cli.helpformat)
}
NOT_FOR_COMPLETE = NOT_FOR_COMPILE - {"kql.cli.completion_scripts"} | {
    "kql.planning.validate",
    "kql.planning.planner",
    "kql.language.parser",  # completion recognises a prefix over the tables: it builds no tree
    "kql.language.ast",
}


def _imported(argv: list[str], cache: Path) -> set[str]:
    """The modules ``kql ARGV`` has imported when it ends (run twice: the first fills the cache)."""
    code = (
        "import sys\n"
        "from kql.cli.app import main\n"
        "status = main(sys.argv[1:])\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write(repr(sorted(sys.modules)))\n"  # repr, not json: json is on the list
        "raise SystemExit(status)\n"
    )
    env = {**os.environ, "KQL_CACHE_DIR": str(cache)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return set(ast.literal_eval(done.stderr))


def test_compile_without_segments_imports_only_what_it_uses(tmp_path: Path) -> None:
    loaded = _imported(["compile", "site = 123 and has_tag(5) and net_revenue > 100"], tmp_path)
    assert "kql.planning.compiler" in loaded  # the command did run
    assert sorted(NOT_FOR_COMPILE & loaded) == []


def test_a_query_without_amounts_does_not_import_decimal(tmp_path: Path) -> None:
    assert "decimal" not in _imported(["compile", "has_tag(5) and opened(bc_9)"], tmp_path)
    assert "decimal" in _imported(["compile", "net_revenue > 100 and net_revenue > 50"], tmp_path)


def test_the_command_takes_what_its_imports_made_out_of_the_collectors_sight() -> None:
    code = "import gc, sys\nfrom kql.cli.app import main\nsys.argv = ['kql', 'compile', 'x = 1']\nstatus = main()\n"
    done = subprocess.run(
        [sys.executable, "-c", code + "print(gc.get_freeze_count() > 1000)"], capture_output=True, text=True
    )
    assert done.stdout.split()[-1] == "True", done.stderr
    # A caller of main(argv) in its own process (a test, an embedding) keeps its collector as it was.
    done = subprocess.run(
        [sys.executable, "-c", code.replace("main()", "main(['compile', 'x = 1'])") + "print(gc.get_freeze_count())"],
        capture_output=True,
        text=True,
    )
    assert done.stdout.split()[-1] == "0", done.stderr


def test_a_tab_imports_only_what_completion_uses(tmp_path: Path) -> None:
    line = "kql compile 'site = 1 and has_t"
    loaded = _imported(["complete", "--shell", "bash", "--word", line[13:], "--", line], tmp_path)
    assert "kql.language.completion" in loaded
    assert sorted(NOT_FOR_COMPLETE & loaded) == []


def test_a_segment_query_still_reads_the_segments_file(tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text('[segments.vip]\nquery = "net_revenue > 500"\n', encoding="utf-8")
    env = {**os.environ, "KQL_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "kql", "compile", "@vip"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "filter[net_revenue_greater_than]=500"


@pytest.mark.parametrize("columns", ["", "40", "200", "junk"])
def test_help_is_formatted_as_argparse_formats_it(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    import argparse

    from kql.cli import app, helpformat

    monkeypatch.setenv("COLUMNS", columns)
    helpformat.columns.cache_clear()
    try:
        ours = app._parser(None)
        monkeypatch.setattr(app, "RawDescriptionHelpFormatter", argparse.RawDescriptionHelpFormatter)
        theirs = app._parser(None)
        assert ours.format_help() == theirs.format_help()
        for name, sub in app._commands(ours).choices.items():
            assert sub.format_help() == app._commands(theirs).choices[name].format_help(), name
    finally:
        helpformat.columns.cache_clear()


# ---- the cache ----------------------------------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(_cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_stored_value_comes_back_for_the_same_sources_only(cache_dir: Path) -> None:
    assert _cache.load("thing", ("source v1",)) is None
    assert _cache.store("thing", ("source v1",), {"a": [1, 2, ("x", None)]})
    assert _cache.load("thing", ("source v1",)) == {"a": [1, 2, ("x", None)]}
    assert _cache.load("thing", ("source v2",)) is None  # stale: its source changed


@pytest.mark.parametrize("content", [b"", b"\x00garbage", b"\xe9" * 100])
def test_a_corrupt_file_is_a_miss(cache_dir: Path, content: bytes) -> None:
    assert _cache.store("thing", ("s",), [1, 2, 3])
    (path,) = cache_dir.iterdir()
    path.write_bytes(content)
    assert _cache.load("thing", ("s",)) is None


def test_a_truncated_file_is_a_miss(cache_dir: Path) -> None:
    assert _cache.store("thing", ("s",), list(range(1000)))
    (path,) = cache_dir.iterdir()
    path.write_bytes(path.read_bytes()[:-50])
    assert _cache.load("thing", ("s",)) is None


def test_an_unwritable_place_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    monkeypatch.setenv(_cache.ENV, str(blocker / "cache"))
    assert _cache.store("thing", ("s",), [1]) is False
    assert _cache.load("thing", ("s",)) is None


def test_a_value_marshal_cannot_keep_is_not_stored(cache_dir: Path) -> None:
    assert _cache.store("thing", ("s",), object()) is False
    assert _cache.load("thing", ("s",)) is None
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["corrupt", "unwritable"])
def test_kql_works_whatever_state_its_cache_is_in(tmp_path: Path, damage: str) -> None:
    if damage == "corrupt":
        cache = tmp_path / "cache"
        env = {**os.environ, "KQL_CACHE_DIR": str(cache)}
        subprocess.run([sys.executable, "-m", "kql", "compile", "x = 1"], env=env, capture_output=True, check=False)
        files = list(cache.iterdir())
        assert {f.name.split(".")[0] for f in files} == {"kql-parser", "kql-registry"}
        for file in files:
            file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])
    else:
        (tmp_path / "file").write_text("", encoding="utf-8")
        env = {**os.environ, "KQL_CACHE_DIR": str(tmp_path / "file" / "cache")}
    for text, expected in [("has_tag(5)", "filter[has_tag_id]=5"), ("has_tag(5", "")]:
        done = subprocess.run([sys.executable, "-m", "kql", "compile", text], env=env, capture_output=True, text=True)
        assert done.stdout.strip() == expected
        assert "Traceback" not in done.stderr
        assert done.returncode == (0 if expected else 2)


def test_the_registry_from_the_cache_is_the_registry_of_the_toml() -> None:
    text = (Path(__file__).parent.parent / "kql" / "registry" / "registry.toml").read_text(encoding="utf-8")
    registry.cache_clear()
    try:
        assert registry() == load_registry(text)  # whether this run read the cache or filled it
        assert registry.__wrapped__() == load_registry(text)  # and again, now from the cache
    finally:
        registry.cache_clear()


def test_nothing_is_written_beside_the_sources_when_python_is_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(_cache.ENV, raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(_cache, "_user_dir", lambda: str(tmp_path / "user"))
    assert _cache.store("thing", ("s",), [1])
    assert [p.name for p in (tmp_path / "user").iterdir()] == [_cache._file_name("thing")]
    assert _cache.load("thing", ("s",)) == [1]


def test_the_parser_tables_come_from_the_cache_until_their_sources_change(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kql.language import tables

    made = tables.tables.__wrapped__()  # a cold cache: generated with Lark, and stored
    assert [p.name.split(".")[0] for p in cache_dir.iterdir()] == ["kql-parser"]

    def no_lark(text: str) -> None:
        raise AssertionError("generated again")

    monkeypatch.setattr(tables, "generate", no_lark)
    assert tables.tables.__wrapped__() == made  # warm: read back, not generated
    grammar = tables.grammar()
    monkeypatch.setattr(tables, "grammar", lambda: grammar + "\n// edited\n")  # the grammar changed
    with pytest.raises(AssertionError, match="generated again"):
        tables.tables.__wrapped__()
    monkeypatch.setattr(tables, "grammar", lambda: grammar)
    generator = cache_dir.parent / "lexer.py"  # so did the code the tables are derived by
    generator.write_text("", encoding="utf-8")
    monkeypatch.setattr(tables, "_generator_files", lambda: (str(generator),))
    with pytest.raises(AssertionError, match="generated again"):
        tables.tables.__wrapped__()

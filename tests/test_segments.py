"""Saved segments: expansion, cycles, errors with file and line, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kql
from kql.planning.segments import find, from_text

SEGMENTS = '''\
# Saved segments
[segments.vip]
query = "net_revenue > 500 and has_tag(tag_5)"
description = "Top spenders"

[segments.recent_vip]
query = "@vip and created_in_last(30d)"

[segments.top]
query = "@vip sort -net_revenue limit 10"

[segments.multi]
query = """
subscribed and
  opend(bc_9)"""
'''


@pytest.fixture
def segments() -> kql.Segments:
    return from_text(SEGMENTS, "kql.toml")


def test_expansion_anywhere_in_a_query(segments: kql.Segments) -> None:
    compiled = kql.compile("hidden and @recent_vip", segments=segments)
    assert compiled.params == [
        ("filter[is_hidden]", "true"),
        ("filter[net_revenue_greater_than]", "500"),
        ("filter[has_tag_id]", "5"),
        ("filter[created_in_last]", "30"),
    ]


def test_a_segment_alone_brings_its_clauses_and_the_query_overrides_them(segments: kql.Segments) -> None:
    compiled = kql.compile("@top", segments=segments)
    assert (compiled.sort, compiled.limit) == ("-net_revenue", 10)
    compiled = kql.compile("@top sort name limit 3", segments=segments)
    assert (compiled.sort, compiled.limit) == ("name", 3)


def test_a_segment_with_clauses_inside_an_expression_is_an_error(segments: kql.Segments) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("subscribed and @top", segments=segments)
    assert caught.value.code == "E014"
    assert caught.value.span is not None and (caught.value.span.start, caught.value.span.end) == (15, 19)


def test_unknown_segment_suggests_the_closest(segments: kql.Segments) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("@vp", segments=segments)
    assert caught.value.code == "E106"
    assert caught.value.hint == "did you mean '@vip'?"


def test_without_a_segments_file_the_hint_says_how_to_give_one() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("@vip")
    assert caught.value.code == "E106"
    assert caught.value.hint and "--segments" in caught.value.hint


def test_cycles_are_an_error_naming_the_cycle() -> None:
    segments = from_text(
        '[segments.a]\nquery = "@b and subscribed"\n[segments.b]\nquery = "@c"\n'
        '[segments.c]\nquery = "hidden and @a"\n',
        "s.toml",
    )
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("@a", segments=segments)
    assert caught.value.code == "E013"
    assert "@a -> @b -> @c -> @a" in caught.value.message
    assert str(caught.value).startswith("s.toml:6: in segment 'c'")


def test_errors_inside_a_segment_name_file_and_line(segments: kql.Segments) -> None:
    problems = segments.check()
    assert len(problems) == 1
    (problem,) = problems
    assert problem.code == "E102"
    rendered = str(problem)
    # The string opens on line 13; its first line is 14 and 'opend' sits on line 15.
    assert rendered.splitlines()[0] == "kql.toml:15: in segment 'multi'"
    assert "^^^^^" in rendered


def test_check_collects_every_problem() -> None:
    segments = from_text(
        '[segments.a]\nquery = "opend(bc_1) and @nope and has_tag(bc_1)"\n[segments.b]\nquery = "sort foo"\n', "f.toml"
    )
    assert [p.code for p in segments.check()] == ["E102", "E106", "E202", "E103"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[segments.a\nquery = 1", "not valid TOML"),
        ("[segments.a]\nquery = 5\n", "f.toml:2: segment 'a' needs query"),
        ('[segments."a b"]\nquery = "x"\n', "cannot be a segment name"),
        ('[segments.a]\nquery = "x"\ncolour = "red"\n', "unknown keys: colour"),
        ("[other]\nx = 1\n", "expected only a [segments] table"),
    ],
)
def test_bad_segments_files(text: str, message: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        from_text(text, "f.toml")
    assert caught.value.code == "E012"
    assert message in caught.value.message


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KQL_SEGMENTS", raising=False)
    assert find(None) is None
    (tmp_path / "kql.toml").write_text("")
    assert find(None) == Path("kql.toml")
    monkeypatch.setenv("KQL_SEGMENTS", "/elsewhere.toml")
    assert find(None) == Path("/elsewhere.toml")
    assert find("given.toml") == Path("given.toml")


def _kql(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kql", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_cli(tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text(SEGMENTS)
    listed = _kql("segments", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["@vip", "Top", "spenders"]
    shown = _kql("segments", "show", "@recent_vip", cwd=tmp_path)
    assert "filter[created_in_last]=30" in shown.stdout
    assert _kql("compile", "@vip", cwd=tmp_path).stdout.strip() == (
        "filter[net_revenue_greater_than]=500&filter[has_tag_id]=5"
    )
    checked = _kql("segments", "check", cwd=tmp_path)
    assert checked.returncode == 2
    assert "kql.toml:15: in segment 'multi'" in checked.stderr
    good = tmp_path / "good.toml"
    good.write_text('[segments.a]\nquery = "subscribed"\n')
    ok = _kql("segments", "--segments", str(good), "check", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "1 segments ok"
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    assert _kql("compile", "@a", cwd=elsewhere, env={"KQL_SEGMENTS": str(good)}).stdout.strip() == (
        "filter[subscribed]=true"
    )
    # kql.toml is found in a parent directory, as git and ruff find theirs…
    assert _kql("segments", "list", cwd=elsewhere).stdout.splitlines()[0].split()[0] == "@vip"
    # …but not above a repository's root.
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "deep").mkdir()
    missing = _kql("segments", "list", cwd=repo / "deep")
    assert missing.returncode == 2 and "no segments file" in missing.stderr

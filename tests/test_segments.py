"""Saved segments: expansion, cycles, errors with file and line, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kql
from kql.language import ast
from kql.planning.segments_file import find, from_text

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


# ---- untrusted segments files (issue 11, items 6-8) ------------------------------------


def _chain(count: int, body: str = "@s{next}", last: str = "subscribed") -> str:
    """``count`` segments s0 … s{count-1}, each using the next through ``body``; the last is ``last``."""
    parts = [f'[segments.s{i}]\nquery = "{body.format(next=i + 1)}"\n' for i in range(count - 1)]
    parts.append(f'[segments.s{count - 1}]\nquery = "{last}"\n')
    return "".join(parts)


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count how often a segment is parsed and how often one is expanded."""
    from kql.planning import segments as module

    counts = {"parsed": 0, "expanded": 0}
    parse, finish = module._parse, module._Expander.finish

    def counted_parse(segment: module.Segment) -> kql.Query:
        counts["parsed"] += 1
        return parse(segment)

    def counted_finish(self: module._Expander, segment: module.Segment) -> None:
        counts["expanded"] += 1
        finish(self, segment)

    monkeypatch.setattr(module, "_parse", counted_parse)
    monkeypatch.setattr(module._Expander, "finish", counted_finish)
    return counts


def test_a_segment_used_twice_at_every_level_is_expanded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _counting(monkeypatch)
    segments = from_text(_chain(9, "@s{next} or @s{next}"), "s.toml")
    expanded = segments.expand(kql.parse("@s0"))
    assert expanded.filter is not None
    leaves = [n for n in ast.walk(expanded.filter) if isinstance(n, ast.Flag)]
    assert len(leaves) == 2**8  # the tree is written out in full …
    assert counts == {"parsed": 9, "expanded": 9}  # … but each segment is expanded once


def test_an_expansion_longer_than_a_query_may_be_is_refused_before_it_is_built() -> None:
    # Written out, @s0 would be 2**40 copies of `subscribed`: built, it would never finish.
    segments = from_text(_chain(41, "@s{next} or @s{next}"), "s.toml")
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("@s0", segments=segments)
    assert caught.value.code == "E006"
    assert "written out in full" in caught.value.message and "10,000" in caught.value.message
    assert isinstance(caught.value, kql.KQLError) and "in segment 's" in str(caught.value)


def test_a_chain_up_to_the_documented_length_works() -> None:
    from kql.planning.segments import MAX_CHAIN

    segments = from_text(_chain(MAX_CHAIN), "s.toml")
    assert kql.compile("@s0", segments=segments).params == [("filter[subscribed]", "true")]
    assert segments.check() == []


@pytest.mark.parametrize("count", [65, 489, 5_000])
def test_a_longer_chain_is_an_error_naming_it(count: int) -> None:
    segments = from_text(_chain(count), "s.toml")
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("@s0", segments=segments)
    assert caught.value.code == "E007"
    assert "chain of more than 64 segments" in caught.value.message
    assert f"@s{count - 65} -> @s{count - 64} -> @s{count - 63} -> … -> @s{count - 1}" in caught.value.message
    assert [p.code for p in segments.check()] == ["E007"]  # one problem, reported once


@pytest.mark.parametrize("count", [3, 2_000])
def test_a_long_cycle_is_an_error_naming_it(count: int) -> None:
    segments = from_text(_chain(count, last="@s0"), "s.toml")
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("hidden and @s1", segments=segments)
    assert caught.value.code == "E013"
    assert caught.value.message.endswith(f"@s{count - 1} -> @s0 -> @s1")
    assert [p.code for p in segments.check()] == ["E013"]


def test_check_expands_each_segment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # 4,000 segments in chains of 40: quadratic work would be 16 million expansions.
    text = "".join(
        f'[segments.s{i}]\nquery = "{"subscribed" if i % 40 == 39 else f"hidden or @s{i + 1}"}"\n'
        for i in range(4_000)
    )
    segments = from_text(text, "s.toml")
    counts = _counting(monkeypatch)
    assert segments.check() == []
    assert counts == {"parsed": 4_000, "expanded": 4_000}


def test_an_expansion_nested_too_deep_names_the_segment() -> None:
    segments = from_text(_chain(70, "hidden and not @s{next}"), "s.toml")
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("@s0", segments=segments)
    assert caught.value.code == "E007"
    assert "levels of nesting" in caught.value.message


def test_problems_of_a_segments_file_are_reported_at_once_with_lines_and_suggestions() -> None:
    text = '[segments.a]\nquery = "subscribed"\ndescripton = "x"\n\n[segments.b]\nquery = 5\n[other]\nx = 1\n'
    with pytest.raises(kql.KQLError) as caught:
        from_text(text, "f.toml")
    messages = [(e.code, e.message, e.hint) for e in caught.value.errors]
    assert messages[0][:2] == ("E012", "f.toml:7: expected only a [segments] table, found other")
    assert messages[1][:2] == ("E012", "f.toml:3: segment 'a' has unknown keys: descripton")
    assert messages[1][2] == "did you mean 'description' (for 'descripton')?"
    assert messages[2][:2] == ("E012", "f.toml:6: segment 'b' needs query = \"…\"")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[segments.a]\nquery = "subscribed"\n# caf\xe9\n', "s.toml:3: not UTF-8 text (byte 0xe9 at column 6)"),
        (b"x = " + b"[" * 50_000, "s.toml: nested too deeply to read"),
        (b"x = " + b"9" * 5_000, "s.toml: not valid TOML"),
        (b'[segments.a]\nquery = "x"\ndescripton = "y"\n', "segment 'a' has unknown keys: descripton"),
    ],
)
def test_a_broken_discovered_file_only_matters_to_queries_that_use_segments(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "s.toml").write_bytes(content)
    (tmp_path / "kql.toml").write_bytes(content)
    with pytest.raises(kql.KQLError) as caught:
        kql.load_segments(tmp_path / "s.toml")
    assert caught.value.code == "E012" and message in caught.value.message
    env = {"KQL_SEGMENTS": ""}
    for command in ("compile", "check", "explain"):
        ok = _kql(command, "subscribed", cwd=tmp_path, env=env)
        assert ok.returncode == 0, ok.stderr
    used = _kql("compile", "@a", cwd=tmp_path, env=env)
    assert used.returncode == 2 and "error[E012]" in used.stderr and "Traceback" not in used.stderr
    given = _kql("compile", "subscribed", "--segments", "kql.toml", cwd=tmp_path, env=env)
    assert given.returncode == 2 and "error[E012]" in given.stderr  # a file given explicitly is always read


def _naive(segments: dict[str, str], name: str, seen: tuple[str, ...] = ()) -> ast.Expr | None:
    """The obvious expansion (recursive, exponential): the reference the expander must agree with."""
    if name in seen or name not in segments:
        return None
    parsed = kql.parse(segments[name]).filter

    def sub(node: ast.Expr) -> ast.Expr | None:
        if isinstance(node, ast.SegmentRef):
            return _naive(segments, node.name, (*seen, name))
        if isinstance(node, ast.And | ast.Or):
            items = [sub(i) for i in node.items]
            return None if None in items else type(node)(tuple(i for i in items if i is not None))
        if isinstance(node, ast.Not):
            item = sub(node.item)
            return None if item is None else ast.Not(item)
        return node

    return None if parsed is None else sub(parsed)


_bodies = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from([" and ", " or ", " and not "])), min_size=1, max_size=3
).map(lambda parts: "".join(f"{op}@s{i}" for i, op in parts)[len(parts[0][1]) :])


@settings(max_examples=200)
@given(st.lists(st.one_of(_bodies, st.sampled_from(["subscribed", "hidden", "not hidden"])), min_size=1, max_size=6))
def test_expansion_agrees_with_the_naive_one(bodies: list[str]) -> None:
    named = {f"s{i}": body for i, body in enumerate(bodies)}
    segments = from_text("".join(f'[segments.{n}]\nquery = "{q}"\n' for n, q in named.items()), "s.toml")
    expected = _naive(named, "s0")
    try:
        expanded = segments.expand(kql.parse("@s0"))
    except kql.KQLError as error:
        assert expected is None or error.code in {"E006", "E007"}, error.render()
        return
    assert expanded.filter == expected

"""Completion: the right kinds of candidates at every position, and nothing that would not parse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import kql
from kql.language.completion import Completion, complete
from kql.language.lexer import BAD_CHARACTER
from kql.language.tables import lexer
from kql.planning.segments_file import from_text
from tests.lark_reference import lark_accepts

QUERIES = [
    "site=123 and net_revenue>100 and opened(bc_9) and not has_tag(tag_5) sort -created_at",
    'engagement = healthy or (email ~ "@example.com" and created_in_last(30d)) select name, email limit 10',
    "site in (1, 2) and bounced_at is not null and not sent(bc_1, bc_2) page 2 size 25",
    'used_coupon("SPRING24") and @vip',
]
SEGMENTS = from_text('[segments.vip]\nquery = "net_revenue > 500"\ndescription = "Top spenders"\n')


def _parses_as_prefix(text: str) -> bool:
    """True when ``text`` can be continued into a valid query (an open string counts), as Lark's
    own interactive parser says (not kql's recogniser, which completion itself uses)."""
    tokens = list(lexer().lex(text))
    if tokens and tokens[-1].type == BAD_CHARACTER:
        if str(tokens[-1]) not in "\"'":
            return False
        tokens = tokens[:-1]
    return lark_accepts(tokens) is not None


@pytest.mark.parametrize("query", QUERIES)
def test_every_position_gives_only_candidates_that_parse(query: str) -> None:
    for cursor in range(len(query) + 1):
        for completion in complete(query, cursor, segments=SEGMENTS):
            assert completion.end == cursor
            candidate = query[: completion.start] + completion.insert
            assert _parses_as_prefix(candidate), (cursor, completion)


@pytest.mark.parametrize(
    ("text", "kind", "labels"),
    [
        ("", "filter", {"subscribed", "has_tag", "opened", "search"}),
        ("", "field", {"site", "net_revenue", "engagement", "sign_in_count"}),
        ("site = 1 and op", "filter", {"opened", "opened_email_in_last", "opted_out_in_last"}),
        ("site = 1 an", "keyword", {"and"}),
        ("site = 1 ", "keyword", {"and", "or", "sort", "select", "limit", "page"}),
        ("net_revenue ", "operator", {"=", ">", "<", ">=", "<=", "!="}),
        ("engagement = ", "value", {"healthy", "passive", "unengaged", "inactive"}),
        ("engagement = pa", "value", {"passive"}),
        ("opened(", "id_kind", {"bc_"}),
        ("has_tag(tag_5, ", "id_kind", {"tag_"}),
        ("site = ", "id_kind", {"site_"}),
        ("created_in_last(", "value", {"30d"}),
        ("subscribed sort ", "sort_key", {"name", "email", "created_at", "net_revenue", "last_request_at"}),
        ("subscribed sort -la", "sort_key", {"last_request_at"}),
        ("subscribed select name, ", "field", {"email", "sign_in_count", "created_at"}),
        ("bounced_at is ", "keyword", {"null", "not"}),
        ("hidden and @", "segment", {"@vip"}),
        ('used_coupon("SPR', "punctuation", {'"'}),
    ],
)
def test_candidates_by_context(text: str, kind: str, labels: set[str]) -> None:
    found = {c.label for c in complete(text, segments=SEGMENTS) if c.kind == kind}
    assert labels <= found, found


def test_operators_fit_the_field() -> None:
    assert {c.label for c in complete("city ") if c.kind == "operator"} == {"~"}
    assert "~" not in {c.label for c in complete("net_revenue ")}
    assert {c.label for c in complete("has_tag ") if c.kind == "punctuation"} == {"("}


def test_half_typed_word_is_replaced() -> None:
    (completion,) = complete("site = 1 and hard_b")
    assert completion == Completion(
        "hard_bouncing", "filter", "hard_bouncing", completion.description, start=13, end=19
    )


def test_cursor_in_the_middle() -> None:
    text = "site = 1 and opened(bc_9)"
    labels = {c.label for c in complete(text, cursor=14)}  # after "o" of "opened"
    assert "opened" in labels and "opted_out_in_last" in labels


def test_nothing_after_an_error_and_no_crash_on_anything() -> None:
    assert complete("site = = ") == []
    assert complete("$") == []
    for text in ["", "(", ")", '"', "'", "@", "not not", "sort -", "x in (", "a ==", "page 1 size "]:
        for cursor in range(len(text) + 1):
            complete(text, cursor)


def test_cli_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kql", "complete", "--json", "engagement = h"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    (item,) = json.loads(done.stdout)
    assert item["label"] == "healthy" and item["kind"] == "value" and (item["start"], item["end"]) == (13, 14)


def test_bash_completion_script() -> None:
    script = subprocess.run(
        [sys.executable, "-m", "kql", "completion", "bash"], capture_output=True, text=True, timeout=60
    ).stdout

    def reply(*words: str) -> list[str]:
        typed = " ".join(words)
        probe = f'{script}\nCOMP_WORDS=(kql {typed}); COMP_CWORD={len(words)}; _kql; echo "${{COMPREPLY[@]}}"'
        root = Path(__file__).resolve().parent.parent  # file names complete from the repository root
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, cwd=root)
        return done.stdout.split()

    assert reply("com") == ["compile", "complete", "completion"]
    # run and sandbox parse their own options; the script still knows them.
    assert {"--sandbox", "--format", "--max-requests"} <= set(reply("run", "--"))
    assert "--customers" in reply("sandbox", "--c")
    # Option values: choices, and file names where a file is expected.
    assert reply("run", "--format", "n") == ["ndjson"]
    assert "pyproject.toml" in reply("run", "-o", "pyproj")


def test_complete_is_exported() -> None:
    assert kql.complete("site = 1 an")[0].label == "and"

"""``kql lsp`` driven as an editor drives it: a real subprocess, JSON-RPC over its stdio."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lsp_client import WAIT, LSPClient

pytest.importorskip("pygls", reason="kql lsp needs the lsp extra")

SEGMENTS = """\
# segments for the language server tests
[segments.vip]
query = "net_revenue > 500 and has_tag(tag_5)"
description = "Top spenders"

[segments.recent_vip]
query = "@vip and created_in_last(30d)"
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    (root / "kql.toml").write_text(SEGMENTS, encoding="utf-8")
    (root / "queries").mkdir()
    return root


@pytest.fixture(scope="module")
def client(workspace: Path) -> Iterator[LSPClient]:
    lsp = LSPClient(workspace)
    lsp.initialize(workspace)
    yield lsp
    assert lsp.close() == 0, lsp.stderr.decode(errors="replace")
    # Handlers log what they swallow: nothing may have failed on the way.
    assert b"Traceback" not in lsp.stderr, lsp.stderr.decode(errors="replace")


def _range(d: dict[str, object]) -> tuple[int, int, int, int]:
    r = d["range"]
    assert isinstance(r, dict)
    return (r["start"]["line"], r["start"]["character"], r["end"]["line"], r["end"]["character"])


def test_initialize_announces_every_feature(workspace: Path) -> None:
    lsp = LSPClient(workspace)
    try:
        result = lsp.initialize(workspace)
    finally:
        assert lsp.close() == 0
    capabilities = result["capabilities"]
    assert result["serverInfo"]["name"] == "kql"
    for feature in ("hoverProvider", "definitionProvider", "documentFormattingProvider", "codeActionProvider"):
        assert capabilities.get(feature), feature
    assert "@" in capabilities["completionProvider"]["triggerCharacters"]
    assert capabilities["textDocumentSync"]["change"] == 1  # Full


def test_all_errors_at_once_with_exact_ranges(client: LSPClient, workspace: Path) -> None:
    diagnostics = client.open(workspace / "queries" / "two.kql", "site=123 and opend(bc_9) and created_in_last(3m)\n")
    assert [(d["code"], _range(d), d["severity"], d["source"]) for d in diagnostics] == [
        ("E102", (0, 13, 0, 18), 1, "kql"),
        ("E203", (0, 45, 0, 47), 1, "kql"),
    ]
    assert "hint: did you mean 'opened' or 'dropped'?" in diagnostics[0]["message"]


def test_columns_count_utf16_units_and_lines(client: LSPClient, workspace: Path) -> None:
    # The emoji is two UTF-16 code units; the error is on the second line (after \r\n).
    text = 'name ~ "😀" and subscribed\r\n  and opend(bc_9)'
    diagnostics = client.open(workspace / "queries" / "wide.kql", text)
    assert [_range(d) for d in diagnostics] == [(1, 6, 1, 11)]
    diagnostics = client.open(workspace / "queries" / "wide2.kql", '"😀" and opend(1)')
    assert [_range(d) for d in diagnostics] == [(0, 9, 0, 14)]


def test_runnable_queries_are_not_errors(client: LSPClient, workspace: Path) -> None:
    # Several requests (or), a local predicate, names that kql run resolves: all runnable.
    text = '(opened(bc_1) or opened(bc_2)) and sign_in_count > 5 and has_tag("VIP")\n'
    assert client.open(workspace / "queries" / "plan.kql", text) == []
    assert client.open(workspace / "queries" / "empty.kql", "") == []


def test_warnings_and_changes(client: LSPClient, workspace: Path) -> None:
    path = workspace / "queries" / "change.kql"
    diagnostics = client.open(path, "suppressed")
    assert [(d["code"], d["severity"]) for d in diagnostics] == [("W001", 2)]
    assert client.change(path, "subscribed and nope", 2)[0]["code"] == "E102"
    assert client.change(path, "subscribed", 3) == []


def test_segments_from_the_kql_toml_above(client: LSPClient, workspace: Path) -> None:
    path = workspace / "queries" / "seg.kql"
    assert client.open(path, "@recent_vip and subscribed") == []
    diagnostics = client.change(path, "@vpi and subscribed", 2)
    assert [(d["code"], _range(d)) for d in diagnostics] == [("E106", (0, 0, 0, 4))]
    assert "did you mean '@vip'?" in diagnostics[0]["message"]


def test_segments_file_diagnostics_map_into_the_toml_string(client: LSPClient, tmp_path: Path) -> None:
    text = (
        "[segments.a]\n"
        'query = "email ~ \\"@x.com\\" and opend(bc_9)"\n'  # two escapes before the error
        "\n"
        "[segments.b]\n"
        'query = """\n'
        "opened_email_in_last(365d)\n"
        "  and not opend_email_in_last(90d)   # gone quiet\n"
        '"""\n'
        "[segments.c]\n"
        "query = '@a and @nope'\n"
    )
    diagnostics = client.open(tmp_path / "kql.toml", text, language="toml")
    found = sorted((d["code"], _range(d)) for d in diagnostics)
    line = 'query = "email ~ \\"@x.com\\" and opend(bc_9)"'
    assert found == [
        ("E102", (1, line.index("opend"), 1, line.index("opend") + 5)),
        ("E102", (6, 10, 6, 29)),
        ("E106", (9, 16, 9, 21)),
    ]


def test_broken_toml_is_one_diagnostic_where_toml_stopped(client: LSPClient, tmp_path: Path) -> None:
    diagnostics = client.open(tmp_path / "kql.toml", '[segments.a]\nquery = "subscribed\n', language="toml")
    assert len(diagnostics) == 1
    assert diagnostics[0]["code"] == "E012" and _range(diagnostics[0])[0] == 1
    assert client.open(tmp_path / "pyproject.toml", "[project]\nname = 1\n", language="toml") == []


def test_completion(client: LSPClient, workspace: Path, tmp_path: Path) -> None:
    path = workspace / "queries" / "complete.kql"
    client.open(path, "subscribed and has_t")
    items = client.at("textDocument/completion", path, 0, 20)["items"]
    tag = next(i for i in items if i["label"] == "has_tag")
    assert tag["textEdit"]["range"] == {"start": {"line": 0, "character": 15}, "end": {"line": 0, "character": 20}}
    assert tag["kind"] == 3  # Function
    client.change(path, "@", 2)
    labels = {i["label"] for i in client.at("textDocument/completion", path, 0, 1)["items"]}
    assert {"@vip", "@recent_vip"} <= labels
    # Inside a segments file: the query of the string under the cursor, edits in file positions.
    toml = tmp_path / "kql.toml"
    client.open(toml, '[segments.a]\nquery = "subscribed and has_t"\n', language="toml")
    items = client.at("textDocument/completion", toml, 1, 29)["items"]
    tag = next(i for i in items if i["label"] == "has_tag")
    assert tag["textEdit"]["range"] == {"start": {"line": 1, "character": 24}, "end": {"line": 1, "character": 29}}
    assert client.at("textDocument/completion", toml, 0, 3) is None  # not in a query


def test_hover_names_description_type_and_parameter(client: LSPClient, workspace: Path) -> None:
    path = workspace / "queries" / "hover.kql"
    client.open(path, "site = 1 and not opened(bc_9) and @vip")
    text = client.at("textDocument/hover", path, 0, 19)["contents"]["value"]
    assert "**opened**" in text and "broadcast id" in text
    assert "`filter[no_opened_email_broadcast_id]` (this one)" in text
    segment = client.at("textDocument/hover", path, 0, 36)["contents"]["value"]
    assert "Top spenders" in segment and "has_tag(tag_5)" in segment
    assert client.at("textDocument/hover", path, 0, 11) is None  # on `and`


def test_definition_of_a_segment(client: LSPClient, workspace: Path, tmp_path: Path) -> None:
    path = workspace / "queries" / "definition.kql"
    client.open(path, "subscribed and @recent_vip")
    location = client.at("textDocument/definition", path, 0, 20)
    assert location["uri"] == (workspace / "kql.toml").resolve().as_uri()
    assert location["range"]["start"] == {"line": 5, "character": 10}  # [segments.recent_vip]
    # In the segments file itself: to the segment defined in the same file.
    toml = tmp_path / "kql.toml"
    client.open(toml, '[segments.x]\nquery = "hidden"\n[segments.y]\nquery = "@x or subscribed"\n', language="toml")
    location = client.at("textDocument/definition", toml, 3, 10)
    assert location["uri"] == toml.as_uri()
    assert location["range"] == {"start": {"line": 0, "character": 10}, "end": {"line": 0, "character": 11}}


def test_formatting(client: LSPClient, workspace: Path) -> None:
    path = workspace / "queries" / "fmt.kql"
    client.open(path, "NOT has_tag(5)  AND  subscribed\n")
    options = {"options": {"tabSize": 2, "insertSpaces": True}, "textDocument": {"uri": path.as_uri()}}
    edits = client.request("textDocument/formatting", options)
    assert [e["newText"] for e in edits] == ["not has_tag(5) and subscribed\n"]
    assert edits[0]["range"] == {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}
    client.change(path, "subscribed  # a comment kql fmt would drop\n", 2)
    assert client.request("textDocument/formatting", options) == []
    assert "comments" in client.wait_for("window/showMessage")["message"]
    client.change(path, "opend(", 3)
    assert client.request("textDocument/formatting", options) == []


def test_code_action_offers_each_did_you_mean(client: LSPClient, workspace: Path) -> None:
    path = workspace / "queries" / "fix.kql"
    diagnostics = client.open(path, "site = 1 and opend(bc_9)")
    actions = client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": path.as_uri()},
            "range": diagnostics[0]["range"],
            "context": {"diagnostics": diagnostics},
        },
    )
    assert [a["title"] for a in actions] == ["Replace with 'opened'", "Replace with 'dropped'"]
    edit = actions[0]["edit"]["changes"][path.as_uri()][0]
    assert edit == {"range": diagnostics[0]["range"], "newText": "opened"}
    assert actions[0]["kind"] == "quickfix" and actions[0]["diagnostics"][0]["code"] == "E102"


FUZZ = [
    "",
    '"unterminated',
    "'",
    "(((((",
    "\x00\x1b[31m\x7f",
    "\ud800 and subscribed",  # a lone surrogate: what bytes that are not UTF-8 become
    "\u2028\x0c\x0b and opend(1)",  # separators that are not LSP line breaks
    "site = 1 and " * 20_000,  # far past the length limit
    "@",
    "not not not",
    "\r\r\n\n",
]


@pytest.mark.parametrize("text", FUZZ, ids=range(len(FUZZ)))
def test_never_crashes(client: LSPClient, workspace: Path, text: str) -> None:
    path = workspace / "queries" / f"fuzz{FUZZ.index(text)}.kql"
    diagnostics = client.open(path, text)
    assert all(d["range"]["start"]["line"] >= 0 for d in diagnostics)
    for line, character in ((0, 0), (0, 3), (3, 999), (10_000, 10_000)):
        client.at("textDocument/completion", path, line, character)
        client.at("textDocument/hover", path, line, character)
        client.at("textDocument/definition", path, line, character)
    client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": path.as_uri()},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 99, "character": 0}},
            "context": {"diagnostics": []},
        },
    )
    options = {"options": {"tabSize": 2, "insertSpaces": True}, "textDocument": {"uri": path.as_uri()}}
    client.request("textDocument/formatting", options)
    # The same junk inside a segments file.
    toml = workspace / "queries" / "kql.toml"
    client.open(toml, f"[segments.x]\nquery = {text!r}\n", language="toml")
    client.at("textDocument/completion", toml, 1, 12)
    client.notify("textDocument/didClose", {"textDocument": {"uri": toml.as_uri()}})
    assert client.process.poll() is None


def test_other_files_are_left_alone(client: LSPClient, workspace: Path) -> None:
    # An editor set up for plain text sends every .txt file too: only .kql (or languageId kql) is KQL.
    notes = workspace / "queries" / "notes.txt"
    assert client.open(notes, "opend(bc_9) is a typo", language="plaintext") == []
    assert client.at("textDocument/completion", notes, 0, 3) is None
    assert client.open(workspace / "queries" / "scratch.txt", "opend(1)", language="kql")[0]["code"] == "E102"


def test_unknown_document_requests_answer_nothing(client: LSPClient, workspace: Path) -> None:
    never_opened = workspace / "queries" / "missing.kql"
    assert client.at("textDocument/hover", never_opened, 0, 0) is None


def test_without_pygls_exits_2_naming_the_extra() -> None:
    code = "import sys; sys.modules['pygls'] = None; from kql.cli.app import main; sys.exit(main(['lsp']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    assert done.stderr.strip() == 'kql lsp: the language server needs the "lsp" extra: pip install "kql[lsp]"'
    assert done.stdout == ""


def test_help_lists_lsp() -> None:
    done = subprocess.run([sys.executable, "-m", "kql", "--help"], capture_output=True, text=True, timeout=WAIT)
    assert "lsp" in done.stdout

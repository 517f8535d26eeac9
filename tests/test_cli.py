"""The kql command as a user runs it: a real process, real exit codes, real streams."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def kql(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kql", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compile_prints_the_query_string() -> None:
    done = kql("compile", "site=123 and net_revenue>100 and opened(bc_9) sort -created_at")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "filter[site_id]=123&filter[net_revenue_greater_than]=100"
        "&filter[opened_email_broadcast_id]=9&sort=-created_at\n"
    )
    assert done.stderr == ""


def test_compile_json_and_url() -> None:
    done = kql("compile", "--json", 'name ~ "a&b"')
    payload = json.loads(done.stdout)
    assert payload["params"] == [["filter[name_contains]", "a&b"]]
    assert payload["query"] == "filter[name_contains]=a%26b"
    done = kql("compile", "--url", "--base-url", "http://127.0.0.1:9999", "has_tag(5)")
    assert done.stdout.strip() == "http://127.0.0.1:9999/v1/customers?filter[has_tag_id]=5"


def test_compile_reads_stdin() -> None:
    done = kql("compile", stdin="has_tag(tag_5)\n# comment\n")
    assert done.stdout.strip() == "filter[has_tag_id]=5"


def test_errors_show_the_caret_on_stderr_and_exit_2() -> None:
    done = kql("compile", "site=123 and opend(bc_9)")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error[E102]: unknown filter 'opend'",
        "  site=123 and opend(bc_9)",
        "               ^^^^^",
        "hint: did you mean 'opened' or 'dropped'?",
    ]
    assert "Traceback" not in done.stderr


def test_compile_of_a_multi_request_query_says_why() -> None:
    done = kql("compile", "subscribed or hidden")
    assert done.returncode == 2
    assert "error[E301]" in done.stderr


def test_contradiction_prints_nothing_and_says_so() -> None:
    # Exit 1, not 0: `curl "$API?$(kql compile …)"` in a script must not fetch every customer.
    done = kql("compile", "site = 1 and site = 2")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no customer matches" in done.stderr
    as_json = kql("compile", "--json", "site = 1 and site = 2")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["matches_nothing"] is True  # 1 in every format


def test_json_everywhere_errors_included() -> None:
    for args in (["compile", "--json"], ["explain", "--json"], ["check", "--json"]):
        done = kql(*args, "opend(bc_9) and created_in_last(3m)")
        assert done.returncode == 2, args
        errors = json.loads(done.stdout)["errors"]
        assert [e["code"] for e in errors] == ["E102", "E203"], args  # every error, not only the first
        assert errors[0]["span"] == [0, 5] and "opened" in errors[0]["hint"]
    fmt = kql("fmt", "--json", "subscribed AND NOT hidden")
    assert json.loads(fmt.stdout)["kql"] == "subscribed and not hidden"
    decompiled = kql("decompile", "--json", "filter[site_id]=3")
    assert json.loads(decompiled.stdout)["kql"] == "site = site_3"


def test_segments_json(tmp_path: Path) -> None:
    path = tmp_path / "kql.toml"
    path.write_text(
        '[segments.vip]\nquery = "net_revenue > 100"\ndescription = "big"\n[segments.bad]\nquery = "opend(1)"\n'
    )
    listed = json.loads(kql("segments", "list", "--json", "--segments", str(path)).stdout)
    assert [s["name"] for s in listed] == ["vip", "bad"] and listed[0]["description"] == "big"
    shown = json.loads(kql("segments", "show", "vip", "--json", "--segments", str(path)).stdout)
    assert shown["request"] == "filter[net_revenue_greater_than]=100"
    checked = kql("segments", "check", "--json", "--segments", str(path))
    assert checked.returncode == 2 and json.loads(checked.stdout)["errors"][0]["code"] == "E102"


def test_warnings_go_to_stderr() -> None:
    done = kql("compile", "suppressed")
    assert done.returncode == 0
    assert done.stdout.strip() == "filter[is_suppressed]=true"
    assert "warning[W001]" in done.stderr


def test_check() -> None:
    assert kql("check", "site = 1 and opened(bc_9)").returncode == 0
    # Valid KQL that needs the planner is still valid.
    assert kql("check", "subscribed or hidden").returncode == 0
    bad = kql("check", "--json", "opend(bc_9) and has_tag(bc_1)")
    assert bad.returncode == 2
    payload = json.loads(bad.stdout)
    assert [e["code"] for e in payload["errors"]] == ["E102", "E202"]


def test_fmt() -> None:
    done = kql("fmt", "NOT  has_tag(5) AND (subscribed OR hidden)   SORT -name")
    assert done.stdout == "not has_tag(5) and (subscribed or hidden) sort -name\n"


def test_filters() -> None:
    done = kql("filters")
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 74
    entries = json.loads(kql("filters", "--json").stdout)
    assert len(entries) == 74
    assert {"param", "name", "form", "value", "negation", "description", "status", "example"} <= set(entries[0])


def test_usage_errors_exit_2() -> None:
    assert kql().returncode == 2
    assert kql("nonsense").returncode == 2
    assert kql("compile", "--json", "--url", "x").returncode == 2


@pytest.mark.parametrize("command", ["compile", "check", "fmt"])
def test_offline_commands_do_not_import_httpx(command: str) -> None:
    code = (
        "import sys; from kql.cli.app import main; "
        f"rc = main([{command!r}, 'site = 1 and opened(bc_9)']); "
        "assert 'httpx' not in sys.modules, 'httpx was imported'; raise SystemExit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_delegated_commands_fail_cleanly_when_absent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kql.cli import app as cli

    monkeypatch.setitem(cli._DELEGATED, "run", "kql.no_such_module:main")
    monkeypatch.setitem(cli._DELEGATED, "sandbox", "kql.no_such_package.cli:main")
    assert cli.main(["run", "x"]) == 2
    assert cli.main(["sandbox"]) == 2
    assert "not available" in capsys.readouterr().err

"""``kql count``, ``kql segments list --count`` and the exact counts of ``kql explain --analyze``,
against the sandbox on 127.0.0.1 (requests counted by the sandbox)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kql.cli.app import main
from kql.execute.client import Client
from kql.sandbox import Sandbox, running
from tests.executor.conftest import FAST


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running(customers=500, seed=3) as server:
        yield server


@pytest.fixture
def client(sb: Sandbox) -> Iterator[Client]:
    with Client(sb.base_url, token=sb.token, retry=FAST) as c:
        yield c


def ids(client: Client, query: str) -> set[str]:
    return {r["id"] for r in client.customers(query)}


def where(sb: Sandbox) -> list[str]:
    return ["--base-url", sb.base_url, "--token", sb.token or "x"]


def test_kql_count_prints_the_number(sb: Sandbox, client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    query = "opened(bc_9) or clicked(bc_10)"
    assert main(["count", query, *where(sb)]) == 0
    assert capsys.readouterr().out == f"{len(ids(client, query))}\n"


def test_kql_count_json_says_how(sb: Sandbox, client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "opened(bc_9) or clicked(bc_10) limit 3": "terms",  # limit and page do not change a count
        "opened(bc_9)": "terms",  # one request
        "opened(bc_1) or sign_in_count > 3": "listing",  # a local predicate
    }
    for query, method in cases.items():
        before = sb.stats["requests"]
        assert main(["count", "--json", query, *where(sb)]) == 0
        sent = sb.stats["requests"] - before
        got = json.loads(capsys.readouterr().out)
        assert got == {"count": len(ids(client, query.removesuffix(" limit 3"))), "method": method, "requests": sent}
    assert main(["count", "--json", "opened(bc_1) and not opened(bc_1)", *where(sb)]) == 0
    assert json.loads(capsys.readouterr().out) == {"count": 0, "method": "terms", "requests": 0}


def test_kql_count_errors(sb: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", "opend(bc_9)", *where(sb)]) == 2
    assert "E102" in capsys.readouterr().err
    before = sb.stats["requests"]
    assert main(["count", "--max-requests", "2", "opened(bc_1) or opened(bc_2) or opened(bc_3)", *where(sb)]) == 2
    assert "E308" in capsys.readouterr().err and sb.stats["requests"] == before
    assert main(["count", "opened(bc_9)", "--base-url", sb.base_url, "--token", "wrong"]) == 3
    assert "kql count: error:" in capsys.readouterr().err


def test_segments_list_count(
    sb: Sandbox, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kql.toml").write_text(
        '[segments.engaged]\nquery = "opened(bc_9) or clicked(bc_10)"\ndescription = "Opened or clicked"\n'
        "[segments.vip]\nquery = 'has_tag(\"VIP Customer\") and not passed_assessment(asmt_1)'\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["segments", "list"]) == 0
    assert capsys.readouterr().out.split() == ["@engaged", "Opened", "or", "clicked", "@vip"]
    assert main(["segments", "list", "--count", *where(sb)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    engaged = len(ids(client, "opened(bc_9) or clicked(bc_10)"))
    vip = len(ids(client, 'has_tag("VIP Customer") and not passed_assessment(asmt_1)'))
    assert rows == [["@engaged", f"{engaged:,}", "Opened", "or", "clicked"], ["@vip", f"{vip:,}"]]


def test_explain_analyze_is_exact_where_terms_allow(
    sb: Sandbox, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "(opened(bc_9) or clicked(bc_10)) and not passed_assessment(asmt_1)"
    assert main(["explain", "--analyze", "--json", query, *where(sb)]) == 0
    analysis = json.loads(capsys.readouterr().out)["analysis"]
    assert analysis["count"] == len(ids(client, query))
    exact = {item["role"]: item["exact"] for item in analysis["listings"]}
    assert exact["branch 1"] == len(ids(client, "opened(bc_9) and not passed_assessment(asmt_1)"))
    assert exact["branch 2"] == len(ids(client, "clicked(bc_10) and not passed_assessment(asmt_1)"))
    assert main(["explain", "--analyze", "opened(bc_9) or sign_in_count > 3", *where(sb)]) == 0
    assert "matching customers: at most" in capsys.readouterr().out

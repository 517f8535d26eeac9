"""Names in queries that run: Client, AsyncClient, kql run (also through @segments)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kql.execute.async_client import AsyncClient
from kql.execute.client import Client
from kql.language.errors import KQLError
from kql.sandbox import Sandbox, running
from tests.executor.conftest import FAST


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running(customers=400, seed=5) as server:
        yield server


def kql_run(sb: Sandbox, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kql", "run", "--base-url", sb.base_url, "--token", sb.token or "x", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_client_resolves_names_once_per_client(sb: Sandbox) -> None:
    with Client(sb.base_url, token=sb.token, retry=FAST) as client:
        by_name = [r["id"] for r in client.customers('has_tag("VIP Customer") or has_offer("Offer 3")')]
        by_id = [r["id"] for r in client.customers("has_tag(tag_4) or has_offer(offer_3)")]
        assert by_name == by_id and by_name
        before = client.stats["requests"]
        assert client.count('has_tag("VIP Customer")') == client.count("has_tag(tag_4)")
        assert client.stats["requests"] - before == 2  # the two counts; the catalogues are cached
        with pytest.raises(KQLError) as caught:
            list(client.customers('has_tag("Quiz Taker 2")'))
        assert caught.value.errors[0].code == "E210" and "tag_39" in str(caught.value.errors[0].hint)


def test_async_client_resolves_names(sb: Sandbox) -> None:
    async def collect() -> tuple[list[str], int]:
        async with AsyncClient(sb.base_url, token=sb.token, retry=FAST) as client:
            got = [r["id"] async for r in client.customers('has_tag("VIP Customer") sort -net_revenue limit 7')]
            return got, await client.count('not has_product("Coaching 2")')

    got, count = asyncio.run(collect())
    with Client(sb.base_url, token=sb.token, retry=FAST) as client:
        assert got == [r["id"] for r in client.customers("has_tag(tag_4) sort -net_revenue limit 7")]
        assert count == client.count("not has_product(prod_2)")


def test_kql_run_with_names_and_segments(sb: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text('[segments.vip]\nquery = \'has_tag("VIP Customer") and net_revenue > 100\'\n')
    done = kql_run(sb, "@vip or has_offer('Offer 3')", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Client(sb.base_url, token=sb.token, retry=FAST) as client:
        expected = list(client.customers("(has_tag(tag_4) and net_revenue > 100) or has_offer(offer_3)"))
    assert json.loads(done.stdout) == expected and expected


def test_kql_run_name_errors_before_and_after_the_catalogue(sb: Sandbox) -> None:
    before = sb.stats["requests"]
    typo = kql_run(sb, 'has_tag("VIP Customer") and opend(bc_1)')
    assert typo.returncode == 2 and "E102" in typo.stderr and "E206" not in typo.stderr
    assert sb.stats["requests"] == before  # reported without a request
    unknown = kql_run(sb, 'has_tag("VIP Custmer")')
    assert unknown.returncode == 2 and "E108" in unknown.stderr and "'VIP Customer' (tag_4)" in unknown.stderr
    assert "^" in unknown.stderr and "Traceback" not in unknown.stderr


def test_segments_with_names_check_clean(tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text(
        '[segments.vip]\nquery = \'has_tag("VIP Customer")\'\n[segments.bad]\nquery = \'has_tag("x") and opend(1)\'\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "kql", "segments", "check"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "E102" in done.stderr and "E206" not in done.stderr and "1 problem(s)" in done.stderr


def test_explain_analyze_resolves_names(sb: Sandbox) -> None:
    command = [sys.executable, "-m", "kql", "explain", "--analyze", "--json", "--base-url", sb.base_url,
               "--token", sb.token or "x", 'has_tag("VIP Customer") or opened(bc_1)']  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["branches"][0]["request"].startswith("filter[has_tag_id]=4&")
    offline = subprocess.run([*command[:4], command[-1]], capture_output=True, text=True, timeout=60)
    assert offline.returncode == 2 and "E206" in offline.stderr and "kql explain --analyze" in offline.stderr


def test_names_are_looked_up_in_the_site_the_query_is_about() -> None:
    with (
        running(customers=300, seed=5, sites=2) as two,
        Client(two.base_url, token=two.token, retry=FAST, site_id=1) as client,
    ):
        ident, name = client.catalogue("tag", "2")[0]  # a tag of site 2, while the client says site 1
        by_name = [r["id"] for r in client.customers(f'has_tag("{name}") and site = 2')]
        assert by_name == [r["id"] for r in client.customers(f"has_tag(tag_{ident}) and site = 2")]
        with pytest.raises(KQLError) as caught:
            client.customers(f'has_tag("{name}") and (site = 1 or site = 2)')
        assert caught.value.code == "E211" and "1, 2" in caught.value.message


def test_budget_is_checked_before_names_are_looked_up(sb: Sandbox, tmp_path: Path) -> None:
    query = 'has_tag("VIP Customer") or has_offer("Offer 3")'
    before = sb.stats["requests"]
    done = kql_run(sb, "--max-requests", "1", query, cwd=tmp_path)
    assert done.returncode == 2 and "E308" in done.stderr
    with Client(sb.base_url, token=sb.token, retry=FAST) as client, pytest.raises(KQLError) as caught:
        client.customers(query, max_requests=1)
    assert caught.value.code == "E308"
    assert sb.stats["requests"] == before  # not even a catalogue


def test_explain_analyze_counts_the_name_lookups(sb: Sandbox) -> None:
    command = [sys.executable, "-m", "kql", "explain", "--analyze", "--json", "--base-url", sb.base_url,
               "--token", sb.token or "x", 'has_tag("VIP Customer") or has_offer("Offer 3")']  # fmt: skip
    before = sb.stats["requests"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    analysis = json.loads(done.stdout)["analysis"]
    assert analysis["name_lookup_requests"] == 2
    assert sb.stats["requests"] - before == 2 + analysis["probe_requests"] + analysis["term_requests"]
    assert analysis["estimated_requests"] == 2 + sum(item["pages"] for item in analysis["listings"])

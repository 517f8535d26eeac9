"""kql mcp, driven over a real stdio pipe by the MCP SDK's own client (ClientSession)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, stdio_client

from kql.sandbox import running

TOKEN = "tok-MCP-s3cret-0123456789abcdef"
SEGMENTS = """
[segments.vip]
query = "net_revenue > 500"
description = "Top spenders"

[segments.recent_vip]
query = "@vip and created_in_last(30d)"
"""


@asynccontextmanager
async def session(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "kql", "mcp", *args], env=env or {}, cwd=str(cwd) if cwd else None
    )
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            yield client


def drive(args: list[str], body: Callable[[ClientSession], Coroutine[Any, Any, Any]], **kw: Any) -> Any:
    async def main() -> Any:
        async with session(args, **kw) as client:
            return await body(client)

    return anyio.run(main)


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


def payload(result: Any) -> Any:
    assert not result.is_error, text(result)
    return json.loads(text(result))


def test_tools_over_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text(SEGMENTS)

    async def body(client: ClientSession) -> dict[str, Any]:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        out: dict[str, Any] = {"tools": tools}
        out["filters"] = await client.call_tool("filters", {"search": "broadcast opened"})
        out["check_ok"] = await client.call_tool("check", {"query": "@vip and opened(bc_9) sort -net_revenue"})
        out["check_bad"] = await client.call_tool("check", {"query": "site=123 and opend(bc_9)"})
        out["explain"] = await client.call_tool("explain", {"query": "opened(bc_1) or clicked(bc_2)"})
        out["count"] = await client.call_tool("count", {"query": "subscribed"})
        out["run"] = await client.call_tool("run", {"query": "subscribed select name, email", "limit": 7})
        out["run_seg"] = await client.call_tool("run", {"query": "@vip sort -net_revenue", "limit": 3})
        out["resources"] = (await client.list_resources()).resources
        out["read"] = await client.read_resource("kql://segments/recent_vip")
        return out

    out = drive(["--sandbox", "--customers", "300"], body, cwd=tmp_path)
    tools = out["tools"]
    assert set(tools) == {"filters", "check", "explain", "count", "run"}
    assert all(tool.annotations.read_only_hint for tool in tools.values())
    assert tools["run"].input_schema["required"] == ["query", "limit"]
    assert tools["run"].input_schema["properties"]["limit"]["maximum"] == 1000
    assert "E308" in tools["run"].description and "sort -created_at" in tools["run"].description
    assert "@vip — Top spenders" in tools["run"].description

    found = payload(out["filters"])["filters"]
    assert [f["kql"] for f in found] == ["opened(bc_5)", "not opened(bc_5)"]
    assert found[0]["api_parameter"] == "filter[opened_email_broadcast_id]"

    ok = payload(out["check_ok"])
    assert ok["valid"] and ok["requests"] == 1
    bad = payload(out["check_bad"])
    assert bad["valid"] is False
    hint = "did you mean 'opened' or 'dropped'?"
    assert bad["errors"] == [{"code": "E102", "message": "unknown filter 'opend'", "span": [13, 18], "hint": hint}]
    assert "               ^^^^^" in bad["rendered"]

    plan = payload(out["explain"])
    assert plan["requests"] == 2 and plan["plan"]["requests"] == 2 and "branch 2" in plan["explain"]

    counted = payload(out["count"])
    assert counted["count"] > 0 and counted["requests_sent"] == 1

    ran = payload(out["run"])
    assert ran["returned"] == 7 == len(ran["customers"])
    assert all(set(c) <= {"id", "name", "email"} and "id" in c for c in ran["customers"])
    revenues = [float(c["net_revenue"]) for c in payload(out["run_seg"])["customers"]]
    assert revenues == sorted(revenues, reverse=True) and all(r > 500 for r in revenues)

    assert {str(r.uri) for r in out["resources"]} == {"kql://segments/vip", "kql://segments/recent_vip"}
    vip = next(r for r in out["resources"] if str(r.uri).endswith("/vip"))
    assert vip.description == "Top spenders"
    shown = json.loads(out["read"].contents[0].text)
    assert shown["query"] == "@vip and created_in_last(30d)"
    assert shown["expanded"] == "net_revenue > 500 and created_in_last(30d)"


def test_bad_arguments_are_tool_errors_and_the_server_lives_on() -> None:
    async def body(client: ClientSession) -> list[Any]:
        calls = [
            ("run", {"query": "subscribed", "limit": -1}),
            ("run", {"query": "subscribed", "limit": 5000}),
            ("run", {"query": "subscribed"}),
            ("run", {"query": ["not", "a", "string"], "limit": 3}),
            ("run", {"query": "subscribed", "limit": 3, "max_requests": 99}),
            ("check", {"query": "x" * 20_000}),
            ("count", {"query": "created_in_last(3m)"}),
        ]
        results = [await client.call_tool(name, args) for name, args in calls]
        results.append(await client.call_tool("count", {"query": "subscribed"}))  # still serving
        return results

    *errors, last = drive(["--sandbox", "--customers", "300"], body)
    assert all(result.is_error for result in errors)
    assert "greater than or equal to 1" in text(errors[0])
    assert "less than or equal to 1000" in text(errors[1])
    assert "limit" in text(errors[2]) and "required" in text(errors[2]).lower()
    assert "at most 20" in text(errors[4])
    assert "10000 characters" in text(errors[5])
    assert "error[E203]" in text(errors[6]) and "hint: 'm' is ambiguous" in text(errors[6])
    assert payload(last)["count"] > 0


def test_budget_refused_before_any_request_and_the_token_never_shown() -> None:
    """Against a sandbox in this process, so its request counter is ours to read."""
    with running(customers=300, token=TOKEN) as sandbox:
        env = {"KAJABI_TOKEN": TOKEN, "KAJABI_BASE_URL": sandbox.base_url}

        async def body(client: ClientSession) -> list[Any]:
            wide = "opened(bc_1) or opened(bc_2) or opened(bc_3)"
            before = sandbox.stats["requests"]
            results = [
                await client.call_tool("run", {"query": wide, "limit": 10, "max_requests": 2}),
                await client.call_tool("count", {"query": wide, "max_requests": 2}),
                await client.call_tool("explain", {"query": wide, "max_requests": 2}),
            ]
            assert sandbox.stats["requests"] == before  # refused without a request
            results += [
                await client.call_tool("run", {"query": wide, "limit": 5, "max_requests": 3}),
                await client.call_tool("count", {"query": 'has_tag("VIP Customer")'}),
                await client.call_tool("run", {"query": 'has_tag("nope")', "limit": 1}),
                await client.call_tool("filters", {}),
                await client.call_tool("check", {"query": TOKEN}),
                await client.call_tool("explain", {"query": 'has_tag("VIP Customer") or subscribed'}),
            ]
            assert sandbox.stats["requests"] > before
            return results

        results = drive([], body, env=env)
    for refused in results[:3]:
        assert refused.is_error and "error[E308]" in text(refused)
        assert "budget is 2" in text(refused)
    assert payload(results[3])["returned"] <= 5
    assert payload(results[4])["count"] >= 0
    assert results[5].is_error and "E108" in text(results[5])
    named = payload(results[8])
    assert named["name_lookups"] == 0  # the tag catalogue is cached from the count above
    assert named["requests"] == 2 and "has_tag(tag_" in named["explain"]
    for result in results:
        assert TOKEN not in text(result)
        assert TOKEN not in json.dumps(result.structured_content or {})


def test_no_credentials_is_a_tool_error_not_a_crash() -> None:
    async def body(client: ClientSession) -> list[Any]:
        return [
            await client.call_tool("count", {"query": "subscribed"}),
            await client.call_tool("check", {"query": "subscribed"}),
        ]

    failed, checked = drive([], body, env={"KAJABI_BASE_URL": "http://127.0.0.1:9"})
    assert failed.is_error and "KAJABI_TOKEN" in text(failed)
    assert payload(checked)["valid"]


def test_without_the_extra_it_names_it(tmp_path: Path) -> None:
    # A directory named mcp without the SDK in it shadows the installed package.
    (tmp_path / "mcp").mkdir()
    (tmp_path / "mcp" / "__init__.py").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "kql", "mcp"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == 'kql mcp: needs the "mcp" extra: pip install "kql[mcp]"'

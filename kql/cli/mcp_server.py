"""``kql mcp``: a Model Context Protocol server over stdio (needs ``pip install "kql[mcp]"``).

Tools: ``filters``, ``check``, ``explain``, ``count``, ``run``; saved segments are resources
(``kql://segments/NAME``). Read-only by construction: the only HTTP the client does is GET
``/v1/customers`` (and the catalogue GETs that resolve names, and the OAuth token grant).
Credentials come from the environment and never appear in a result: executor errors are
redacted by the executor, and everything this module returns is redacted once more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

from kql.language.errors import KQLError

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from kql.execute.client import Client
    from kql.language.ast import Query
    from kql.planning.segments import Segments

EXIT_OK, EXIT_USAGE = 0, 2
MAX_LIMIT = 1000
MAX_QUERY_CHARS = 10_000  # the parser's own limit (E006); longer input is refused by the schema
EXTRA_MISSING = 'kql mcp: needs the "mcp" extra: pip install "kql[mcp]"'


class _Failure(Exception):
    """A tool call that cannot be answered: becomes an is_error result with this text."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kql mcp",
        description="Serve kql to AI agents over the Model Context Protocol (stdio).",
        epilog=(
            "credentials from the environment: KAJABI_TOKEN, or KAJABI_CLIENT_ID + KAJABI_CLIENT_SECRET; "
            "KAJABI_BASE_URL, KAJABI_SITE_ID. More: kql help embedding"
        ),
    )
    parser.add_argument("--sandbox", action="store_true", help="serve the built-in sandbox's data (no credentials)")
    parser.add_argument(
        "--customers", type=_positive, default=1000, metavar="N", help="with --sandbox: customers generated (1000)"
    )
    parser.add_argument("--segments", metavar="PATH", help="segments file (default: $KQL_SEGMENTS or ./kql.toml)")
    parser.add_argument(
        "--max-requests",
        type=_positive,
        default=20,
        metavar="N",
        help="the most listings one tool call may plan (default 20); tools ask for fewer with max_requests",
    )
    return parser


def _positive(text: str) -> int:
    from kql.cli.run import positive_int

    return positive_int(text)


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        import mcp.server.mcpserver  # noqa: F401 - only to fail early, with the extra's name
    except ImportError:
        print(EXTRA_MISSING, file=sys.stderr)
        return EXIT_USAGE
    try:
        segments = _load_segments(args.segments)
    except KQLError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    with contextlib.ExitStack() as stack:
        connection = Connection(segments, args.max_requests)
        if args.sandbox:
            from kql.sandbox import running

            sandbox = stack.enter_context(running(customers=args.customers))
            connection.sandbox(sandbox.base_url, sandbox.token or "sandbox")
        stack.callback(connection.close)
        build(connection).run("stdio")
    return EXIT_OK


def _load_segments(explicit: str | None) -> Segments | None:
    from kql.planning.segments_file import find, load

    path = find(explicit)
    return None if path is None else load(path)


class Connection:
    """The server's state: segments, the request budget and one API client (made on first use)."""

    def __init__(self, segments: Segments | None, max_requests: int) -> None:
        self.segments = segments
        self.max_requests = max_requests
        self._client: Client | None = None
        self._options: dict[str, Any] | None = None
        self._base_url: str | None = None
        # One API operation at a time: request counts stay exact and the API is not hammered.
        self.lock = threading.Lock()

    def sandbox(self, base_url: str, token: str) -> None:
        self._base_url, self._options = base_url, {"token": token}

    @property
    def secrets(self) -> list[str]:
        names = ("KAJABI_TOKEN", "KAJABI_CLIENT_SECRET")
        return [value for name in names if (value := os.environ.get(name))]

    def client(self) -> Client:
        if self._client is None:
            from kql.execute.client import Client
            from kql.execute.errors import ConfigError

            try:
                if self._options is None:
                    self._base_url = os.environ.get("KAJABI_BASE_URL") or "https://api.kajabi.com"
                    self._options = _credentials_from_env()
                base_url = self._base_url or "https://api.kajabi.com"
                self._client = Client(base_url, site_id=_site_from_env(), **self._options)
            except ConfigError as error:
                raise _Failure(f"not connected: {error}") from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _credentials_from_env() -> dict[str, Any]:
    from kql.execute.errors import ConfigError

    token = os.environ.get("KAJABI_TOKEN")
    if token:
        return {"token": token}
    client_id, secret = os.environ.get("KAJABI_CLIENT_ID"), os.environ.get("KAJABI_CLIENT_SECRET")
    if client_id and secret:
        return {"client_id": client_id, "client_secret": secret}
    raise ConfigError(
        "set KAJABI_TOKEN, or KAJABI_CLIENT_ID and KAJABI_CLIENT_SECRET, in the MCP server's environment "
        "(or start it with --sandbox)"
    )


def _site_from_env() -> str | None:
    from kql.execute.errors import ConfigError

    value = os.environ.get("KAJABI_SITE_ID", "").strip().removeprefix("site_")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError("KAJABI_SITE_ID must be a positive number (e.g. 123 or site_123)")
    return str(int(value))


# ---- the tools' logic (no MCP types: plain dicts, or _Failure / KQLError) --------------------


def _query(text: str, connection: Connection) -> Query:
    """The query parsed, with its segments expanded (errors carry the text for their carets)."""
    import kql

    parsed = kql.parse(text)
    return connection.segments.expand(parsed) if connection.segments else parsed


def _has_names(query: Query) -> bool:
    from kql.planning.names import find_names

    return bool(find_names(query))


def _budget(max_requests: int | None, connection: Connection) -> int:
    if max_requests is None:
        return connection.max_requests
    if max_requests > connection.max_requests:
        raise _Failure(
            f"max_requests may be at most {connection.max_requests} (the server's --max-requests), "
            f"not {max_requests}"
        )
    return max_requests


def filters_result(search: str) -> dict[str, Any]:
    import kql

    reg = kql.filters()
    words = search.lower().split()
    found = []
    for entry in reg:
        example = entry.example(reg.id_prefixes)
        haystack = " ".join((entry.name, entry.api_name, entry.description, example)).lower()
        if all(word in haystack for word in words):
            found.append(
                {
                    "kql": example,
                    "name": entry.name,
                    "api_parameter": entry.api_name,
                    "value": entry.value,
                    "id_kind": entry.id_kind,
                    "description": entry.description,
                    "status": entry.status,
                }
            )
    return {
        "filters": found,
        "sort_keys": list(reg.sort_keys),
        "select_fields": list(reg.select_fields),
        "attributes": {name: attribute.type for name, attribute in reg.attributes.items()},
    }


def _errors(error: KQLError, text: str) -> dict[str, Any]:
    if error.source is None:
        error.with_source(text)
    return {"errors": [e.problem() for e in error.errors], "rendered": error.render()}


def check_result(text: str, connection: Connection) -> dict[str, Any]:
    import kql

    try:
        query = _query(text, connection)
        if _has_names(query):
            from kql.planning.lookups import check_before_lookups

            check_before_lookups(query, text)
            return {"valid": True, "canonical": kql.format(query), "note": "names are resolved to ids when run"}
        plan = kql.plan(query)
    except KQLError as error:
        return {"valid": False, **_errors(error, text)}
    return {
        "valid": True,
        "canonical": kql.format(query),
        "requests": plan.requests,
        "warnings": [w.problem() for w in plan.warnings],
    }


def explain_result(text: str, max_requests: int | None, connection: Connection) -> dict[str, Any]:
    import kql

    budget = _budget(max_requests, connection)
    query = _query(text, connection)
    lookups = 0
    if _has_names(query):
        from kql.planning.lookups import check_before_lookups

        check_before_lookups(query, text, budget)
        with connection.lock:
            client = connection.client()
            before = client.stats["requests"]
            resolved = client.resolve(query)
            lookups = client.stats["requests"] - before
        query = resolved if not isinstance(resolved, str) else kql.parse(resolved)
    plan = kql.plan(query, max_requests=budget)
    return {
        "requests": plan.requests,
        "name_lookups": lookups,
        "explain": plan.explain(),
        "plan": plan.to_dict(),
        "warnings": [w.problem() for w in plan.warnings],
    }


def count_result(text: str, max_requests: int | None, connection: Connection) -> dict[str, Any]:
    budget = _budget(max_requests, connection)
    query = _query(text, connection)
    with connection.lock:
        client = connection.client()
        before = client.stats["requests"]
        number = client.count(query, max_requests=budget)
        return {"count": number, "requests_sent": client.stats["requests"] - before}


def run_result(text: str, limit: int, max_requests: int | None, connection: Connection) -> dict[str, Any]:
    budget = _budget(max_requests, connection)
    query = _query(text, connection)
    with connection.lock:
        client = connection.client()
        before = client.stats["requests"]
        with client.customers(query, limit=limit, max_requests=budget) as customers:
            records = list(islice(customers, limit))
            total, warnings = customers.total_count, customers.warnings
        return {
            "customers": records,
            "returned": len(records),
            "total_count": total,
            "requests_sent": client.stats["requests"] - before,
            "warnings": warnings,
        }


# ---- the MCP wiring ---------------------------------------------------------------------------


def _answer(connection: Connection, text: str | None, work: Any) -> CallToolResult:
    """Run ``work``; its dict, a KQL error or a failure as a tool result, with secrets scrubbed."""
    from mcp.types import CallToolResult, TextContent

    from kql.execute.errors import ExecutorError, redact

    secrets = connection.secrets
    try:
        payload = work()
    except KQLError as error:
        problems = _errors(error, text or "")
        body = redact(problems["rendered"] + "\n\n" + json.dumps(problems["errors"], ensure_ascii=False), secrets)
        return CallToolResult(content=[TextContent(type="text", text=body)], is_error=True)
    except (_Failure, ExecutorError) as error:
        message = f"error: {redact(str(error), secrets)}"
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
    except Exception as error:  # a bug: one readable, scrubbed line rather than a generic crash
        message = f"internal error ({type(error).__name__}): {redact(str(error), secrets)}"
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
    body = redact(json.dumps(payload, ensure_ascii=False, default=str), secrets)
    return CallToolResult(content=[TextContent(type="text", text=body)], structured_content=json.loads(body))


def build(connection: Connection) -> Any:
    """The MCPServer with kql's tools and segment resources."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.resources import FunctionResource
    from mcp.types import ToolAnnotations
    from pydantic import Field

    from kql import __version__
    from kql.cli import mcp_docs

    server: Any = MCPServer(
        "kql", version=__version__, instructions=mcp_docs.INSTRUCTIONS + _segment_list(connection), log_level="WARNING"
    )
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
    offline = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
    Text = Annotated[str, Field(max_length=MAX_QUERY_CHARS, description="a KQL query")]
    Budget = Annotated[
        int | None,
        Field(ge=1, description=f"refuse plans needing more listings (default and most: {connection.max_requests})"),
    ]
    Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"most customers to return (1-{MAX_LIMIT})")]
    Search = Annotated[str, Field(max_length=200, description="words to look for (empty: every filter)")]
    # With postponed annotations the SDK would evaluate these names in the module's globals:
    # each tool gets the real objects, by parameter name, before it is registered.
    real = {"search": Search, "query": Text, "limit": Limit, "max_requests": Budget, "return": Any}

    def filters(search: str = "") -> Any:
        return _answer(connection, None, lambda: filters_result(search))

    def check(query: str) -> Any:
        return _answer(connection, query, lambda: check_result(query, connection))

    def explain(query: str, max_requests: int | None = None) -> Any:
        return _answer(connection, query, lambda: explain_result(query, max_requests, connection))

    def count(query: str, max_requests: int | None = None) -> Any:
        return _answer(connection, query, lambda: count_result(query, max_requests, connection))

    def run(query: str, limit: int, max_requests: int | None = None) -> Any:
        return _answer(connection, query, lambda: run_result(query, limit, max_requests, connection))

    run_text = (  # str.format would trip over the braces of the examples
        mcp_docs.RUN.replace("{max_limit}", str(MAX_LIMIT))
        .replace("{default_requests}", str(connection.max_requests))
        .replace("{max_requests}", str(connection.max_requests))
    )
    for fn, description, hints in (
        (filters, mcp_docs.FILTERS, offline),
        (check, mcp_docs.CHECK + _segment_list(connection), offline),
        (explain, mcp_docs.EXPLAIN, read_only),
        (count, mcp_docs.COUNT, read_only),
        (run, run_text + _segment_list(connection), read_only),
    ):
        fn.__annotations__ = {name: real[name] for name in fn.__annotations__}
        server.add_tool(fn, description=description, annotations=hints, structured_output=False)

    for segment in connection.segments or ():
        name = segment.name
        server.add_resource(
            FunctionResource.from_function(
                fn=lambda name=name: _segment_json(connection, name),
                uri=f"kql://segments/{name}",
                name=f"@{name}",
                description=segment.description or f"the saved segment @{name}",
                mime_type="application/json",
            )
        )
    return server


def _segment_list(connection: Connection) -> str:
    if not connection.segments:
        return ""
    lines = [f"  @{s.name}" + (f" — {s.description}" if s.description else "") for s in connection.segments]
    return "\n\nSaved segments (use as @name in any query):\n" + "\n".join(lines)


def _segment_json(connection: Connection, name: str) -> str:
    import kql

    assert connection.segments is not None
    segment = connection.segments.get(name)
    assert segment is not None
    shown: dict[str, Any] = {
        "name": segment.name,
        "reference": f"@{segment.name}",
        "query": segment.query.strip(),
        "description": segment.description,
        "defined_at": segment.where(),
    }
    with contextlib.suppress(KQLError):
        shown["expanded"] = kql.format(_query("@" + name, connection))
    return json.dumps(shown, ensure_ascii=False, indent=1)


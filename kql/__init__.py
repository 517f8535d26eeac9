"""kql — a query language and compiler for Kajabi customers.

    >>> import kql
    >>> kql.compile("site = 123 and opened(bc_9)").query_string
    'filter[site_id]=123&filter[opened_email_broadcast_id]=9'

Imports are lazy: ``import kql`` and ``kql.compile`` never load httpx.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from kql._version import __version__ as __version__
from kql.language.errors import KQLError, KQLErrors, Span

if TYPE_CHECKING:
    # Every name the lazy map below serves, imported here too so type checkers see it.
    from kql.execute.async_client import AsyncClient
    from kql.execute.client import Client
    from kql.execute.errors import (
        APIError,
        ConfigError,
        ExecutorError,
        PaginationError,
        RedirectRefused,
        TransportError,
    )
    from kql.execute.retry import RetryPolicy
    from kql.language.ast import Query
    from kql.language.completion import Completion
    from kql.planning.compiler import Compiled
    from kql.planning.plan import Plan
    from kql.planning.segments import Segments
    from kql.registry import Filter, Registry

# The public API, one list: docs/python.md in the source tree documents exactly these names.
__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "Compiled",
    "Completion",
    "ConfigError",
    "ExecutorError",
    "Filter",
    "KQLError",
    "KQLErrors",
    "PaginationError",
    "Plan",
    "Query",
    "RedirectRefused",
    "Registry",
    "RetryPolicy",
    "Segments",
    "Span",
    "TransportError",
    "compile",
    "complete",
    "decompile",
    "filters",
    "format",
    "from_json",
    "load_segments",
    "parse",
    "plan",
    "to_json",
]


def parse(text: str) -> Query:
    """Parse KQL text into its syntax tree (nodes carry source spans)."""
    from kql.language.parser import parse as _parse

    return _parse(text)


def compile(text_or_query: str | Query, *, segments: Segments | str | os.PathLike[str] | None = None) -> Compiled:
    """Compile KQL into exactly one ``GET /v1/customers`` request, or raise KQLError.

    ``segments`` (a Segments, or the path of a segments file) expands ``@name``.
    """
    from kql.planning.compiler import compile_query

    # None first: `str | os.PathLike` builds a union per call, and os.PathLike's isinstance goes through abc.
    if segments is not None and isinstance(segments, str | os.PathLike):
        segments = load_segments(segments)
    return compile_query(text_or_query, segments=segments)


def plan(
    text_or_query: str | Query,
    *,
    segments: Segments | str | os.PathLike[str] | None = None,
    max_requests: int | None = None,
) -> Plan:
    """Plan any KQL expression into API requests plus local work, without sending anything.

    ``print(plan)`` (or ``plan.explain()``) shows the listings, exclusions, intersections and
    local filters; ``plan.to_dict()`` is the JSON form. ``segments`` (a Segments, or the path of
    a segments file) expands ``@name``. KQLError E307/E308 when the plan needs more than
    ``max_requests`` listings.
    """
    from kql.planning.planner import plan_query

    if isinstance(segments, str | os.PathLike):
        segments = load_segments(segments)
    return plan_query(text_or_query, segments=segments, max_requests=max_requests)


def load_segments(path: str | os.PathLike[str]) -> Segments:
    """The segments of a TOML segments file: ``[segments.NAME]`` tables with ``query = "…"`` (and an
    optional ``description``), for ``segments=`` and ``@NAME`` in queries. KQLError E012 if invalid."""
    from kql.planning.segments_file import load

    return load(path)


def format(query: str | Query) -> str:
    """The canonical text of a query: ``parse(format(q)) == q``."""
    from kql.language.formatter import format_query

    return format_query(parse(query) if isinstance(query, str) else query)


def filters() -> Registry:
    """The filter registry: iterate it for every filter the API has."""
    from kql.registry import registry

    return registry()


def complete(
    text: str, cursor: int | None = None, segments: Segments | str | os.PathLike[str] | None = None
) -> list[Completion]:
    """What can be typed at ``cursor`` (default: the end): keywords, filters, fields, values,
    and ``@name`` for each of ``segments`` (a Segments, or the path of a segments file)."""
    from kql.language.completion import complete as _complete

    if isinstance(segments, str | os.PathLike):
        segments = load_segments(segments)
    return _complete(text, cursor, segments)


def decompile(url_or_query_string: str) -> str:
    """Canonical KQL for an existing Kajabi customers URL or query string."""
    from kql.language.decompiler import decompile as _decompile

    return _decompile(url_or_query_string).text


def to_json(query: str | Query) -> dict[str, Any]:
    """The stable, versioned JSON form of a query (``{"kql": 1, …}``)."""
    from kql.language.jsonform import to_json as _to_json

    return _to_json(parse(query) if isinstance(query, str) else query)


def from_json(data: Any) -> Query:
    """The query a JSON form (a dict or JSON text) describes; raises KQLError (E009)."""
    from kql.language.jsonform import from_json as _from_json

    return _from_json(data)


# Names served from other modules on first use, so that importing kql stays cheap.
_LAZY = {
    "Compiled": "kql.planning.compiler",
    "Query": "kql.language.ast",
    "Filter": "kql.registry",
    "Registry": "kql.registry",
    "Completion": "kql.language.completion",
    "Segments": "kql.planning.segments",
    "Plan": "kql.planning.plan",
    # The executor (imports httpx): kql.Client(...).customers("any KQL expression").
    "Client": "kql.execute.client",
    "AsyncClient": "kql.execute.async_client",
    "RetryPolicy": "kql.execute.retry",
    "ExecutorError": "kql.execute.errors",
    "APIError": "kql.execute.errors",
    "TransportError": "kql.execute.errors",
    "PaginationError": "kql.execute.errors",
    "RedirectRefused": "kql.execute.errors",
    "ConfigError": "kql.execute.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kql' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

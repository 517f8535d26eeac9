"""What the clients run: any form of query, made into one ``Plan``.

KQL text and parsed queries go the one path from text to plan (``@segments``
expanded, then names resolved by the client, then planned); a ``Compiled`` query
runs the single-request plan it was read from; a ``Plan`` runs as it is, its budget
checked first. Nothing here sends a request.
"""

from __future__ import annotations

from typing import TypeAlias

from kql.language import ast
from kql.language.parser import parse
from kql.planning.checked import expand
from kql.planning.compiler import Compiled
from kql.planning.names import find_names
from kql.planning.plan import Plan
from kql.planning.planner import check_budget, plan_query
from kql.planning.segments import Segments

Runnable: TypeAlias = str | ast.Query | Compiled | Plan


def parsed(query: Runnable, segments: Segments | None = None) -> tuple[ast.Query, str | None] | None:
    """(the query parsed, segments expanded; its text) for KQL text or a Query, else None."""
    if isinstance(query, str):
        return expand(parse(query), segments, query), query
    if isinstance(query, ast.Query):
        return expand(query, segments, None), None
    return None


def has_names(query: ast.Query) -> bool:
    return bool(find_names(query))


def planned(query: Compiled | Plan, max_requests: int | None) -> Plan:
    """The plan of a query compiled or planned already (its budget checked)."""
    plan = query.plan if isinstance(query, Compiled) else query
    check_budget(plan, max_requests)
    return plan


def plan(query: ast.Query, source: str | None, max_requests: int | None) -> Plan:
    """The plan of an expanded query whose names are resolved (``source`` for the carets)."""
    return plan_query(query, max_requests=max_requests, source=source)


def prepare(query: Runnable, *, segments: Segments | None = None, max_requests: int | None = None) -> Plan:
    """A query without names as the clients run it (``Client.customers`` also resolves names)."""
    found = parsed(query, segments)
    if found is None:
        assert isinstance(query, Compiled | Plan)
        return planned(query, max_requests)
    return plan(*found, max_requests)

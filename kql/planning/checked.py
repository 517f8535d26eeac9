"""The front half of every query: parse, expand ``@segments``, validate — once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kql.language import ast
from kql.language.errors import KQLError
from kql.language.parser import MAX_DEPTH, parse
from kql.planning.validate import Validated, validate
from kql.registry import Registry

if TYPE_CHECKING:  # imported only where a query uses @segments
    from kql.planning.segments import Segments


def check(text_or_query: str | ast.Query, segments: Segments | None, reg: Registry) -> Validated:
    """The front half shared by the compiler and the planner: parse, expand segments, validate."""
    source = text_or_query if isinstance(text_or_query, str) else None
    query = parse(text_or_query) if isinstance(text_or_query, str) else text_or_query
    # Parsed text, and any expansion of segments, are bounded in depth already (E007).
    bounded = source is not None or segments is not None
    return validate(expand(query, segments, source), source, reg, depth_checked=bounded)


def expand(query: ast.Query, segments: Segments | None, source: str | None) -> ast.Query:
    """Replace ``@name`` references by their segments (a no-op without segments)."""
    if segments is None:
        return query
    try:
        expanded = segments.expand(query)
    except KQLError as error:
        if source is not None and error.source is None:
            error.with_source(source)
        raise
    if expanded.filter is not None and ast.depth(expanded.filter) > MAX_DEPTH:
        raise KQLError(
            "E007", f"with its segments expanded, the query is nested more than {MAX_DEPTH} levels deep", query.span
        ).with_source(source or "")
    return expanded

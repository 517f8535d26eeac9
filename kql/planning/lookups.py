"""What can refuse a query with names before any catalogue is fetched.

``kql run`` and both clients call ``check_before_lookups`` first, so a typo elsewhere,
a query about several sites, or a request budget the plan would exceed is reported at
once, without a request, and never next to a misleading "names resolve in kql run" E206.
"""

from __future__ import annotations

from kql.language import ast
from kql.language.errors import KQLError, raise_all
from kql.planning.names import not_about_names, site_of, with_placeholder_ids
from kql.planning.planner import plan_query
from kql.planning.validate import validate
from kql.registry import Registry, registry


def precheck(query: ast.Query, source: str | None = None, reg: Registry | None = None) -> None:
    """Raise the query's validation errors that are not about names, before anything is fetched."""
    reg = reg or registry()
    try:
        validate(query, source, reg)
    except KQLError as error:
        raise_all(not_about_names(error.errors, query, reg), source)


def check_before_lookups(query: ast.Query, source: str | None = None, max_requests: int | None = None) -> None:
    """Everything that can refuse a query with names before a catalogue is fetched: its other
    mistakes (``precheck``), several sites (E211), and a request budget it would exceed."""
    precheck(query, source)
    site_of(query, source)
    if max_requests is not None:
        # The plan's shape does not depend on which ids the names become.
        plan_query(with_placeholder_ids(query), max_requests=max_requests, source=source)

"""Which operators a field takes, beyond the API's own parameters.

Comparisons on returned attributes are checked locally, so their operators depend only
on the attribute's value type; the planner can also build ``!=``, ``>=``, ``<=`` and
``in`` from a field's API comparisons where those are ids or amounts. The validator
and completion both read these, so they never disagree on what can be typed.
"""

from __future__ import annotations

from collections.abc import Iterable

from kql.registry.loader import Filter

# Operators the planner builds from the API's (`>=` is `> or =`, `in` an `or`, `!=` a `not`).
PLANNER_OPS = frozenset({"!=", ">=", "<=", "in"})

# Operators of a comparison on a returned attribute, by the attribute's value type.
ATTRIBUTE_OPS: dict[str, frozenset[str]] = {
    "string": frozenset({"=", "!=", "~", "ends_with", "starts_with", "in", "is", "is_not"}),
    "money": frozenset({"=", "!=", ">", "<", ">=", "<=", "in", "is", "is_not"}),
    "integer": frozenset({"=", "!=", ">", "<", ">=", "<=", "in", "is", "is_not"}),
    "datetime": frozenset({"=", "!=", ">", "<", ">=", "<=", "is", "is_not"}),
    "object": frozenset({"is", "is_not"}),
}


def derivable_ops(comparisons: Iterable[Filter]) -> set[str]:
    """Operators the planner can build from a field's API comparisons (ids and amounts only)."""
    kinds = {e.value for e in comparisons}
    if "money" in kinds:
        return set(PLANNER_OPS)
    if "id" in kinds:
        return {"!=", "in"}
    return set()

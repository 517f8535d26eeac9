"""Realistic, satisfiable one-request queries for bench/compile.py, generated from the registry.

Each clause is written three ways: KQL text, a Lucene term of the same shape (one
``field:value`` term, ``NOT`` where KQL says ``not``), and the ``(parameter, value)`` it
must send. The bench checks ``kql.compile``'s parameters against those, so a query that
silently compiled to a contradiction (no parameters) or dropped a clause cannot be measured.

Clauses use distinct parameters first (comparisons, flags, typed-id predicates, day windows,
text search, ``not`` forms); past that, repeated ``has_tag(tag_N)`` and ``not sent(bc_N)``
with new ids, which the compiler merges into ``has_all_tag_id`` and
``no_sent_email_broadcast_ids`` carrying every id.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import attrs

from kql.registry import Filter, registry

# Parameters a realistic query starts with, in this order; the rest follow in registry order.
_FIRST = (
    "site_id",
    "has_tag_id",
    "net_revenue_greater_than",
    "subscribed",
    "no_opened_email_broadcast_id",
    "search",
    "created_in_last",
    "email_contains",
)
# Left out: one of a pair that says the opposite (subscribed / never_subscribed), a second
# value for one that holds one (engagement: one value), an exact amount next to the bounds,
# a deprecated filter (it warns), and list parameters (reached by merging instead).
_SKIP = {
    "never_subscribed",
    "passive_contacts_with_open_data",
    "unengaged_contacts_with_open_data",
    "inactive_contacts_with_open_data",
    "net_revenue_equal_to",
    "is_suppressed",
    "has_all_tag_id",
    "no_sent_email_broadcast_ids",
    "sent_email_broadcast_id",  # `sent(bc_N)` next to `not sent(bc_M)` is fine, but the filler uses `sent`
}
# A plausible text for each string filter.
_WORDS = {
    "search": "smith",
    "email": "gmail.com",
    "name": "Smith",
    "phone": "555",
    "mobile_phone": "555",
    "address_line_1": "Main St",
    "address_line_2": "Apt",
    "city": "Berlin",
    "state": "CA",
    "country": "Germany",
    "zip": "10115",
    "used_coupon": "SPRING24",
}


@attrs.frozen
class Clause:
    kql: str
    lucene: str
    param: str  # the parameter it sends on its own
    value: str


@attrs.frozen
class BenchQuery:
    kql: str
    lucene: str
    clauses: tuple[Clause, ...]

    def expected_params(self) -> list[tuple[str, str]]:
        """What one request must carry: each clause's parameter, repeated ones merged into their list."""
        reg = registry()
        groups: dict[str, list[str]] = {}
        for clause in self.clauses:
            entry = reg.by_param[clause.param]
            groups.setdefault(entry.merge_into or entry.param, []).append(clause.value)
        params = []
        for group, values in groups.items():
            name = group if len(values) > 1 else next(c.param for c in self.clauses if _group(c.param) == group)
            params.append((f"filter[{name}]", ",".join(values)))
        return sorted(params)


def _group(param: str) -> str:
    entry = registry().by_param[param]
    return entry.merge_into or entry.param


def _clause(entry: Filter, ids: Iterator[int]) -> Clause:
    """One clause that sends ``entry``, with a fresh id or a plausible value."""
    prefixes = registry().id_prefixes
    if entry.value == "id":
        number = str(next(ids))
        text_value = f"{prefixes[entry.id_kind or '']}_{number}"
        lucene_value = text_value
    elif entry.value == "days":
        # Positive windows wider than negative ones: `active_in_last(90d) and not active_in_last(7d)` holds.
        number = "7" if entry.negated else "90"
        text_value = lucene_value = number + "d"
    elif entry.value == "money":
        number = "100" if entry.op == ">" else "5000"
        text_value = lucene_value = number
    elif entry.value == "string":
        number = _WORDS[entry.name]
        text_value = lucene_value = f'"{number}"'
    else:  # flag, enum
        number = "true"
        text_value, lucene_value = "", "true"

    if entry.form == "comparison":
        kql = f"{entry.name} {entry.op} {text_value}"
        lucene = f"{entry.name}:{'' if entry.op in ('=', '~') else entry.op}{lucene_value}"
    elif entry.form == "enum":
        kql = f"{entry.name} = {entry.enum_value}"
        lucene = f"{entry.name}:{entry.enum_value}"
    elif entry.form == "flag":
        kql, lucene = entry.name, f"{entry.name}:true"
    elif entry.form == "text":
        kql = lucene = text_value
    else:
        kql = f"{entry.name}({text_value})"
        lucene = f"{entry.name}:{lucene_value}"
    if entry.negated:
        kql, lucene = f"not {kql}", f"NOT {lucene}"
    return Clause(kql, lucene, entry.param, number)


def bench_query(n: int) -> BenchQuery:
    """An ``n``-clause query, all ``and``, that compiles to one request carrying every clause."""
    reg = registry()
    ids = itertools.count(101)
    first = [reg.by_param[p] for p in _FIRST]
    rest = [f for f in reg if f.param not in _SKIP and f.param not in _FIRST]
    clauses = [_clause(entry, ids) for entry in [*first, *rest][:n]]
    filler = itertools.cycle((reg.by_param["has_tag_id"], reg.by_param["no_sent_email_broadcast_id"]))
    while len(clauses) < n:
        clauses.append(_clause(next(filler), ids))
    return BenchQuery(
        " and ".join(c.kql for c in clauses),
        " AND ".join(c.lucene for c in clauses),
        tuple(clauses),
    )

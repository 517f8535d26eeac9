"""Reading `GET /v1/customers` query parameters, driven by the filter registry.

Which `filter[…]` names exist, what value type each takes and how several values
share one parameter (the registry's `multi`: comma, repeat or brackets) all come
from the registry; nothing here lists filters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from kql.registry import Filter, Registry
from kql.sandbox.errors import bad_request
from kql.sandbox.rules import Value

_FILTER = re.compile(r"^filter\[([^\[\]]+)\](\[\])?$")
_ID = re.compile(r"^[0-9]{1,15}$")
_DAYS = re.compile(r"^[0-9]{1,6}$")
_MONEY = re.compile(r"^-?[0-9]{1,12}(\.[0-9]+)?$")
_TRUE = ("true", "1")
RELATIONSHIPS = ("site",)
# Limits of one request (the API documents none; these keep every accepted request cheap and
# within SQLite's own limits, and refuse the rest with a 400 naming the parameter).
MAX_VALUES = 1000  # values of one list-valued filter (filter[has_all_tag_id]=1,2,…)
MAX_SEARCH_WORDS = 100  # distinct words of filter[search]


@dataclass
class ListQuery:
    filters: list[tuple[Filter, list[Value]]] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    fields: list[str] | None = None
    page: int = 1
    size: int = 25


def parse_value(f: Filter, raw: str) -> Value:
    name = f.api_name
    if f.value == "id":
        if not _ID.match(raw) or int(raw) == 0:
            raise bad_request(f"{name} takes a positive integer id, not {raw!r}", name)
        return int(raw)
    if f.value == "days":
        if not _DAYS.match(raw):
            raise bad_request(f"{name} takes a whole number of days, not {raw!r}", name)
        return int(raw)
    if f.value == "money":
        if not _MONEY.match(raw):
            raise bad_request(f"{name} takes an amount such as 100 or 99.50, not {raw!r}", name)
        return Decimal(raw)
    if f.value == "flag":
        if raw.lower() not in _TRUE:
            raise bad_request(f"{name} only takes true, not {raw!r}", name)
        return 1
    if not raw.strip():
        raise bad_request(f"{name} needs a non-empty value", name)
    return raw


def filter_values(f: Filter, raws: Sequence[tuple[str, str]]) -> list[Value]:
    """The values of one filter: `raws` are (key as sent, value) pairs for it."""
    name = f.api_name
    bracketed = [key.endswith("[]") for key, _ in raws]
    if f.arity == "one" or f.multi == "comma":
        if len(raws) > 1 or any(bracketed):
            raise bad_request(f"{name} may be given once", name)
        raw = raws[0][1]
        parts = raw.split(",") if f.arity == "many" else [raw]
    elif f.multi == "repeat":
        if any(bracketed):
            raise bad_request(f"{name} takes several values by repeating {name}", name)
        parts = [v for _, v in raws]
    else:  # brackets
        if not all(bracketed):
            raise bad_request(f"{name} takes several values as {name}[]=…", name)
        parts = [v for _, v in raws]
    if len(parts) > MAX_VALUES:
        raise bad_request(f"{name} takes at most {MAX_VALUES:,} values, got {len(parts):,}", name)
    values = [parse_value(f, part.strip() if f.value != "string" else part) for part in parts]
    if f.param == "search" and len(set(str(values[0]).split())) > MAX_SEARCH_WORDS:
        raise bad_request(f"{name} takes at most {MAX_SEARCH_WORDS} words", name)
    return values


def parse_list(
    pairs: Sequence[tuple[str, str]], reg: Registry, *, default_size: int, max_size: int
) -> ListQuery:
    query = ListQuery(size=default_size)
    grouped: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for key, value in pairs:
        match = _FILTER.match(key)
        if match:
            param = match.group(1)
            if param not in reg.by_param:
                raise bad_request(f"unknown filter {key}", key)
            grouped.setdefault(param, []).append((key, value))
            continue
        if key in seen:
            raise bad_request(f"{key} may be given once", key)
        seen.add(key)
        if key == "sort":
            query.sort = parse_sort(value, reg)
        elif key == "fields[customers]":
            query.fields = parse_fields(value, reg)
        elif key == "page[number]":
            query.page = positive(key, value)
        elif key == "page[size]":
            query.size = positive(key, value)
            if query.size > max_size:
                raise bad_request(f"page[size] is at most {max_size}", key)
        else:
            raise bad_request(f"unknown parameter {key}", key)
    for param, raws in grouped.items():
        f = reg.by_param[param]
        query.filters.append((f, filter_values(f, raws)))
    return query


def positive(key: str, value: str) -> int:
    if not _ID.match(value) or int(value) < 1:
        raise bad_request(f"{key} takes a positive integer, not {value!r}", key)
    return int(value)


def parse_sort(value: str, reg: Registry) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in value.split(","):
        name = part.strip().removeprefix("-")
        if name not in reg.sort_keys:
            raise bad_request(f"cannot sort by {part[:100]!r}: use {', '.join(reg.sort_keys)}, '-' for descending",
                              "sort")
        if any(name == seen for seen, _ in keys):
            raise bad_request(f"sort names {name} twice", "sort")
        keys.append((name, part.strip().startswith("-")))
    return keys


def parse_fields(value: str, reg: Registry) -> list[str]:
    if not value.strip():
        return []
    names = [v.strip() for v in value.split(",")]
    unknown = [n for n in names if n not in reg.attributes and n not in RELATIONSHIPS]
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(unknown)} in fields[customers]", "fields[customers]")
    return names

"""The filter registry: `registry.toml` loaded once into typed, frozen records.

Everything that needs to know about filters (validator, compiler, docs, the
``kql filters`` command, the sandbox, the tests) reads it from here; nothing
keeps a second list.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import attrs

Form = Literal["comparison", "predicate", "flag", "enum", "text"]
ValueType = Literal["id", "days", "money", "string", "flag"]
Merge = Literal["none", "exclusive", "exclusive_group", "min", "max", "all"]
Multi = Literal["comma", "repeat", "brackets"]

FORMS: tuple[str, ...] = ("comparison", "predicate", "flag", "enum", "text")
VALUE_TYPES: tuple[str, ...] = ("id", "days", "money", "string", "flag")
MERGES: tuple[str, ...] = ("none", "exclusive", "exclusive_group", "min", "max", "all")
MULTIS: tuple[str, ...] = ("comma", "repeat", "brackets")

_T = TypeVar("_T")
# Registry.find's cache marks a key not looked up yet with this (None is a cached "no filter").
_UNKNOWN: Any = object()


@attrs.frozen(slots=True)
class Filter:
    """One `filter[…]` parameter of ``GET /v1/customers`` and the KQL form that sends it."""

    param: str
    name: str
    form: Form
    value: ValueType
    description: str
    op: str | None = None
    enum_value: str | None = None
    id_kind: str | None = None
    negated: bool = False
    arity: Literal["one", "many"] = "one"
    multi: Multi = "comma"
    merge: Merge = "none"
    merge_into: str | None = None
    status: Literal["current", "deprecated"] = "current"
    # Filled in by the registry: the parameter of the exact complement, both ways.
    negation: str | None = None

    @property
    def api_name(self) -> str:
        return f"filter[{self.param}]"

    @property
    def deprecated(self) -> bool:
        return self.status == "deprecated"

    def example(self, id_prefixes: dict[str, str]) -> str:
        """A canonical KQL form that sends this parameter (used by docs and tests)."""
        sample = {
            "id": f"{id_prefixes[self.id_kind]}_5" if self.id_kind else "5",
            "days": "30d",
            "money": "100",
            "string": '"SPRING24"' if self.name == "used_coupon" else '"smith"',
        }
        if self.form == "comparison":
            text = f"{self.name} {self.op} {sample[self.value]}"
        elif self.form == "enum":
            text = f"{self.name} = {self.enum_value}"
        elif self.form == "flag":
            text = self.name
        elif self.form == "text":
            text = '"smith"'
        else:
            args = sample[self.value]
            if self.arity == "many":
                args = f"{args}, {args[:-1]}6"
            text = f"{self.name}({args})"
        return f"not {text}" if self.negated else text


@attrs.frozen(slots=True)
class Attribute:
    """A customer attribute the API returns: sortable, selectable, locally comparable."""

    name: str
    type: Literal["string", "object", "money", "integer", "datetime"]
    sortable: bool = False
    # The `*_in_last(N)` filter that tests this instant against now − N days (planner pushdown).
    in_last: str | None = None


@attrs.frozen(slots=True)
class Registry:
    filters: tuple[Filter, ...]
    attributes: dict[str, Attribute]
    # id kind (e.g. "broadcast") -> typed-id prefix (e.g. "bc")
    id_prefixes: dict[str, str]

    def __iter__(self) -> Iterator[Filter]:
        return iter(self.filters)

    def __len__(self) -> int:
        return len(self.filters)

    @functools.cached_property
    def by_param(self) -> dict[str, Filter]:
        return {f.param: f for f in self.filters}

    @functools.cached_property
    def by_name(self) -> dict[str, tuple[Filter, ...]]:
        grouped: dict[str, list[Filter]] = {}
        for f in self.filters:
            grouped.setdefault(f.name, []).append(f)
        return {name: tuple(fs) for name, fs in grouped.items()}

    @functools.cached_property
    def by_name_form(self) -> dict[tuple[str, str], tuple[Filter, ...]]:
        """(name, form) -> its filters: the validator's look-up for every atom of every query."""
        grouped: dict[tuple[str, str], list[Filter]] = {}
        for f in self.filters:
            grouped.setdefault((f.name, f.form), []).append(f)
        return {key: tuple(fs) for key, fs in grouped.items()}

    @functools.cached_property
    def kinds_by_prefix(self) -> dict[str, str]:
        return {prefix: kind for kind, prefix in self.id_prefixes.items()}

    @property
    def sort_keys(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes.values() if a.sortable)

    @property
    def select_fields(self) -> tuple[str, ...]:
        return tuple(self.attributes)

    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    def find(
        self, name: str, form: str, op: str | None, enum_value: str | None, *, negated: bool, single: bool
    ) -> Filter | None:
        """The parameter a KQL form sends: ``not sent(bc_9)`` and ``not sent(bc_9, bc_10)`` differ."""
        key = (name, form, op, enum_value, negated, single)
        found: Filter | None = self._found.get(key, _UNKNOWN)  # one look-up: runs for every condition planned
        if found is not _UNKNOWN:
            return found
        candidates = [
            f
            for f in self.by_name.get(name, ())
            if f.form == form
            and f.negated == negated
            and f.op == op
            and f.enum_value == enum_value
            and (f.arity == "many" or single)
        ]
        # One argument prefers the single-value parameter, several the list one.
        candidates.sort(key=lambda f: f.arity != ("one" if single else "many"))
        entry = self._found[key] = candidates[0] if candidates else None
        return entry

    @functools.cached_property
    def _found(self) -> dict[tuple[object, ...], Filter | None]:
        return {}

    def derived(self, build: Callable[[Registry], _T]) -> _T:
        """``build(self)``, computed once per registry: look-up tables another layer derives from the
        registry's data (the planner's, per parameter) without the registry knowing what they mean."""
        tables = self._derived
        if build not in tables:
            tables[build] = build(self)
        value: _T = tables[build]
        return value

    @functools.cached_property
    def _derived(self) -> dict[Callable[[Registry], Any], Any]:
        return {}


def _check(entry: dict[str, object]) -> None:
    """Fail loudly on a malformed entry: the registry is hand-edited data."""
    param = entry.get("param", "?")
    for key, allowed in (("form", FORMS), ("value", VALUE_TYPES), ("merge", MERGES), ("multi", MULTIS)):
        if key in entry and entry[key] not in allowed:
            raise ValueError(f"registry: filter[{param}] has {key}={entry[key]!r}, expected one of {allowed}")


def _with_negations(filters: list[Filter]) -> tuple[Filter, ...]:
    """Link each single-argument parameter with its exact complement, both ways."""
    key = {f.param: (f.name, f.form, f.op, f.enum_value, f.arity) for f in filters}
    positive = {key[f.param]: f.param for f in filters if not f.negated}
    negative = {key[f.param]: f.param for f in filters if f.negated}
    linked = []
    for f in filters:
        other = (positive if f.negated else negative).get(key[f.param])
        linked.append(attrs.evolve(f, negation=other))
    return tuple(linked)


def load_registry(text: str) -> Registry:
    import tomllib

    return _from_data(tomllib.loads(text))


def _from_data(data: dict[str, Any]) -> Registry:
    entries = data["filter"]
    for entry in entries:
        _check(entry)
    filters = [Filter(**entry) for entry in entries]
    params = [f.param for f in filters]
    if len(set(params)) != len(params):
        raise ValueError("registry: a parameter is listed twice")
    attributes = {name: Attribute(name=name, **spec) for name, spec in data["attributes"].items()}
    return Registry(filters=_with_negations(filters), attributes=attributes, id_prefixes=dict(data["id_kinds"]))


@functools.cache
def registry() -> Registry:
    """The registry shipped with kql, parsed once per process.

    registry.toml stays the one source: the registry read from it (checked, negations linked) is
    kept in kql's cache as plain data, stamped with the file's text and this loader's code, so a
    start whose registry.toml is unchanged skips importing tomllib and linking the negations.
    """
    from kql import _cache

    with open(os.path.join(os.path.dirname(__file__), "registry.toml"), encoding="utf-8") as file:
        text = file.read()
    info = os.stat(__file__)
    sources = (text, (__file__, info.st_size, info.st_mtime_ns))
    data = _cache.load("registry", sources)
    if isinstance(data, dict):
        return _from_cache(data)
    loaded = load_registry(text)
    _cache.store("registry", sources, _to_cache(loaded))
    return loaded


def _to_cache(reg: Registry) -> dict[str, Any]:
    return {
        "filters": [attrs.asdict(f) for f in reg.filters],
        "attributes": {name: attrs.asdict(a) for name, a in reg.attributes.items()},
        "id_prefixes": dict(reg.id_prefixes),
    }


def _from_cache(data: dict[str, Any]) -> Registry:
    return Registry(
        filters=tuple(Filter(**entry) for entry in data["filters"]),
        attributes={name: Attribute(**spec) for name, spec in data["attributes"].items()},
        id_prefixes=data["id_prefixes"],
    )


def filters() -> Registry:
    """Public entry point (`kql.filters()`): the registry, iterable over its filters."""
    return registry()

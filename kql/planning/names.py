"""Names instead of ids: ``has_tag("VIP")`` becomes ``has_tag(tag_5)`` before validation.

A quoted string given to a filter that takes a tag, offer or product id (found in
the registry by ``id_kind``, so ``has_all_tags``, ``has_active_product`` and the rest
come along) is looked up in that kind's catalogue (``GET /v1/contact_tags``,
``/v1/offers``, ``/v1/products``) and replaced by the typed id the parser makes of
``tag_5``. Matching, in order (``kql help names``):

1. the exact name (case and spaces as written);
2. otherwise the name ignoring case and runs of whitespace;

and whichever rule matches must match exactly one item. No match is E108 (with the
closest names as a hint), several matches are E210 (with every candidate's id).

``resolve_names`` is pure: it gets the catalogues from a ``lookup(kind)`` callable.
``Resolver`` caches the lookups of a ``CatalogueSource`` per kind for one run; the
executor's clients are such sources (``kql.execute.catalogues`` walks the pages).
Resolution works on an expanded query (``@segments`` replaced).
Importing this module does not import httpx (``kql compile`` stays offline and fast).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

import attrs

from kql.language import ast
from kql.language.errors import KQLError, Span, raise_all
from kql.registry import Registry, registry

__all__ = [
    "CATALOGUES",
    "AsyncCatalogueSource",
    "AsyncResolver",
    "Catalogue",
    "CatalogueSource",
    "Lookup",
    "NameRef",
    "Resolver",
    "find_names",
    "named_filters",
    "not_about_names",
    "resolve_names",
    "site_of",
    "with_placeholder_ids",
]

# kind -> [(id, name)], ids as the API writes them ("5").
Lookup = Callable[[str], list[tuple[str, str]]]

# Candidates listed in one hint; the rest are counted.
_MAX_LISTED = 10


@attrs.frozen(slots=True)
class Catalogue:
    """Where the items of one id kind are listed, and which attribute holds their name."""

    path: str
    type: str  # JSON:API type, also the key of fields[…]
    attribute: str
    plural: str


# The registry knows id kinds but not endpoints; this is the only place that maps them.
CATALOGUES: dict[str, Catalogue] = {
    "tag": Catalogue("/v1/contact_tags", "contact_tags", "name", "tags"),
    "offer": Catalogue("/v1/offers", "offers", "title", "offers"),
    "product": Catalogue("/v1/products", "products", "title", "products"),
}


@attrs.frozen(slots=True)
class NameRef:
    """One quoted name that needs an id: ``has_tag("VIP")`` gives kind ``tag``, filter ``has_tag``."""

    kind: str
    filter: str
    name: str
    span: Span | None
    node: ast.Str = attrs.field(eq=False, repr=False)


def named_filters(reg: Registry | None = None) -> dict[str, str]:
    """KQL filter name -> id kind, for every predicate whose ids can be given by name."""
    reg = reg or registry()
    return {
        f.name: f.id_kind
        for f in reg
        if f.form == "predicate" and f.value == "id" and f.id_kind is not None and f.id_kind in CATALOGUES
    }


def find_names(query: ast.Query, reg: Registry | None = None) -> list[NameRef]:
    """The quoted names in ``query`` that resolve to ids, in source order.

    Arguments of a named filter (``has_tag("VIP")``) and items of its ``in`` list
    (``has_offer in ("Gold", offer_3)``). Unexpanded ``@segments`` are not looked into.
    """
    if query.filter is None:
        return []
    filters = named_filters(reg)
    found: list[NameRef] = []
    for node in ast.walk(query.filter):
        named = _named(node, filters)
        if named is not None:
            name, values = named
            found.extend(NameRef(filters[name], name, v.value, v.span, v) for v in values if isinstance(v, ast.Str))
    return found


def resolve_names(
    query: ast.Query,
    lookup: Lookup,
    source: str | None = None,
    reg: Registry | None = None,
) -> ast.Query:
    """``query`` with every quoted tag/offer/product name replaced by its typed id.

    ``lookup(kind)`` is called at most once per kind, and only for kinds the query
    names. Every name that does not resolve is reported at once (a KQLError, or
    KQLErrors for several). A query without names comes back unchanged.
    """
    reg = reg or registry()
    if query.filter is None or not find_names(query, reg):
        return query
    filters = named_filters(reg)
    fetched: dict[str, list[tuple[str, str]]] = {}
    errors: list[KQLError] = []

    def candidates(kind: str) -> list[tuple[str, str]]:
        if kind not in fetched:
            fetched[kind] = _unique(lookup(kind))
        return fetched[kind]

    def value(kind: str, node: ast.Scalar) -> ast.Scalar:
        if not isinstance(node, ast.Str):
            return node
        resolved = _resolve(kind, node, candidates, reg.id_prefixes[kind])
        if isinstance(resolved, KQLError):
            errors.append(resolved)
            return node
        return resolved

    def atom(node: ast.Expr) -> ast.Expr:
        named = _named(node, filters)
        if named is None:
            return node
        kind = filters[named[0]]
        values = tuple(value(kind, v) for v in named[1])
        if not _moved(values, named[1]):
            return node
        if isinstance(node, ast.Call):
            return attrs.evolve(node, args=values)
        assert isinstance(node, ast.Comparison) and isinstance(node.value, ast.ValueList)
        return attrs.evolve(node, value=attrs.evolve(node.value, items=values))

    rewritten = _map_atoms(query.filter, atom)
    raise_all(errors, source)
    return attrs.evolve(query, filter=rewritten)


def site_of(query: ast.Query, source: str | None = None) -> str | None:
    """The one site a query with names is about (``site = 2``), or None to use the client's.

    Tags, offers and products belong to a site: a name is looked up in the catalogue of
    the site the query runs against, not of ``--site`` when the query names another.
    A query naming several sites cannot say which catalogue a name is from (E211).
    """
    if query.filter is None:
        return None
    sites: dict[int, ast.Comparison] = {}
    for node in ast.walk(query.filter):
        if isinstance(node, ast.Comparison) and node.field.text == "site" and node.op in ("=", "in"):
            items = node.value.items if isinstance(node.value, ast.ValueList) else (node.value,)
            for item in items:
                if isinstance(item, ast.Int | ast.TypedId):
                    sites.setdefault(item.number if isinstance(item, ast.TypedId) else item.value, node)
    if len(sites) > 1:
        first, *_ = find_names(query)
        numbers = ", ".join(str(n) for n in sites)
        error = KQLError(
            "E211",
            f"this query is about several sites ({numbers}); a name is looked up in one site's catalogue",
            first.span,
            "write the id (e.g. tag_5), or run one query per site",
        )
        raise error.with_source(source) if source is not None else error
    return str(next(iter(sites))) if sites else None


def with_placeholder_ids(query: ast.Query, reg: Registry | None = None) -> ast.Query:
    """``query`` with each distinct name replaced by a distinct made-up id of its kind.

    The plan's shape (and so its request count) does not depend on which ids the names
    become: this lets a request budget be checked before any catalogue is fetched.
    """
    names: dict[str, list[str]] = {}
    for ref in find_names(query, reg):
        names.setdefault(ref.kind, [])
        if ref.name not in names[ref.kind]:
            names[ref.kind].append(ref.name)
    return resolve_names(
        query, lambda kind: [(str(i), name) for i, name in enumerate(names.get(kind, []), start=1)], None, reg
    )


def _moved(new: tuple[ast.Scalar, ...], old: tuple[ast.Scalar, ...]) -> bool:
    return any(a is not b for a, b in zip(new, old, strict=True))


def not_about_names(errors: list[KQLError], query: ast.Query, reg: Registry | None = None) -> list[KQLError]:
    """``errors`` without the validator's E206 for names (the ids resolution will put there)."""
    spans = {ref.span for ref in find_names(query, reg or registry())}
    # A name's E206 is the validator saying "an id, not a string": exactly what resolution fixes.
    return [e for e in errors if not (e.code == "E206" and e.span in spans)]


def _named(node: ast.Expr, filters: Mapping[str, str]) -> tuple[str, tuple[ast.Scalar, ...]] | None:
    """(filter name, the values that may be names) when ``node`` uses a filter whose ids have names."""
    if isinstance(node, ast.Call) and node.name.text in filters:
        return node.name.text, node.args
    if (
        isinstance(node, ast.Comparison)
        and node.field.text in filters
        and node.op == "in"
        and isinstance(node.value, ast.ValueList)
    ):
        return node.field.text, node.value.items
    return None


def _map_atoms(expr: ast.Expr, change: Callable[[ast.Expr], ast.Expr]) -> ast.Expr:
    """``expr`` with ``change`` applied to every atom, left to right, rebuilt without recursion.

    Without recursion because a query built in Python (not parsed) has no depth limit.
    """
    done: list[ast.Expr] = []
    stack: list[tuple[ast.Expr, bool]] = [(expr, False)]
    while stack:
        node, children_done = stack.pop()
        if isinstance(node, ast.And | ast.Or | ast.Not):
            children: tuple[ast.Expr, ...] = (node.item,) if isinstance(node, ast.Not) else node.items
            if not children_done:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(children))
                continue
            new = tuple(done[len(done) - len(children) :])
            del done[len(done) - len(children) :]
            if all(a is b for a, b in zip(new, children, strict=True)):
                done.append(node)
            elif isinstance(node, ast.Not):
                done.append(attrs.evolve(node, item=new[0]))
            else:
                done.append(attrs.evolve(node, items=new))
        else:
            done.append(change(node))
    return done[0]


def _unique(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """First occurrence of each id (a catalogue walked page by page may repeat an item)."""
    seen: dict[str, str] = {}
    for item_id, name in items:
        seen.setdefault(str(item_id), name)
    return list(seen.items())


def _loose(name: str) -> str:
    return " ".join(name.split()).casefold()


def _resolve(
    kind: str, node: ast.Str, candidates: Callable[[str], list[tuple[str, str]]], prefix: str
) -> ast.TypedId | KQLError:
    name = node.value
    plural = CATALOGUES[kind].plural
    if not name.strip():
        return KQLError("E108", f"empty {kind} name", node.span, f"write a {kind} name or an id such as {prefix}_5")
    items = candidates(kind)
    matches = [item for item in items if item[1] == name]
    how = ""
    if not matches:
        # Case and spacing are easy to get wrong and rarely tell two items apart.
        matches = [item for item in items if _loose(item[1]) == _loose(name)]
        how = " (ignoring case and spacing)"
    if len(matches) == 1:
        return ast.TypedId(prefix, _number(matches[0][0], kind), span=node.span)
    if matches:
        return KQLError(
            "E210",
            f"{len(matches)} {plural} are named {name!r}{how}",
            node.span,
            f"write the id of the one you mean: {_listed(matches, prefix, kind)}",
        )
    return KQLError("E108", f"no {kind} named {name!r}", node.span, _suggest(name, items, prefix, kind, plural))


def _number(item_id: str, kind: str) -> int:
    if not (item_id.isascii() and item_id.isdigit() and len(item_id) <= 19) or int(item_id) <= 0:
        # catalogue() checks the API's ids; only a hand-written lookup can get here.
        raise ValueError(f"{kind} id {item_id!r} is not a positive integer")
    return int(item_id)


def _typed(item_id: str, prefix: str, kind: str) -> str:
    return f"{prefix}_{_number(item_id, kind)}"


def _listed(items: list[tuple[str, str]], prefix: str, kind: str) -> str:
    shown = ", ".join(f"{_typed(i, prefix, kind)} ({n!r})" for i, n in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _suggest(name: str, items: list[tuple[str, str]], prefix: str, kind: str, plural: str) -> str:
    """'did you mean' the closest names (with their ids), or what exists."""
    import difflib  # lazily: only needed on the error path

    if not items:
        return f"the API lists no {plural} at all; write an id such as {prefix}_5"
    ids_by_name: dict[str, list[str]] = {}
    for item_id, item_name in items:
        ids_by_name.setdefault(item_name, []).append(item_id)
    by_folded: dict[str, list[str]] = {}
    for item_name in ids_by_name:
        by_folded.setdefault(_loose(item_name), []).append(item_name)
    wanted = _loose(name)
    close = difflib.get_close_matches(wanted, list(by_folded), n=3, cutoff=0.6)
    if len(close) < 3 and len(wanted) >= 3:
        # A part of a longer name ("vip" for "VIP Customer") is a likely slip too.
        close += [f for f in by_folded if wanted in f and f not in close][: 3 - len(close)]
    names = [n for folded in close for n in by_folded[folded]][:3]
    if not names:
        sample = ", ".join(repr(n) for n in list(ids_by_name)[:5])
        return f"no {kind} has a similar name; the {len(ids_by_name)} {kind} names include {sample}"

    def shown(item_name: str) -> str:
        return f"{item_name!r} ({', '.join(_typed(i, prefix, kind) for i in ids_by_name[item_name])})"

    if len(names) == 1:
        return f"did you mean {shown(names[0])}?"
    return "did you mean " + ", ".join(shown(n) for n in names[:-1]) + f" or {shown(names[-1])}?"


class CatalogueSource(Protocol):
    """Where the items of a kind come from: the executor's clients implement it over HTTP."""

    def catalogue(self, kind: str, site: str | None = None) -> list[tuple[str, str]]:
        """Every ``(id, name)`` of one kind (``tag``, ``offer``, ``product``) in ``site``."""
        ...


class AsyncCatalogueSource(Protocol):
    """``CatalogueSource`` for asynchronous clients."""

    async def catalogue(self, kind: str, site: str | None = None) -> list[tuple[str, str]]: ...


class Resolver:
    """Names to ids for one run: each catalogue is fetched once, when a query first names that kind.

        resolver = Resolver(client)   # any CatalogueSource
        query = resolver.resolve(expanded_query, text)
    """

    def __init__(self, source: CatalogueSource, reg: Registry | None = None) -> None:
        self.source = source
        self.reg = reg or registry()
        self._cache: dict[tuple[str | None, str], list[tuple[str, str]]] = {}
        self._lock = threading.Lock()  # one fetch per kind even if runs share the resolver across threads

    def lookup(self, kind: str, site: str | None = None) -> list[tuple[str, str]]:
        with self._lock:
            if (site, kind) not in self._cache:
                self._cache[(site, kind)] = self.source.catalogue(kind, site)
            return self._cache[(site, kind)]

    def resolve(self, query: ast.Query, source: str | None = None) -> ast.Query:
        site = site_of(query, source)
        return resolve_names(query, lambda kind: self.lookup(kind, site), source, self.reg)

    def clear(self) -> None:
        """Forget the fetched catalogues (a long-lived resolver after the account changed)."""
        with self._lock:
            self._cache.clear()


class AsyncResolver:
    """``Resolver`` for an asynchronous source: ``await AsyncResolver(client).resolve(query, source)``."""

    def __init__(self, source: AsyncCatalogueSource, reg: Registry | None = None) -> None:
        self.source = source
        self.reg = reg or registry()
        self._cache: dict[tuple[str | None, str], list[tuple[str, str]]] = {}

    async def resolve(self, query: ast.Query, source: str | None = None) -> ast.Query:
        # Fetch what the query names first; resolve_names itself stays synchronous and pure.
        site = site_of(query, source)
        for kind in dict.fromkeys(ref.kind for ref in find_names(query, self.reg) if ref.name.strip()):
            if (site, kind) not in self._cache:
                self._cache[(site, kind)] = await self.source.catalogue(kind, site)
        return resolve_names(query, lambda kind: self._cache[(site, kind)], source, self.reg)

    def clear(self) -> None:
        self._cache.clear()

"""Saved segments: named KQL queries kept in a TOML file, used in queries as ``@name``.

```toml
[segments.vip]
query = "net_revenue > 500 and has_tag(tag_5)"
description = "Top spenders"
```

Finding and reading the file is ``kql.planning.segments_file``: from ``--segments
PATH``, then ``$KQL_SEGMENTS``, then ``kql.toml`` in the working directory or the
nearest parent that has one (not above a repository's root). This module is the
segments themselves and their expansion.

A segments file is untrusted input: expanding a query costs time linear in the
file (each segment is expanded once), a chain of references is at most
MAX_CHAIN segments long, and a query written out in full is at most the parser's
MAX_QUERY_LENGTH characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from kql.language import ast
from kql.language.errors import KQLError, KQLErrors, Span, did_you_mean
from kql.language.parser import MAX_DEPTH, MAX_QUERY_LENGTH, parse
from kql.planning.names import not_about_names
from kql.planning.validate import validate

# How many segments one chain of references may pass through (@a uses @b uses @c …).
MAX_CHAIN = 64


@attrs.frozen(slots=True)
class Segment:
    name: str
    query: str
    description: str | None = None
    # Where the segment's query is written, for error messages.
    path: str | None = None
    line: int | None = None

    def where(self, offset: int = 0) -> str:
        """``file:line`` of a character of the query (multi-line queries move down)."""
        line = None if self.line is None else self.line + self.query.count("\n", 0, offset)
        return f"{self.path or '<segments>'}:{line if line is not None else '?'}"


class SegmentError(KQLError):
    """A problem inside a segment: rendered with the file and line it is on."""

    def __init__(self, segment: Segment, error: KQLError) -> None:
        super().__init__(error.code, error.message, error.span, error.hint, segment.query)
        self.segment = segment

    def render(self) -> str:
        offset = self.span.start if self.span else 0
        header = f"{self.segment.where(offset)}: in segment '{self.segment.name}'"
        return header + "\n" + super().render()


@attrs.frozen(slots=True)
class Segments:
    """The segments of one file, by name (in file order)."""

    segments: dict[str, Segment]
    path: str | None = None
    # Each segment's query parsed once, on first use.
    _parsed: dict[str, ast.Query] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments.values())

    def __len__(self) -> int:
        return len(self.segments)

    def __contains__(self, name: object) -> bool:
        return name in self.segments

    def get(self, name: str) -> Segment | None:
        return self.segments.get(name)

    def parsed(self, segment: Segment) -> ast.Query:
        """``segment``'s query, parsed (SegmentError if it does not parse)."""
        query = self._parsed.get(segment.name)
        if query is None:
            query = self._parsed[segment.name] = _parse(segment)
        return query

    def expand(self, query: ast.Query) -> ast.Query:
        """``query`` with every ``@name`` replaced by that segment's filter (see module doc)."""
        if not _refs(query):
            return query
        return _Expander(self).query(query)

    def check(self) -> list[KQLError]:
        """Every problem of every segment: syntax, registry, unknown references, cycles.

        One expander serves every segment, so each is expanded once and a problem
        that breaks many segments (a cycle, a broken segment others use) is reported once.
        """
        problems: list[KQLError] = []
        reported: set[tuple[str, str, Span | None, str]] = set()
        expander = _Expander(self)
        for segment in self:
            for problem in self._problems(segment, expander):
                where = problem.segment.name if isinstance(problem, SegmentError) else segment.name
                key = (where, problem.code, problem.span, problem.message)
                if key not in reported:
                    reported.add(key)
                    problems.append(problem)
        return problems

    def _problems(self, segment: Segment, expander: _Expander) -> list[KQLError]:
        try:
            parsed = self.parsed(segment)
            # Its own problems first, all of them; then what expansion finds
            # (cycles, segments with clauses used inside an expression).
            try:
                validate(parsed, segment.query, segments=self.segments)
            except KQLError as error:
                # Tag, offer and product names are fine in a segment: kql run resolves them.
                others = not_about_names(error.errors, parsed)
                if others:
                    raise KQLErrors(others) from None
            expander.resolve(ast.SegmentRef(segment.name), None)
        except SegmentError as error:
            return [error]
        except KQLError as error:
            return [SegmentError(segment, e) for e in error.errors]
        return []


def _parse(segment: Segment) -> ast.Query:
    try:
        return parse(segment.query)
    except KQLError as error:
        raise SegmentError(segment, error.errors[0]) from None


class _Expander:
    """Expands segments, each one once (its expansion is shared: AST nodes are frozen).

    The references between segments are walked with an explicit stack, so a long
    chain costs a loop, not a RecursionError. Before a segment's expansion is built,
    its written-out size and nesting depth are worked out from those of the segments
    it uses, so ``@s1 or @s1`` chained 16 deep is refused at once instead of being
    built 65,536 times over.
    """

    def __init__(self, segments: Segments) -> None:
        self.segments = segments
        self.done: dict[str, ast.Query] = {}  # name -> its query with every @ref expanded
        self.failed: dict[str, KQLError] = {}  # name -> why it cannot be expanded
        self.size: dict[str, int] = {}  # name -> characters of its query written out in full
        self.depth: dict[str, int] = {}  # name -> nesting depth of its expanded filter
        self.chain: dict[str, int] = {}  # name -> segments in its longest chain of references

    def query(self, query: ast.Query) -> ast.Query:
        """The user's ``query`` with every ``@name`` replaced (errors point at the ``@name``)."""
        refs = _refs(query)
        for ref in refs:
            self.resolve(ref, None)
        written = sum(self.size[ref.name] for ref in refs)
        if written > MAX_QUERY_LENGTH:
            names = ", ".join(dict.fromkeys("@" + ref.name for ref in refs))
            raise KQLError(
                "E006",
                f"with {names} written out, the query is {written:,} characters long; "
                f"the limit is {MAX_QUERY_LENGTH:,}",
                refs[0].span,
                "segments that use each other several times grow fast: simplify them",
            )
        if isinstance(query.filter, ast.SegmentRef):
            # `@vip sort name`: the segment's own clauses apply unless the query sets them.
            ref = query.filter
            referenced = _respan(self.done[ref.name], ref.span)
            clauses = {k: getattr(query, k) or getattr(referenced, k) for k in _CLAUSE_NAMES}
            return ast.Query(filter=referenced.filter, **clauses, span=query.span)
        if query.filter is None:
            return query
        # Positions inside a segment mean nothing in the query that uses it:
        # point everything at the `@name` that brought it in.
        filter_, _ = self.build(query.filter, None, lambda ref, q: _respan(q, ref.span))
        return attrs.evolve(query, filter=filter_)

    def resolve(self, ref: ast.SegmentRef, inside: Segment | None) -> ast.Query:
        """The expansion of the segment ``ref`` names, computing it (and what it uses) once."""
        if ref.name in self.failed:
            raise self.failed[ref.name]
        if ref.name not in self.done:
            self.walk(ref, inside)
        return self.done[ref.name]

    def walk(self, root: ast.SegmentRef, inside: Segment | None) -> None:
        """Depth-first over the references from ``root``; then each segment is finished after those it uses."""
        self.known(root, inside)
        order: list[Segment] = []  # post-order: every segment after the segments it uses
        path: list[Segment] = []
        pending: list[list[ast.SegmentRef]] = []
        on_path: set[str] = set()
        seen: set[str] = set()

        def enter(segment: Segment) -> None:
            path.append(segment)
            on_path.add(segment.name)
            seen.add(segment.name)
            pending.append(list(reversed(_refs(self.segments.parsed(segment)))))

        try:
            enter(self.segments.segments[root.name])
            while path:
                if not pending[-1]:
                    pending.pop()
                    on_path.discard(path[-1].name)
                    order.append(path.pop())
                    continue
                ref, current = pending[-1].pop(), path[-1]
                if ref.name in self.failed:
                    raise self.failed[ref.name]
                self.known(ref, current)
                if ref.name in on_path:
                    names = [s.name for s in path]
                    cycle = " -> ".join("@" + n for n in [*names[names.index(ref.name) :], ref.name])
                    raise SegmentError(
                        current,
                        KQLError(
                            "E013", f"segments refer to each other in a cycle: {cycle}", ref.span, "break the cycle"
                        ),
                    )
                if ref.name not in self.done and ref.name not in seen:
                    enter(self.segments.segments[ref.name])
        except KQLError as error:
            # Every segment on the path depends on the broken one: remember, and report it once.
            for segment in path:
                self.failed.setdefault(segment.name, error)
            raise
        for segment in order:
            try:
                self.finish(segment)
            except KQLError as error:
                self.failed[segment.name] = error
                raise

    def known(self, ref: ast.SegmentRef, inside: Segment | None) -> None:
        if ref.name in self.segments:
            return
        names = ["@" + n for n in self.segments.segments]
        hint = did_you_mean("@" + ref.name, names) or (f"defined: {', '.join(names)}" if names else None)
        raise self.error(KQLError("E106", f"unknown segment '@{ref.name}'", ref.span, hint), inside)

    def longest_chain(self, segment: Segment, refs: list[ast.SegmentRef]) -> int:
        """Segments in the longest chain of references from ``segment``: at most MAX_CHAIN."""
        chain = 1 + max((self.chain[r.name] for r in refs), default=0)
        if chain <= MAX_CHAIN:
            return chain
        names = [segment.name]
        while len(names) <= MAX_CHAIN:  # follow the longest branch down, for the message
            below = _refs(self.segments.parsed(self.segments.segments[names[-1]]))
            if not below:
                break
            names.append(max(below, key=lambda r: self.chain.get(r.name, 0)).name)
        shown = ["@" + n for n in names[:3]] + ["…", "@" + names[-1]]
        raise SegmentError(
            segment,
            KQLError(
                "E007",
                f"'@{segment.name}' refers through a chain of more than {MAX_CHAIN} segments: "
                + " -> ".join(shown),
                refs[0].span,
                f"segments may use segments that use segments … {MAX_CHAIN} deep at most",
            ),
        )

    def finish(self, segment: Segment) -> None:
        """Build ``segment``'s expansion from the finished expansions of the segments it uses."""
        parsed = self.segments.parsed(segment)
        refs = _refs(parsed)
        size = len(segment.query) + sum(self.size[r.name] + 2 - len(r.name) - 1 for r in refs)
        if size > MAX_QUERY_LENGTH:
            raise SegmentError(
                segment,
                KQLError(
                    "E006",
                    f"segment '@{segment.name}' written out in full is {size:,} characters long; "
                    f"the limit of a query is {MAX_QUERY_LENGTH:,}",
                    refs[0].span if refs else None,
                    "segments that use each other several times grow fast: simplify them",
                ),
            )
        self.size[segment.name] = size
        self.chain[segment.name] = self.longest_chain(segment, refs)
        if isinstance(parsed.filter, ast.SegmentRef):
            referenced = self.done[parsed.filter.name]
            clauses = {k: getattr(parsed, k) or getattr(referenced, k) for k in _CLAUSE_NAMES}
            expanded = ast.Query(filter=referenced.filter, **clauses, span=parsed.span)
            depth = self.depth[parsed.filter.name]
        elif parsed.filter is None:
            expanded, depth = parsed, 0
        else:
            filter_, depth = self.build(parsed.filter, segment, lambda ref, q: q)
            expanded = attrs.evolve(parsed, filter=filter_)
        if depth > MAX_DEPTH:
            raise SegmentError(
                segment,
                KQLError(
                    "E007",
                    f"segment '@{segment.name}' expands to more than {MAX_DEPTH} levels of nesting",
                    refs[0].span if refs else None,
                    "flatten it: 'a and (b and c)' is 'a and b and c'",
                ),
            )
        self.depth[segment.name] = depth
        self.done[segment.name] = expanded

    def build(
        self,
        node: ast.Expr,
        inside: Segment | None,
        place: Callable[[ast.SegmentRef, ast.Query], ast.Query],
    ) -> tuple[ast.Expr, int]:
        """``node`` with each ``@ref`` in it replaced (the segments are finished), and its depth.

        Recursion follows the nesting of one query (at most MAX_DEPTH, the parser's limit).
        """
        if isinstance(node, ast.SegmentRef):
            referenced = place(node, self.resolve(node, inside))
            clauses = [k for k in _CLAUSE_NAMES if getattr(referenced, k) is not None]
            if clauses:
                raise self.error(
                    KQLError(
                        "E014",
                        f"segment '@{node.name}' has a {clauses[0]} clause, which means nothing inside an expression",
                        node.span,
                        f"use @{node.name} on its own, or move the {clauses[0]} clause out of the segment",
                    ),
                    inside,
                )
            if referenced.filter is None:
                raise self.error(
                    KQLError("E014", f"segment '@{node.name}' has no filter", node.span, "give it a query"), inside
                )
            return referenced.filter, self.depth[node.name]
        if isinstance(node, ast.And | ast.Or):
            built = [self.build(item, inside, place) for item in node.items]
            return attrs.evolve(node, items=tuple(b for b, _ in built)), 1 + max(d for _, d in built)
        if isinstance(node, ast.Not):
            item, depth = self.build(node.item, inside, place)
            return attrs.evolve(node, item=item), 1 + depth
        return node, 1

    def error(self, error: KQLError, inside: Segment | None) -> KQLError:
        return SegmentError(inside, error) if inside is not None else error


_CLAUSE_NAMES = ("sort", "select", "limit", "page")


def _refs(query: ast.Query) -> list[ast.SegmentRef]:
    """The ``@name`` references of a query, in the order they are written."""
    if query.filter is None:
        return []
    return [node for node in ast.walk(query.filter) if isinstance(node, ast.SegmentRef)]


def uses_segments(query: ast.Query) -> bool:
    return bool(_refs(query))


def _respan(query: ast.Query, span: Span | None) -> ast.Query:
    """``query`` with every node's span set to ``span`` (recursion follows the nesting: MAX_DEPTH)."""

    def move(node: object) -> object:
        if isinstance(node, tuple):
            return tuple(move(n) for n in node)
        if attrs.has(type(node)):
            fields = attrs.fields(type(node))  # type: ignore[arg-type]
            changes = {f.name: move(getattr(node, f.name)) for f in fields if f.name != "span"}
            return attrs.evolve(node, **changes, span=span)  # type: ignore[misc]
        return node

    moved = move(query)
    assert isinstance(moved, ast.Query)
    return moved

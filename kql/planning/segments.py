"""Saved segments: named KQL queries kept in a TOML file, used in queries as ``@name``.

```toml
[segments.vip]
query = "net_revenue > 500 and has_tag(tag_5)"
description = "Top spenders"
```

The file is found from ``--segments PATH``, then ``$KQL_SEGMENTS``, then
``kql.toml`` in the working directory or the nearest parent that has one (as git
and ruff look for their files), not above a repository's root (a folder with
``.git``) nor past the filesystem's root. Problems are reported with the file and
the line of the segment they are in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import attrs

from kql.language import ast
from kql.language.errors import KQLError, KQLErrors, Span, did_you_mean

ENV_VAR = "KQL_SEGMENTS"
DEFAULT_FILE = "kql.toml"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


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

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments.values())

    def __len__(self) -> int:
        return len(self.segments)

    def __contains__(self, name: object) -> bool:
        return name in self.segments

    def get(self, name: str) -> Segment | None:
        return self.segments.get(name)

    def expand(self, query: ast.Query) -> ast.Query:
        """``query`` with every ``@name`` replaced by that segment's filter (see module doc)."""
        return _Expander(self).query(query)

    def check(self) -> list[KQLError]:
        """Every problem of every segment: syntax, registry, unknown references, cycles."""
        from kql.planning.names import not_about_names
        from kql.planning.validate import validate

        problems: list[KQLError] = []
        for segment in self:
            try:
                parsed = _parse(segment)
                # Its own problems first, all of them; then what expansion finds
                # (cycles, segments with clauses used inside an expression).
                try:
                    validate(parsed, segment.query, segments=self.segments)
                except KQLError as error:
                    # Tag, offer and product names are fine in a segment: kql run resolves them.
                    others = not_about_names(error.errors, parsed)
                    if others:
                        raise KQLErrors(others) from None
                _Expander(self).query(parsed, segment)
            except SegmentError as error:
                problems.append(error)
            except KQLError as error:
                problems.extend(SegmentError(segment, e) for e in error.errors)
        return problems


def from_text(text: str, path: str | None = None) -> Segments:
    """Segments from TOML text. Raises KQLError (E012) naming file and line."""
    import tomllib

    where = path or "<segments>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise KQLError("E012", f"{where}: not valid TOML: {error}", None, "see kql help segments") from None
    table = data.get("segments", {})
    unknown = set(data) - {"segments"}
    if unknown or not isinstance(table, dict):
        raise KQLError(
            "E012",
            f"{where}: expected only a [segments] table, found {', '.join(sorted(unknown)) or 'segments = …'}",
            None,
            'write each segment as [segments.NAME] with query = "…"',
        )
    lines = _query_lines(text.splitlines())
    segments: dict[str, Segment] = {}
    for name, body in table.items():
        line = lines.get(name)
        at = f"{where}:{line or '?'}"
        if not _NAME.match(name):
            raise KQLError("E012", f"{at}: '{name}' cannot be a segment name", None, "use letters, digits, _ and -")
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise KQLError("E012", f"{at}: segment '{name}' needs query = \"…\"", None, "see kql help segments")
        extra = set(body) - {"query", "description"}
        if extra:
            raise KQLError("E012", f"{at}: segment '{name}' has unknown keys: {', '.join(sorted(extra))}", None, None)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise KQLError("E012", f"{at}: the description of '{name}' must be a string", None, None)
        segments[name] = Segment(name, body["query"], description, path, line)
    return Segments(segments, path)


def load(path: str | os.PathLike[str]) -> Segments:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise KQLError("E012", f"cannot read segments file {file}: {error.strerror}", None, None) from None
    return from_text(text, str(file))


def find(explicit: str | None = None) -> Path | None:
    """The segments file to use: ``explicit``, else ``$KQL_SEGMENTS``, else the nearest ``kql.toml``.

    The nearest is in the working directory or a parent, up to the repository's root (the
    first folder holding ``.git``) or the filesystem's root.
    """
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    try:
        here = Path.cwd()
    except OSError:  # the working directory was deleted
        return None
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_FILE
        if candidate.is_file():
            return candidate if folder != here else Path(DEFAULT_FILE)
        if (folder / ".git").exists():
            return None
    return None


_HEADER = re.compile(r"""\s*\[\s*segments\s*\.\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*\]""")
_INLINE = re.compile(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=\s*\{""")
_DOTTED = re.compile(r"""\s*segments\s*\.\s*([A-Za-z0-9_-]+)\s*\.\s*query\s*=""")
_QUERY = re.compile(r"\s*query\s*=")


def _query_lines(lines: list[str]) -> dict[str, int]:
    """Segment name → the 1-based line its query starts on, in one pass over the TOML text."""
    found: dict[str, int] = {}
    current: str | None = None  # the [segments.NAME] table we are in
    in_segments_table = False
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            current = next(g for g in header.groups() if g is not None)
            found.setdefault(current, number)
            in_segments_table = False
            continue
        if line.lstrip().startswith("["):
            current = None
            in_segments_table = line.strip().replace(" ", "") == "[segments]"
            continue
        dotted = _DOTTED.match(line)
        inline = _INLINE.match(line) if in_segments_table else None
        if dotted or inline:
            match = dotted or inline
            assert match is not None
            found[next(g for g in match.groups() if g is not None)] = number
        elif current is not None and _QUERY.match(line):
            # A multi-line string drops the newline right after its opening quotes.
            opens_block = line.rstrip().endswith(('"""', "'''"))
            found[current] = number + 1 if opens_block else number
    return found


def _parse(segment: Segment) -> ast.Query:
    from kql.language.parser import parse

    try:
        return parse(segment.query)
    except KQLError as error:
        raise SegmentError(segment, error.errors[0]) from None


class _Expander:
    def __init__(self, segments: Segments) -> None:
        self.segments = segments
        self.stack: list[str] = []

    def query(self, query: ast.Query, inside: Segment | None = None) -> ast.Query:
        if isinstance(query.filter, ast.SegmentRef):
            # `@vip sort name`: the segment's own clauses apply unless the query sets them.
            referenced = self.segment_query(query.filter, inside)
            clauses = {k: getattr(query, k) or getattr(referenced, k) for k in ("sort", "select", "limit", "page")}
            return ast.Query(filter=referenced.filter, **clauses, span=query.span)
        if query.filter is None:
            return query
        return attrs.evolve(query, filter=self.expr(query.filter, inside))

    def segment_query(self, ref: ast.SegmentRef, inside: Segment | None) -> ast.Query:
        segment = self.segments.get(ref.name)
        if segment is None:
            hint = did_you_mean("@" + ref.name, ["@" + n for n in self.segments.segments]) or (
                f"defined: {', '.join('@' + n for n in self.segments.segments)}" if self.segments.segments else None
            )
            raise self.error(KQLError("E106", f"unknown segment '@{ref.name}'", ref.span, hint), inside)
        if ref.name in self.stack:
            cycle = " -> ".join("@" + n for n in [*self.stack[self.stack.index(ref.name) :], ref.name])
            raise self.error(
                KQLError("E013", f"segments refer to each other in a cycle: {cycle}", ref.span, "break the cycle"),
                inside,
            )
        self.stack.append(ref.name)
        try:
            expanded = self.query(_parse(segment), segment)
        finally:
            self.stack.pop()
        _check_depth(expanded, ref, inside, self)
        # Positions inside the segment mean nothing in the query that uses it:
        # point everything at the `@name` that brought it in.
        return _respan(expanded, ref.span)

    def expr(self, node: ast.Expr, inside: Segment | None) -> ast.Expr:
        if isinstance(node, ast.SegmentRef):
            referenced = self.segment_query(node, inside)
            clauses = [k for k in ("sort", "select", "limit", "page") if getattr(referenced, k) is not None]
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
            return referenced.filter
        if isinstance(node, ast.And | ast.Or):
            return attrs.evolve(node, items=tuple(self.expr(i, inside) for i in node.items))
        if isinstance(node, ast.Not):
            return attrs.evolve(node, item=self.expr(node.item, inside))
        return node

    def error(self, error: KQLError, inside: Segment | None) -> KQLError:
        return SegmentError(inside, error) if inside is not None else error


def _check_depth(query: ast.Query, ref: ast.SegmentRef, inside: Segment | None, expander: _Expander) -> None:
    from kql.language.parser import MAX_DEPTH

    if query.filter is not None and ast.depth(query.filter) > MAX_DEPTH:
        raise expander.error(
            KQLError("E007", f"'@{ref.name}' expands to more than {MAX_DEPTH} levels of nesting", ref.span, None),
            inside,
        )


def _respan(query: ast.Query, span: Span | None) -> ast.Query:
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

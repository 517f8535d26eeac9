"""What the language server says about a document, in character offsets. Pure logic: no pygls.

Two kinds of document: a ``.kql`` file (the whole text is one query) and a segments
file (``kql.toml``: one query inside each ``[segments.NAME]`` string). Problems in a
segments file are found by ``Segments.check()`` and moved from query offsets to file
offsets through ``text.QueryString``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Literal

import attrs

from kql.cli.lsp.text import QueryString, query_strings
from kql.language import ast
from kql.language.errors import KQLError, Span
from kql.planning.segments import Segment, SegmentError, Segments
from kql.planning.segments_file import from_text
from kql.registry import Filter, registry

Severity = Literal["error", "warning"]
# The candidates of a did-you-mean hint: "did you mean 'opened' or 'dropped'?".
_HINT = re.compile(r"\Adid you mean (.+)\?\Z")
_QUOTED = re.compile(r"'([^']+)'")
_WORD = re.compile(r"@?[A-Za-z_][A-Za-z0-9_-]*\Z")
_FILE_LINE = re.compile(r"\A<segments>:(\d+|\?): ?")
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


@attrs.frozen(slots=True)
class Related:
    """Another place a problem is about: a segment's definition in its file."""

    path: str
    start: int
    end: int
    message: str


@attrs.frozen(slots=True)
class Problem:
    start: int
    end: int
    severity: Severity
    code: str
    message: str
    hint: str | None = None
    related: tuple[Related, ...] = ()
    # Set when the hint's suggestions may replace text[start:end] as they are.
    fixes: tuple[str, ...] = ()


class SegmentsFile:
    """A segments file's text: its segments (when the file is valid) and where each query is."""

    def __init__(self, text: str, path: str | None) -> None:
        self.text = text
        self.path = path
        self.strings = {s.name: s for s in query_strings(text)}
        self.segments: Segments | None
        self.error: KQLError | None = None
        try:
            self.segments = from_text(text)  # messages then start with "<segments>:LINE"
        except KQLError as error:
            self.segments, self.error = None, error

    def known(self) -> Segments:
        """The segments to complete and jump to: the file's, or what can be read of it while it is broken."""
        if self.segments is not None:
            return self.segments
        return Segments({n: Segment(n, s.value, None, self.path) for n, s in self.strings.items()}, self.path)

    def exact(self, name: str) -> QueryString | None:
        """The string of segment ``name`` when it decodes to exactly the query tomllib read."""
        string = self.strings.get(name)
        segment = self.segments.get(name) if self.segments is not None else None
        if string is None or (segment is not None and segment.query != string.value):
            return None
        return string

    def definition(self, name: str) -> tuple[int, int] | None:
        string = self.strings.get(name)
        if string is not None:
            return string.name_start, string.name_end
        segment = self.known().get(name)
        if segment is None or segment.line is None:
            return None
        return _line_range(self.text, segment.line - 1)

    def string_at(self, offset: int) -> tuple[QueryString, int] | None:
        """The query string holding file ``offset``, and the offset inside the query."""
        for string in self.strings.values():
            inside = string.to_query(offset)
            if inside is not None:
                return string, inside
        return None


# ---- diagnostics -------------------------------------------------------------------------


def kql_problems(text: str, segments: SegmentsFile | None) -> list[Problem]:
    """Every problem of a ``.kql`` document; a query that ``kql run`` can run has none."""
    from kql.language.parser import parse
    from kql.planning.names import not_about_names
    from kql.planning.validate import validate

    try:
        parsed = parse(text)
    except KQLError as error:
        return [_problem(e) for e in error.errors]
    known = segments.segments if segments is not None else None
    warnings: tuple[KQLError, ...] = ()
    try:
        warnings = validate(parsed, text, segments=set(known.segments) if known else set()).warnings
    except KQLError as error:
        # Tag, offer and product names are fine: kql run resolves them to ids.
        errors = not_about_names(error.errors, parsed)
        if errors:
            return [_problem(e, _segment_hint(e, segments)) for e in errors]
    if known is None or not _refs(parsed):
        return _planned(parsed, text) + [_problem(w) for w in warnings]
    from kql.planning.checked import expand

    try:
        expanded = expand(parsed, known, text)
    except SegmentError as error:
        return _in_segment(error, parsed, segments)
    except KQLError as error:
        return [_problem(e) for e in error.errors]
    try:
        validate(expanded, text)
    except KQLError as error:
        inner = not_about_names(error.errors, expanded)
        if inner:  # a segment's own problem, reported at the @name that brought it in
            # Its hint names a fix inside the segment, not a replacement for `@name`.
            return [attrs.evolve(_problem(e, prefix=_ref_prefix(e, parsed)), fixes=()) for e in inner]
    return _planned(expanded, text) + [_problem(w) for w in warnings]


def segments_problems(file: SegmentsFile) -> list[Problem]:
    """Every problem of a segments file, each inside the query string it is about."""
    if file.error is not None:
        return [_file_problem(file.text, file.error)]
    assert file.segments is not None
    found: dict[tuple[int, int, str], Problem] = {}
    for error in file.segments.check():
        segment = error.segment if isinstance(error, SegmentError) else None
        problem = _problem(error)
        if segment is not None:
            start, end = _segment_range(file, segment.name, error.span)
            problem = attrs.evolve(problem, start=start, end=end)
            if file.exact(segment.name) is None:
                problem = attrs.evolve(problem, fixes=())  # the span could not be placed exactly
        found.setdefault((problem.start, problem.end, problem.code), problem)
    return sorted(found.values(), key=lambda p: (p.start, p.end))


def _planned(query: ast.Query, text: str) -> list[Problem]:
    """What the planner refuses (e.g. too many branches); several requests are fine."""
    import kql
    from kql.planning.names import with_placeholder_ids

    try:
        kql.plan(with_placeholder_ids(query))
    except KQLError as error:
        return [_problem(e) for e in error.errors]
    return []


def _problem(error: KQLError, hint: str | None = None, prefix: str = "") -> Problem:
    span = error.span or Span(0, 0)
    hint = hint or error.hint
    return Problem(
        span.start,
        span.end,
        "warning" if error.is_warning else "error",
        error.code,
        prefix + error.message,
        hint,
        fixes=suggestions(hint),
    )


def suggestions(hint: str | None) -> tuple[str, ...]:
    """The names a did-you-mean hint offers, each a possible replacement."""
    match = _HINT.match(hint or "")
    if not match:
        return ()
    return tuple(c for c in _QUOTED.findall(match.group(1)) if _WORD.match(c))


def _segment_hint(error: KQLError, segments: SegmentsFile | None) -> str | None:
    if error.code != "E106":
        return None
    if segments is None:
        return "no kql.toml next to this file or in a directory above it (or start kql lsp --segments PATH)"
    if segments.error is not None:
        return f"the segments file {segments.path or ''} has a problem: {_strip_where(segments.error.message)}"
    return None


def _refs(query: ast.Query) -> list[ast.SegmentRef]:
    return [node for node, _ in _walk(query.filter) if isinstance(node, ast.SegmentRef)]


def _ref_prefix(error: KQLError, query: ast.Query) -> str:
    for ref in _refs(query):
        if ref.span == error.span:
            return f"in @{ref.name}: "
    return ""


def _in_segment(error: SegmentError, query: ast.Query, file: SegmentsFile | None) -> list[Problem]:
    """A problem inside a segment, shown at each ``@name`` that leads to it and linked to its place."""
    assert file is not None and file.segments is not None
    name = error.segment.name
    related: tuple[Related, ...] = ()
    if file.path is not None:
        start, end = _segment_range(file, name, error.span)
        related = (Related(file.path, start, end, error.message),)
    problems = []
    for ref in _refs(query):
        if name in _reaches(ref.name, file.segments) and ref.span is not None:
            problems.append(
                Problem(
                    ref.span.start,
                    ref.span.end,
                    "error",
                    error.code,
                    f"in segment '@{name}': {error.message}",
                    error.hint,
                    related,
                )
            )
    return problems or [_problem(error)]


def _reaches(name: str, segments: Segments) -> set[str]:
    """``name`` and every segment its query refers to, directly or not."""
    from kql.language.parser import parse

    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        segment = segments.get(current)
        if current in seen or segment is None:
            continue
        seen.add(current)
        with contextlib.suppress(KQLError):  # a broken segment is reported on its own
            todo.extend(ref.name for ref in _refs(parse(segment.query)))
    return seen


def _segment_range(file: SegmentsFile, name: str, span: Span | None) -> tuple[int, int]:
    string = file.exact(name)
    if string is not None and span is not None:
        return string.to_file(span.start, span.end)
    if string is not None:
        return string.token_start, string.token_end
    return file.definition(name) or (0, 0)


def _file_problem(text: str, error: KQLError) -> Problem:
    """E012 (bad TOML or layout): at the line its message names, or where TOML stopped."""
    match = _FILE_LINE.match(error.message)
    message = _strip_where(error.message)
    start, end = 0, 0
    toml = _TOML_AT.search(message)
    if toml:
        line_start, line_end = _line_range(text, int(toml.group(1)) - 1)
        start = min(line_start + int(toml.group(2)) - 1, line_end)
        end = min(start + 1, line_end)
    elif match and match.group(1) != "?":
        start, end = _line_range(text, int(match.group(1)) - 1)
    return Problem(start, end, "error", error.code, message, error.hint)


def _strip_where(message: str) -> str:
    return _FILE_LINE.sub("", message.removeprefix("<segments>: "))


def _line_range(text: str, line: int) -> tuple[int, int]:
    from kql.cli.lsp.text import Lines

    lines = Lines(text)
    start = lines.offset(line, 0)
    return start, lines.offset(line, len(text) * 2 + 1)


# ---- the syntax tree under the cursor ----------------------------------------------------


def _walk(expr: ast.Expr | None, negated: bool = False) -> Iterator[tuple[ast.Expr, bool]]:
    """Every node of an expression with whether it sits directly under a ``not``."""
    if expr is None:
        return
    yield expr, negated
    if isinstance(expr, ast.Not):
        yield from _walk(expr.item, True)
    elif isinstance(expr, ast.And | ast.Or):
        for item in expr.items:
            yield from _walk(item)


def _covers(span: Span | None, offset: int) -> bool:
    return span is not None and span.start <= offset <= span.end


def node_at(text: str, offset: int) -> tuple[ast.Expr, bool] | None:
    """The atom whose name is under ``offset`` (and whether it is negated), when the query parses."""
    from kql.language.parser import parse

    try:
        query = parse(text)
    except KQLError:
        return None
    for node, negated in _walk(query.filter):
        if isinstance(node, ast.SegmentRef) and _covers(node.span, offset):
            return node, negated
        if isinstance(node, ast.Call | ast.Flag) and _covers(node.name.span, offset):
            return node, negated
        if isinstance(node, ast.Comparison) and _covers(node.field.span, offset):
            return node, negated
    return None


def segment_at(text: str, offset: int) -> str | None:
    found = node_at(text, offset)
    return found[0].name if found is not None and isinstance(found[0], ast.SegmentRef) else None


# ---- hover -------------------------------------------------------------------------------


def hover(text: str, offset: int, segments: Segments | None) -> str | None:
    """Markdown about the filter, attribute or segment under ``offset``."""
    found = node_at(text, offset)
    if found is None:
        return None
    node, negated = found
    if isinstance(node, ast.SegmentRef):
        segment = segments.get(node.name) if segments is not None else None
        if segment is None:
            return None
        lines = [f"**@{segment.name}** — saved segment"]
        if segment.description:
            lines += ["", segment.description]
        return "\n".join([*lines, "", "```kql", segment.query.strip(), "```"])
    reg = registry()
    if isinstance(node, ast.Comparison):
        name, op = node.field.text, node.op
        entries = reg.by_name.get(name, ())
        if not entries:
            attribute = reg.attributes.get(name)
            if attribute is None:
                return None
            kind = f"**{name}** — customer attribute ({attribute.type})"
            return kind + "\n\nCompared locally by `kql run` on what the API returns."
        enum = node.value.name if isinstance(node.value, ast.Ident) else None
        chosen = [e for e in entries if e.op == op or (e.form == "enum" and e.enum_value == enum)]
    elif isinstance(node, ast.Call | ast.Flag):
        name = node.name.text
        entries = reg.by_name.get(name, ())
        args = len(node.args) if isinstance(node, ast.Call) else 1
        chosen = [e for e in entries if e.negated == negated and (e.arity == "many" or args <= 1)]
    else:
        return None
    if not entries:
        return None
    return _describe(name, list(entries), chosen or list(entries), reg.id_prefixes)


def _describe(name: str, entries: list[Filter], chosen: list[Filter], id_prefixes: dict[str, str]) -> str:
    first = chosen[0]
    lines = [f"**{name}** — {first.form} filter", "", first.description, ""]
    values = [f"`{e.enum_value}`" for e in entries if e.enum_value]
    lines.append(f"- value: one of {', '.join(values)}" if values else f"- value: {_value_type(first, id_prefixes)}")
    for entry in entries:
        mark = " (this one)" if entry in chosen and len(entries) > 1 else ""
        lines.append(f"- `{entry.example(id_prefixes)}` sends `{entry.api_name}`{mark}")
    if first.deprecated:
        lines.append("- deprecated: the current API has dropped this parameter")
    return "\n".join(lines)


def _value_type(entry: Filter, id_prefixes: dict[str, str]) -> str:
    if entry.value == "id" and entry.id_kind:
        return f"{entry.id_kind} id (`{id_prefixes[entry.id_kind]}_5`, or a bare number)"
    return {
        "days": "a number of days (`30d`, `2w`)",
        "money": "an amount (at most 2 decimals)",
        "string": "a string",
        "flag": "none (a flag: sends `true`)",
    }.get(entry.value, entry.value)


# ---- formatting --------------------------------------------------------------------------


def has_comment(text: str) -> bool:
    """Whether ``#`` starts a comment outside strings (the formatter would drop it)."""
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return True
    return False

"""Segments files (``kql.toml``): finding one, reading it as untrusted input, every problem at once.

A file is TOML with ``[segments.NAME]`` tables of ``query = "…"`` and an optional
``description``. Its problems are E012 with ``file:line`` (did-you-mean for misspelled
keys); bytes that are not UTF-8, TOML nested too deep to read and numbers too long to
convert are problems too, never a traceback. A discovered file (``$KQL_SEGMENTS``, else
the nearest ``kql.toml``) is read only by queries that use ``@name``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from kql.language import ast
from kql.language.errors import KQLError, did_you_mean, raise_all
from kql.planning.segments import Segment, Segments, uses_segments

ENV_VAR = "KQL_SEGMENTS"
DEFAULT_FILE = "kql.toml"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_KEYS = ("query", "description")


def from_text(text: str, path: str | None = None) -> Segments:
    """Segments from TOML text. Raises KQLError (E012, every problem at once) naming file and line."""
    where = path or "<segments>"
    data = _toml(text, where)
    lines = text.splitlines()
    problems: list[KQLError] = []
    table = data.get("segments", {})
    for key in data:
        if key != "segments":
            problems.append(
                KQLError(
                    "E012",
                    f"{where}:{_top_line(lines, key) or '?'}: expected only a [segments] table, found {key}",
                    None,
                    did_you_mean(key, ["segments"]) or 'write each segment as [segments.NAME] with query = "…"',
                )
            )
    if not isinstance(table, dict):
        problems.append(
            KQLError(
                "E012",
                f"{where}:{_top_line(lines, 'segments') or '?'}: expected only a [segments] table, found segments = …",
                None,
                'write each segment as [segments.NAME] with query = "…"',
            )
        )
        table = {}
    query_lines = _query_lines(lines)
    segments: dict[str, Segment] = {}
    for name, body in table.items():
        segment = _segment(name, body, where, path, query_lines.get(name), lines, problems)
        if segment is not None:
            segments[name] = segment
    raise_all(problems, None)
    return Segments(segments, path)


def _toml(text: str, where: str) -> dict[str, object]:
    import tomllib

    try:
        return tomllib.loads(text)
    except RecursionError:  # tomllib recurses once per level of nested arrays and tables
        raise KQLError("E012", f"{where}: nested too deeply to read", None, "segments files are flat tables") from None
    except ValueError as error:  # TOMLDecodeError, and int() of a number too long to convert
        raise KQLError("E012", f"{where}: not valid TOML: {error}", None, "see kql help segments") from None


def _segment(
    name: str,
    body: object,
    where: str,
    path: str | None,
    line: int | None,
    lines: list[str],
    problems: list[KQLError],
) -> Segment | None:
    """One ``[segments.NAME]`` table as a Segment; its problems go to ``problems``."""
    at = f"{where}:{line or _key_line(lines, name, None) or '?'}"
    found = len(problems)
    if not _NAME.match(name):
        problems.append(
            KQLError("E012", f"{at}: '{name}' cannot be a segment name", None, "use letters, digits, _ and -")
        )
    if not isinstance(body, dict):
        problems.append(KQLError("E012", f"{at}: segment '{name}' needs query = \"…\"", None, "see kql help segments"))
        return None
    if not isinstance(body.get("query"), str):
        problems.append(KQLError("E012", f"{at}: segment '{name}' needs query = \"…\"", None, "see kql help segments"))
    extra = [key for key in body if key not in _KEYS]
    if extra:
        first = _key_line(lines, name, extra[0])
        hints = [f"{h.removesuffix('?')} (for '{k}')?" for k in extra if (h := did_you_mean(k, _KEYS))]
        problems.append(
            KQLError(
                "E012",
                f"{where}:{first or line or '?'}: segment '{name}' has unknown keys: {', '.join(extra)}",
                None,
                " ".join(hints) or "a segment has query (required) and description",
            )
        )
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        at_description = f"{where}:{_key_line(lines, name, 'description') or line or '?'}"
        problems.append(KQLError("E012", f"{at_description}: the description of '{name}' must be a string", None, None))
    if len(problems) > found:
        return None
    return Segment(name, body["query"], description, path, line)


def load(path: str | os.PathLike[str]) -> Segments:
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise KQLError("E012", f"cannot read segments file {file}: {error.strerror}", None, None) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise KQLError(
            "E012",
            f"{file}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x} at column {column})",
            None,
            "save the segments file as UTF-8",
        ) from None
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


def for_query(query: ast.Query, explicit: str | None = None) -> Segments | None:
    """The segments ``query`` needs, or None.

    A file given explicitly is always read (a wrong path should say so); a
    discovered one (``$KQL_SEGMENTS``, ``./kql.toml``) only when the query uses
    ``@name``, so a broken kql.toml cannot break a query that does not use it.
    """
    if not explicit and not uses_segments(query):
        return None
    path = find(explicit)
    return None if path is None else load(path)


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


def _top_line(lines: list[str], key: str) -> int | None:
    """The line of a top-level table or key (for errors)."""
    pattern = re.compile(rf"\s*(\[\s*{re.escape(key)}\b|\[\[\s*{re.escape(key)}\b|{re.escape(key)}\s*[.=])")
    return next((n for n, text in enumerate(lines, start=1) if pattern.match(text)), None)


def _key_line(lines: list[str], name: str, key: str | None) -> int | None:
    """The line of ``key`` in segment ``name`` (of its table when ``key`` is None); error path only."""
    quoted = rf"(?:{re.escape(name)}|\"{re.escape(name)}\"|'{re.escape(name)}')"
    header = re.compile(rf"\s*\[\s*segments\s*\.\s*{quoted}\s*\]")
    elsewhere = re.compile(rf"\s*(?:segments\s*\.\s*)?{quoted}\s*(?:=\s*\{{|\.\s*{re.escape(key or '')})")
    own = re.compile(rf"\s*[\"']?{re.escape(key or '')}[\"']?\s*=")
    table: int | None = None
    for number, text in enumerate(lines, start=1):
        if header.match(text):
            table = number
            if key is None:
                return number
        elif text.lstrip().startswith("["):
            table = None
        elif (key is not None and table is not None and own.match(text)) or elsewhere.match(text):
            return number
    return None



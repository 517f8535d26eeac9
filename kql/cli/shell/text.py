"""What the shell makes of the text being typed: a meta command or a query, complete or not,
and its first problem. Pure functions over the library, no prompt_toolkit: the prompt, the
script mode and the tests share them."""

from __future__ import annotations

import re

import attrs

from kql.language.errors import KQLError
from kql.planning.segments import Segments

# name -> (argument, what it does); `.help` prints this table.
COMMANDS: dict[str, tuple[str, str]] = {
    ".explain": ("[QUERY]", "the plan: requests and local work (default: the last query)"),
    ".count": ("[QUERY]", "how many customers match (default: the last query)"),
    ".format": ("[table|json|ndjson|csv]", "how results are printed (no argument: the current one)"),
    ".segments": ("", "the saved segments loaded from kql.toml"),
    ".help": ("", "this help"),
    ".quit": ("", "leave the shell (also .exit and Ctrl-D)"),
}
ALIASES = {".exit": ".quit", ".q": ".quit"}
# Commands whose argument is KQL: it is coloured, completed and checked as a query.
QUERY_COMMANDS = frozenset({".explain", ".count"})
FORMATS = ("table", "json", "ndjson", "csv")

_COMMAND = re.compile(r"\s*(\.[A-Za-z_]*)")
_TERMINATOR = re.compile(r";\s*\Z")


@attrs.frozen(slots=True)
class Input:
    """One input split up: ``command`` (".count", or None for a plain query) and its argument,
    which starts at ``offset`` in the text typed."""

    command: str | None
    argument: str
    offset: int

    @property
    def query(self) -> str | None:
        """The KQL in this input (None for a command that takes none)."""
        if self.command is None or self.command in QUERY_COMMANDS:
            return self.argument
        return None


def split(text: str) -> Input:
    """``text`` as a command and its argument, or a query; a final ``;`` is dropped."""
    found = _COMMAND.match(text)
    body = _TERMINATOR.sub("", text)
    if found is None:
        return Input(None, body, 0)
    command = found.group(1).lower()
    return Input(ALIASES.get(command, command), body[found.end() :], found.end())


class Checker:
    """Checks queries against one set of segments, remembering recent answers: the toolbar,
    the colours and the Enter key all ask about the same text at each key press."""

    def __init__(self, segments: Segments | None = None, size: int = 64) -> None:
        self.segments = segments
        self._size = size
        self._seen: dict[str, KQLError | None] = {}

    def diagnose(self, query: str) -> KQLError | None:
        """The first problem of ``query`` found without the API, or None (tag, offer and product
        names are left to be resolved when it runs)."""
        if query not in self._seen:
            if len(self._seen) >= self._size:
                self._seen.pop(next(iter(self._seen)))
            self._seen[query] = diagnose(query, self.segments)
        return self._seen[query]

    def is_complete(self, text: str) -> bool:
        """Whether Enter should run ``text`` rather than start a new line.

        Complete: blank, a meta command, ending with ``;``, or a query that does not stop short.
        Only a query that ends too early (``site =``, ``a and``, an open parenthesis) goes on.
        """
        if not text.strip() or _TERMINATOR.search(text):
            return True
        parts = split(text)
        if parts.query is None or (parts.command is not None and not parts.query.strip()):
            return True
        problem = self.diagnose(parts.query)
        return problem is None or problem.code != "E003"


def diagnose(query: str, segments: Segments | None = None) -> KQLError | None:
    """The first problem of ``query`` found without the API, or None."""
    from kql.language.parser import parse
    from kql.planning.lookups import check_before_lookups

    try:
        parsed = parse(query)
        if segments is not None:
            parsed = segments.expand(parsed)
        check_before_lookups(parsed, query)
    except KQLError as error:
        return first(error, query)
    except RecursionError:  # a pathological input must not take the prompt down
        return KQLError("E007", "expression is nested too deeply", None, None, query)
    return None


def first(error: KQLError, source: str) -> KQLError:
    """The first of ``error``'s problems, with the text it points into."""
    problem = error.errors[0]
    if problem.source is None:
        problem.with_source(source)
    return problem


def with_source(error: KQLError, source: str) -> KQLError:
    """``error`` (every problem in it) pointing into ``source`` where it points nowhere yet."""
    for problem in error.errors:
        if problem.source is None:
            problem.source = source
    if error.source is None:
        error.source = source
    return error


def position(text: str, offset: int) -> tuple[int, int]:
    """Line and column (both from 1) of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1

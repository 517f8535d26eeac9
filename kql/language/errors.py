"""KQLError: every problem with a query, with a stable code, a span and a hint.

Codes are stable across releases; tools may match on them.

- E0xx  syntax and hard limits
- E1xx  unknown names
- E2xx  wrong values or arguments
- E3xx  valid KQL that one API request cannot express (kql explain and kql run plan it)
- W0xx  warnings (the query still runs)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

import attrs

from kql.language.frozen import quick_init

# code -> short title; the message of each error adds the specifics.
CODES: dict[str, str] = {
    "E001": "unexpected character",
    "E002": "unexpected token",
    "E003": "unexpected end of query",
    "E004": "unterminated string",
    "E005": "invalid escape in string",
    "E006": "query too long",
    "E007": "nesting too deep",
    "E008": "clause given twice",
    "E009": "invalid JSON query form",
    "E010": "unknown API parameter",
    "E011": "invalid value for an API parameter",
    "E012": "invalid segments file",
    "E013": "segments refer to each other in a cycle",
    "E014": "segment cannot be used here",
    "E101": "unknown field",
    "E102": "unknown filter",
    "E103": "unknown sort key",
    "E104": "unknown select field",
    "E105": "unknown enum value",
    "E106": "unknown segment",
    "E107": "unknown id kind",
    "E108": "no tag, offer or product with that name",
    "E201": "wrong number of arguments",
    "E202": "id of the wrong kind",
    "E203": "invalid duration",
    "E204": "too many decimals in money",
    "E205": "id must be positive",
    "E206": "wrong type of value",
    "E207": "operator not supported here",
    "E208": "number out of range",
    "E209": "invalid date",
    "E210": "name shared by several tags, offers or products",
    "E211": "names in a query about several sites",
    "E301": "'or' needs more than one request",
    "E302": "negation has no API complement",
    "E303": "operator needs more than one request",
    "E304": "same parameter with values that cannot merge",
    "E305": "attribute predicate is evaluated locally",
    "E306": "filter has no API parameter on its own",
    "E307": "query expands to too many branches",
    "E308": "request budget exceeded",
    "W001": "deprecated filter",
    "W002": "page size above the largest kql asks for",
}


@quick_init
@attrs.frozen(slots=True)
class Span:
    """Half-open character offsets ``[start, end)`` into the query text."""

    start: int
    end: int

    def __add__(self, other: Span) -> Span:
        return Span(min(self.start, other.start), max(self.end, other.end))


class KQLError(Exception):
    """One problem with a query. ``errors`` holds every problem found (this one first)."""

    def __init__(
        self,
        code: str,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source

    @property
    def errors(self) -> list[KQLError]:
        return [self]

    @property
    def is_warning(self) -> bool:
        return self.code.startswith("W")

    def with_source(self, source: str) -> KQLError:
        self.source = source
        return self

    def render(self) -> str:
        """The caret form: header, the query line, carets under the span, the hint."""
        kind = "warning" if self.is_warning else "error"
        lines = [f"{kind}[{self.code}]: {self.message}"]
        if self.source is not None and self.span is not None:
            lines.extend(_caret_lines(self.source, self.span))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"KQLError({self.code!r}, {self.message!r}, span={self.span!r}, hint={self.hint!r})"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``code``, ``message``, ``span`` (``[start, end]`` or None) and ``hint`` of this
        problem, and ``errors``: the same four keys for every problem found, this one first."""
        return {**self.problem(), "errors": [error.problem() for error in self.errors]}

    def problem(self) -> dict[str, object]:
        """This one problem, JSON-ready: ``code``, ``message``, ``span`` and ``hint``."""
        return {
            "code": self.code,
            "message": self.message,
            "span": None if self.span is None else [self.span.start, self.span.end],
            "hint": self.hint,
        }


class KQLErrors(KQLError):
    """Several problems at once; behaves as the first, and carries all of them."""

    def __init__(self, errors: Sequence[KQLError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, first.span, first.hint, first.source)
        self._errors = list(errors)

    @property
    def errors(self) -> list[KQLError]:
        return list(self._errors)

    def with_source(self, source: str) -> KQLError:
        for error in self._errors:
            error.source = source
        self.source = source
        return self

    def render(self) -> str:
        return "\n\n".join(e.render() for e in self._errors)


def raise_all(errors: Iterable[KQLError], source: str | None) -> None:
    """Raise the collected errors (as one KQLError or a KQLErrors) if there are any."""
    found = list(errors)
    if not found:
        return
    error = found[0] if len(found) == 1 else KQLErrors(found)
    if source is not None:
        error.with_source(source)
    raise error


def _caret_lines(source: str, span: Span) -> list[str]:
    """The line of ``source`` holding the span's start, and a caret line under the span."""
    start = max(0, min(span.start, len(source)))
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", start)
    if line_end == -1:
        line_end = len(source)
    line = source[line_start:line_end]
    end = max(start + 1, min(span.end, line_end)) if span.end > start else start + 1
    prefix = "  "
    lineno = source.count("\n", 0, line_start) + 1
    if "\n" in source:
        prefix = f"{lineno:>3} | "
    # Tabs would misalign the carets: expand them the same way on both lines.
    pad = "".join("\t" if ch == "\t" else " " * _width(ch) for ch in line[: start - line_start])
    carets = "^" * max(1, sum(_width(ch) for ch in source[start:end]))
    return [prefix + _unprintable().sub(_visible, line), " " * len(prefix) + pad + carets]


@functools.cache
def _unprintable() -> re.Pattern[str]:
    # Shown, not obeyed: an escape sequence in a query must not recolour the terminal, nor a
    # carriage return move the cursor. Lone surrogates (bytes that were not UTF-8) cannot be printed.
    # Compiled when an error is shown: a class reaching past U+00FF costs the start-up of a TAB.
    return re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def first_not_unicode(text: str) -> int | None:
    """Where ``text`` holds its first lone surrogate, or None: what Python makes of bytes that are
    not UTF-8 (in argv, or stdin read with surrogateescape). No request can carry them; the parser,
    the JSON form and decompile refuse them. (UTF-8's encoder finds one without compiling a regex.)"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _visible(match: re.Match[str]) -> str:
    """One column for each unprintable character: a control picture (␛, ␍) or U+FFFD."""
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def _width(ch: str) -> int:
    """Terminal columns of a character: wide East Asian and emoji take two, combining marks none."""
    import unicodedata

    if unicodedata.combining(ch) or ch in "\u200b\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint for ``word`` among ``candidates``, or None."""
    import difflib  # lazily: only needed on the error path

    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, pool, n=3, cutoff=0.6)
    if not close:
        # Substring matches help with a truncated name, but not for one or two letters.
        close = [c for c in pool if len(word) >= 3 and (c.startswith(word) or word in c)][:3]
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"

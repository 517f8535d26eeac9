"""The interactive prompt (prompt_toolkit): colours, completion, errors as you type, history.

Imported only by ``kql shell`` on a terminal, so prompt_toolkit stays an optional extra.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.buffer import ValidationState
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import completion_is_selected
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style
from prompt_toolkit.validation import ValidationError, Validator

from kql.cli.shell.session import Shell
from kql.cli.shell.text import ALIASES, COMMANDS, FORMATS, Checker, position, split
from kql.language.errors import did_you_mean

HISTORY_ENV = "KQL_SHELL_HISTORY"
PROMPT, CONTINUATION = "kql> ", "...> "

STYLE = Style.from_dict(
    {
        "prompt": "bold",
        "keyword": "bold ansiblue",
        "filter": "ansigreen",
        "field": "ansicyan",
        "value": "ansiyellow",
        "string": "ansiyellow",
        "number": "ansiyellow",
        "segment": "bold ansimagenta",
        "command": "bold ansimagenta",
        "comment": "italic ansibrightblack",
        "bad": "ansired",
        "problem": "underline ansired",  # the span of the first error, under the text itself
        "bottom-toolbar": "noreverse bg:ansibrightblack ansiwhite",
        "validation-toolbar": "bg:ansired ansiwhite",
        "bottom-toolbar.ok": "ansigreen",
    }
)

_TYPED_ID = re.compile(r"([A-Za-z]+)_\d+\Z")
_COMMAND_WORD = re.compile(r"\s*\.[A-Za-z_]*\Z")
_WORD_END = re.compile(r"[A-Za-z0-9_]\Z")


def history_path() -> Path:
    """``$KQL_SHELL_HISTORY``, else ``shell_history`` in the user's data directory."""
    explicit = os.environ.get(HISTORY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("kql")) / "shell_history"


def _history(path: Path) -> History:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as error:
        print(f"kql shell: note: history not kept ({path}: {error.strerror})", file=sys.stderr)
        return InMemoryHistory()
    return _History(str(path))


class _History(FileHistory):
    def store_string(self, string: str) -> None:
        # A full disk, or a file gone read-only, must not end the session.
        with contextlib.suppress(OSError):
            super().store_string(string)


# Colours


@functools.cache
def _names() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """Filter names, attributes, enum values and id prefixes, read from the registry."""
    from kql.language.parser import keywords
    from kql.registry import registry

    reg = registry()
    filters = frozenset(reg.by_name)
    attributes = frozenset(reg.attributes)
    values = frozenset(f.enum_value for f in reg if f.enum_value) | frozenset(reg.kinds_by_prefix)
    return keywords(), filters, attributes, values


def _token_style(kind: str, value: str) -> str:
    keywords, filters, attributes, values = _names()
    if kind == "NAME":
        typed = _TYPED_ID.match(value)
        if value in filters:
            return "class:filter"
        if value in attributes:
            return "class:field"
        if value in values or (typed and typed.group(1) in values):
            return "class:value"
        return ""
    if value.lower() in keywords or kind.endswith("_SYMBOL"):
        return "class:keyword"
    if kind == "STRING":
        return "class:string"
    if kind in ("INT", "DECIMAL", "DURATION", "DATE"):
        return "class:number"
    if kind == "SEGMENT":
        return "class:segment"
    if kind == "BAD_CHARACTER":
        return "class:bad"
    return ""


def _query_styles(query: str, checker: Checker) -> list[str]:
    """A style for each character of ``query``: its token's, and the first error's span."""
    from kql.language.parser import tokens

    styles = ["class:comment" if c != "\n" else "" for c in query]  # what no token covers
    covered = 0
    try:
        for token in tokens(query):
            start, end = token.start_pos, token.end_pos
            for i in range(covered, start):  # between tokens: spaces, or a comment
                if query[i].isspace() and "#" not in query[query.rfind("\n", 0, i) + 1 : i]:
                    styles[i] = ""
            if token.type == "BAD_CHARACTER" and str(token) in "\"'":
                end = query.find("\n", start)  # an unterminated string: the rest of its line
                end = len(query) if end < 0 else end
                styles[start:end] = ["class:string"] * (end - start)
                covered = end
                break
            styles[start:end] = [_token_style(token.type, str(token))] * (end - start)
            covered = end
    except Exception:  # colours are a nicety: never let them break typing
        return [""] * len(query)
    for i in range(covered, len(query)):
        if query[i].isspace() and "#" not in query[query.rfind("\n", 0, i) + 1 : i]:
            styles[i] = ""
    problem = checker.diagnose(query)
    if problem is not None and problem.span is not None and problem.code != "E003":
        for i in range(problem.span.start, min(problem.span.end, len(query))):
            styles[i] = f"{styles[i]} class:problem".strip()
    return styles


def _fragments(text: str, checker: Checker) -> StyleAndTextTuples:
    parts = split(text)
    styles = [""] * len(text)
    if parts.command is not None:
        start = len(text) - len(text.lstrip())
        styles[start : parts.offset] = ["class:command"] * (parts.offset - start)
    if parts.query is not None:
        query = text[parts.offset :]
        styles[parts.offset :] = _query_styles(query, checker)
    fragments: StyleAndTextTuples = []
    for char, style in zip(text, styles, strict=True):
        if fragments and fragments[-1][0] == style:
            fragments[-1] = (style, fragments[-1][1] + char)
        else:
            fragments.append((style, char))
    return fragments


class KQLColours(Lexer):
    """Colours from the parser's own tokens and the registry; the first error is underlined."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self._last: tuple[str, list[StyleAndTextTuples]] = ("", [[]])

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        if document.text != self._last[0]:  # the cursor moving, or a redraw, changes nothing here
            self._last = (document.text, self._lines(document))
        lines = self._last[1]
        return lambda number: lines[number] if number < len(lines) else []

    def _lines(self, document: Document) -> list[StyleAndTextTuples]:
        lines: list[StyleAndTextTuples] = [[]]
        for fragment in _fragments(document.text, self.checker):
            style, text = fragment[0], fragment[1]
            for i, piece in enumerate(text.split("\n")):
                if i:
                    lines.append([])
                if piece:
                    lines[-1].append((style, piece))
        return lines


# Completion


class KQLCompleter(Completer):
    """Meta commands, formats, and for queries whatever ``kql.complete`` offers at the cursor."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        try:
            for found in self._completions(document.text, document.cursor_position):
                # While typing, only for a word begun; Tab shows everything that may come next.
                if found.start_position or complete_event.completion_requested:
                    yield found
        except Exception:  # a completion bug must not take the prompt down
            return

    def _completions(self, text: str, cursor: int) -> Iterable[Completion]:
        before = text[:cursor]
        if _COMMAND_WORD.match(before):
            word = before.strip()
            for name, (_, what) in COMMANDS.items():
                if name.startswith(word.lower()):
                    yield Completion(name, -len(word), display_meta=what)
            return
        parts = split(text)
        if cursor < parts.offset:
            return
        if parts.command == ".format":
            word = before[parts.offset :].strip()
            for name in FORMATS:
                if name.startswith(word.lower()):
                    yield Completion(name, -len(word))
            return
        if parts.query is None:
            return
        import kql

        at = cursor - parts.offset
        for found in kql.complete(text[parts.offset :], at, self.checker.segments):
            yield Completion(
                found.insert, found.start - at, display=found.label, display_meta=found.description or found.kind
            )


# Errors as you type


def problem_line(text: str, checker: Checker, cursor: int | None = None) -> tuple[int, str] | None:
    """The first real error in ``text`` as (offset, one line saying what and where), or None.

    Not yet an error: a query that only stops short (E003: the toolbar says what may follow),
    or a problem in the word still being typed at the end (``has_t`` on its way to ``has_tag``).
    """
    parts = split(text)
    typing = cursor is None or cursor == len(text)
    if parts.command is not None and parts.command not in COMMANDS and parts.command not in ALIASES:
        if typing and not parts.argument and any(name.startswith(parts.command) for name in COMMANDS):
            return None
        hint = did_you_mean(parts.command, COMMANDS)
        return 0, f"unknown command {parts.command!r}" + (f" ({hint})" if hint else "") + "; .help lists them"
    if parts.query is None:
        return None
    problem = checker.diagnose(parts.query)
    if problem is None or problem.code == "E003":
        return None
    if typing and problem.span is not None and problem.span.end >= len(parts.query) and _WORD_END.search(text):
        return None
    offset = parts.offset + (problem.span.start if problem.span else 0)
    line, column = position(text, offset)
    hint = f" · {problem.hint}" if problem.hint else ""
    return offset, f"error[{problem.code}] at {line}:{column}: {problem.message}{hint}"


class KQLValidator(Validator):
    """Shows the first error under the input as you type (the colours underline its span).
    Enter runs a complete query anyway, to print every error with its carets."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    def validate(self, document: Document) -> None:
        found = problem_line(document.text, self.checker, document.cursor_position)
        if found is not None:
            raise ValidationError(cursor_position=found[0], message=found[1])


def _toolbar(checker: Checker, shell: Shell) -> StyleAndTextTuples:
    """Keys, the format and what the query needs next (prompt_toolkit shows it when the terminal
    reports the cursor position, as terminals do)."""
    text = get_app().current_buffer.text
    parts = split(text)
    keys = f" Enter runs · Alt-Enter new line · Tab completes · .help · Ctrl-D quits · format: {shell.format}"
    if not text.strip() or parts.query is None or not parts.query.strip():
        return [("", keys)]
    problem = checker.diagnose(parts.query)
    if problem is None:
        return [("class:bottom-toolbar.ok", " ✓ valid query · Enter runs it")]
    if problem.code == "E003":
        line, column = position(text, parts.offset + (problem.span.start if problem.span else len(parts.query)))
        return [("", f" {line}:{column} incomplete, Enter adds a line · {problem.hint or problem.message}")]
    return [("", keys)]


# Keys


def _keys(checker: Checker) -> KeyBindings:
    keys = KeyBindings()

    @keys.add("enter", filter=completion_is_selected)
    def _take_completion(event: KeyPressEvent) -> None:
        event.current_buffer.complete_state = None  # the completion is already in the text

    @keys.add("enter", filter=~completion_is_selected)
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if checker.is_complete(buffer.text):
            # Run it even with errors (they print in full, with carets): the check while typing
            # only informs, it does not hold the input back.
            buffer.validation_state = ValidationState.VALID
            buffer.validate_and_handle()
        else:
            buffer.newline(copy_margin=False)

    @keys.add("escape", "enter")  # Alt-Enter arrives as Esc then Enter
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.newline(copy_margin=False)

    return keys


def interact(shell: Shell, history: Path) -> int:
    """Read, run, print until Ctrl-D or .quit; Ctrl-C only clears the line."""
    checker = shell.checker
    session: PromptSession[str] = PromptSession(
        [("class:prompt", PROMPT)],
        multiline=True,
        prompt_continuation=lambda width, line, wrapped: [("class:prompt", CONTINUATION.rjust(width))],
        lexer=KQLColours(checker),
        completer=KQLCompleter(checker),
        complete_while_typing=True,
        auto_suggest=AutoSuggestFromHistory(),
        history=_history(history),
        key_bindings=_keys(checker),
        validator=KQLValidator(checker),
        validate_while_typing=True,
        bottom_toolbar=lambda: _toolbar(checker, shell),
        style=STYLE,
        include_default_pygments_style=False,
    )
    while True:
        try:
            text = session.prompt()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        try:
            if not shell.handle(text):
                return 0
        except KeyboardInterrupt:  # pressed between the prompt and the query starting
            print("cancelled", file=sys.stderr)

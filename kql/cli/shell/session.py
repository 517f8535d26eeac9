"""What the shell does with an input once it is submitted: run a query, or a meta command.

No prompt_toolkit here: the interactive prompt and the script mode (stdin not a terminal)
both hand each complete input to ``Shell.handle``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from kql.cli.shell.text import COMMANDS, FORMATS, Checker, split, with_source
from kql.language.errors import KQLError, did_you_mean

if TYPE_CHECKING:
    from kql.execute.client import Client
    from kql.language.ast import Query

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 4, 130

KEYS = (
    ("Enter", "run the query when it is complete (or ends with ;), else a new line"),
    ("Alt-Enter, Esc Enter", "a new line"),
    ("Tab", "complete: filters, values, fields, @segments"),
    ("Up, Down", "history (the history file survives sessions)"),
    ("Ctrl-C", "clear the input, or cancel the running query"),
    ("Ctrl-D", "leave (on an empty line)"),
)


class Shell:
    def __init__(
        self,
        client: Client,
        checker: Checker,
        out: TextIO,
        err: TextIO,
        fmt: str = "table",
        secrets: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.checker = checker
        self.out = out
        self.err = err
        self.format = fmt
        self.secrets = list(secrets)
        self.last_query: str | None = None
        # The exit code of the last input that failed (0 if none did): script mode exits with it.
        self.status = 0
        self._source = ""  # the query being run: errors without text of their own point into it

    def handle(self, text: str) -> bool:
        """Do what ``text`` says; False when the shell should end. Never raises for bad input."""
        if not text.strip():
            return True
        parts = split(text)
        try:
            if parts.command is None:
                self._run(parts.argument)
            elif parts.command == ".quit":
                return False
            else:
                self._command(parts.command, parts.argument.strip())
        except KeyboardInterrupt:
            self.out.flush()
            self._say("cancelled")
            self.status = EXIT_INTERRUPTED
        except KQLError as error:
            self._say(with_source(error, self._source).render())
            self.status = EXIT_USAGE
        except Exception as error:  # an ExecutorError, or a bug: one readable line either way
            self._say(self._describe(error))
            self.status = getattr(error, "exit_code", EXIT_USAGE if isinstance(error, _Usage) else EXIT_FAILED)
        return True

    # Queries

    def _parsed(self, text: str) -> Query:
        import kql

        self._source = text
        query = kql.parse(text)
        if self.checker.segments is not None:
            query = self.checker.segments.expand(query)
        return query

    def _run(self, text: str) -> None:
        from kql.cli.render import write

        query = self._parsed(text)
        self.last_query = text
        started = time.monotonic()
        customers = self.client.customers(query)
        try:
            fields = [name.text for name in query.select.fields] if query.select else None
            written = write(customers, self.out, self.format, fields)
            self.out.flush()
        finally:
            customers.close()
        for warning in customers.warnings:
            self._say(f"warning: {warning}")
        noun = "customer" if written == 1 else "customers"
        self._say(f"({written:,} {noun}, {time.monotonic() - started:.2f} s)")

    def _query_argument(self, argument: str, command: str) -> str:
        if argument.strip():
            self.last_query = argument.strip()
            return self.last_query
        if self.last_query is None:
            raise _Usage(f"{command} needs a query (there is no last query yet): {command} QUERY")
        return self.last_query

    # Meta commands

    def _command(self, command: str, argument: str) -> None:
        if command == ".explain":
            self._explain(self._query_argument(argument, command))
        elif command == ".count":
            text = self._query_argument(argument, command)
            self._print(f"{self.client.count(self._parsed(text)):,}")
        elif command == ".format":
            self._set_format(argument)
        elif command == ".segments":
            self._segments()
        elif command == ".help":
            self._help()
        else:
            hint = did_you_mean(command, [*COMMANDS, ".exit"])
            raise _Usage(f"unknown command {command!r}" + (f" ({hint})" if hint else "") + "; .help lists them")

    def _explain(self, text: str) -> None:
        import kql

        query = self._parsed(text)
        resolved = self.client.resolve(query)  # names become ids, as when the query runs
        plan = kql.plan(resolved)
        for warning in plan.warnings:
            self._say(with_source(warning, text).render())
        self._print(plan.explain())

    def _set_format(self, argument: str) -> None:
        if not argument:
            self._print(f"format: {self.format}")
        elif argument.lower() in FORMATS:
            self.format = argument.lower()
            self._print(f"format: {self.format}")
        else:
            raise _Usage(f"unknown format {argument!r}: choose from {', '.join(FORMATS)}")

    def _segments(self) -> None:
        segments = self.checker.segments
        if segments is None or not len(segments):
            self._print("no segments: pass --segments PATH, set KQL_SEGMENTS, or create kql.toml here")
            return
        width = max(len(s.name) for s in segments) + 1
        self._print(f"{len(segments)} segments from {segments.path or '?'}")
        for segment in segments:
            self._print(f"  @{segment.name:<{width}} {segment.description or ''}".rstrip())
            self._print(f"  {'':<{width + 1}} {' '.join(segment.query.split())}")

    def _help(self) -> None:
        lines = ["Type a KQL query (kql filters lists every filter), or a command:"]
        width = max(len(f"{name} {arg}") for name, (arg, _) in COMMANDS.items())
        lines += [f"  {f'{name} {arg}':<{width}}  {what}" for name, (arg, what) in COMMANDS.items()]
        lines.append("Keys:")
        width = max(len(key) for key, _ in KEYS)
        lines += [f"  {key:<{width}}  {what}" for key, what in KEYS]
        self._print("\n".join(lines))

    # Output

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _say(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def _describe(self, error: Exception) -> str:
        from kql.execute.errors import ExecutorError, redact

        if isinstance(error, _Usage):
            return str(error)
        label = "error" if isinstance(error, ExecutorError) else f"internal error ({type(error).__name__})"
        return f"{label}: {redact(str(error), self.secrets)}"


class _Usage(Exception):
    """A meta command used the wrong way: the message says how to use it."""

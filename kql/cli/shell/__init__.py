"""``kql shell``: an interactive prompt over the library, in the spirit of pgcli.

On a terminal: completion and errors as you type, colours, history, multi-line queries
(``prompt.py``, prompt_toolkit: the optional extra ``kql[shell]``). With stdin not a terminal
it reads the inputs from stdin, one after another, as a script. What an input does is in
``session.py``; how the text is understood in ``text.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kql.cli.shell.session import Shell

EXIT_OK, EXIT_USAGE = 0, 2
EXTRA_MESSAGE = 'kql shell: needs prompt_toolkit, which is optional: pip install "kql[shell]"'


def _parser() -> argparse.ArgumentParser:
    from kql.cli.run import add_connection_arguments

    parser = argparse.ArgumentParser(
        prog="kql shell",
        description="An interactive KQL prompt: type queries, see customers.",
        epilog=(
            "Enter runs a complete query (Alt-Enter for a new line); .help lists the commands. "
            "History: $KQL_SHELL_HISTORY, else shell_history in the user data directory. "
            'Needs the extra: pip install "kql[shell]".'
        ),
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--format",
        choices=["table", "json", "ndjson", "csv"],
        default="table",
        help="how results print (default: table)",
    )
    parser.add_argument("--segments", metavar="PATH", help="segments file (default: $KQL_SEGMENTS or ./kql.toml)")
    return parser


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    try:
        import prompt_toolkit  # noqa: F401 - only to say early that the extra is missing
    except ImportError:
        print(EXTRA_MESSAGE, file=sys.stderr)
        return EXIT_USAGE
    from kql.language.errors import KQLError

    try:
        return _shell(args)
    except KQLError as error:  # the segments file
        print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # while the sandbox starts
        return 130


def _shell(args: argparse.Namespace) -> int:
    import kql
    from kql.cli.run import connect
    from kql.cli.shell.session import Shell
    from kql.cli.shell.text import Checker
    from kql.execute.errors import ExecutorError, redact
    from kql.planning.segments_file import find

    found = find(args.segments)
    segments = kql.load_segments(found) if found is not None else None
    secrets: list[str] = []
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        with connect(args, secrets) as client:
            shell = Shell(client, Checker(segments), sys.stdout, sys.stderr, args.format, secrets)
            if not interactive:
                return _script(shell, sys.stdin)
            from kql.cli.shell.prompt import history_path, interact

            where = "the sandbox" if args.sandbox else client.base_url
            print(f"kql shell on {where} · .help for help, Ctrl-D to leave", file=sys.stderr)
            return interact(shell, history_path())
    except ExecutorError as error:  # misconfigured: no credentials, a bad URL
        print(f"kql shell: error: {redact(str(error), secrets)}", file=sys.stderr)
        return error.exit_code


def _script(shell: Shell, lines: Iterable[str]) -> int:
    """Each complete input in turn, as Enter would run it; the exit code of the last failure."""
    pending = ""
    for line in lines:
        pending += line
        if shell.checker.is_complete(pending.rstrip("\n")):
            if not shell.handle(pending.rstrip("\n")):
                return shell.status
            pending = ""
    if pending.strip():
        shell.handle(pending)
    return shell.status

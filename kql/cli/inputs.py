"""Where a command's query comes from: the argument, ``-f FILE``, or standard input."""

from __future__ import annotations

import sys


class UsageError(Exception):
    """A mistake on the command line: one line on stderr, exit 2."""


def read_query(expr: str, file: str | None) -> str:
    """The query text: ``EXPR``, else ``-f FILE`` (``-`` is stdin), else piped stdin.

    A terminal on stdin with no query is a usage error, not a wait for input nobody is typing.
    """
    if file is not None:
        if expr != "-":
            raise UsageError("give the query as an argument or with -f FILE, not both")
        return _read_file(file) if file != "-" else _read_stdin(required=True)
    if expr != "-":
        return expr
    return _read_stdin(required=False)


def _read_stdin(required: bool) -> str:
    if sys.stdin is None or (sys.stdin.isatty() and not required):
        raise UsageError("give a query as an argument, with -f FILE, or on stdin")
    return sys.stdin.read()


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"-f {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"-f {path}: is a directory") from None
    except PermissionError:
        raise UsageError(f"-f {path}: permission denied") from None
    except UnicodeDecodeError:
        raise UsageError(f"-f {path}: not UTF-8 text") from None
    except OSError as error:
        raise UsageError(f"-f {path}: {error.strerror or error}") from None

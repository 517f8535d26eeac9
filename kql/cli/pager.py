"""A pager for output taller than the terminal, as git and gh do.

``$KQL_PAGER``, else ``$PAGER``, else ``less -FRX`` (quit if it fits one screen, keep
colours, leave the screen as it was); an empty value or ``cat`` means none. The
command is run by the shell, as git runs ``core.pager``. While it runs, Ctrl-C
belongs to the pager (less uses it to stop a search), not to kql.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import TextIO, cast

DEFAULT = "less -FRX"


def command(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The pager to run, or None for none (also when its program is not installed)."""
    chosen = env.get("KQL_PAGER", env.get("PAGER", DEFAULT)).strip()
    if not chosen or chosen == "cat":
        return None
    try:
        program = shlex.split(chosen)[0]
    except (ValueError, IndexError):
        return None
    if shutil.which(program) is None:
        if chosen != DEFAULT:
            print(f"kql: pager {program!r} not found; writing directly", file=sys.stderr)
        return None
    return chosen


def terminal_size(stream: TextIO) -> os.terminal_size | None:
    """The size of the terminal ``stream`` writes to, or None when it is not a terminal."""
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def paged(pager: str) -> Iterator[TextIO]:
    """Text written to the yielded stream goes through ``pager``; returns when the pager quits."""
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    process = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE, env=env, text=True, encoding="utf-8")
    assert process.stdin is not None
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with contextlib.suppress(BrokenPipeError):  # the user quit the pager early: not an error
            try:
                yield cast(TextIO, process.stdin)
            finally:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
        process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)

"""``kql run --output FILE``: where the customers go, and never half a file.

A regular file (new or existing) is written beside itself under a temporary
name and renamed into place at the end, so a failed or interrupted run leaves
the old file (or nothing) instead of a truncated one; an existing file keeps
its permissions — exports hold personal data, and a ``chmod 600`` must survive
a rerun. A symlink is followed: the file it points to is replaced, the link
stays. A FIFO, a terminal or ``/dev/null`` is a stream, not a file: it is
opened and written directly (there is nothing to rename), and never replaced.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import TextIO


class OutputError(Exception):
    """``--output`` cannot be written; the message names the path the user gave."""


def check_output(path: str) -> None:
    """Fail before anything runs when ``path`` cannot be written."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise OutputError(f"--output {path}: is a directory")
    if _is_stream(real):
        return
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise OutputError(f"--output {path}: no such directory {os.path.dirname(path) or '.'}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"--output {path}: cannot create files in {os.path.dirname(path) or '.'}")


@contextlib.contextmanager
def open_output(path: str) -> Iterator[TextIO]:
    real = os.path.realpath(path)  # through symlinks: the link stays, its target is written
    if _is_stream(real):
        with open(real, "w", encoding="utf-8", newline="") as out:
            yield out
        return
    import tempfile  # here: `kql compile` imports the CLI module that imports this one

    mode = _mode_for(real)
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(real) + ".", suffix=".part", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, real)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _is_stream(real: str) -> bool:
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _mode_for(real: str) -> int:
    """The existing file's permissions, or what a shell redirect would create (not mkstemp's 0600)."""
    try:
        return stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask

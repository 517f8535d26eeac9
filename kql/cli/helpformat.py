"""argparse's help formatters, measuring the terminal without importing shutil.

argparse makes a formatter for every ``add_argument`` (to check its metavar) and asks
``shutil.get_terminal_size`` for the width each time; importing shutil (with zlib, bz2, lzma and
fnmatch) is a fifth of what ``kql compile`` adds to Python's start-up beyond attrs. The width is
the same: ``columns`` reads it as ``shutil.get_terminal_size`` does.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys


@functools.cache
def columns() -> int:
    """The terminal's width, as ``shutil.get_terminal_size().columns``: $COLUMNS, else stdout's
    terminal, else 80."""
    try:
        width = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        width = 0
    if width > 0:
        return width
    try:
        width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        width = 0
    return width or 80


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        # As argparse: two columns less than the terminal's.
        super().__init__(prog, indent_increment, max_help_position, columns() - 2 if width is None else width)


class RawDescriptionHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """argparse's RawDescriptionHelpFormatter (descriptions and epilogs kept as written)."""

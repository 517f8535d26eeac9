"""The ``kql`` command: argument parsing, exit codes, rendering and progress over the library."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from kql.cli.app import main as _main

    return _main(argv)

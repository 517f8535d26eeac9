"""``kql lsp``: a language server for ``.kql`` files and the queries in segments files.

It speaks LSP over stdin/stdout (``kql help embedding``, "Language server"). pygls is an
optional extra, imported only here, after the command line is read:
``pip install "kql[lsp]"``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kql lsp",
        description="Serve the Language Server Protocol over stdio for .kql files and kql.toml segments files.",
    )
    parser.add_argument(
        "--segments",
        metavar="PATH",
        help="segments file for every document (default: $KQL_SEGMENTS, else the nearest kql.toml above the file)",
    )
    # Editor clients (vscode-languageclient among them) add --stdio; it is the only transport.
    parser.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default and only transport)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        import pygls  # noqa: F401
    except ImportError:
        print('kql lsp: the language server needs the "lsp" extra: pip install "kql[lsp]"', file=sys.stderr)
        return EXIT_USAGE
    from kql.cli.lsp.server import serve

    return serve(args.segments)

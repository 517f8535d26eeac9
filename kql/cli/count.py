"""``kql count EXPR`` and ``kql segments list --count``: exact counts, errors as ``kql run``'s.

A query the API answers in one request is one ``page[size]=1`` request; a plan is
counted by the cheaper of its inclusion–exclusion terms and listing
(``kql.execute.counting``). ``page`` and ``limit`` do not change a count.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from kql.cli.run import EXIT_OK, _expanded, _prepare, connect

if TYPE_CHECKING:
    from kql.execute.client import Client
    from kql.execute.counting import CountResult
    from kql.planning.plan import Plan
    from kql.planning.segments import Segments


def count_target(client: Client, target: Plan, max_requests: int | None) -> CountResult:
    """The exact count of a plan, with how it was made and what it cost."""
    from kql.execute.counting import count_exact

    return count_exact(client, target, max_requests)


def main(text: str, args: argparse.Namespace) -> int:
    """``kql count``: the number on stdout (``--json``: count, method, requests)."""
    query, named = _expanded(text, args.segments, args.max_requests)
    target = None if named else _prepare(query, text, args.max_requests)
    secrets: list[str] = []
    try:
        with connect(args, secrets) as client:
            if target is None:
                target = _prepare(client.names.resolve(query, text), text, args.max_requests)
            for warning in target.warnings:
                print(warning.render(), file=sys.stderr)
            result = count_target(client, target, args.max_requests)
    except Exception as error:
        return _failed(error, secrets, "kql count")
    print(json.dumps(result.to_dict()) if args.json else result.count)
    return EXIT_OK


def segment_counts(segments: Segments, args: argparse.Namespace) -> dict[str, int] | int:
    """Each segment's count (names resolved as kql run does), or an exit code after an error."""
    from kql.language.parser import parse
    from kql.planning.planner import plan_query

    secrets: list[str] = []
    counts: dict[str, int] = {}
    try:
        with connect(args, secrets) as client:
            for segment in segments:
                query = segments.expand(parse("@" + segment.name))
                target = plan_query(client.names.resolve(query))
                counts[segment.name] = count_target(client, target, None).count
    except Exception as error:
        return _failed(error, secrets, "kql segments")
    return counts


def _failed(error: Exception, secrets: list[str], command: str) -> int:
    from kql.execute.errors import ExecutorError, redact

    if not isinstance(error, ExecutorError):
        raise error  # a KQLError (exit 2, printed by kql.cli.app) or a bug
    print(f"{command}: error: {redact(str(error), secrets)}", file=sys.stderr)
    return error.exit_code

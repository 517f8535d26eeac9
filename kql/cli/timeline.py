"""``kql snapshot``, ``kql diff`` and ``kql watch``: segment membership over time (``kql help segments``).

Exit codes: 0 ok, 2 invalid query or usage (also: the segment's definition changed, see
--accept-new-definition), 3 the API refused, 4 network or server failure, 5 the --exec
consumer failed (nothing committed: the same events come again), 6 the segment is busy
(another kql holds its lock).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from kql.cli.run import Terminated, add_connection_arguments, connect, positive_int, terminate_as_interrupt
from kql.language.errors import KQLError

if TYPE_CHECKING:
    from kql.execute.timeline import Changes, Event

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_FAILED, EXIT_CONSUMER, EXIT_BUSY = 0, 2, 3, 4, 5, 6
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
_EXITS = (
    "exit codes: 0 ok, 2 invalid query/usage or a changed definition, 3 API refused, "
    "4 network/server failure, 5 consumer failed, 6 segment busy."
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 15m, 1h or 900 (seconds), not {text!r}")
    return seconds


def _common(parser: argparse.ArgumentParser, expr_help: str) -> None:
    parser.add_argument("expr", nargs="?", default="-", metavar="EXPR|@segment", help=expr_help)
    parser.add_argument("--as", dest="name", metavar="NAME", help="the snapshot's name (default: the @segment's)")
    parser.add_argument(
        "--state", metavar="FILE", help="state store (default: $KQL_STATE, else state.sqlite3 in the user data dir)"
    )
    parser.add_argument("--segments", metavar="PATH", help="segments file (default: $KQL_SEGMENTS or ./kql.toml)")
    parser.add_argument(
        "--keep", type=positive_int, default=10, metavar="N", help="snapshots kept per segment (default 10)"
    )
    add_connection_arguments(parser)


def _delivery(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch", type=positive_int, default=1000, metavar="N", help="events per --exec run (default 1000)"
    )
    parser.add_argument(
        "--accept-new-definition",
        action="store_true",
        help="the segment's query changed since its last snapshot: diff against it anyway, and record the new one",
    )


def parser_for(command: str) -> argparse.ArgumentParser:
    """The argument parser of one of the three commands (``kql completion`` reads them too)."""
    if command == "snapshot":
        parser = argparse.ArgumentParser(
            prog="kql snapshot",
            description="Record who matches a segment now (ids, time, canonical query, selected attributes).",
            epilog=_EXITS + " More: kql help segments",
        )
        _common(parser, "the segment (@vip) or an expression with --as NAME ('-' or nothing reads stdin)")
        parser.add_argument("--list", action="store_true", help="list the stored snapshots (of EXPR's name, if given)")
        parser.add_argument("--json", action="store_true", help="print the snapshot (or the list) as JSON")
        return parser
    if command == "diff":
        parser = argparse.ArgumentParser(
            prog="kql diff",
            description="Who entered, left or changed since the segment's last snapshot; then record the new one.",
            epilog=_EXITS + " More: kql help segments",
        )
        _common(parser, "the segment (@vip), or an expression with --as NAME")
        parser.add_argument(
            "--since", type=positive_int, metavar="SNAPSHOT", help="compare with this older snapshot id"
        )
        parser.add_argument("--dry-run", action="store_true", help="show the events; record nothing")
        parser.add_argument("--format", choices=["table", "json", "ndjson", "csv"], help="default: table on a terminal")
        parser.add_argument("--output", "-o", metavar="FILE", help="write the events here (atomically)")
        parser.add_argument(
            "--exec",
            dest="command",
            metavar="CMD",
            help="pipe each batch of events to CMD (NDJSON on stdin); commit only when every run exits 0",
        )
        _delivery(parser)
        return parser
    parser = argparse.ArgumentParser(
        prog="kql watch",
        description="Every so often: diff the segment, deliver the events to CMD, commit when CMD exits 0.",
        epilog=_EXITS + " SIGTERM or Ctrl-C stop it cleanly (exit 0); undelivered events come next time.",
    )
    _common(parser, "the segment (@vip), or an expression with --as NAME")
    parser.add_argument("--every", type=duration, required=True, metavar="DURATION", help="e.g. 30s, 15m, 1h")
    parser.add_argument("--exec", dest="command", required=True, metavar="CMD", help="the consumer (NDJSON on stdin)")
    parser.add_argument("--cycles", type=positive_int, metavar="N", help="stop after N cycles (default: never)")
    _delivery(parser)
    return parser


def snapshot_main(argv: list[str]) -> int:
    return _main("snapshot", argv, _snapshot)


def diff_main(argv: list[str]) -> int:
    return _main("diff", argv, _diff)


def watch_main(argv: list[str]) -> int:
    return _main("watch", argv, _watch)


# -- the commands ------------------------------------------------------------------


def _snapshot(args: argparse.Namespace, secrets: list[str]) -> int:
    from kql.execute.state import StateStore
    from kql.execute.timeline import snapshot

    if args.list:
        name = None if args.expr == "-" else args.expr.strip().removeprefix("@")
        with StateStore(args.state) as store:
            found = store.snapshots(name)
        if args.json:
            print(json.dumps([s.to_dict() for s in found], ensure_ascii=False))
        for s in [] if args.json else found:
            print(f"{s.id:>6}  @{s.name}  {s.taken_at}  {s.members} members  {s.query}")
        return EXIT_OK
    text = _read_expr(args.expr)
    with connect(args, secrets) as client:
        recorded = snapshot(client, text, name=args.name, state=args.state, segments=_segments(args), keep=args.keep)
    if args.json:
        print(json.dumps(recorded.to_dict(), ensure_ascii=False))
    else:
        print(f"snapshot {recorded.id} of @{recorded.name}: {recorded.members} members at {recorded.taken_at}")
    return EXIT_OK


def _diff(args: argparse.Namespace, secrets: list[str]) -> int:
    from kql.execute.timeline import deliver, diff

    text = _read_expr(args.expr)
    if args.output is not None:
        from kql.cli.output import check_output

        check_output(args.output)
    with (
        connect(args, secrets) as client,
        diff(
            client,
            text,
            name=args.name,
            state=args.state,
            segments=_segments(args),
            since=args.since,
            dry_run=args.dry_run,
            accept_new_definition=args.accept_new_definition,
            keep=args.keep,
            batch=args.batch,
        ) as changes,
    ):
        _notes(changes, "diff")
        if args.command:
            delivered = deliver(changes, args.command, batch=args.batch)
            counts = dict(delivered.counts)
        else:
            counts = _write(changes, args)
        _done(changes, counts, "diff")
    return EXIT_OK


def _watch(args: argparse.Namespace, secrets: list[str]) -> int:
    from kql.execute.errors import ExecutorError, redact
    from kql.execute.state import Busy
    from kql.execute.timeline import ConsumerFailed, deliver, diff

    text = _read_expr(args.expr)
    segments = _segments(args)
    accept = args.accept_new_definition
    cycle = 0
    with connect(args, secrets) as client:
        while True:
            cycle += 1
            started = time.monotonic()
            try:
                with diff(
                    client,
                    text,
                    name=args.name,
                    state=args.state,
                    segments=segments,
                    accept_new_definition=accept,
                    keep=args.keep,
                    batch=args.batch,
                ) as changes:
                    _notes(changes, "watch")
                    delivered = deliver(changes, args.command, batch=args.batch)
                    _done(changes, dict(delivered.counts), "watch")
                accept = False  # accepted once: the new definition is the baseline now
            except Busy as error:
                print(f"kql watch: skipped: {error}", file=sys.stderr, flush=True)
            except ConsumerFailed as error:
                print(f"kql watch: {error}", file=sys.stderr, flush=True)
            except ExecutorError as error:
                if error.exit_code != EXIT_FAILED:  # refused, or a changed definition: a person must look
                    raise
                print(f"kql watch: error (will retry next cycle): {redact(str(error), secrets)}", file=sys.stderr)
            if args.cycles is not None and cycle >= args.cycles:
                return EXIT_OK
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))


# -- pieces ------------------------------------------------------------------------


def _write(changes: Changes, args: argparse.Namespace) -> dict[str, int]:
    """Render the events to stdout or --output; counts by kind."""
    from kql.cli.output import open_output
    from kql.cli.render import write

    assert changes.target is not None
    counts = {"entered": 0, "left": 0, "changed": 0}

    def records(events: Iterator[Event]) -> Iterator[dict[str, Any]]:
        for event in events:
            counts[event.kind] += 1
            yield event.to_dict()

    attributes = list(changes.target.attributes)
    fields = ["event", "at", *attributes, *(["previous"] if attributes else [])]
    output = None if args.output in (None, "-") else args.output
    fmt = args.format or _default_format(output)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open_output(output)) if output else sys.stdout
        write(records(iter(changes)), out, fmt, fields)
        out.flush()
    return counts


def _default_format(output: str | None) -> str:
    if output:
        return {".csv": "csv", ".json": "json"}.get(os.path.splitext(output)[1].lower(), "ndjson")
    return "table" if sys.stdout.isatty() else "ndjson"


def _notes(changes: Changes, command: str) -> None:
    assert changes.target is not None
    name = changes.target.name
    if changes.base is None:
        print(f"kql {command}: note: @{name} has no earlier snapshot: every member counts as entered", file=sys.stderr)
    elif changes.definition_changed:
        verb = "shown" if changes.dry_run and not changes.accept_new_definition else "accepted"
        print(
            f"kql {command}: note: the definition of @{name} changed since snapshot {changes.base.id} "
            f"({changes.base.query!r} → {changes.target.canonical!r}); new definition {verb}",
            file=sys.stderr,
        )


def _done(changes: Changes, counts: dict[str, int], command: str) -> None:
    assert changes.target is not None
    committed = changes.commit()
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    where = f"snapshot {committed.id} recorded" if committed is not None else "dry run: nothing recorded"
    print(
        f"kql {command}: @{changes.target.name}: {summary} ({changes.members} members; {where})",
        file=sys.stderr,
        flush=True,
    )


def _segments(args: argparse.Namespace) -> Any:
    from kql.planning.segments_file import find, load

    path = find(args.segments)
    return load(path) if path is not None else None


def _read_expr(expr: str) -> str:
    if expr != "-":
        return expr
    if sys.stdin is None or sys.stdin.isatty():
        raise KQLError("E015", "no query", None, "give a segment (@vip) or an expression as the argument")
    return sys.stdin.read()


def _main(command: str, argv: list[str], body: Callable[[argparse.Namespace, list[str]], int]) -> int:
    parser = parser_for(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on usage errors, 0 for --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    secrets: list[str] = []
    prefix = f"kql {command}"
    try:
        with terminate_as_interrupt():
            return body(args, secrets)
    except KQLError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as stop:
        if command == "watch":  # the way a watcher is meant to stop
            print(f"{prefix}: stopped; undelivered events come next time", file=sys.stderr)
            return EXIT_OK
        print(
            f"{prefix}: {'interrupted' if isinstance(stop, KeyboardInterrupt) else 'terminated'}; nothing recorded",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED
    except BrokenPipeError:  # `kql diff … | head`: not everything was read, so nothing is recorded
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        print(f"{prefix}: output closed early; nothing recorded", file=sys.stderr)
        return EXIT_OK
    except Exception as error:
        from kql.cli.output import OutputError
        from kql.execute.errors import ExecutorError, redact
        from kql.execute.state import Busy, StateError

        if isinstance(error, Busy):
            code, label = EXIT_BUSY, "busy"
        elif isinstance(error, StateError | OutputError):
            code, label = EXIT_USAGE, "error"
        elif isinstance(error, ExecutorError):
            code, label = error.exit_code, "error"
        elif isinstance(error, OSError):
            where = f": {error.filename}" if error.filename else ""
            code, label, error = EXIT_USAGE, "error", OSError(f"{error.strerror or error}{where}")
        else:
            code, label = EXIT_FAILED, f"internal error ({type(error).__name__})"
        print(f"{prefix}: {label}: {redact(str(error), secrets)}", file=sys.stderr)
        return code

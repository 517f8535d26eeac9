"""``kql run EXPR``: execute a query and stream the customers out.

Exit codes: 0 ok, 1 no customer written (none matched, or the page or limit left none),
2 invalid query or usage, 3 the API refused (auth, 4xx), 4 the network or server failed
after retries (or customers are missing), 5 customers are missing and ``--allow-partial``
accepted it. Data goes to stdout (or ``--output``, written atomically), errors and
warnings to stderr — with ``--json``, stdout is one JSON document whatever happens
(``kql.cli.envelope``) — never a traceback and never a credential.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kql.cli.envelope import EXIT_NOTHING, Envelope, SignalGuard
from kql.cli.output import OutputError, check_output
from kql.language.errors import KQLError

if TYPE_CHECKING:
    from kql.execute.client import Client

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_FAILED, EXIT_PARTIAL = 0, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
_EXTENSIONS = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _site_id(text: str) -> str:
    from kql.execute.environment import parse_site_id  # shared with Client.from_env()

    try:
        return parse_site_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _site_from_env() -> str | None:
    from kql.execute.environment import site_id

    return site_id()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, not {text}")
    return value


def add_connection_arguments(parser: argparse._ActionsContainer) -> None:
    """Where the API is and how to authenticate (kql run, kql explain --analyze)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true", help="use the built-in sandbox (no credentials)")
    where.add_argument(
        "--base-url",
        metavar="URL",
        default=os.environ.get("KAJABI_BASE_URL", "https://api.kajabi.com"),
        help="API origin (default: $KAJABI_BASE_URL or https://api.kajabi.com)",
    )
    parser.add_argument("--token", help="bearer token (default: $KAJABI_TOKEN; prefer it: arguments show in ps)")
    parser.add_argument(
        "--site",
        metavar="ID",
        type=_site_id,
        help="site id added as filter[site_id] (default: $KAJABI_SITE_ID)",
    )
    parser.add_argument("--insecure", action="store_true", help="allow plain http:// to a non-loopback host")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="each request on stderr: method, path and parameters, status, time, retries (never a secret)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kql run",
        description="Run a KQL query against the Kajabi API (or the built-in sandbox) and stream the customers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  kql run --sandbox 'net_revenue > 100 select name, email sort -net_revenue limit 5'\n"
            "  kql run 'has_tag(tag_5) and opened(bc_9)' -o vip.csv\n"
            "  kql run -f vip.kql | jq .email\n\n"
            "credentials: --token or KAJABI_TOKEN, or KAJABI_CLIENT_ID + KAJABI_CLIENT_SECRET (OAuth).\n"
            "exit codes: 0 ok, 1 no customer matched (the output is still well-formed: [] or a CSV header),\n"
            "2 invalid query/usage, 3 API refused, 4 network/server failure or customers missing,\n"
            "5 customers missing, accepted by --allow-partial; 130/143 interrupted/terminated. kql help cli\n"
            "Without 'sort', customers come newest first (-created_at, the API's default). More: kql help executor"
        ),
    )
    parser.add_argument("expr", nargs="?", default="-", help="the KQL query ('-' or nothing reads it from stdin)")
    parser.add_argument("-f", "--file", metavar="FILE", help="read the query from FILE ('-' for stdin)")
    add_connection_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help='stdout is one JSON document, also on failure: {"customers": [...], "count", "complete", "ok", '
        '"exit_code", "errors"} (with -o, "output" instead of the array)',
    )
    parser.add_argument(
        "--format",
        choices=["table", "json", "ndjson", "csv"],
        help="default: table on a terminal, else from the --output extension, else ndjson",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here, atomically (no partial file on failure)")
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="at most N customers (with the query's limit: the smaller)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=8, metavar="N", help="pages fetched at once (default 8)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="seconds one attempt of a request may take, connect to last byte (default 30)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=_positive_float,
        default=32.0,
        metavar="MB",
        help="largest response body accepted, in MiB (default 32)",
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="customers missing from the server's pages: warn and exit 5 instead of failing (exit 4)",
    )
    parser.add_argument(
        "--max-page-size", type=positive_int, default=100, metavar="N", help="largest page[size] (default 100)"
    )
    parser.add_argument(
        "--retries", type=int, default=6, metavar="N", help="retries per request after a fault (default 6)"
    )
    parser.add_argument(
        "--max-requests",
        type=positive_int,
        metavar="N",
        help="refuse, before sending anything, a plan that needs more than N listings (see kql explain)",
    )
    parser.add_argument(
        "--segments", metavar="PATH", help="segments file (default: $KQL_SEGMENTS, else kql.toml here or above)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-pager", action="store_true", help="never page a table taller than the terminal ($KQL_PAGER, $PAGER, less)"
    )
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    if args.output == "-":
        args.output = None  # the usual spelling of standard output
    secrets: list[str] = []
    if not args.json:
        failed = _Failure(None)
        try:
            with terminate_as_interrupt():
                return _run(args, secrets, None)
        except BaseException as error:
            return _report(error, failed, secrets)
    guard = SignalGuard()
    envelope = Envelope(sys.stdout, args.output, guard)
    # The handlers stay while the document is closed: SIGTERM's default action would cut its tail.
    with terminate_as_interrupt(guard):
        try:
            code = _run(args, secrets, envelope)
        except BaseException as error:
            guard.busy = True  # the run is ending: a second signal waits, so the report is whole
            code = _report(error, _Failure(envelope), secrets)
        envelope.close(code)
        return code


def _report(error: BaseException, failed: _Failure, secrets: list[str]) -> int:
    """The exit code of a run that raised ``error``, reported on stderr or in the JSON document."""
    try:
        raise error
    except _Usage:
        return failed.line("usage", str(error), EXIT_USAGE)
    except KQLError as query_error:
        return failed.query(query_error)
    except KeyboardInterrupt:
        return failed.line("interrupted", "interrupted", EXIT_INTERRUPTED)
    except Terminated:
        return failed.line("terminated", "terminated", EXIT_TERMINATED)
    except BrokenPipeError:  # `kql run … | head`: no one is left to read, not even the document's end
        failed.gone()
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown from complaining
        return EXIT_OK
    except OutputError:
        return failed.line("output", f"error: {error}", EXIT_USAGE)
    except OSError as local:  # network errors arrive as httpx exceptions: this is local (--output)
        where = f": {local.filename}" if local.filename else ""
        return failed.line("output", f"{local.strerror or local}{where}", EXIT_USAGE)
    except Exception:  # an ExecutorError, or a bug: either way one readable line
        from kql.execute.errors import ExecutorError, redact

        code = error.exit_code if isinstance(error, ExecutorError) else EXIT_FAILED
        label = "error" if isinstance(error, ExecutorError) else f"internal error ({type(error).__name__})"
        kind = type(error).__name__ if isinstance(error, ExecutorError) else "internal"
        return failed.line(kind, f"{label}: {redact(str(error), secrets)}", code)


class _Usage(Exception):
    """A usage mistake found after parsing (exit 2): a line on stderr, or JSON with ``--json``."""


class _Failure:
    """How ``kql run`` reports a failure: a line on stderr, or with ``--json`` the document's errors."""

    def __init__(self, envelope: Envelope | None) -> None:
        self.envelope = envelope

    def query(self, error: KQLError) -> int:
        if self.envelope is not None:
            self.envelope.close(EXIT_USAGE, [e.problem() for e in error.errors])
        else:
            print(error.render(), file=sys.stderr)
        return EXIT_USAGE

    def gone(self) -> None:
        """The reader of stdout has left: the document cannot be closed, and is not tried."""
        if self.envelope is not None:
            self.envelope.abandon()

    def line(self, code: str, message: str, exit_code: int) -> int:
        if self.envelope is not None:
            self.envelope.close(exit_code, [{"code": code, "message": message, "span": None, "hint": None}])
        else:
            print(f"kql run: {message}", file=sys.stderr)
        return exit_code


class Terminated(BaseException):
    """SIGTERM (kill, timeout, CI, systemd): unwinds like Ctrl-C, so no temporary file is left."""


@contextlib.contextmanager
def terminate_as_interrupt(guard: SignalGuard | None = None) -> Iterator[None]:
    """SIGTERM raises ``Terminated``; with a ``guard``, it and Ctrl-C wait for a write to finish."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (an embedding program's call)
        return

    def stop(signum: int, frame: object) -> None:
        error = KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
        if guard is not None and guard.busy:
            guard.pending = error  # raised by the writer once its write is whole
            return
        raise error

    handled = [signal.SIGTERM]
    if guard is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        handled.append(signal.SIGINT)  # not when ignored (a background job): that stays so
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace, secrets: list[str], envelope: Envelope | None) -> int:
    from kql.cli.inputs import UsageError, read_query

    try:
        text = read_query(args.expr, args.file)
    except UsageError as error:
        raise _Usage(str(error)) from None
    if args.output is not None:
        if not args.output:
            raise _Usage("error: --output needs a file name ('-' for standard output)")
        check_output(args.output)  # before the run: a typo in the path should not cost the export
    if args.json and args.output is None and args.format not in (None, "json"):
        raise _Usage(f"error: --json writes JSON to stdout; --format {args.format} needs --output FILE")
    if args.retries < 0:
        raise _Usage("--retries must be 0 or more")
    if args.sandbox and args.token:
        print("kql run: note: --token is not used with --sandbox (it has its own)", file=sys.stderr)
    query, named = _expanded(text, args.segments, args.max_requests)
    # Without names the query is fully checked and planned before anything starts; names first
    # need the catalogues, so only their other mistakes (and the budget) are checked up front.
    target = None if named else _prepare(query, text, args.max_requests)
    if args.json and args.output is None:
        fmt = "json"  # the document on stdout
    else:  # --json -o FILE: the file in its own format (a name without extension: JSON), the document on stdout
        fmt = args.format or _default_format(args.output, "json" if args.json else "ndjson")

    with connect(args, secrets) as client:
        if target is None:
            target = _prepare(client.names.resolve(query, text), text, args.max_requests)
        for warning in target.warnings:
            print(warning.render(), file=sys.stderr)
        count = _stream(client, target, args, fmt, envelope)
        if client.stats["records-missing"]:
            return EXIT_PARTIAL
        return EXIT_OK if count else EXIT_NOTHING  # as grep: a script can tell "none" from "some"


@contextlib.contextmanager
def connect(args: argparse.Namespace, secrets: list[str]) -> Iterator[Client]:
    """A client for the sandbox (started here) or the configured API; ConfigError if misconfigured.

    Credentials are added to ``secrets`` so that error messages can be scrubbed of them.
    """
    from kql.execute.client import Client

    with contextlib.ExitStack() as stack:
        options: dict[str, Any] = {
            "site_id": args.site or _site_from_env(),
            "timeout": getattr(args, "timeout", 30.0),
            "concurrency": getattr(args, "concurrency", 8),
            "max_page_size": getattr(args, "max_page_size", 100),
            "retry": _policy(getattr(args, "retries", 6)),
            "allow_partial": getattr(args, "allow_partial", False),
            "max_body_bytes": max(1, int(getattr(args, "max_body_mb", 32.0) * 1024 * 1024)),
            "trace": _trace_to_stderr if getattr(args, "verbose", False) else None,
        }
        if args.sandbox:
            from kql.sandbox import running

            sandbox = stack.enter_context(running())
            base_url, options["token"] = sandbox.base_url, sandbox.token or "sandbox"
        else:
            base_url = args.base_url
            options.update(_credentials(args))
            options["insecure"] = args.insecure
        # The sandbox's token too: redaction leaves the word "sandbox" alone where it is not a credential.
        secrets.extend(str(v) for k, v in options.items() if k in ("token", "client_secret") and v)
        yield stack.enter_context(Client(base_url, **options))


def _trace_to_stderr(line: str) -> None:
    # The client has redacted the line; stderr, so data on stdout stays clean.
    print(f"kql: {line}", file=sys.stderr, flush=True)


def _stream(client: Client, compiled: Any, args: argparse.Namespace, fmt: str, envelope: Envelope | None) -> int:
    """Write the customers; returns how many were written."""
    import time

    from kql.cli.output import open_output
    from kql.cli.progress import ProgressBar

    started = time.monotonic()
    customers = client.customers(compiled, limit=args.limit)
    limit = min(x for x in (args.limit, compiled.limit, 2**63) if x is not None)
    to_terminal = args.output is None and sys.stdout.isatty()
    # Rows streamed to the terminal the bar is drawn on would be torn by it: they are their own
    # progress. A table is written only after the run, once the bar is cleared.
    streamed_here = to_terminal and fmt != "table" and _same_terminal()
    show_bar = not args.no_progress and sys.stderr.isatty() and not streamed_here
    try:
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(ProgressBar(customers, sys.stderr, limit=limit)) if show_bar else None
            if envelope is not None and args.output is None:
                count = envelope.write(customers)
            elif fmt == "table":
                count = _table(customers, compiled, args, bar, to_terminal)
            else:
                from kql.cli.render import write

                out = stack.enter_context(open_output(args.output)) if args.output else sys.stdout
                count = write(customers, out, fmt, _selected(compiled))
                out.flush()
    finally:
        customers.close()
        for warning in customers.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if compiled.matches_nothing:
        print("note: these filters contradict each other; no customer matches (no request was made)", file=sys.stderr)
    if args.output:
        if envelope is not None:
            envelope.count = count  # the file is written: its customers
        noun = "customer" if count == 1 else "customers"
        print(f"kql run: wrote {count:,} {noun} to {args.output} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return count


def _table(customers: Any, compiled: Any, args: argparse.Namespace, bar: Any, to_terminal: bool) -> int:
    """Read every row (a table is sized from all of them), clear the bar, then write: paged when taller."""
    from kql.cli import pager
    from kql.cli.output import open_output
    from kql.cli.render import Table

    table = Table(_selected(compiled))
    try:
        table.extend(customers)
    except BaseException:
        table.close()
        raise
    if bar is not None:
        bar.clear()
    size = pager.terminal_size(sys.stdout) if to_terminal else None
    command = pager.command() if size is not None and not args.no_pager and table.height > size.lines else None
    with contextlib.ExitStack() as stack:
        stack.callback(table.close)
        if command is not None:
            out = stack.enter_context(pager.paged(command))
        else:
            out = stack.enter_context(open_output(args.output)) if args.output else sys.stdout
        for line in table.lines(size.columns if size is not None else None):
            out.write(line)
        out.flush()
    return table.rows


def _same_terminal() -> bool:
    """Whether stdout and stderr are the same terminal (the bar and the rows would share it)."""
    try:
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return (out.st_dev, out.st_ino, out.st_rdev) == (err.st_dev, err.st_ino, err.st_rdev)


def _default_format(output: str | None, bare: str = "ndjson") -> str:
    """The format from ``--output``'s extension (``bare`` when it has none), else table or NDJSON."""
    if output:
        extension = os.path.splitext(output)[1].lower()
        if extension and extension not in _EXTENSIONS:
            known = ", ".join(_EXTENSIONS)
            raise OutputError(
                f"--output {output}: cannot tell the format from {extension!r} (known: {known}); "
                "or give --format table|json|ndjson|csv"
            )
        return _EXTENSIONS.get(extension, bare)
    return "table" if sys.stdout.isatty() else "ndjson"


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    from kql.execute.environment import credentials  # the variables Client.from_env() reads, read the same way
    from kql.execute.errors import ConfigError

    found = credentials(token=args.token, token_from="--token")
    if found is None:
        raise ConfigError(
            "no credentials: pass --token, or set KAJABI_TOKEN, or KAJABI_CLIENT_ID and KAJABI_CLIENT_SECRET "
            "(or try --sandbox)"
        )
    return found


def _policy(retries: int) -> Any:
    from kql.execute.retry import RetryPolicy

    return RetryPolicy(max_attempts=retries + 1)


def _expanded(text: str, segments_path: str | None, max_requests: int | None) -> tuple[Any, bool]:
    """The query with its segments expanded, and whether it names tags, offers or products."""
    from kql.language.parser import parse
    from kql.planning.checked import expand
    from kql.planning.lookups import check_before_lookups
    from kql.planning.names import find_names
    from kql.planning.segments_file import for_query

    parsed = parse(text)
    query = expand(parsed, for_query(parsed, segments_path), text)
    named = bool(find_names(query))
    if named:
        check_before_lookups(query, text, max_requests)  # before a sandbox starts or a catalogue is fetched
    return query, named


def _prepare(query: Any, text: str, max_requests: int | None) -> Any:
    """The plan of the query (one request or several: both run the same way)."""
    from kql.planning.planner import plan_query

    return plan_query(query, max_requests=max_requests, source=text)


def _selected(target: Any) -> Any:
    """The fields the user selected."""
    return target.select


def probe(text: str, args: argparse.Namespace) -> int:
    """``kql explain --analyze``: the plan, then a count probe per listing (errors as kql run's)."""
    from kql.planning.planner import plan_query

    query, named = _expanded(text, args.segments, args.max_requests)
    plan = None if named else plan_query(query, max_requests=args.max_requests, source=text)
    secrets: list[str] = []
    try:
        from kql.execute.analyze import analyze

        with connect(args, secrets) as client:
            lookups = 0
            if plan is None:
                before = client.stats["requests"]
                resolved = client.names.resolve(query, text)
                plan = plan_query(resolved, max_requests=args.max_requests, source=text)
                lookups = client.stats["requests"] - before
            for warning in plan.warnings:
                print(warning.render(), file=sys.stderr)
            analysis = analyze(client, plan, lookups)
    except Exception as error:
        from kql.execute.errors import ExecutorError, redact

        if not isinstance(error, ExecutorError):
            raise
        print(f"kql explain: error: {redact(str(error), secrets)}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({**plan.to_dict(), "analysis": analysis.to_dict()}, ensure_ascii=False))
    else:
        print(plan.explain())
        print(analysis.explain())
    return EXIT_OK

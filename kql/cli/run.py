"""``kql run EXPR``: execute a query and stream the customers out.

Exit codes: 0 ok, 2 invalid query or usage, 3 the API refused (auth, 4xx),
4 the network or server failed after retries (or customers are missing), 5 customers
are missing and ``--allow-partial`` accepted it. Data goes to stdout (or
``--output``, written atomically), errors and warnings to stderr, never a
traceback and never a credential.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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
    number = text.removeprefix("site_")
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"a site id is a positive number (e.g. 123 or site_123), not {text!r}")
    return str(int(number))


def _site_from_env() -> str | None:
    value = os.environ.get("KAJABI_SITE_ID") or None
    if value is None:
        return None
    try:
        return _site_id(value)
    except argparse.ArgumentTypeError as error:
        from kql.execute.errors import ConfigError

        raise ConfigError(f"KAJABI_SITE_ID: {error}") from None


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kql run",
        description="Run a KQL query against the Kajabi API (or the built-in sandbox) and stream the customers.",
        epilog=(
            "credentials: --token or KAJABI_TOKEN, or KAJABI_CLIENT_ID + KAJABI_CLIENT_SECRET (OAuth). "
            "exit codes: 0 ok, 2 invalid query/usage, 3 API refused, 4 network/server failure or customers missing, "
            "5 customers missing, accepted by --allow-partial. "
            "Without 'sort', customers come oldest first (ascending created_at). Docs: docs/executor.md"
        ),
    )
    parser.add_argument("expr", nargs="?", default="-", help="the KQL query ('-' or nothing reads it from stdin)")
    add_connection_arguments(parser)
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
    parser.add_argument("--segments", metavar="PATH", help="segments file (default: $KQL_SEGMENTS or ./kql.toml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    secrets: list[str] = []
    try:
        with _terminate_as_interrupt():
            return _run(args, secrets)
    except KQLError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kql run: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("kql run: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:  # `kql run … | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown from complaining
        return EXIT_OK
    except OutputError as error:
        print(f"kql run: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # network errors arrive as httpx exceptions: this is local (--output)
        where = f": {error.filename}" if error.filename else ""
        print(f"kql run: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # an ExecutorError, or a bug: either way one readable line
        from kql.execute.errors import ExecutorError, redact

        code = error.exit_code if isinstance(error, ExecutorError) else EXIT_FAILED
        label = "error" if isinstance(error, ExecutorError) else f"internal error ({type(error).__name__})"
        print(f"kql run: {label}: {redact(str(error), secrets)}", file=sys.stderr)
        return code


class _Terminated(BaseException):
    """SIGTERM (kill, timeout, CI, systemd): unwinds like Ctrl-C, so no temporary file is left."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (an embedding program's call)
        return

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, secrets: list[str]) -> int:
    text = _read_expr(args.expr)
    if text is None:
        print("kql run: give a query as an argument, or pipe one on stdin", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "-":
        args.output = None  # the usual spelling of standard output
    elif args.output is not None:
        if not args.output:
            print("kql run: error: --output needs a file name ('-' for standard output)", file=sys.stderr)
            return EXIT_USAGE
        check_output(args.output)  # before the run: a typo in the path should not cost the export
    if args.sandbox and args.token:
        print("kql run: note: --token is not used with --sandbox (it has its own)", file=sys.stderr)
    query, named = _expanded(text, args.segments, args.max_requests)
    # Without names the query is fully checked and planned before anything starts; names first
    # need the catalogues, so only their other mistakes (and the budget) are checked up front.
    target = None if named else _prepare(query, text, args.max_requests)
    fmt = args.format or _default_format(args.output)
    if args.retries < 0:
        print("kql run: --retries must be 0 or more", file=sys.stderr)
        return EXIT_USAGE

    with connect(args, secrets) as client:
        if target is None:
            target = _prepare(client.names.resolve(query, text), text, args.max_requests)
        for warning in target.warnings:
            print(warning.render(), file=sys.stderr)
        code = _stream(client, target, args, fmt)
        return EXIT_PARTIAL if code == EXIT_OK and client.stats["records-missing"] else code


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


def _stream(client: Client, compiled: Any, args: argparse.Namespace, fmt: str) -> int:
    from kql.cli.output import open_output
    from kql.cli.progress import ProgressBar
    from kql.cli.render import write

    customers = client.customers(compiled, limit=args.limit)
    show_bar = not args.no_progress and sys.stderr.isatty()
    try:
        with contextlib.ExitStack() as stack:
            if show_bar:
                stack.enter_context(ProgressBar(customers, sys.stderr))
            out = stack.enter_context(open_output(args.output)) if args.output else sys.stdout
            write(customers, out, fmt, _selected(compiled))
            out.flush()
    finally:
        customers.close()
        for warning in customers.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if compiled.matches_nothing:
        print("note: these filters contradict each other; no customer matches (no request was made)", file=sys.stderr)
    return EXIT_OK


def _default_format(output: str | None) -> str:
    if output:
        return _EXTENSIONS.get(os.path.splitext(output)[1].lower(), "ndjson")
    return "table" if sys.stdout.isatty() else "ndjson"


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    from kql.execute.auth import check_credential
    from kql.execute.errors import ConfigError

    def checked(value: str, what: str, where: str) -> str:
        try:
            return check_credential(value, what)  # never echoed: where it came from and what is wrong
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None

    token = args.token or os.environ.get("KAJABI_TOKEN")
    if token:
        # stripped as the client strips it: a trailing newline from a file is not part of the token
        return {"token": checked(token.strip(), "token", "--token" if args.token else "KAJABI_TOKEN")}
    client_id, secret = os.environ.get("KAJABI_CLIENT_ID"), os.environ.get("KAJABI_CLIENT_SECRET")
    if client_id and secret:
        return {
            "client_id": checked(client_id, "client id", "KAJABI_CLIENT_ID"),
            "client_secret": checked(secret, "client secret", "KAJABI_CLIENT_SECRET"),
        }

    if client_id or secret:
        names = ["KAJABI_CLIENT_ID", "KAJABI_CLIENT_SECRET"]
        have, missing = names if client_id else names[::-1]
        raise ConfigError(f"{have} is set but {missing} is not: OAuth needs both (or use KAJABI_TOKEN)")

    raise ConfigError(
        "no credentials: pass --token, or set KAJABI_TOKEN, or KAJABI_CLIENT_ID and KAJABI_CLIENT_SECRET "
        "(or try --sandbox)"
    )


def _policy(retries: int) -> Any:
    from kql.execute.retry import RetryPolicy

    return RetryPolicy(max_attempts=retries + 1)


def _expanded(text: str, segments_path: str | None, max_requests: int | None) -> tuple[Any, bool]:
    """The query with its segments expanded, and whether it names tags, offers or products."""
    from kql.language.parser import parse
    from kql.planning.checked import expand
    from kql.planning.lookups import check_before_lookups
    from kql.planning.names import find_names
    from kql.planning.segments import find, load

    found = find(segments_path)
    query = expand(parse(text), load(found) if found is not None else None, text)
    named = bool(find_names(query))
    if named:
        check_before_lookups(query, text, max_requests)  # before a sandbox starts or a catalogue is fetched
    return query, named


def _prepare(query: Any, text: str, max_requests: int | None) -> Any:
    """The plan of the query (one request or several: both run the same way)."""
    from kql.planning.planner import plan_query

    return plan_query(query, max_requests=max_requests, source=text)


def _read_expr(expr: str) -> str | None:
    if expr != "-":
        return expr
    if sys.stdin is None or sys.stdin.isatty():
        return None
    return sys.stdin.read()


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

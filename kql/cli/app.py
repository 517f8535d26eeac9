"""The ``kql`` command: a thin shell over the library.

Exit codes (the table is docs/cli.md's): 0 ok, 1 nothing matched (run, compile),
2 invalid query or usage, 3 the API refused, 4 network or server failure; 5 customers
missing, accepted (run), or the consumer failed (diff/watch); 6 segment busy.
Data goes to stdout, errors and warnings to stderr. Commands that
talk HTTP live in their own modules and are imported only when used, so
``kql compile`` never loads httpx.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kql.cli.helpformat import RawDescriptionHelpFormatter
from kql.language.errors import KQLError

if TYPE_CHECKING:
    from kql.planning.segments import Segments

# Subcommands implemented elsewhere: name -> "module:function(argv) -> int".
_DELEGATED = {
    "run": "kql.cli.run:main",
    "sandbox": "kql.sandbox.cli:main",
    "shell": "kql.cli.shell:main",
    "mcp": "kql.cli.mcp_server:main",
    "snapshot": "kql.cli.timeline:snapshot_main",
    "diff": "kql.cli.timeline:diff_main",
    "watch": "kql.cli.timeline:watch_main",
    "lsp": "kql.cli.lsp:main",
}

# 1: the query is valid but matches no customer (a contradiction): no request to print.
EXIT_OK, EXIT_NOTHING, EXIT_USAGE = 0, 1, 2

# `kql COMMAND --help` ends with these.
EXAMPLES = {
    "compile": ["kql compile 'site = 123 and has_tag(tag_5) sort -created_at'", "kql compile --url -f vip.kql"],
    "check": ["kql check 'opened(bc_9) and net_revenue > 100'", "kql check --json -f vip.kql"],
    "explain": ["kql explain '(opened(bc_9) or clicked(bc_10)) and net_revenue >= 100'",
                "kql explain --analyze --sandbox 'not has_tag(tag_5)'"],
    "fmt": ["kql fmt 'NOT has_tag(5) AND (subscribed OR hidden)'"],
    "complete": ["kql complete 'site = 1 and has_t'", "kql complete --json --cursor 4 'open(bc_9)'"],
    "completion": ['eval "$(kql completion bash)"   # in ~/.bashrc', "kql completion fish | source"],
    "decompile": ["kql decompile 'https://api.kajabi.com/v1/customers?filter[has_tag_id]=5'"],
    "filters": ["kql filters | grep tag", "kql filters --json"],
    "segments": ["kql segments list", "kql segments show vip", "kql segments check"],
    "help": ["kql help language", "kql help"],
}  # fmt: skip


def _examples(name: str) -> str | None:
    lines = EXAMPLES.get(name)
    return "examples:\n" + "\n".join("  " + line for line in lines) if lines else None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """kql's argument parser: every command's (``only=None``), or only the command ``only``'s.

    A command runs with only its own parser built (``kql compile`` imports nothing for
    ``kql run``'s options); ``only=""`` builds the list of commands without any options
    (``kql --help``). Completion scripts and unknown commands need everything.
    """
    parser = argparse.ArgumentParser(
        prog="kql",
        description="Query Kajabi customers with KQL.",
        formatter_class=RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  kql compile 'site = 123 and has_tag(tag_5) sort -created_at'\n"
            "  kql run --sandbox 'net_revenue > 100 select name, email limit 5'\n"
            "  kql explain 'opened(bc_9) or clicked(bc_10)'\n"
            '  eval "$(kql completion bash)"\n\n'
            "Run 'kql COMMAND --help' for a command's options, 'kql help' for the guides;\n"
            "exit codes (0 ok, 1 nothing matched, 2 usage, 3 refused, 4 failed, …) and --json: 'kql help cli'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kql {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, build) in _COMMANDS.items():
        if only is not None and only != "" and name != only:
            continue
        if build is None:  # run, sandbox, …: their own module parses their arguments
            commands.add_parser(name, help=help_, add_help=False)
            continue
        sub = commands.add_parser(
            name, help=help_, formatter_class=RawDescriptionHelpFormatter, epilog=_examples(name)
        )
        if only != "":
            build(sub)
    return parser


def _compile_arguments(compile_: argparse.ArgumentParser) -> None:
    _query_arguments(compile_)
    shape = compile_.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help='print {"params": [[name, value], …], "query": "…"}')
    shape.add_argument("--url", action="store_true", help="print the full request URL")
    compile_.add_argument("--base-url", default="https://api.kajabi.com", help="API origin for --url")
    _segments_option(compile_)


def _check_arguments(check: argparse.ArgumentParser) -> None:
    _query_arguments(check)
    check.add_argument("--json", action="store_true", help="print the problems as JSON")
    _segments_option(check)


def _segments_arguments(segments: argparse.ArgumentParser) -> None:
    from kql.cli.run import add_connection_arguments

    _segments_option(segments)
    actions = segments.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="name and description of every segment")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--count", action="store_true", help="how many customers each matches (asks the API)")
    show = actions.add_parser("show", help="a segment expanded and compiled")
    show.add_argument("name", help="the segment's name (with or without @)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    check_all = actions.add_parser("check", help="validate every segment; exit 2 with all problems (for CI and hooks)")
    check_all.add_argument("--json", action="store_true", help="every problem as JSON on stdout")
    for action in (listing, show, check_all):  # `kql segments list --segments F` works as well
        _segments_option(action, default=argparse.SUPPRESS)
    add_connection_arguments(listing.add_argument_group("with --count, where to count"))


def _explain_arguments(explain: argparse.ArgumentParser) -> None:
    from kql.cli.run import add_connection_arguments, positive_int

    _query_arguments(explain)
    explain.add_argument("--json", action="store_true", help="the plan as JSON")
    explain.add_argument(
        "--max-requests", type=positive_int, metavar="N", help="fail when the plan needs more requests"
    )
    explain.add_argument(
        "--analyze", action="store_true", help="count each listing (one page[size]=1 probe each) and estimate the cost"
    )
    _segments_option(explain)
    add_connection_arguments(explain.add_argument_group("with --analyze, where to probe"))


def _count_arguments(count: argparse.ArgumentParser) -> None:
    from kql.cli.run import add_connection_arguments, positive_int

    _query_arguments(count)
    count.add_argument("--json", action="store_true", help='print {"count": N, "method": …, "requests": R}')
    count.add_argument(
        "--max-requests", type=positive_int, metavar="N", help="refuse plans of over N listings; terms within N"
    )
    _segments_option(count)
    add_connection_arguments(count.add_argument_group("where to count"))


def _fmt_arguments(fmt: argparse.ArgumentParser) -> None:
    _query_arguments(fmt)
    fmt.add_argument("--json", action="store_true", help='print {"kql": "…", "json": the JSON form}')


def _complete_arguments(complete: argparse.ArgumentParser) -> None:
    from kql.cli.completion_scripts import add_complete_arguments

    add_complete_arguments(complete)


def _completion_arguments(completion: argparse.ArgumentParser) -> None:
    from kql.cli.completion_scripts import SHELLS

    completion.add_argument("shell", choices=SHELLS, help="bash, zsh or fish")


def _decompile_arguments(decompile: argparse.ArgumentParser) -> None:
    decompile.add_argument("url", nargs="?", default="-", help="a URL or query string ('-' reads stdin)")
    decompile.add_argument("--json", action="store_true", help='print {"kql": "…", "json": the JSON form}')


def _filters_arguments(filters: argparse.ArgumentParser) -> None:
    filters.add_argument("--json", action="store_true", help="machine-readable output")


def _help_arguments(help_: argparse.ArgumentParser) -> None:
    help_.add_argument("topic", nargs="?", help="a guide's name: language, cli, executor, segments…")
    help_.add_argument("--no-pager", action="store_true", help="never page a guide taller than the terminal")


# Every command in `kql --help`'s order: its one-line help, and what adds its arguments
# (None: a delegated command, whose own module parses them).
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "compile": ("print the one API request a query makes", _compile_arguments),
    "check": ("validate a query (exit 0 when valid)", _check_arguments),
    "segments": ("list, show and check saved segments", _segments_arguments),
    "explain": ("show the requests and local work any query needs", _explain_arguments),
    "count": ("the exact number of customers a query matches (asks the API)", _count_arguments),
    "fmt": ("print a query in canonical form", _fmt_arguments),
    "complete": ("completions at a cursor in a query (for editors and shells)", _complete_arguments),
    "completion": ("print a shell completion script for kql (bash, zsh, fish)", _completion_arguments),
    "decompile": ("turn a Kajabi customers URL back into KQL", _decompile_arguments),
    "filters": ("list every filter kql knows", _filters_arguments),
    "help": ("show a guide (kql help language); without a topic, list them", _help_arguments),
    "run": ("run a query against the API or the sandbox (kql run --help)", None),
    "sandbox": ("serve the local sandbox API (kql sandbox --help)", None),
    "shell": ("an interactive prompt for queries (kql shell --help)", None),
    "mcp": ("serve AI agents over MCP, stdio (kql mcp --help)", None),
    "snapshot": ("record who matches a segment now (kql snapshot --help)", None),
    "diff": ("who entered or left a segment since its snapshot", None),
    "watch": ("diff a segment every so often, deliver to a command", None),
    "lsp": ("language server for editors, over stdio (needs kql[lsp])", None),
}


def _query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expr", nargs="?", default="-", help="the KQL query ('-' or nothing reads it from stdin)")
    parser.add_argument("-f", "--file", metavar="FILE", help="read the query from FILE ('-' for stdin)")


def _segments_option(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument(
        "--segments",
        metavar="PATH",
        default=default,
        help="segments file (default: $KQL_SEGMENTS, else kql.toml here or in a parent directory)",
    )


def _load_segments(args: argparse.Namespace, required: bool = False, text: str | None = None) -> Segments | None:
    """The segments file; for a query ``text``, a discovered file only when the query uses ``@name``."""
    if text is not None:
        return _segments_for(text, args.segments)
    from kql.planning.segments_file import find, load

    path = find(args.segments)
    if path is None:
        if required:
            raise KQLError(
                "E012",
                "no segments file",
                None,
                "pass --segments PATH, set KQL_SEGMENTS, or create kql.toml here (or in a parent directory)",
            )
        return None
    return load(path)


def _segments_for(text: str, explicit: str | None) -> Segments | None:
    if not explicit and "@" not in text:
        return None  # no `@name` in it: no segments file to find (nor its module to import)
    from kql.language.parser import parse
    from kql.planning.segments_file import for_query

    try:
        query = parse(text)
    except KQLError:
        return None  # the command reports the syntax error itself
    return for_query(query, explicit)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _dumps(value: object, **options: Any) -> str:
    import json  # here: most runs print no JSON, and the import is a measurable part of a start

    return json.dumps(value, **options)


def _version() -> str:
    from kql._version import __version__

    return __version__


def _read_expr(expr: str) -> str:
    from kql.cli.inputs import read_query

    return read_query(expr, None)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the process is the `kql` command (not a caller in its own process)
        # What the imports made (modules, classes, functions, the tables) lives until exit: moved
        # out of the collector's sight, it is not traversed again by each full collection nor at
        # exit. A tenth of `kql compile`'s instructions went there.
        gc.freeze()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["complete"]:  # a TAB: answered without building every command's parser
        from kql.cli import completion_scripts

        return completion_scripts.main(args_list[1:])
    if args_list and args_list[0] in _DELEGATED:
        module, function = _DELEGATED[args_list[0]].split(":")
        if not _available(module):
            print(f"kql {args_list[0]}: not available in this version of kql", file=sys.stderr)
            return EXIT_USAGE
        handler = getattr(importlib.import_module(module), function)
        return int(handler(args_list[1:]))
    first = args_list[0] if args_list else "--help"
    if not first.startswith("-") and first not in _COMMANDS:
        return _unknown_command(_parser(""), first)
    # A command builds only its own parser (a completion script reads them all); `kql`,
    # `kql --help` and `kql --version` only the list of commands.
    if first in _COMMANDS and first != "completion":
        parser = _parser(first)
    else:
        parser = _parser("" if first in ("-h", "--help", "--version") else None)
    args, extras = parser.parse_known_args(args_list)
    if extras:  # argparse would blame the top-level usage: show the subcommand's own
        _subparser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from kql.cli.inputs import UsageError, read_query

    try:
        if args.command == "filters":
            return _filters(args.json)
        if args.command == "segments":
            return _segments(args)
        if args.command == "completion":
            from kql.cli.completion_scripts import script

            print(script(args.shell, parser, _DELEGATED))
            return EXIT_OK
        if args.command == "help":
            from kql.cli.help import main as help_main

            return help_main(args.topic, args.no_pager)
        if args.command == "decompile":
            return _decompile(_read_expr(args.url).strip(), args.json)
        text = read_query(args.expr, args.file)
        if args.command == "compile":
            return _compile(text, args)
        if args.command == "explain":
            return _explain(text, args)
        if args.command == "count":
            from kql.cli.count import main as count_main

            return count_main(text, args)
        if args.command == "check":
            return _check(text, args)
        return _fmt(text, args.json)
    except KQLError as error:
        if getattr(args, "json", False):  # machine output: the errors too, every one, on stdout
            print(_dumps({"ok": False, "errors": [e.problem() for e in error.errors]}, ensure_ascii=False))
        else:
            print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    except UsageError as error:
        if getattr(args, "json", False):
            usage = {"code": "usage", "message": str(error), "span": None, "hint": None}
            print(_dumps({"ok": False, "errors": [usage]}, ensure_ascii=False))
        else:
            print(f"kql {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `kql filters | head`
        sys.stderr.close()
        return EXIT_OK


def _commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command the arguments are for: `kql segments show`'s for its mistakes."""
    if args.command is None:
        return parser
    sub = _commands(parser).choices[args.command]
    action = getattr(args, "action", None)
    if action is not None:
        sub = _commands(sub).choices.get(action, sub)
    return sub


def _unknown_command(parser: argparse.ArgumentParser, name: str) -> int:
    from kql.language.errors import did_you_mean

    hint = did_you_mean(name, _commands(parser).choices)
    print(f"kql: unknown command '{name}'" + (f"; {hint}" if hint else ""), file=sys.stderr)
    print("run 'kql --help' for the list of commands", file=sys.stderr)
    return EXIT_USAGE


def _print_warnings(warnings: Sequence[KQLError]) -> None:
    for warning in warnings:
        print(warning.render(), file=sys.stderr)


def _compile(text: str, args: argparse.Namespace) -> int:
    from kql.planning.compiler import compile_query

    compiled = compile_query(text, segments=_load_segments(args, text=text))
    _print_warnings(compiled.warnings)
    if args.json:
        payload = {
            "params": [list(p) for p in compiled.params],
            "query": compiled.query_string,
            "matches_nothing": compiled.matches_nothing,
            "limit": compiled.limit,
            "warnings": [w.problem() for w in compiled.warnings],
        }
        print(_dumps(payload, ensure_ascii=False))
        return EXIT_NOTHING if compiled.matches_nothing else EXIT_OK  # as kql run: 1 is "none", in every format
    if compiled.matches_nothing:
        # Nothing on stdout and a distinct exit: `curl "$API?$(kql compile …)"` must not fetch everyone.
        print("note: these filters contradict each other; no customer matches, no request is needed", file=sys.stderr)
        return EXIT_NOTHING
    print(compiled.url(_base_url(args.base_url)) if args.url else compiled.query_string)
    return EXIT_OK


def _base_url(text: str) -> str:
    """``--base-url`` checked as kql run checks it (without httpx: compile sends nothing)."""
    from kql.execute.baseurl import check_base_url_text
    from kql.execute.errors import ConfigError

    try:
        return check_base_url_text(text)
    except ConfigError as error:
        print(f"kql compile: error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _explain(text: str, args: argparse.Namespace) -> int:
    if args.analyze:  # needs the API: also resolves tag, offer and product names
        from kql.cli.run import probe

        return probe(text, args)
    from kql.planning.planner import plan_query

    plan = plan_query(text, segments=_load_segments(args, text=text), max_requests=args.max_requests)
    _print_warnings(plan.warnings)
    print(_dumps(plan.to_dict(), ensure_ascii=False) if args.json else plan.explain())
    return EXIT_OK


def _check(text: str, args: argparse.Namespace) -> int:
    from kql.language.parser import parse
    from kql.planning.checked import expand
    from kql.planning.validate import validate

    as_json = args.json
    try:
        checked = validate(expand(parse(text), _load_segments(args, text=text), text), text)
    except KQLError as error:
        if not as_json:
            raise
        print(_dumps({"valid": False, "errors": [e.problem() for e in error.errors]}))
        return EXIT_USAGE
    if as_json:
        print(_dumps({"valid": True, "warnings": [w.problem() for w in checked.warnings]}))
    else:
        _print_warnings(checked.warnings)
        print("ok")
    return EXIT_OK


def _segments(args: argparse.Namespace) -> int:
    from kql.language.formatter import format_query
    from kql.planning.compiler import compile_query

    segments = _load_segments(args, required=True)
    assert segments is not None
    if args.action == "list":
        counts: dict[str, int] = {}
        if args.count:
            from kql.cli.count import segment_counts

            found = segment_counts(segments, args)
            if isinstance(found, int):
                return found  # the API failed: the exit code
            counts = found
        if args.json:
            rows = [
                {"name": s.name, "description": s.description, "query": s.query}
                | ({"count": counts[s.name]} if counts else {})
                for s in segments
            ]
            print(_dumps(rows, ensure_ascii=False))
            return EXIT_OK
        width = max((len(s.name) for s in segments), default=0) + 1
        digits = max((len(f"{n:,}") for n in counts.values()), default=0)
        for segment in segments:
            number = f"{counts[segment.name]:>{digits},} " if counts else ""
            print(f"@{segment.name:<{width}} {number}{segment.description or ''}".rstrip())
        return EXIT_OK
    if args.action == "check":
        problems = segments.check()
        if args.json:
            errors = [e.problem() for e in problems]
            print(_dumps({"ok": not problems, "segments": len(segments), "errors": errors}, ensure_ascii=False))
            return EXIT_USAGE if problems else EXIT_OK
        for problem in problems:
            print(problem.render() + "\n", file=sys.stderr)
        if problems:
            print(f"{len(problems)} problem(s) in {segments.path}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{len(segments)} segments ok")
        return EXIT_OK
    name = args.name.removeprefix("@")
    shown = segments.get(name)
    if shown is None:
        raise KQLError("E106", f"unknown segment '@{name}'", None, _closest_segment(name, segments))
    from kql.language.parser import parse

    expanded = segments.expand(parse("@" + name))
    from kql.planning.names import find_names

    names = find_names(expanded)
    request: str | None = None
    if names:
        listed = ", ".join(f'{ref.kind} "{ref.name}"' for ref in names)
        shown_request = f"resolved by kql run: names become ids first ({listed})"
    else:
        try:
            request = compile_query(expanded).query_string
            shown_request = request or "(no filters)"
        except KQLError as error:
            shown_request = f"needs more than one request ({error.code}: {error.message})"
    if args.json:
        row = {
            "name": shown.name,
            "description": shown.description,
            "query": shown.query.strip(),
            "defined": shown.where(),
            "expanded": format_query(expanded),
            "request": request,
            "names": [{"kind": ref.kind, "name": ref.name} for ref in names],
        }
        print(_dumps(row, ensure_ascii=False))
        return EXIT_OK
    print(f"@{shown.name}" + (f" — {shown.description}" if shown.description else ""))
    print(f"  defined:  {shown.query.strip()}  ({shown.where()})")
    print(f"  expanded: {format_query(expanded)}")
    print(f"  request:  {shown_request}")
    return EXIT_OK


def _closest_segment(name: str, segments: Segments) -> str | None:
    from kql.language.errors import did_you_mean

    return did_you_mean("@" + name, ["@" + s.name for s in segments])


def _decompile(text: str, as_json: bool = False) -> int:
    from kql.language.decompiler import decompile

    return _print_kql(decompile(text).text, as_json)


def _fmt(text: str, as_json: bool = False) -> int:
    from kql.language.formatter import format_query
    from kql.language.parser import parse

    return _print_kql(format_query(parse(text)), as_json)


def _print_kql(text: str, as_json: bool) -> int:
    if as_json:
        from kql.language.jsonform import to_json
        from kql.language.parser import parse

        print(_dumps({"kql": text, "json": to_json(parse(text))}, ensure_ascii=False))
    else:
        print(text)
    return EXIT_OK


def _filters(as_json: bool) -> int:
    from kql.registry import registry

    reg = registry()
    if as_json:
        import attrs

        print(_dumps([attrs.asdict(f) | {"example": f.example(reg.id_prefixes)} for f in reg], indent=2))
        return EXIT_OK
    rows = [(f.example(reg.id_prefixes), f.api_name, f.description) for f in reg]
    width = max(len(r[0]) for r in rows)
    pwidth = max(len(r[1]) for r in rows)
    for form, param, description in rows:
        print(f"{form:<{width}}  {param:<{pwidth}}  {description}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())

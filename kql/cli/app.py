"""The ``kql`` command: a thin shell over the library.

Exit codes: 0 ok, 2 invalid query or usage, 3 the API refused, 4 network or
server failure. Data goes to stdout, errors and warnings to stderr. Commands that
talk HTTP live in their own modules and are imported only when used, so
``kql compile`` never loads httpx.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kql.language.errors import KQLError

if TYPE_CHECKING:
    from kql.planning.segments import Segments

# Subcommands implemented elsewhere: name -> "module:function(argv) -> int".
_DELEGATED = {
    "run": "kql.cli.run:main",
    "sandbox": "kql.sandbox.cli:main",
    "lsp": "kql.cli.lsp:main",
}

EXIT_OK, EXIT_USAGE = 0, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kql",
        description="Query Kajabi customers with KQL.",
        epilog="Run 'kql COMMAND --help' for a command's options. Docs: docs/cli.md",
    )
    parser.add_argument("--version", action="version", version=f"kql {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    expr_help = "the KQL query ('-' or nothing reads it from stdin)"

    compile_ = commands.add_parser("compile", help="print the one API request a query makes")
    compile_.add_argument("expr", nargs="?", default="-", help=expr_help)
    shape = compile_.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help='print {"params": [[name, value], …], "query": "…"}')
    shape.add_argument("--url", action="store_true", help="print the full request URL")
    compile_.add_argument("--base-url", default="https://api.kajabi.com", help="API origin for --url")
    _segments_option(compile_)

    check = commands.add_parser("check", help="validate a query (exit 0 when valid)")
    check.add_argument("expr", nargs="?", default="-", help=expr_help)
    check.add_argument("--json", action="store_true", help="print the problems as JSON")
    _segments_option(check)

    segments = commands.add_parser("segments", help="list, show and check saved segments")
    _segments_option(segments)
    actions = segments.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="name and description of every segment")
    show = actions.add_parser("show", help="a segment expanded and compiled")
    show.add_argument("name", help="the segment's name (with or without @)")
    check_all = actions.add_parser("check", help="validate every segment; exit 2 with all problems (for CI and hooks)")
    for action in (listing, show, check_all):  # `kql segments list --segments F` works as well
        _segments_option(action, default=argparse.SUPPRESS)

    explain = commands.add_parser("explain", help="show the requests and local work any query needs")
    explain.add_argument("expr", nargs="?", default="-", help=expr_help)
    explain.add_argument("--json", action="store_true", help="the plan as JSON")
    from kql.cli.run import add_connection_arguments, positive_int

    explain.add_argument(
        "--max-requests", type=positive_int, metavar="N", help="fail when the plan needs more requests"
    )
    explain.add_argument(
        "--analyze", action="store_true", help="count each listing (one page[size]=1 probe each) and estimate the cost"
    )
    _segments_option(explain)
    add_connection_arguments(explain.add_argument_group("with --analyze, where to probe"))

    fmt = commands.add_parser("fmt", help="print a query in canonical form")
    fmt.add_argument("expr", nargs="?", default="-", help=expr_help)

    complete = commands.add_parser("complete", help="completions at a cursor in a query (for editors)")
    complete.add_argument("text", help="the query typed so far")
    complete.add_argument("--cursor", type=int, help="cursor offset (default: the end of TEXT)")
    complete.add_argument("--json", action="store_true", help="label, kind, insert, description, start, end")
    _segments_option(complete)

    completion = commands.add_parser("completion", help="print a shell completion script for kql")
    completion.add_argument("shell", choices=["bash", "zsh"], help="bash, or zsh (through bashcompinit)")

    decompile = commands.add_parser("decompile", help="turn a Kajabi customers URL back into KQL")
    decompile.add_argument("url", nargs="?", default="-", help="a URL or query string ('-' reads stdin)")

    filters = commands.add_parser("filters", help="list every filter kql knows")
    filters.add_argument("--json", action="store_true", help="machine-readable output")

    commands.add_parser("run", help="run a query against the API or the sandbox (kql run --help)", add_help=False)
    commands.add_parser("sandbox", help="serve the local sandbox API (kql sandbox --help)", add_help=False)
    commands.add_parser("lsp", help="language server for editors, over stdio (needs kql[lsp])", add_help=False)
    return parser


def _segments_option(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument(
        "--segments",
        metavar="PATH",
        default=default,
        help="segments file (default: $KQL_SEGMENTS, else ./kql.toml when it exists)",
    )


def _load_segments(args: argparse.Namespace, required: bool = False) -> Segments | None:
    from kql.planning.segments import find, load

    path = find(args.segments)
    if path is None:
        if required:
            raise KQLError(
                "E012",
                "no segments file",
                None,
                "pass --segments PATH, set KQL_SEGMENTS, or create kql.toml in this directory",
            )
        return None
    return load(path)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _version() -> str:
    from kql import __version__

    return __version__


def _read_expr(expr: str) -> str:
    if expr != "-":
        return expr
    if sys.stdin is None or sys.stdin.isatty():
        raise SystemExit("kql: give a query as an argument, or pipe one on stdin")
    return sys.stdin.read()


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DELEGATED:
        module, function = _DELEGATED[args_list[0]].split(":")
        if not _available(module):
            print(f"kql {args_list[0]}: not available in this version of kql", file=sys.stderr)
            return EXIT_USAGE
        handler = getattr(importlib.import_module(module), function)
        return int(handler(args_list[1:]))
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "filters":
            return _filters(args.json)
        if args.command == "segments":
            return _segments(args)
        if args.command == "complete":
            return _complete(args)
        if args.command == "completion":
            print(_completion_script(parser, args.shell))
            return EXIT_OK
        if args.command == "decompile":
            return _decompile(_read_expr(args.url).strip())
        text = _read_expr(args.expr)
        if args.command == "compile":
            return _compile(text, args)
        if args.command == "explain":
            return _explain(text, args)
        if args.command == "check":
            return _check(text, args)
        return _fmt(text)
    except KQLError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `kql filters | head`
        sys.stderr.close()
        return EXIT_OK


def _print_warnings(warnings: Sequence[KQLError]) -> None:
    for warning in warnings:
        print(warning.render(), file=sys.stderr)


def _compile(text: str, args: argparse.Namespace) -> int:
    from kql.planning.compiler import compile_query

    compiled = compile_query(text, segments=_load_segments(args))
    _print_warnings(compiled.warnings)
    if args.json:
        payload = {
            "params": [list(p) for p in compiled.params],
            "query": compiled.query_string,
            "matches_nothing": compiled.matches_nothing,
            "limit": compiled.limit,
            "warnings": [w.to_dict() for w in compiled.warnings],
        }
        print(json.dumps(payload, ensure_ascii=False))
        return EXIT_OK
    if compiled.matches_nothing:
        print("note: these filters contradict each other; no customer matches, no request is needed", file=sys.stderr)
        return EXIT_OK
    print(compiled.url(args.base_url) if args.url else compiled.query_string)
    return EXIT_OK


def _explain(text: str, args: argparse.Namespace) -> int:
    if args.analyze:  # needs the API: also resolves tag, offer and product names
        from kql.cli.run import probe

        return probe(text, args)
    from kql.planning.planner import plan_query

    plan = plan_query(text, segments=_load_segments(args), max_requests=args.max_requests)
    _print_warnings(plan.warnings)
    print(json.dumps(plan.to_dict(), ensure_ascii=False) if args.json else plan.explain())
    return EXIT_OK


def _check(text: str, args: argparse.Namespace) -> int:
    from kql.language.parser import parse
    from kql.planning.compiler import expand
    from kql.planning.validate import validate

    as_json = args.json
    try:
        checked = validate(expand(parse(text), _load_segments(args), text), text)
    except KQLError as error:
        if not as_json:
            raise
        print(json.dumps({"valid": False, "errors": [e.to_dict() for e in error.errors]}))
        return EXIT_USAGE
    if as_json:
        print(json.dumps({"valid": True, "warnings": [w.to_dict() for w in checked.warnings]}))
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
        width = max((len(s.name) for s in segments), default=0) + 1
        for segment in segments:
            print(f"@{segment.name:<{width}} {segment.description or ''}".rstrip())
        return EXIT_OK
    if args.action == "check":
        problems = segments.check()
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
    print(f"@{shown.name}" + (f" — {shown.description}" if shown.description else ""))
    print(f"  defined:  {shown.query.strip()}  ({shown.where()})")
    print(f"  expanded: {format_query(expanded)}")
    from kql.planning.names import find_names

    names = find_names(expanded)
    if names:
        listed = ", ".join(f'{ref.kind} "{ref.name}"' for ref in names)
        print(f"  request:  resolved by kql run: names become ids first ({listed})")
        return EXIT_OK
    try:
        compiled = compile_query(expanded)
    except KQLError as error:
        print(f"  request:  needs more than one request ({error.code}: {error.message})")
        return EXIT_OK
    print(f"  request:  {compiled.query_string or '(no filters)'}")
    return EXIT_OK


def _closest_segment(name: str, segments: Segments) -> str | None:
    from kql.language.errors import did_you_mean

    return did_you_mean("@" + name, ["@" + s.name for s in segments])


def _complete(args: argparse.Namespace) -> int:
    from kql.language.completion import complete

    completions = complete(args.text, args.cursor, segments=_load_segments(args))
    if args.json:
        print(json.dumps([c.to_dict() for c in completions], ensure_ascii=False))
    else:
        for completion in completions:
            print(completion.insert)
    return EXIT_OK


def _completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A bash completion function for kql's commands and options, read off the argument parser."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    values: dict[str, str] = {}  # option -> its choices, or "-f" for a file name
    for name, sub in commands.choices.items():
        if name in _DELEGATED:  # its options live in the module that runs it
            module = importlib.import_module(_DELEGATED[name].split(":")[0])
            sub = module._parser()
        for action in sub._actions:
            for option in action.option_strings:
                if action.choices:
                    values[option] = " ".join(str(c) for c in action.choices)
                elif action.metavar in ("FILE", "PATH", "DB") or action.dest in ("output", "db", "segments"):
                    values[option] = "-f"
        options = sorted(o for action in sub._actions for o in action.option_strings)
        words = " ".join(options)
        if name == "segments":
            words += " list show check"
        if name == "completion":
            words += " bash zsh"
        cases.append(f'        {name}) words="{words}" ;;')
    names = " ".join(commands.choices)
    lines = [
        '# kql shell completion: eval "$(kql completion bash)"',
        "_kql() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" words=""',
        '    if [ "$COMP_CWORD" -eq 1 ]; then',
        f'        COMPREPLY=($(compgen -W "{names} --help --version" -- "$cur")); return',
        "    fi",
        '    case "${COMP_WORDS[COMP_CWORD-1]}" in',
        *(
            f'        {option}) COMPREPLY=($(compgen -f -- "$cur")); return ;;'
            if choices == "-f"
            else f'        {option}) COMPREPLY=($(compgen -W "{choices}" -- "$cur")); return ;;'
            for option, choices in sorted(values.items())
        ),
        "    esac",
        '    case "${COMP_WORDS[1]}" in',
        *cases,
        "    esac",
        '    if [ "${COMP_WORDS[1]}" = segments ] && [ "${COMP_WORDS[COMP_CWORD-1]}" = show ]; then',
        "        words=\"$(kql segments list 2>/dev/null | cut -d' ' -f1)\"",
        "    fi",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -F _kql kql",
    ]
    if shell == "zsh":
        lines.insert(1, "autoload -U +X bashcompinit && bashcompinit")
    return "\n".join(lines)


def _decompile(text: str) -> int:
    from kql.language.decompiler import decompile

    print(decompile(text).text)
    return EXIT_OK


def _fmt(text: str) -> int:
    from kql.language.formatter import format_query
    from kql.language.parser import parse

    print(format_query(parse(text)))
    return EXIT_OK


def _filters(as_json: bool) -> int:
    from kql.registry import registry

    reg = registry()
    if as_json:
        import attrs

        print(json.dumps([attrs.asdict(f) | {"example": f.example(reg.id_prefixes)} for f in reg], indent=2))
        return EXIT_OK
    rows = [(f.example(reg.id_prefixes), f.api_name, f.description) for f in reg]
    width = max(len(r[0]) for r in rows)
    pwidth = max(len(r[1]) for r in rows)
    for form, param, description in rows:
        print(f"{form:<{width}}  {param:<{pwidth}}  {description}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())

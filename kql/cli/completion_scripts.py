"""Shell completion for the ``kql`` command: the scripts, and their query-completion helper.

``kql completion bash|zsh|fish`` prints a script. Subcommands, options and option
values are read off the argument parser when the script is made and written into it;
inside a query (the ``EXPR`` of compile, check, fmt, explain, run…) the script calls
``kql complete --shell SHELL …``, which asks the completion engine
(``kql.language.completion``) and answers in the form that shell wants.

Quoting: a query is one shell word. Completing an unquoted word opens a single quote
(bash and zsh: ``has_t`` becomes ``'has_tag(``; fish escapes instead: ``has_tag\\(``),
so that ``(``, spaces and ``"`` need no backslashes; inside an open quote the quote is
kept open — a query goes on after ``has_tag(`` — and closing it is the user's.

``kql complete`` must answer a TAB fast: this module imports nothing beyond the
completion engine, and ``kql complete`` does not build kql's whole argument parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

if TYPE_CHECKING:
    from kql.language.completion import Completion
    from kql.planning.segments import Segments

SHELLS = ("bash", "zsh", "fish")


def add_complete_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the query typed so far (with --shell: what the shell's script passes)")
    parser.add_argument("--cursor", type=int, help="cursor offset (default: the end of TEXT)")
    parser.add_argument("--json", action="store_true", help="label, kind, insert, description, start, end")
    parser.add_argument(
        "--segments", metavar="PATH", help="segments file (default: $KQL_SEGMENTS, else kql.toml here or above)"
    )
    # For the scripts of `kql completion`: TEXT is bash's ${COMP_LINE:0:COMP_POINT}, zsh's $PREFIX,
    # fish's current token; --word is bash's word being completed ($2), --quote zsh's open quote.
    parser.add_argument("--shell", choices=SHELLS, help=argparse.SUPPRESS)
    parser.add_argument("--word", default="", help=argparse.SUPPRESS)
    parser.add_argument("--quote", default="", help=argparse.SUPPRESS)


def main(argv: Sequence[str]) -> int:
    """``kql complete …`` on its own, without kql's whole parser (a TAB should answer at once)."""
    from kql.cli.helpformat import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="kql complete", description="Completions at a cursor in a query.", formatter_class=HelpFormatter
    )
    add_complete_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from kql.language.errors import KQLError

    try:
        segments = _LazySegments(args.segments)
        if args.shell is None:
            found = _complete(args.text, args.cursor, segments)
            if args.json:
                import json

                print(json.dumps([c.to_dict() for c in found], ensure_ascii=False))
            else:
                for completion in found:
                    print(completion.insert)
            return 0
        for line in answer(args.shell, args.text, segments, word=args.word, quote=args.quote):
            print(line)
        return 0
    except KQLError as error:
        if args.shell is not None:
            return 1  # a broken kql.toml must not spill errors into the shell's line
        print(error.render(), file=sys.stderr)
        return 2


def _complete(text: str, cursor: int | None, segments: Any) -> list[Completion]:
    from kql.language.completion import complete

    return complete(text, cursor, segments=cast("Segments", segments))


class _LazySegments:
    """Segments read only if the completion asks for them (after ``@``): most TABs never need the file."""

    def __init__(self, explicit: str | None) -> None:
        self._explicit = explicit
        self._loaded: Any = None

    def _segments(self) -> Any:
        if self._loaded is None:
            from kql.planning.segments_file import find, load

            path = find(self._explicit)
            self._loaded = load(path) if path is not None else ()
        return self._loaded

    def __iter__(self) -> Iterator[Any]:
        return iter(self._segments())

    def __len__(self) -> int:
        return len(self._segments())

    def __contains__(self, name: object) -> bool:
        return name in self._segments()

    def get(self, name: str) -> Any:
        return self._segments().get(name) if self._segments() else None


# ---- shell words ------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Word:
    """The last word of a shell command line: as typed, as the shell will pass it, and its open quote."""

    raw: str
    text: str
    quote: str  # "'" or '"' when the word ends inside that quote, else ""
    quote_at: int  # where the open quote starts in `raw` (-1 when none)
    before: str  # the text of the word before its open quote


def last_word(line: str) -> Word:
    """Split ``line`` as a POSIX shell does (quotes, backslashes) and return its last word."""
    raw_start, text, quote, quote_at, before = 0, "", "", -1, ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                text += ch
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch == "\\" and i + 1 < len(line) and line[i + 1] in '"\\$`':
                i += 1
                text += line[i]
            else:
                text += ch
        elif ch in " \t\n":
            raw_start, text = i + 1, ""
        elif ch in "'\"":
            quote, quote_at, before = ch, i - raw_start, text
        elif ch == "\\" and i + 1 < len(line):
            i += 1
            text += line[i]
        else:
            text += ch
        i += 1
    return Word(line[raw_start:], text, quote, quote_at if quote else -1, before if quote else "")


def _escape(text: str, quote: str) -> str:
    """``text`` written inside ``quote`` (single: ``'\\''`` for a quote; double: backslashes)."""
    if quote == "'":
        return text.replace("'", "'\\''")
    if quote == '"':
        return "".join("\\" + ch if ch in '"\\$`' else ch for ch in text)
    return "".join("\\" + ch if ch in " \t\n'\"\\()<>|&;$`*?[]#~{}!" else ch for ch in text)


def answer(shell: str, text: str, segments: Any, *, word: str = "", quote: str = "") -> list[str]:
    """What the ``shell``'s script expects back (see the module doc for what ``text`` is)."""
    if shell == "bash":
        return _bash(text, word, segments)
    if shell == "zsh":
        return _zsh(text, quote, segments)
    return _fish(text, segments)


def _bash(line: str, word: str, segments: Any) -> list[str]:
    """Replacements for readline's word (``$2``); an open quote stays open."""
    current = last_word(line)
    # readline's word ends the shell word; what comes before it stays on the line as typed.
    kept = current.raw[: len(current.raw) - len(word)] if current.raw.endswith(word) else None
    if kept is None:
        return []
    replies = []
    for completion in _complete(current.text, None, segments):
        new = current.text[: completion.start] + completion.insert
        if current.quote:
            if completion.start < len(current.before):
                continue
            typed = current.raw[: current.quote_at + 1] + _escape(new[len(current.before) :], current.quote)
        elif not kept:
            typed = "'" + _escape(new, "'")  # open a quote: the query goes on with ( and spaces
        else:
            typed = _escape(new, "")
        if typed.startswith(kept):
            replies.append(typed[len(kept) :])
    return _keep_open(replies, bool(current.quote))


def _keep_open(replies: list[str], quoted: bool) -> list[str]:
    """One reply inside a quote would make the shell close it: a twin with a space keeps it open."""
    if quoted and len(replies) == 1:
        return [replies[0], replies[0] + " "]
    return replies


def _zsh(prefix: str, quote: str, segments: Any) -> list[str]:
    """``keep:N`` (N characters stay, zsh quotes the inserts) or ``replace`` (the word becomes ours), then
    ``insert<TAB>label -- description`` lines."""
    text = prefix if quote else last_word(prefix).text
    found = _complete(text, None, segments)
    if not found:
        return []
    if quote:
        start = found[0].start  # every completion replaces the same word
        return [f"keep:{start}"] + [f"{c.insert}\t{_shown(c)}" for c in found]
    typed = ["'" + _escape(text[: c.start] + c.insert, "'") for c in found]
    return ["replace"] + [f"{t}\t{_shown(c)}" for t, c in zip(typed, found, strict=True)]


def _fish(token: str, segments: Any) -> list[str]:
    """Whole-token candidates with descriptions; fish escapes them for the token's quoting."""
    current = last_word(token)
    found = _complete(current.text, None, segments)
    replies = [current.text[: c.start] + c.insert for c in found]
    if len(replies) == 1:  # fish would add a space (and close the quote): the query goes on
        replies.append(replies[0] + " ")
        found = [found[0], found[0]]
    return [f"{r}\t{_one_line(c.description)}" for r, c in zip(replies, found, strict=True)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown(completion: Completion) -> str:
    description = _one_line(completion.description)
    return f"{completion.label} -- {description}" if description else completion.label


# ---- the scripts ------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Spec:
    """What the scripts know about kql's command line, read off the argument parsers."""

    commands: dict[str, tuple[str, ...]]  # subcommand -> its options
    words: dict[str, tuple[str, ...]]  # subcommand -> words it takes (actions, shells)
    values: dict[str, str | None]  # option -> its choices (space-separated), or None for a file name
    queries: tuple[str, ...]  # subcommands whose positional is a KQL query
    helps: dict[str, str]  # subcommand -> its one-line help


def spec(parser: argparse.ArgumentParser, delegated: dict[str, str]) -> Spec:
    import importlib

    commands: dict[str, tuple[str, ...]] = {}
    words: dict[str, tuple[str, ...]] = {}
    values: dict[str, str | None] = {}
    queries: list[str] = []
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in subparsers._choices_actions}
    for name, sub in subparsers.choices.items():
        if name in delegated:  # its options live in the module that runs it
            module = importlib.import_module(delegated[name].split(":")[0])
            # A module serving several commands (snapshot, diff, watch) has a parser per command.
            sub = module.parser_for(name) if hasattr(module, "parser_for") else module._parser()
        found: list[str] = []
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                words[name] = tuple(action.choices)
                continue
            if not action.option_strings:
                if action.dest == "expr":
                    queries.append(name)
                elif action.choices:
                    words[name] = tuple(str(c) for c in action.choices)
                continue
            if action.help == argparse.SUPPRESS:
                continue
            found.extend(action.option_strings)
            for option in action.option_strings:
                if action.choices:
                    values[option] = " ".join(str(c) for c in action.choices)
                elif action.metavar in ("FILE", "PATH", "DB") or action.dest in ("output", "db", "segments", "file"):
                    values[option] = None
        commands[name] = tuple(sorted(found))
    return Spec(commands, words, values, tuple(queries), helps)


def script(shell: str, parser: argparse.ArgumentParser, delegated: dict[str, str]) -> str:
    found = spec(parser, delegated)
    if shell == "bash":
        return _bash_script(found)
    if shell == "zsh":
        return _zsh_script(found)
    return _fish_script(found)


def _bash_script(spec: Spec) -> str:
    names = " ".join(spec.commands)
    value_cases = [
        f'        {option}) COMPREPLY=($(compgen -f -- "$cur")); return ;;'
        if choices is None
        else f'        {option}) COMPREPLY=($(compgen -W "{choices}" -- "$cur")); return ;;'
        for option, choices in sorted(spec.values.items())
    ]
    word_cases = [
        f'        {name}) words="{" ".join((*options, *spec.words.get(name, ())))}" ;;'
        for name, options in spec.commands.items()
    ]
    lines = [
        '# kql shell completion: eval "$(kql completion bash)" (in ~/.bashrc)',
        "_kql() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" words=""',
        '    if [ "$COMP_CWORD" -eq 1 ]; then',
        f'        COMPREPLY=($(compgen -W "{names} --help --version" -- "$cur")); return',
        "    fi",
        '    case "$prev" in',
        *value_cases,
        "    esac",
        '    if [[ "$cur" != -* ]]; then',
        '        case "${COMP_WORDS[1]}" in',
        f"            {'|'.join(spec.queries)})",
        "                compopt -o nospace 2>/dev/null  # a query goes on after has_tag(",
        "                # one candidate a line, as is: no word splitting, no globbing",
        "                mapfile -t COMPREPLY < <(command kql complete --shell bash \\",
        '                    --word "$2" -- "${COMP_LINE:0:COMP_POINT}" 2>/dev/null)',
        "                return ;;",
        "        esac",
        "    fi",
        '    case "${COMP_WORDS[1]}" in',
        *word_cases,
        "    esac",
        '    if [ "${COMP_WORDS[1]}" = segments ] && [ "$prev" = show ]; then',
        "        words=\"$(command kql segments list 2>/dev/null | cut -d' ' -f1)\"",
        "    fi",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -F _kql kql",
    ]
    return "\n".join(lines)


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_script(spec: Spec) -> str:
    commands = " ".join(_zsh_quote(f"{name}:{help_}") for name, help_ in spec.helps.items() if name in spec.commands)
    value_cases = [
        f"    {option}) _files; return ;;" if choices is None else f"    {option}) compadd -- {choices}; return ;;"
        for option, choices in sorted(spec.values.items())
    ]
    option_cases = [f"      {name}) compadd -- {' '.join(options)} ;;" for name, options in spec.commands.items()]
    word_cases = [f"    {name}) compadd -- {' '.join(words)} ;;" for name, words in spec.words.items()]
    lines = [
        '# kql shell completion: eval "$(kql completion zsh)" (in ~/.zshrc)',
        "(( $+functions[compdef] )) || { autoload -Uz compinit && compinit }",
        "_kql_query() {",
        "  local -a lines inserts displays",
        "  local line",
        '  lines=("${(@f)$(command kql complete --shell zsh --quote "${compstate[quote]}" -- "$PREFIX" 2>/dev/null)}")',
        "  (( ${#lines} > 1 )) || return 1",
        '  for line in "${(@)lines[2,-1]}"; do',
        "    inserts+=(\"${line%%$'\\t'*}\"); displays+=(\"${line#*$'\\t'}\")",
        "  done",
        "  if [[ $lines[1] == keep:* ]]; then",
        "    compset -p ${lines[1]#keep:}",
        '    compadd -S "" -l -d displays -- "${inserts[@]}"',
        "  else",
        '    compadd -U -Q -S "" -l -d displays -- "${inserts[@]}"',
        "  fi",
        "}",
        "_kql() {",
        "  local cur=${words[CURRENT]} prev=${words[CURRENT-1]} sub=${words[2]}",
        "  if (( CURRENT == 2 )); then",
        f"    local -a commands=({commands})",
        "    _describe command commands; compadd -- --help --version; return",
        "  fi",
        "  case $prev in",
        *value_cases,
        "  esac",
        "  if [[ $cur == -* ]]; then",
        "    case $sub in",
        *option_cases,
        "    esac",
        "    return",
        "  fi",
        "  case $sub in",
        f"    {'|'.join(spec.queries)}) _kql_query; return ;;",
        *word_cases,
        "  esac",
        "  if [[ $sub == segments && $prev == show ]]; then",
        "    compadd -- ${(f)\"$(command kql segments list 2>/dev/null | cut -d' ' -f1)\"}",
        "  fi",
        "}",
        "compdef _kql kql",
    ]
    return "\n".join(lines)


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_script(spec: Spec) -> str:
    value_options = " ".join(sorted(spec.values))
    lines = [
        "# kql shell completion: kql completion fish | source (or save it in ~/.config/fish/completions/kql.fish)",
        "function __kql_wants_query",
        "    set -l tokens (commandline -opc)",
        "    test (count $tokens) -ge 2; or return 1",
        f"    contains -- $tokens[2] {' '.join(spec.queries)}; or return 1",
        f"    contains -- $tokens[-1] {value_options}; and return 1",
        "    string match -q -- '-*' (commandline -ct); and return 1",
        "    return 0",
        "end",
        "function __kql_query",
        "    set -l token (commandline -ct)",
        '    command kql complete --shell fish -- "$token" 2>/dev/null',
        "end",
        "complete -c kql -f",
        *(
            f"complete -c kql -n '__fish_use_subcommand' -a {name} -d {_fish_quote(spec.helps.get(name, ''))}"
            for name in spec.commands
        ),
        f"complete -c kql -n '__fish_use_subcommand' -l help -d {_fish_quote('show help')}",
        f"complete -c kql -n '__fish_use_subcommand' -l version -d {_fish_quote('show the version')}",
        "complete -c kql -n '__kql_wants_query' -a '(__kql_query)'",
    ]
    for name, options in spec.commands.items():
        condition = f"'__fish_seen_subcommand_from {name}'"
        for option in options:
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            choices = spec.values.get(option, "") if option in spec.values else ""
            if option in spec.values and choices is None:
                lines.append(f"complete -c kql -n {condition} {flag} -r -F")
            elif choices:
                lines.append(f"complete -c kql -n {condition} {flag} -x -a {_fish_quote(choices)}")
            else:
                lines.append(f"complete -c kql -n {condition} {flag}")
        if spec.words.get(name):
            lines.append(f"complete -c kql -n {condition} -a {_fish_quote(' '.join(spec.words[name]))}")
    return "\n".join(lines)

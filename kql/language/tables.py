"""The parser's tables as plain data: what ``kql.language.lalr`` runs, kept in kql's cache.

Lark builds the LALR parser for grammar/kql.lark (``parser="lalr"``, ``maybe_placeholders``),
but only on a cache miss: the first run, or a new grammar, Lark or generator. ``generate`` then
reads off it everything the parse, its errors and completion need, as data (``lalr.Tables``):
the states and their actions; each rule's origin, expansion and callback, described as Lark's
parse-tree builder made it (the callback's name, whether ``?rule`` hands a single child on, and
which children the builder gets); the lexer's master pattern and keywords; the text of each
fixed-string terminal. ``kql._cache`` keeps it, stamped with the grammar's text, the Lark it came
from and this generator, so a warm start loads a few dicts and never imports Lark or executes
its runtime.

``lark_parser`` is that Lark parser itself; the tests run it as the reference the tables are
checked against (its loop and its interactive parser).
"""

from __future__ import annotations

import functools
import os
from typing import Any, cast

from kql.language.lalr import REDUCE, SHIFT, Keep, Rule, Tables
from kql.language.lexer import KQLLexer, master_pattern


def grammar_path() -> str:
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    shipped = os.path.join(package, "grammar", "kql.lark")  # inside an installed wheel
    return shipped if os.path.isfile(shipped) else os.path.join(os.path.dirname(package), "grammar", "kql.lark")


def grammar() -> str:
    with open(grammar_path(), encoding="utf-8") as file:
        return file.read()


@functools.cache
def tables() -> Tables:
    """The tables, from kql's cache when it holds them for this grammar, Lark and generator."""
    from kql import _cache

    text = grammar()
    sources = (text, _file_stamp(_lark_origin()), *(_file_stamp(path) for path in _generator_files()))
    found = _cache.load("parser", sources)
    if isinstance(found, dict):
        return cast(Tables, found)
    made = generate(text)
    _cache.store("parser", sources, made)
    return made


@functools.cache
def lexer() -> KQLLexer:
    """The lexer over the tables' master pattern: tokens for completion and syntax colouring."""
    data = tables()
    return KQLLexer(data["pattern"], data["keywords"])


def _lark_origin() -> str | None:
    """Lark's package ``__init__`` (found, not imported: a warm start does not import Lark)."""
    import importlib.util

    spec = importlib.util.find_spec("lark")
    return spec.origin if spec is not None else None


def _generator_files() -> tuple[str, ...]:
    """The code the tables are derived by: this module and the lexer's ``master_pattern``."""
    from kql.language import lexer

    return (os.path.abspath(__file__), os.path.abspath(lexer.__file__ or ""))


def _file_stamp(path: str | None) -> tuple[str, int, int] | None:
    """A file as Python stamps the source of a ``.pyc``: its path, size and modification time."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return path, info.st_size, info.st_mtime_ns


def lark_parser(text: str, transformer: Any = None) -> Any:
    """Lark's LALR parser for the grammar ``text`` (imports Lark); ``transformer`` as Lark takes it."""
    from lark import Lark

    return Lark(text, parser="lalr", lexer="basic", maybe_placeholders=True, transformer=transformer)


def generate(text: str) -> Tables:
    """The tables of Lark's parser for the grammar ``text`` (built with no transformer: each
    callback then names the builder method Lark would look for), as plain data only."""
    from lark.parsers.lalr_analysis import Shift

    parser = lark_parser(text)
    lalr = parser.parser.parser.parser  # ParsingFrontend → LALR_Parser → its _Parser
    table = lalr.parse_table
    callbacks = lalr.callbacks
    index = {rule: i for i, rule in enumerate(callbacks)}
    rules = [_rule(rule, callback) for rule, callback in callbacks.items()]
    (start,) = parser.parser.parser_conf.start
    number = _numbering(table.states, table.start_states[start], Shift)
    states = {
        number[state]: {
            str(symbol): (SHIFT, number[arg]) if action is Shift else (REDUCE, index[arg])
            for symbol, (action, arg) in sorted(actions.items())
        }
        for state, actions in sorted(table.states.items(), key=lambda item: number[item[0]])
    }
    terminals = parser.lexer_conf.terminals
    pattern, keywords = master_pattern(terminals, parser.lexer_conf.ignore)
    return {
        "states": states,
        "start": number[table.start_states[start]],
        "end": number[table.end_states[start]],
        "rules": rules,
        "pattern": pattern,
        "keywords": keywords,
        "literals": {str(t.name): str(t.pattern.value) for t in sorted(terminals, key=lambda t: t.name)
                     if t.pattern.type == "str"},
    }


def _numbering(states: dict[Any, dict[str, Any]], start: Any, shift: Any) -> dict[Any, int]:
    """The states numbered in the order a walk from ``start`` meets them (symbols in sorted order).
    Lark numbers them as its sets happen to iterate, which differs from one process to the next:
    this makes the tables of one grammar the same data wherever they are generated."""
    number: dict[Any, int] = {start: 0}
    queue = [start]
    for state in queue:
        for _symbol, (action, arg) in sorted(states[state].items()):
            if action is shift and arg not in number:
                number[arg] = len(number)
                queue.append(arg)
    for state in sorted(states, key=str):  # none is unreachable in an LALR table; kept whole anyway
        number.setdefault(state, len(number))
    return number


def _rule(rule: Any, callback: Any) -> Rule:
    """One rule and the callback Lark's ``ParseTreeBuilder`` made for it, as data: the callback is
    ``ChildFilter(ExpandSingleChild(partial(Tree, name)))``, each wrapper there or not."""
    from lark.parse_tree_builder import ChildFilterLALR, ChildFilterLALR_NoPlaceholders, ExpandSingleChild

    keep: Keep | None = None
    if isinstance(callback, ChildFilterLALR):
        keep = (tuple((i, bool(expand), nones) for i, expand, nones in callback.to_include), callback.append_none)
        callback = callback.node_builder
    elif isinstance(callback, ChildFilterLALR_NoPlaceholders):
        keep = (tuple((i, bool(expand), 0) for i, expand in callback.to_include), 0)
        callback = callback.node_builder
    expand1 = isinstance(callback, ExpandSingleChild)
    if expand1:
        callback = callback.node_builder
    if not (isinstance(callback, functools.partial) and len(callback.args) == 1 and not callback.keywords):
        raise RuntimeError(f"kql cannot read the callback Lark made for rule {rule}: {callback!r}")
    (name,) = callback.args
    # str(): Lark's names are its Token, a str subclass marshal cannot keep.
    return (str(rule.origin.name), tuple(str(symbol.name) for symbol in rule.expansion), str(name), expand1, keep)

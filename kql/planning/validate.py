"""AST → typed tree, checked against the registry. Collects every problem.

The typed tree says what each atom *means* (an API filter condition with its
values ready to send, or an attribute predicate to evaluate locally); whether
one request can express the whole thing is the compiler's (or planner's) call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeAlias, cast

import attrs

from kql.language import ast
from kql.language.errors import KQLError, did_you_mean, raise_all
from kql.language.formatter import format_value, quote
from kql.language.frozen import quick_init
from kql.language.parser import MAX_DEPTH
from kql.planning.plan import DEFAULT_PAGE_SIZE
from kql.registry import Attribute, Filter, Registry, registry
from kql.registry.operators import ATTRIBUTE_OPS, derivable_ops

# Operators the planner can derive from the API's own (unions, complements, bounds).
_DURATION_UNITS = {"d": 1, "w": 7}
_EXAMPLES = {"limit": "limit 100", "page number": "page 1 size 25", "page size": "page 1 size 25"}


# The typed tree: one node per AST node of every query. Not frozen, though nothing assigns to a node
# after it is made: a frozen attrs class sets each field through object.__setattr__, which makes it
# about twice as dear to build. Hashable by value, as the frozen classes were.
@attrs.define(slots=True, unsafe_hash=True)
class Cond:
    """An atom that names API filters: ``name``/``form``/``op`` select the registry entries."""

    name: str
    form: str
    op: str | None
    enum_value: str | None
    values: tuple[str, ...]
    node: ast.Expr


@attrs.define(slots=True, unsafe_hash=True)  # as Cond
class Local:
    """A predicate on a returned attribute, evaluated locally by the planner."""

    attribute: Attribute
    op: str
    value: ast.Value
    node: ast.Comparison


@attrs.define(slots=True, unsafe_hash=True)  # as Cond
class TNot:
    item: Typed
    node: ast.Not


@attrs.define(slots=True, unsafe_hash=True)  # as Cond
class TAnd:
    items: tuple[Typed, ...]
    node: ast.And


@attrs.define(slots=True, unsafe_hash=True)  # as Cond
class TOr:
    items: tuple[Typed, ...]
    node: ast.Or


Typed: TypeAlias = Cond | Local | TNot | TAnd | TOr


@quick_init
@attrs.frozen(slots=True)
class Validated:
    query: ast.Query
    filter: Typed | None
    sort: str | None
    fields: tuple[str, ...] | None
    limit: int | None
    page: tuple[int, int] | None  # (number, size): `page N` alone has size DEFAULT_PAGE_SIZE
    warnings: tuple[KQLError, ...]


def validate(
    query: ast.Query,
    source: str | None = None,
    reg: Registry | None = None,
    segments: Collection[str] | None = None,
    *,
    depth_checked: bool = False,
) -> Validated:
    """Check ``query`` against the registry; raise every problem found at once.

    ``@name`` references are accepted when ``name`` is in ``segments`` (used to
    check a segment on its own, before expansion). ``depth_checked``: the caller has
    already bounded the nesting (the parser does for text), so it is not walked again.
    """
    if not depth_checked:
        _check_depth(query, source)
    checker = _Checker(reg or registry(), segments)
    typed = checker.expr(query.filter) if query.filter is not None else None
    sort = checker.sort(query.sort)
    fields = checker.select(query.select)
    limit = checker.positive(query.limit.count, "limit") if query.limit else None
    page = None
    if query.page is not None:
        number = checker.positive(query.page.number, "page number")
        # `page N` is `page N size 25`: one meaning, whatever the server's own default is.
        size = checker.positive(query.page.size, "page size") if query.page.size else DEFAULT_PAGE_SIZE
        page = (number, size)
    raise_all(checker.errors, source)
    warnings = tuple(w.with_source(source) if source is not None else w for w in checker.warnings)
    return Validated(query, typed, sort, fields, limit, page, warnings)


@attrs.frozen(slots=True)
class _Tables:
    """What the checker asks of the registry for every atom, read off it once per registry."""

    # (name, op) -> the comparison filters of exactly that operator (`net_revenue >`), for names
    # without an enum form.
    comparisons: dict[tuple[str, str | None], tuple[Filter, ...]]
    # Predicates that take several arguments (`has_all_tags(…)`, `sent(…)` and its negation).
    many: frozenset[str]
    # Names with a deprecated form: only these need looking at for warnings.
    deprecated: frozenset[str]
    # The registry's typed-id prefix -> id kind (read from here: the registry's own is a cached property).
    kinds_by_prefix: dict[str, str]


def _tables(reg: Registry) -> _Tables:
    comparisons: dict[tuple[str, str | None], list[Filter]] = {}
    for f in reg.filters:
        # (A name with an enum form is read as the enum, whatever else it has: see comparison().)
        if f.form == "comparison" and (f.name, "enum") not in reg.by_name_form:
            comparisons.setdefault((f.name, f.op), []).append(f)
    return _Tables(
        {key: tuple(entries) for key, entries in comparisons.items()},
        frozenset(f.name for f in reg.filters if f.form == "predicate" and (f.arity == "many" or f.name == "sent")),
        frozenset(f.name for f in reg.filters if f.deprecated),
        reg.kinds_by_prefix,
    )


class _Checker:
    def __init__(self, reg: Registry, segments: Collection[str] | None = None) -> None:
        self.reg = reg
        self.tables = reg.derived(_tables)
        self.segments = segments
        self.errors: list[KQLError] = []
        self.warnings: list[KQLError] = []

    def fail(self, code: str, message: str, node: object, hint: str | None = None) -> None:
        self.errors.append(KQLError(code, message, getattr(node, "span", None), hint))

    # ---- expressions ------------------------------------------------------------------

    def expr(self, node: ast.Expr) -> Typed:
        # Depth is bounded by the parser's MAX_DEPTH, so recursion here is safe. One look-up by the
        # node's class, not a chain of isinstance() (the AST's classes have no subclasses).
        check = _EXPR.get(type(node))
        if check is not None:
            return check(self, node)
        return self.segment(cast(ast.SegmentRef, node))  # the one kind left

    def all_of(self, node: ast.And) -> TAnd:
        return TAnd(tuple([self.expr(i) for i in node.items]), node)

    def any_of(self, node: ast.Or) -> TOr:
        return TOr(tuple([self.expr(i) for i in node.items]), node)

    def negation(self, node: ast.Not) -> TNot:
        return TNot(self.expr(node.item), node)

    def bare_text(self, node: ast.Text) -> Cond:
        return self.text(node.value, node)

    def segment(self, node: ast.SegmentRef) -> Cond:
        if self.segments is None:
            # The library's advice first (Python callers pass segments themselves); then the command's.
            hint = (
                "no segments were given: pass segments=kql.load_segments('kql.toml') "
                "(the kql command reads --segments FILE, $KQL_SEGMENTS or ./kql.toml)"
            )
        elif node.name in self.segments:
            return Cond("@" + node.name, "segment", None, None, (), node)
        else:
            hint = did_you_mean("@" + node.name, ["@" + n for n in self.segments]) or "no such segment in the file"
        self.fail("E106", f"unknown segment '@{node.name}'", node, hint)
        return Cond("@" + node.name, "segment", None, None, (), node)

    def text(self, value: ast.Str, node: ast.Expr) -> Cond:
        if not value.value.strip():
            self.fail("E206", "empty search text", value, 'search for something, e.g. "smith", or remove it')
        return Cond("search", "text", None, None, (value.value,), node)

    def entries(self, name: str, form: str) -> tuple[Filter, ...]:
        return self.reg.by_name_form.get((name, form), ())

    def deprecated(self, entries: Iterable[Filter], node: ast.Expr) -> None:
        for entry in entries:
            if entry.deprecated:
                self.warnings.append(
                    KQLError(
                        "W001",
                        f"'{entry.name}' is deprecated: {entry.description}",
                        node.span,
                        "the API may ignore or reject it",
                    )
                )
                return

    def flag(self, node: ast.Flag) -> Cond:
        name = node.name.text
        flags = self.entries(name, "flag")
        if flags:
            if name in self.tables.deprecated:
                self.deprecated(flags, node)
            return Cond(name, "flag", None, None, ("true",), node)
        self.misused_name(name, node, node.name, "flag")
        return Cond(name, "flag", None, None, (), node)

    def misused_name(self, name: str, node: ast.Expr, at: ast.Name, used_as: str) -> None:
        """Explain why ``name`` does not work the way it was written."""
        forms = {f.form for f in self.reg.by_name.get(name, ())}
        example = next((f.example(self.reg.id_prefixes) for f in self.reg.by_name.get(name, ())), None)
        if "predicate" in forms and used_as == "flag":
            self.fail("E201", f"'{name}' takes an argument", node, f"write it as {example}")
        elif forms & {"flag"} and used_as == "call":
            self.fail("E201", f"'{name}' is a flag and takes no arguments", node, f"write it as {name}")
        elif forms & {"comparison", "enum"} or name in self.reg.attributes:
            self.fail(
                "E207",
                f"'{name}' needs a comparison",
                node,
                f"for example {example}" if example else f"for example {name} = …",
            )
        elif name == "search" and used_as == "flag":
            self.fail("E201", "'search' takes a string", node, 'write search("smith") or just "smith"')
        else:
            known = {f.name for f in self.reg.filters if f.form in ("flag", "predicate")} | {"search"}
            hint = did_you_mean(name, sorted(known)) or "run 'kql filters' to see every filter"
            self.fail("E102", f"unknown filter '{name}'", at, hint)

    def call(self, node: ast.Call) -> Cond:
        name = node.name.text
        if name == "search":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Str):
                self.fail("E201", "search() takes one string", node, 'write search("smith")')
                return Cond(name, "text", None, None, (), node)
            return self.text(node.args[0], node)
        entries = self.reg.by_name_form.get((name, "predicate"))
        if not entries:
            self.misused_name(name, node, node.name, "call")
            return Cond(name, "predicate", None, None, (), node)
        if name in self.tables.deprecated:
            self.deprecated(entries, node)
        args = node.args
        if len(args) == 1:  # the usual call: one argument, which every predicate takes
            return Cond(name, "predicate", None, None, (self.value(entries[0], args[0]),), node)
        many = name in self.tables.many
        if not args or (len(args) > 1 and not many):
            wanted = "one or more arguments" if many else "exactly one argument"
            self.fail(
                "E201",
                f"'{name}' takes {wanted}, not {len(node.args)}",
                node,
                f"write it as {entries[0].example(self.reg.id_prefixes).removeprefix('not ')}",
            )
        entry = entries[0]
        values = (self.value(entry, args[0]),) if len(args) == 1 else tuple([self.value(entry, a) for a in args])
        return Cond(name, "predicate", None, None, values, node)

    def comparison(self, node: ast.Comparison) -> Cond | Local:
        name, op = node.field.text, node.op
        exact = self.tables.comparisons.get((name, op))
        if exact:
            if name in self.tables.deprecated:
                self.deprecated(exact, node)
            return Cond(name, "comparison", op, None, (self.value(exact[0], node.value),), node)
        comparisons = self.entries(name, "comparison")
        enums = self.entries(name, "enum")
        if enums:
            return self.enum(node, enums)
        predicates = self.entries(name, "predicate")
        derivable = derivable_ops(comparisons)
        if op in derivable or (predicates and op == "in"):
            entry = (comparisons or predicates)[0]
            if (op == "in") != isinstance(node.value, ast.ValueList):
                self.fail("E206", f"'{op}' takes {'a list' if op == 'in' else 'one value'}", node.value)
                return Cond(name, entry.form, op, None, (), node)
            return Cond(name, entry.form, op, None, self.values(entry, node.value), node)
        attribute = self.reg.attributes.get(name)
        if attribute is not None:
            return self.local(attribute, node)
        if comparisons:
            ops = ", ".join(sorted({e.op or "" for e in comparisons} | derivable))
            self.fail("E207", f"'{name}' does not support '{op}'", node, f"use one of: {ops}")
        elif predicates:
            self.fail(
                "E207",
                f"'{name}' is a predicate",
                node,
                f"write it as {predicates[0].example(self.reg.id_prefixes).removeprefix('not ')}",
            )
        else:
            known = sorted(
                {f.name for f in self.reg.filters if f.form in ("comparison", "enum")} | set(self.reg.attributes)
            )
            hint = did_you_mean(name, known) or "run 'kql filters' to see every filter"
            self.fail("E101", f"unknown field '{name}'", node.field, hint)
        return Cond(name, "comparison", op, None, (), node)

    def enum(self, node: ast.Comparison, enums: tuple[Filter, ...]) -> Cond:
        name = node.field.text
        choices = [e.enum_value or "" for e in enums]
        if node.op not in ("=", "!=", "in"):
            self.fail("E207", f"'{name}' does not support '{node.op}'", node, f"write {name} = {choices[0]}")
            return Cond(name, "enum", node.op, None, (), node)
        items = node.value.items if isinstance(node.value, ast.ValueList) else (node.value,)
        if (node.op == "in") != isinstance(node.value, ast.ValueList):
            self.fail("E206", f"'{name} {node.op}' needs a single value", node.value)
        picked = []
        for item in items:
            word = item.name if isinstance(item, ast.Ident) else None
            if word in choices:
                picked.append(word)
                continue
            hint = did_you_mean(word, choices) if word else None
            self.fail(
                "E105",
                f"unknown {name} value {_shown(item)}",
                item,
                hint or "expected one of: " + ", ".join(choices),
            )
        if node.op == "=" and len(picked) == 1:
            # One enum value selects its own flag-like parameter, which sends `true`.
            return Cond(name, "enum", None, picked[0], ("true",), node)
        return Cond(name, "enum", node.op, None, tuple(picked), node)

    def local(self, attribute: Attribute, node: ast.Comparison) -> Local:
        allowed = ATTRIBUTE_OPS[attribute.type]
        if node.op not in allowed:
            self.fail(
                "E207",
                f"'{attribute.name}' ({attribute.type}) does not support '{node.op}'",
                node,
                "use one of: " + ", ".join(sorted(allowed)),
            )
            return Local(attribute, node.op, node.value, node)
        if node.op in ("is", "is_not"):
            return Local(attribute, node.op, node.value, node)
        items = node.value.items if isinstance(node.value, ast.ValueList) else (node.value,)
        for item in items:
            self.attribute_value(attribute, item)
        return Local(attribute, node.op, node.value, node)

    def attribute_value(self, attribute: Attribute, value: ast.Value) -> None:
        kind = attribute.type
        if kind == "string" and isinstance(value, ast.Str):
            return
        if kind == "integer" and isinstance(value, ast.Int):
            return
        if kind == "money" and isinstance(value, ast.Int | ast.Decimal):
            self.money(value)
            return
        if kind == "datetime" and isinstance(value, ast.Date):
            self.date(value)
            return
        example = {"string": '"text"', "integer": "5", "money": "99.50", "datetime": "2024-01-31", "object": "null"}
        hint = f"for example {attribute.name} = {example[kind]}"
        if kind == "datetime" and isinstance(value, ast.Duration | ast.Int):
            hint = "write an absolute date such as 2024-01-31; for a relative window use a *_in_last(30d) filter"
        self.fail("E206", f"'{attribute.name}' compares with a {kind}, not {_shown(value)}", value, hint)

    # ---- values -----------------------------------------------------------------------

    def values(self, entry: Filter, value: ast.Value) -> tuple[str, ...]:
        items = value.items if isinstance(value, ast.ValueList) else (value,)
        return tuple(self.value(entry, item) for item in items)

    def value(self, entry: Filter, value: ast.Value) -> str:
        kind = entry.value
        if kind == "id":
            return self.id(entry, value)
        if kind == "days":
            return self.days(value)
        if kind == "money":
            if isinstance(value, ast.Int | ast.Decimal):
                return self.money(value)
            self.fail(
                "E206", f"'{entry.name}' compares with an amount, not {_shown(value)}", value, "e.g. 100 or 99.50"
            )
            return ""
        if isinstance(value, ast.Str):
            if not value.value.strip():
                self.fail("E206", "empty text", value, f"give some text, e.g. {entry.example(self.reg.id_prefixes)}")
            return value.value
        if isinstance(value, ast.Ident | ast.TypedId | ast.Int | ast.Decimal):
            self.fail(
                "E206", f"expected a quoted string, not {_shown(value)}", value, f"write {quote(format_value(value))}"
            )
            return ""
        self.fail(
            "E206",
            f"expected a quoted string, not {_shown(value)}",
            value,
            f"e.g. {entry.example(self.reg.id_prefixes)}",
        )
        return ""

    def id(self, entry: Filter, value: ast.Value) -> str:
        kind = entry.id_kind or ""
        if isinstance(value, ast.TypedId):
            actual = self.tables.kinds_by_prefix.get(value.prefix)
            if actual is None:
                hint = did_you_mean(value.prefix, self.reg.kinds_by_prefix)
                self.fail(
                    "E107",
                    f"unknown id kind '{value.prefix}_'",
                    value,
                    hint or f"'{entry.name}' takes {_a(kind)} id such as {self.prefix(kind)}_{value.number}",
                )
                return ""
            if actual != kind:
                self.fail(
                    "E202",
                    f"'{entry.name}' takes {_a(kind)} id, not {_a(actual)} id",
                    value,
                    f"expected {self.prefix(kind)}_{value.number} or a bare number",
                )
                return ""
            number = value.number
        elif isinstance(value, ast.Int):
            number = value.value
        else:
            from kql.planning.names import CATALOGUES  # here only: names is not needed before an error

            named = isinstance(value, ast.Str) and kind in CATALOGUES
            hint = f"e.g. {self.prefix(kind)}_5"
            if named:
                hint += f"; {_a(kind)} name is resolved to its id by kql run (and kql explain --analyze)"
            self.fail("E206", f"'{entry.name}' takes {_a(kind)} id, not {_shown(value)}", value, hint)
            return ""
        if number <= 0:
            self.fail("E205", f"ids are positive; got {number}", value, f"e.g. {self.prefix(kind)}_5")
            return ""
        return str(number)

    def prefix(self, kind: str) -> str:
        """The typed-id prefix of an id kind (``bc`` for broadcasts), for messages."""
        return self.reg.id_prefixes.get(kind, kind)

    def days(self, value: ast.Value) -> str:
        if isinstance(value, ast.Int):
            amount = value.value
        elif isinstance(value, ast.Duration):
            factor = _DURATION_UNITS.get(value.unit)
            if factor is None:
                if value.unit.lower() in ("m", "mo", "month", "months", "y", "yr", "year", "years"):
                    hint = f"'{value.unit}' is ambiguous (months and years vary in length): write days, e.g. 90d"
                elif value.unit.lower() in ("d", "w"):
                    hint = f"write the unit in lower case: {value.amount}{value.unit.lower()}"
                else:
                    hint = "durations are days (30d, or a bare 30) or weeks (2w)"
                self.fail("E203", f"invalid duration unit '{value.unit}'", value, hint)
                return ""
            amount = value.amount * factor
        else:
            self.fail("E206", f"expected a number of days, not {_shown(value)}", value, "e.g. 30d or 2w")
            return ""
        if amount <= 0:
            self.fail("E208", f"a duration must be at least one day; got {amount}", value, "e.g. 30d")
            return ""
        return str(amount)

    def money(self, value: ast.Int | ast.Decimal) -> str:
        if isinstance(value, ast.Int):
            return str(value.value)
        decimals = value.text.split(".")[1]
        if len(decimals) > 2:
            self.fail(
                "E204", f"'{value.text}' has {len(decimals)} decimals; money has 2 at most", value, _cents(value.text)
            )
            return ""
        return value.text

    def date(self, value: ast.Date) -> None:
        from datetime import datetime  # only for a query with a date: datetime costs start-up time

        try:
            datetime.fromisoformat(value.text)
        except ValueError:
            self.fail("E209", f"'{value.text}' is not a valid date", value, "e.g. 2024-01-31 or 2024-01-31T10:00:00Z")

    # ---- clauses ----------------------------------------------------------------------

    def sort(self, sort: ast.Sort | None) -> str | None:
        if sort is None:
            return None
        key = sort.field.text
        if key not in self.reg.sort_keys:
            hint = did_you_mean(key, self.reg.sort_keys) or "sortable: " + ", ".join(self.reg.sort_keys)
            what = "cannot sort by" if key in self.reg.attributes else "unknown sort key"
            self.fail("E103", f"{what} '{key}'", sort.field, hint)
        return sort.param

    def select(self, select: ast.Select | None) -> tuple[str, ...] | None:
        if select is None:
            return None
        fields: list[str] = []
        for name in select.fields:
            if name.text not in self.reg.attributes:
                hint = did_you_mean(name.text, self.reg.select_fields)
                self.fail("E104", f"unknown field '{name.text}' in select", name, hint)
            elif name.text not in fields:
                fields.append(name.text)
        return tuple(fields)

    def positive(self, number: ast.Int, what: str) -> int:
        if number.value <= 0:
            self.fail("E208", f"{what} must be at least 1; got {number.value}", number, f"e.g. {_EXAMPLES[what]}")
        return number.value


# The checker of each kind of expression but a segment reference (see _Checker.expr).
_EXPR: dict[type, Callable[[_Checker, Any], Typed]] = {
    ast.And: _Checker.all_of,
    ast.Call: _Checker.call,
    ast.Comparison: _Checker.comparison,
    ast.Not: _Checker.negation,
    ast.Flag: _Checker.flag,
    ast.Text: _Checker.bare_text,
    ast.Or: _Checker.any_of,
}


def _check_depth(query: ast.Query, source: str | None) -> None:
    """The parser bounds nesting; a Query built in code must obey the same bound (the checker recurses)."""
    if query.filter is not None and ast.depth(query.filter) > MAX_DEPTH:
        error = KQLError("E007", f"expression is nested more than {MAX_DEPTH} levels deep", query.filter.span, None)
        raise error.with_source(source) if source is not None else error


def _shown(value: ast.Value) -> str:
    text = format_value(value)
    return repr(text) if len(text) <= 30 else repr(text[:27] + "...")


def _cents(text: str) -> str:
    whole, frac = text.split(".")
    return f"round it to cents, e.g. {whole}.{frac[:2]}"


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an offer", "a tag"."""
    return ("an " if word[:1] in "aeiou" else "a ") + word

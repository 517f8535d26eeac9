"""AST → canonical KQL text, such that ``parse(format(q)) == q``.

Canonical means: lower-case keywords, one space around binary operators,
parentheses only where precedence needs them, double-quoted strings, clauses in
the order sort, select, limit, page.
"""

from __future__ import annotations

from kql.language import ast

_OPERATORS = {"is": "is", "is_not": "is not"}
# Binding strength: a child weaker than its parent needs parentheses.
_STRENGTH = {ast.Or: 1, ast.And: 2, ast.Not: 3}


def format_query(query: ast.Query) -> str:
    parts: list[str] = []
    if query.filter is not None:
        parts.append(format_expr(query.filter))
    if query.sort is not None:
        parts.append(f"sort {query.sort.param}")
    if query.select is not None:
        parts.append("select " + ", ".join(f.text for f in query.select.fields))
    if query.limit is not None:
        parts.append(f"limit {query.limit.count.value}")
    if query.page is not None:
        page = f"page {query.page.number.value}"
        if query.page.size is not None:
            page += f" size {query.page.size.value}"
        parts.append(page)
    return " ".join(parts)


def format_expr(expr: ast.Expr) -> str:
    # Depth is bounded by the parser's MAX_DEPTH, so recursion here is safe.
    if isinstance(expr, ast.Or | ast.And):
        joiner = " or " if isinstance(expr, ast.Or) else " and "
        return joiner.join(_child(expr, item) for item in expr.items)
    if isinstance(expr, ast.Not):
        return "not " + _child(expr, expr.item)
    if isinstance(expr, ast.Comparison):
        op = _OPERATORS.get(expr.op, expr.op)
        return f"{expr.field.text} {op} {format_value(expr.value)}"
    if isinstance(expr, ast.Call):
        return f"{expr.name.text}({', '.join(format_value(a) for a in expr.args)})"
    if isinstance(expr, ast.Flag):
        return expr.name.text
    if isinstance(expr, ast.Text):
        return quote(expr.value.value)
    if isinstance(expr, ast.SegmentRef):
        return f"@{expr.name}"
    raise TypeError(f"not a KQL expression: {expr!r}")


def _child(parent: ast.Expr, child: ast.Expr) -> str:
    text = format_expr(child)
    strength = _STRENGTH.get(type(child))
    # Equal strength needs parentheses too: `a and (b and c)` is its own tree. The
    # exception is `not not x`: a prefix operator cannot mis-bind.
    weaker = strength is not None and strength <= _STRENGTH[type(parent)]
    if weaker and not (isinstance(child, ast.Not) and isinstance(parent, ast.Not)):
        return f"({text})"
    return text


def format_value(value: ast.Value) -> str:
    if isinstance(value, ast.Int):
        return str(value.value)
    if isinstance(value, ast.Decimal | ast.Date):
        return value.text
    if isinstance(value, ast.Duration):
        return f"{value.amount}{value.unit}"
    if isinstance(value, ast.Str):
        return quote(value.value)
    if isinstance(value, ast.TypedId):
        return f"{value.prefix}_{value.number}"
    if isinstance(value, ast.Ident):
        return value.name
    if isinstance(value, ast.Null):
        return "null"
    if isinstance(value, ast.ValueList):
        return "(" + ", ".join(format_value(v) for v in value.items) + ")"
    raise TypeError(f"not a KQL value: {value!r}")


def quote(text: str) -> str:
    """A double-quoted KQL string literal for ``text``."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch == "\x7f" or "\u2028" <= ch <= "\u2029" or ch == "\x85":
            # Control characters would be invisible or break lines: escape them.
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)

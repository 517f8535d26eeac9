"""The generated parts of docs/sandbox.md: the per-filter rule table and the vocabularies.

`python -m kql.sandbox.docs` rewrites the marked sections of docs/sandbox.md;
`--check` exits 1 when they are stale (the tests run the same comparison).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from kql.registry import registry
from kql.sandbox import vocab
from kql.sandbox.rules import RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"
_SECTION = re.compile(r"(<!-- generated:(\w+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.S)


def sample_value(param: str) -> str:
    """A value for the parameter that selects some customers of a generated database."""
    f = registry().by_param[param]
    rule = RULES[param]
    if rule.example is not None:
        return rule.example
    return {"id": "1", "days": "90", "money": "100", "flag": "true"}.get(f.value, "a")


def rules_table() -> str:
    reg = registry()
    lines = ["| parameter | KQL | value | rule (customers `c` where …) |", "|---|---|---|---|"]
    for f in reg:
        value = sample_value(f.param)
        if f.arity == "many":
            value = f"{value},2"
        kql = f.example(reg.id_prefixes)
        if f.value == "string":
            kql = kql.replace('"smith"', f'"{value}"').replace('"SPRING24"', f'"{value}"')
        status = " (deprecated)" if f.deprecated else ""
        lines.append(f"| `filter[{f.param}]`{status} | `{kql}` | `{value}` | {RULES[f.param].doc} |")
    return "\n".join(lines) + "\n"


def vocabulary_table() -> str:
    lines = ["| kind | ids | share of a site's customers holding id k |", "|---|---|---|"]
    split_words = {"product": "active (rest previously owned)", "assessment": "passed (rest failed)",
                   "newsletter": "still subscribed (rest unsubscribed)"}
    for kind, count in vocab.COUNTS.items():
        if kind == "broadcast":
            lo, hi = vocab.BROADCAST_REACH
            share = f"sent to {lo:.0%}–{hi:.0%} of the customers with email data"
        else:
            base, power = vocab.POPULARITY[kind]
            share = f"max({vocab.MIN_SHARE:.1%}, {base:.0%} / k^{power})"
            if kind in vocab.SPLITS:
                share += f"; {vocab.SPLITS[kind]:.0%} of them {split_words[kind]}"
        lines.append(f"| {kind} | 1..{count} | {share} |")
    lines += ["", "| coupon code | share of customers |", "|---|---|"]
    lines += [f"| `{code}` | {used:.1%} |" for code, used in vocab.COUPONS]
    lines += ["", "| engagement | share | last email opened |", "|---|---|---|"]
    for name, mix in vocab.ENGAGEMENT:
        days = vocab.LAST_OPEN_DAYS.get(name or "")
        opened = f"{days[0]}–{days[1]} days ago" if days else "never"
        lines.append(f"| {name or '(none: never emailed)'} | {mix:.0%} | {opened} |")
    return "\n".join(lines) + "\n"


SECTIONS = {"rules": rules_table, "vocabulary": vocabulary_table}


def render(text: str) -> str:
    return _SECTION.sub(lambda m: m.group(1) + SECTIONS[m.group(2)]() + m.group(4), text)


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    fresh = render(text)
    if "--check" in argv:
        if fresh != text:
            print(f"{DOC} is stale: run python -m kql.sandbox.docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Generate docs/filters.md from the registry: ``python -m kql.registry.docgen [--check]``.

``--check`` exits 1 when the committed file differs from what the registry
says, so CI fails on a stale reference.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kql.registry import Filter, Registry, registry

TARGET = Path("docs") / "filters.md"

_FORMS = {
    "comparison": "comparison",
    "predicate": "predicate",
    "flag": "flag",
    "enum": "enum",
    "text": "text search",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _value(entry: Filter, reg: Registry) -> str:
    if entry.value == "id":
        prefix = reg.id_prefixes[entry.id_kind or ""]
        return f"{entry.id_kind} id (`{prefix}_N` or N)"
    return {"days": "days (`30d`, `2w`, `30`)", "money": "amount (2 decimals)", "string": "string", "flag": "—"}[
        entry.value
    ]


def render(reg: Registry) -> str:
    lines = [
        "# Filter reference",
        "",
        "<!-- Generated from kql/registry/registry.toml by `python -m kql.registry.docgen`. Do not edit by hand. -->",
        "",
        f"kql knows {len(reg)} filters: every `filter[…]` parameter of `GET /v1/customers` in the",
        "reference OpenAPI, plus `is_suppressed` from the first version of the reference.",
        "Each row is a canonical KQL form and the one parameter it sends. Forms starting with",
        "`not` send the API's exact complement of the positive form.",
        "",
        "| KQL | sends | form | value | complement | description |",
        "|---|---|---|---|---|---|",
    ]
    for entry in reg:
        complement = f"`filter[{entry.negation}]`" if entry.negation else "—"
        description = entry.description
        if entry.deprecated:
            description = f"**Deprecated.** {description}"
        if entry.arity == "many":
            description += f" Several ids are sent {_multi(entry)}."
        lines.append(
            f"| `{_cell(entry.example(reg.id_prefixes))}` | `{entry.api_name}` | {_FORMS[entry.form]} "
            f"| {_value(entry, reg)} | {complement} | {_cell(description)} |"
        )
    lines += [
        "",
        "## Sorting and fields",
        "",
        "`sort` takes " + ", ".join(f"`{k}`" for k in reg.sort_keys) + " (prefix `-` for descending).",
        "",
        "`select` and local comparisons take these customer attributes:",
        "",
        "| attribute | type | sortable |",
        "|---|---|---|",
    ]
    for attribute in reg.attributes.values():
        lines.append(f"| `{attribute.name}` | {attribute.type} | {'yes' if attribute.sortable else 'no'} |")
    lines += ["", "## Typed ids", "", "| prefix | kind |", "|---|---|"]
    for kind, prefix in reg.id_prefixes.items():
        lines.append(f"| `{prefix}_` | {kind} |")
    return "\n".join(lines) + "\n"


def _multi(entry: Filter) -> str:
    return {
        "comma": "comma-joined in one value (`5,6`)",
        "repeat": "as a repeated parameter",
        "brackets": f"as repeated `{entry.api_name}[]`",
    }[entry.multi]


def main(argv: list[str]) -> int:
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else Path.cwd()
    target = root / TARGET
    text = render(registry())
    if "--check" in argv:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale: run 'python -m kql.registry.docgen' and commit the result", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

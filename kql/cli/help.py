"""``kql help [TOPIC]``: the guides of ``docs/`` from the terminal, for people who installed a wheel.

The wheel ships ``docs/*.md`` as ``kql/docs/`` (pyproject's force-include), so there is one
source for the web and the terminal; in a source checkout they are read from ``docs/``.
Links to another guide (``[planner.md](planner.md)``) are shown as ``kql help planner``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_LINK = re.compile(r"\]\(([a-z_]+)\.md(#[^)]*)?\)")
_TITLE = re.compile(r"#\s+(.*)")


def folder() -> Path:
    package = Path(__file__).resolve().parent.parent
    shipped = package / "docs"  # inside an installed wheel
    return shipped if shipped.is_dir() else package.parent / "docs"


def topics() -> dict[str, Path]:
    """Topic name → its file: every guide, and the JSON form's schema."""
    found = {p.stem: p for p in sorted(folder().glob("*.md"))}
    schema = folder() / "query.schema.json"
    if schema.is_file():
        found["query.schema"] = schema
    return found


def text(topic: str) -> str:
    path = topics()[topic]
    body = path.read_text(encoding="utf-8")
    return _LINK.sub(lambda m: f"](kql help {m.group(1)})", body) if path.suffix == ".md" else body


def listing() -> str:
    lines = ["Topics (kql help TOPIC):"]
    for name, path in topics().items():
        first = path.read_text(encoding="utf-8").split("\n", 1)[0] if path.suffix == ".md" else ""
        match = _TITLE.match(first)
        title = match.group(1).replace("`", "") if match else "the JSON Schema of a query's JSON form"
        lines.append(f"  {name:<14} {title}")
    return "\n".join(lines)


def main(topic: str | None, no_pager: bool = False) -> int:
    from kql.cli import pager

    if topic is None:
        print(listing())
        return 0
    known = topics()
    if topic not in known:
        from kql.language.errors import did_you_mean

        hint = did_you_mean(topic, known)
        print(f"kql help: no topic {topic!r}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        print(listing(), file=sys.stderr)
        return 2
    body = text(topic)
    size = pager.terminal_size(sys.stdout)
    command = pager.command() if size is not None and not no_pager and body.count("\n") >= size.lines else None
    if command is None:
        sys.stdout.write(body)
        return 0
    with pager.paged(command) as out:
        out.write(body)
    return 0

"""Records → table, JSON, NDJSON or CSV, written as they arrive.

Records are flat: ``{"id": …, **attributes}``. NDJSON, JSON and CSV stream one
record at a time, so memory does not grow with the result. The table reads a
first batch to size its columns, then streams the rest at those widths (cells
that would not fit are cut with ``…``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import Any, TextIO

FORMATS = ("table", "json", "ndjson", "csv")
# With no `select`, a terminal table shows these; json/ndjson/csv carry every attribute.
TABLE_COLUMNS = ("id", "name", "email", "net_revenue", "created_at")
TABLE_SAMPLE = 200
MAX_CELL = 40

Record = dict[str, Any]


def write(records: Iterable[Record], out: TextIO, fmt: str, fields: Sequence[str] | None = None) -> int:
    """Write every record to ``out`` in ``fmt``; returns how many were written."""
    if fmt == "ndjson":
        return _ndjson(records, out)
    if fmt == "json":
        return _json(records, out)
    if fmt == "csv":
        return _csv(records, out, fields)
    if fmt == "table":
        return _table(records, out, fields)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def _dumps(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _ndjson(records: Iterable[Record], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(_dumps(record) + "\n")
        n += 1
    return n


def _json(records: Iterable[Record], out: TextIO) -> int:
    n = 0
    out.write("[")
    for record in records:
        out.write(("," if n else "") + "\n" + json.dumps(record, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _columns(first: Record | None, fields: Sequence[str] | None) -> list[str]:
    if fields:
        return ["id", *[f for f in fields if f != "id"]]
    if first is None:
        return ["id"]
    return ["id", *[k for k in first if k != "id"]]


def _csv(records: Iterable[Record], out: TextIO, fields: Sequence[str] | None) -> int:
    stream = iter(records)
    first = next(stream, None)
    columns = _columns(first, fields)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    if first is None:
        return 0
    n = 0
    for record in chain([first], stream):
        writer.writerow([_cell(record.get(c)) for c in columns])
        n += 1
    return n


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())  # newlines and tabs would break the grid
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(records: Iterable[Record], out: TextIO, fields: Sequence[str] | None) -> int:
    stream: Iterator[Record] = iter(records)
    sample = list(islice(stream, TABLE_SAMPLE))
    if fields:
        columns = _columns(None, fields)
    else:
        present = set().union(*(r.keys() for r in sample)) if sample else set(TABLE_COLUMNS)
        columns = [c for c in TABLE_COLUMNS if c in present] or _columns(sample[0] if sample else None, None)
    widths = [len(c) for c in columns]
    for record in sample:
        for i, column in enumerate(columns):
            widths[i] = min(MAX_CELL, max(widths[i], len(_fit(_cell(record.get(column)), MAX_CELL))))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(_fit(cell, w).ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip() + "\n"

    out.write(line(columns))
    out.write(line(["-" * w for w in widths]))
    n = 0
    for record in chain(sample, stream):
        out.write(line([_cell(record.get(c)) for c in columns]))
        n += 1
    return n

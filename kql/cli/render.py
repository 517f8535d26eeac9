"""Records → table, JSON, NDJSON or CSV.

Records are flat: ``{"id": …, **attributes}``. NDJSON, JSON and CSV stream one
record at a time, so memory does not grow with the result.

A table cannot stream honestly: a column's width depends on every row, and a
cell cut to fit a width guessed from the first rows is data lost (ids cut to
``374…``). So the table reads every row first — its cells spooled in memory up
to ``SPOOL_BYTES`` and to a temporary file beyond, so memory stays bounded —
sizes each column from all of them, and only then writes. Ids and numbers are
never cut; when a terminal width is given, long text columns shrink (with
``…``) until the table fits; numbers are right-aligned.

Hand-written, not rich: in one run here ``import rich.console, rich.table`` cost 70 ms
of start-up and its Table took 14 s to lay out 20,000 rows at 80 columns (this one:
0.8 s); tabulate neither fits a terminal nor measures wide characters.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, TextIO

FORMATS = ("table", "json", "ndjson", "csv")
# With no `select`, a terminal table shows these; json/ndjson/csv carry every attribute.
TABLE_COLUMNS = ("id", "name", "email", "net_revenue", "created_at")
SPOOL_BYTES = 8 * 1024 * 1024
GAP = "  "
# A text column is not shrunk below this (unless narrower already); a date-time not below its date.
MIN_TEXT = 8
MIN_DATETIME = 11  # "2024-01-31…"

Record = dict[str, Any]


def write(
    records: Iterable[Record], out: TextIO, fmt: str, fields: Sequence[str] | None = None, width: int | None = None
) -> int:
    """Write every record to ``out`` in ``fmt``; returns how many were written.

    ``width`` (tables only) is the terminal width to fit; None leaves cells whole.
    """
    if fmt == "ndjson":
        return _ndjson(records, out)
    if fmt == "json":
        return _json(records, out)
    if fmt == "csv":
        return _csv(records, out, fields)
    if fmt == "table":
        table = Table(fields)
        table.extend(records)
        for line in table.lines(width):
            out.write(line)
        return table.rows
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


# One encoder for every record: json.dumps with options builds a JSONEncoder per call,
# a third of the cost of writing a customer as NDJSON. The same output as json.dumps.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps_spaced = json.JSONEncoder(ensure_ascii=False).encode


def _ndjson(records: Iterable[Record], out: TextIO) -> int:
    n = 0
    write, dumps = out.write, _dumps
    for record in records:
        write(dumps(record) + "\n")
        n += 1
    return n


def _json(records: Iterable[Record], out: TextIO) -> int:
    # "[" only with the first record: a run that fails before any leaves stdout empty rather
    # than a lone "[" (`kql run --json` does not use this: it writes kql.cli.envelope's document).
    n = 0
    for record in records:
        out.write(("[\n" if not n else ",\n") + _dumps_spaced(record))
        n += 1
    out.write("\n]\n" if n else "[]\n")
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


def csv_columns(fields: Sequence[str] | None) -> list[str]:
    """The CSV header: the selected fields, else every attribute the registry knows.

    Taken from the query and the registry, never from the first record, so an empty
    result has the same header as a full one. An attribute the API returns but the
    registry does not know is not in the CSV (a header cannot grow after the fact);
    JSON and NDJSON carry it.
    """
    if fields:
        return ["id", *[f for f in fields if f != "id"]]
    from kql.registry import registry

    return ["id", *registry().attributes]


def _csv(records: Iterable[Record], out: TextIO, fields: Sequence[str] | None) -> int:
    columns = csv_columns(fields)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for record in records:
        writer.writerow([_cell(record.get(c)) for c in columns])
        n += 1
    return n


# ---- the table -------------------------------------------------------------------------

# Shown, not obeyed: escapes must not recolour the terminal; newlines and tabs would break the grid.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "\ufffd", text)


def display_width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or ch in "\u200b\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, ending in ``…`` when cut."""
    if display_width(text) <= width:
        return text
    if width <= 0:
        return ""
    used, kept = 0, []
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        kept.append(ch)
        used += w
    return "".join(kept) + "…"


def _kinds(columns: Sequence[str]) -> list[str]:
    """Each column's kind for sizing and alignment: id, number, datetime or text (from the registry)."""
    from kql.registry import registry

    attributes = registry().attributes
    kinds = []
    for column in columns:
        kind = attributes[column].type if column in attributes else "text"
        if column == "id":
            kinds.append("id")
        elif kind in ("money", "integer"):
            kinds.append("number")
        elif kind == "datetime":
            kinds.append("datetime")
        else:
            kinds.append("text")
    return kinds


class Table:
    """Rows read in full, then laid out: widths from every row, fitted to a terminal width."""

    def __init__(self, fields: Sequence[str] | None) -> None:
        self._selected = ["id", *[f for f in fields if f != "id"]] if fields else None
        self._columns = self._selected or list(TABLE_COLUMNS)
        self._present: set[str] = set()
        self._natural = [display_width(c) for c in self._columns]
        self._spool: IO[str] | None = None
        self.rows = 0

    def extend(self, records: Iterable[Record]) -> None:
        import tempfile  # only for tables: `kql compile` imports this module's neighbours

        # Closed by lines() once read, or by close(); a temporary file is deleted when closed.
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8")  # noqa: SIM115
        natural, columns = self._natural, self._columns
        for record in records:
            cells = [_printable(_cell(record.get(c))) for c in columns]
            for i, cell in enumerate(cells):
                w = display_width(cell)
                if w > natural[i]:
                    natural[i] = w
            if self._selected is None:
                self._present.update(record)
            self._spool.write(json.dumps(cells, ensure_ascii=False) + "\n")
            self.rows += 1

    @property
    def columns(self) -> list[str]:
        """The header: the selected fields, else the default columns the rows have."""
        if self._selected is not None:
            return self._selected
        return [c for c in self._columns if c in self._present or c == "id"] if self.rows else self._columns

    def widths(self, width: int | None) -> list[int]:
        """Each shown column's width: its widest cell, shrunk (text first) to fit ``width``."""
        shown = [self._columns.index(c) for c in self.columns]
        natural = [self._natural[i] for i in shown]
        if width is None:
            return natural
        kinds = _kinds(self.columns)
        floors = []
        for column, kind, w in zip(self.columns, kinds, natural, strict=True):
            if kind == "text":
                floors.append(min(w, MIN_TEXT))
            elif kind == "datetime":
                floors.append(min(w, max(MIN_DATETIME, display_width(column))))
            else:
                floors.append(w)  # ids and numbers are never cut
        budget = width - len(GAP) * (len(natural) - 1)
        fitted = list(natural)
        for kind in ("text", "datetime"):  # text gives way first
            over = sum(fitted) - budget
            if over <= 0:
                break
            group = [i for i, k in enumerate(kinds) if k == kind]
            _shrink(fitted, floors, group, over)
        return fitted

    def lines(self, width: int | None = None) -> Iterator[str]:
        """The table's lines (header, rule, rows), each ending in a newline."""
        columns = self.columns
        shown = [self._columns.index(c) for c in columns]
        widths = self.widths(width)
        right = [k == "number" for k in _kinds(columns)]

        def line(cells: Sequence[str]) -> str:
            parts = []
            for cell, w, r in zip(cells, widths, right, strict=True):
                text = clip(cell, w)
                pad = " " * (w - display_width(text))
                parts.append(pad + text if r else text + pad)
            return GAP.join(parts).rstrip() + "\n"

        yield line(columns)
        yield line(["-" * w for w in widths])
        if self._spool is None:
            return
        self._spool.seek(0)
        every = len(shown) == len(self._columns)
        for raw in self._spool:
            cells = json.loads(raw)
            yield line(cells if every else [cells[i] for i in shown])
        self._spool.close()

    @property
    def height(self) -> int:
        """Lines the table takes: the header, the rule and the rows."""
        return self.rows + 2

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _shrink(widths: list[int], floors: list[int], group: list[int], over: int) -> None:
    """Take ``over`` columns from the widest of ``group`` first (water-filling), never below a floor."""
    while over > 0:
        room = [i for i in group if widths[i] > floors[i]]
        if not room:
            return
        top = max(widths[i] for i in room)
        widest = [i for i in room if widths[i] == top]
        below = max([widths[i] for i in room if widths[i] < top] + [max(floors[i] for i in widest)])
        step = min(top - below, -(-over // len(widest))) or 1
        for i in widest:
            cut = min(step, widths[i] - floors[i], over)
            widths[i] -= cut
            over -= cut
            if over <= 0:
                return

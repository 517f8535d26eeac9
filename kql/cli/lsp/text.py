"""Positions in a document, the LSP way: lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only,
and columns count code units of the negotiated encoding (UTF-16 unless the client asks
otherwise). Python's ``str.splitlines`` also breaks at form feeds and U+2028, so it is
not used here. Pure logic: no pygls.
"""

from __future__ import annotations

import bisect
import re

_BREAK = re.compile(r"\r\n|\r|\n")


class Lines:
    """Offset ↔ (line, column) for one text; out-of-range positions are clamped, never an error."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.text = text
        self.encoding = encoding
        self.starts = [0] + [m.end() for m in _BREAK.finditer(text)]
        # Where each line's content ends (before its line break).
        self.ends = [m.start() for m in _BREAK.finditer(text)] + [len(text)]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        column = min(offset, self.ends[line]) - start
        return line, _units(self.text[start : start + column], self.encoding)

    def offset(self, line: int, character: int) -> int:
        if line < 0:
            return 0
        if line >= len(self.starts):
            return len(self.text)
        start, end = self.starts[line], self.ends[line]
        units = 0
        for index in range(start, end):
            if units >= character:
                return index
            units += _units(self.text[index], self.encoding)
        return end  # a column past the end of the line means its end (LSP)


def _units(text: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == "utf-32":
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# ---- strings inside a TOML segments file ------------------------------------------------


class QueryString:
    """A segment's ``query = "…"`` in a TOML file: its decoded value and where each character is.

    ``starts[i]``/``ends[i]`` are the file offsets of the source of decoded character ``i``
    (an escape such as ``\\"`` is two file characters for one query character).
    """

    def __init__(self, name: str, name_start: int, name_end: int, token_start: int, token_end: int, kind: str) -> None:
        self.name = name
        self.name_start, self.name_end = name_start, name_end  # the segment's name in its header
        self.token_start, self.token_end = token_start, token_end  # the string, quotes included
        self.kind = kind  # basic, literal, multi_basic, multi_literal
        self.value = ""
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.content_end = token_end

    def to_file(self, start: int, end: int) -> tuple[int, int]:
        """File offsets of the query span ``[start, end)``."""
        count = len(self.value)
        start, end = max(0, min(start, count)), max(0, min(end, count))
        file_start = self.starts[start] if start < count else self.content_end
        file_end = self.ends[end - 1] if end > start else file_start
        return file_start, file_end

    def to_query(self, offset: int) -> int | None:
        """The query offset at file ``offset``, or None when it is outside the string's content."""
        content_start = self.starts[0] if self.starts else self.content_end
        if not content_start <= offset <= self.content_end:
            return None
        return bisect.bisect_left(self.starts, offset)

    def encode(self, text: str) -> str | None:
        """``text`` written inside this string (escaped as it needs), or None when it cannot be."""
        if self.kind in ("literal", "multi_literal"):
            quote = "'''" if self.kind == "multi_literal" else "'"
            if quote in text or (self.kind == "literal" and ("\n" in text or "'" in text)):
                return None
            return text
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        if self.kind == "basic":
            escaped = escaped.replace("\n", "\\n")
        return escaped


_SEGMENTS_HEADER = re.compile(
    r"""[ \t]*\[[ \t]*segments[ \t]*\.[ \t]*"""
    r"""(?:"(?P<dq>[^"\\\n]+)"|'(?P<sq>[^'\n]+)'|(?P<bare>[A-Za-z0-9_-]+))[ \t]*\]"""
)
_OTHER_HEADER = re.compile(r"[ \t]*\[")
_QUERY_KEY = re.compile(r"""[ \t]*(?:query|"query"|'query')[ \t]*=[ \t]*""")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


def query_strings(text: str) -> list[QueryString]:
    """Every ``query = …`` string under a ``[segments.NAME]`` header, in file order.

    The common layout only: other layouts (inline tables, dotted keys) are not found
    here, and their problems are shown on the first line instead of inside the string.
    """
    found: list[QueryString] = []
    current: tuple[str, int, int] | None = None
    position = 0
    while position < len(text):
        line_end = text.find("\n", position)
        line_end = len(text) if line_end == -1 else line_end
        line = text[position:line_end]
        header = _SEGMENTS_HEADER.match(line)
        if header:
            group = next(g for g in ("dq", "sq", "bare") if header.group(g) is not None)
            current = (header.group(group), position + header.start(group), position + header.end(group))
        elif _OTHER_HEADER.match(line):
            current = None
        else:
            key = _QUERY_KEY.match(line)
            if key and current is not None:
                string = _read_string(text, position + key.end(), current)
                if string is not None:
                    found.append(string)
                    current = None  # one query per segment
                    line_end = text.find("\n", string.token_end)
                    line_end = len(text) if line_end == -1 else line_end
        position = line_end + 1
    return found


def _read_string(text: str, at: int, segment: tuple[str, int, int]) -> QueryString | None:
    """Decode the TOML string starting at ``at``, recording where each character comes from."""
    kinds = (('"""', "multi_basic"), ("'''", "multi_literal"), ('"', "basic"), ("'", "literal"))
    found = next(((o, k) for o, k in kinds if text.startswith(o, at)), None)
    if found is None:
        return None
    opener, kind = found
    result = QueryString(*segment, token_start=at, token_end=at, kind=kind)
    chars: list[str] = []
    i = at + len(opener)
    multi = kind.startswith("multi")
    if multi:  # a newline right after the opening quotes is not part of the value
        if text.startswith("\r\n", i):
            i += 2
        elif text.startswith("\n", i):
            i += 1

    def add(value: str, start: int, end: int) -> None:
        chars.append(value)
        result.starts.append(start)
        result.ends.append(end)

    while i < len(text):
        ch = text[i]
        if text.startswith(opener, i):
            # Up to two more quotes just before the closing three belong to the value.
            extra = 0
            while multi and extra < 2 and text.startswith(opener[0], i + 3 + extra):
                extra += 1
            for k in range(extra):
                add(opener[0], i + k, i + k + 1)
            result.content_end = i + extra
            result.token_end = i + extra + len(opener)
            result.value = "".join(chars)
            return result
        if ch == "\n" and not multi:
            return None
        if ch == "\\" and kind in ("basic", "multi_basic"):
            decoded = _escape(text, i, multi)
            if decoded is None:
                return None
            value, end = decoded
            if value:
                add(value, i, end)
            i = end
            continue
        if ch == "\r" and multi and text.startswith("\r\n", i):
            add("\n", i, i + 2)  # tomllib reads CRLF as LF
            i += 2
            continue
        add(ch, i, i + 1)
        i += 1
    return None


def _escape(text: str, i: int, multi: bool) -> tuple[str, int] | None:
    """(decoded, end) for the escape at ``text[i] == '\\\\'``."""
    code = text[i + 1 : i + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], i + 2
    if code in ("u", "U", "x"):
        width = {"u": 4, "U": 8, "x": 2}[code]
        digits = text[i + 2 : i + 2 + width]
        if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
            return None
        number = int(digits, 16)
        if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
            return None
        return chr(number), i + 2 + width
    if multi:  # a line-ending backslash: drop it and all whitespace after it
        j = i + 1
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] in "\r\n":
            while j < len(text) and text[j] in " \t\r\n":
                j += 1
            return "", j
    return None

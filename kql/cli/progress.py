"""A one-line progress bar on stderr, for runs that take a while, only on a terminal.

It never mixes with the rows: ``kql run`` shows it only while nothing is being written
to the same terminal (a table is written after the run, once the bar is cleared;
streamed rows to the terminal get no bar), and it is cut to the terminal's width so
that ``\\r`` can always erase it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol, TextIO


class Observable(Protocol):
    @property
    def total_pages(self) -> int | None: ...
    @property
    def total_count(self) -> int | None: ...
    @property
    def pages_fetched(self) -> int: ...
    @property
    def yielded(self) -> int: ...


class ProgressBar:
    """Redraws ``[====    ] 12/100 pages  1,200 customers  3,100/s  ETA 0:04  1.2s`` a few times a second.

    It appears only after ``delay`` seconds, so quick runs never show a bar. ``limit`` (the
    run's own) caps the number of customers the ETA expects.
    """

    def __init__(
        self,
        stream: Observable,
        out: TextIO,
        *,
        limit: int | None = None,
        delay: float = 0.5,
        interval: float = 0.2,
    ) -> None:
        self._stream = stream
        self._out = out
        self._limit = limit
        self._delay = delay
        self._interval = interval
        self._stop = threading.Event()
        self._drawn = False
        self._thread = threading.Thread(target=self._run, name="kql-progress", daemon=True)

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def clear(self) -> None:
        """Stop drawing and erase the bar (before rows are written to the same terminal)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._drawn:
            self._out.write("\r\x1b[2K")  # leave the terminal as it was
            self._out.flush()
            self._drawn = False

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        started = time.monotonic() - self._delay
        while not self._stop.is_set():
            text = self.line(time.monotonic() - started)
            self._out.write("\r\x1b[2K" + text[: max(1, self._columns() - 1)])
            self._out.flush()
            self._drawn = True
            self._stop.wait(self._interval)

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self._out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 80

    def expected(self) -> int | None:
        """How many customers the run will yield, when the API said (``meta.total_count``)."""
        total = self._stream.total_count
        if total is None:
            return None
        return min(total, self._limit) if self._limit is not None else total

    def line(self, elapsed: float) -> str:
        pages, done, count = self._stream.total_pages, self._stream.pages_fetched, self._stream.yielded
        parts = []
        if pages:
            filled = int(20 * min(done, pages) / pages)
            parts.append(f"[{'=' * filled}{' ' * (20 - filled)}] {done}/{pages} pages")
        else:
            parts.append(f"{done} pages")
        parts.append(f"{count:,} customers")
        rate = count / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{rate:,.0f}/s")
        eta = self.eta(elapsed, rate)
        if eta is not None:
            parts.append(f"ETA {format_seconds(eta)}")
        parts.append(f"{elapsed:.1f}s")
        return "  ".join(parts)

    def eta(self, elapsed: float, rate: float) -> float | None:
        expected = self.expected()
        if expected is not None and rate > 0:
            return max(0.0, (expected - self._stream.yielded) / rate)
        pages, done = self._stream.total_pages, self._stream.pages_fetched
        if pages and done:
            return max(0.0, elapsed * (pages - done) / done)
        return None


def format_seconds(seconds: float) -> str:
    """``0:07``, ``12:30``, ``2:05:00``."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

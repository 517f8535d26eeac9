"""A one-line progress bar on stderr, for runs that take a while, only on a terminal."""

from __future__ import annotations

import threading
import time
from typing import Protocol, TextIO


class Observable(Protocol):
    @property
    def total_pages(self) -> int | None: ...
    @property
    def pages_fetched(self) -> int: ...
    @property
    def yielded(self) -> int: ...


class ProgressBar:
    """Redraws ``pages 12/100 [====    ] 1,200 customers`` a few times a second after ``delay`` seconds."""

    def __init__(self, stream: Observable, out: TextIO, *, delay: float = 0.5, interval: float = 0.2) -> None:
        self._stream = stream
        self._out = out
        self._delay = delay
        self._interval = interval
        self._stop = threading.Event()
        self._drawn = False
        self._thread = threading.Thread(target=self._run, name="kql-progress", daemon=True)

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._drawn:
            self._out.write("\r\x1b[2K")  # leave the terminal as it was
            self._out.flush()

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return  # quick runs never show a bar
        started = time.monotonic() - self._delay
        while not self._stop.is_set():
            self._out.write("\r\x1b[2K" + self.line(time.monotonic() - started))
            self._out.flush()
            self._drawn = True
            self._stop.wait(self._interval)

    def line(self, elapsed: float) -> str:
        total, done, count = self._stream.total_pages, self._stream.pages_fetched, self._stream.yielded
        if total:
            filled = int(20 * min(done, total) / total)
            bar = f"[{'=' * filled}{' ' * (20 - filled)}] pages {done}/{total}"
        else:
            bar = f"pages {done}"
        return f"{bar}  {count:,} customers  {elapsed:.1f}s"

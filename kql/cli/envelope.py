"""``kql run --json``: stdout is one JSON document, whatever happens, streamed.

::

    {"customers": [
    {…},
    {…}
    ], "count": 2, "complete": true, "ok": true, "exit_code": 0, "errors": []}

The customers are written as they arrive (memory does not grow with the result) and
the fields after the array are written when the run ends: normally, on an error, on
Ctrl-C or SIGTERM — so a failure mid-stream still closes the array and says why
(``"ok": false``, ``"errors"``: the ``{code, message, span, hint}`` objects every
``--json`` command prints). A failure before the first customer is the same document
with ``"customers": []``: one shape, always. With ``--output FILE`` the customers go
to the file and ``"output": FILE`` takes the place of the array.

The one thing that cannot close the document is a reader that has gone away
(``| head``): there is no one left to read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

EXIT_OK, EXIT_NOTHING = 0, 1


class SignalGuard:
    """Ctrl-C or SIGTERM during a write waits until the write is whole.

    A signal's exception raised inside ``write()`` may leave half a record in the
    stream's buffer (or lose one); the handler (``kql.cli.run.terminate_as_interrupt``)
    sees ``busy`` and parks the exception in ``pending``, raised once the write is done.
    """

    def __init__(self) -> None:
        self.busy = False
        self.pending: BaseException | None = None

    def raise_pending(self) -> None:
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error


class Envelope:
    """The document on ``out``; ``output`` is the ``--output`` file, when the customers go there."""

    def __init__(self, out: TextIO, output: str | None = None, guard: SignalGuard | None = None) -> None:
        self.out = out
        self.output = output
        self.guard = guard or SignalGuard()
        self.count = 0
        self._opened = False
        self._closed = False

    def write(self, records: Iterable[dict[str, Any]]) -> int:
        """Stream ``records`` into the ``customers`` array; returns how many were written."""
        out, guard, dumps = self.out, self.guard, json.dumps
        guard.busy = True
        out.write('{"customers": [')
        self._opened = True
        guard.busy = False
        guard.raise_pending()
        for record in records:
            text = dumps(record, ensure_ascii=False)  # before the guard: a bad value raises here, not mid-write
            guard.busy = True
            out.write((",\n" if self.count else "\n") + text)
            self.count += 1
            guard.busy = False
            if guard.pending is not None:
                guard.raise_pending()
        return self.count

    def close(self, exit_code: int, errors: list[dict[str, Any]] | None = None) -> None:
        """End the document (once): the array, then what became of the run, then flush."""
        if self._closed:
            return
        self._closed = True
        errors = errors or []
        tail = {
            "count": self.count,
            "complete": exit_code in (EXIT_OK, EXIT_NOTHING),  # every matching customer is in it
            "ok": not errors,  # exit 5 (missing customers, accepted by --allow-partial) is ok, not complete
            "exit_code": exit_code,
            "errors": errors,
        }
        if self._opened:
            head = "\n]" if self.count else "]"
        elif self.output is not None:
            head = '{"output": ' + json.dumps(self.output, ensure_ascii=False)
        else:
            head = '{"customers": []'
        rest = json.dumps(tail, ensure_ascii=False)[1:]  # '"count": …}' joins the head
        # From here a signal is dropped: the run is ending, and it must not cut the tail.
        self.guard.busy = True
        self.out.write(head + ", " + rest + "\n")
        self.out.flush()  # now: once kql returns, SIGTERM's default action would lose a buffer
        self.guard.pending = None

    def abandon(self) -> None:
        """Never close: the reader has gone (a broken pipe), so nothing more is written."""
        self._closed = True

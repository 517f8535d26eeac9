"""Segments over time: snapshots, the events between them, and at-least-once delivery.

    with kql.Client(token="…") as client:
        client.snapshot("@vip")                       # the baseline
        ...
        with client.diff("@vip") as changes:          # who entered, left, changed since
            for event in changes:
                print(event.kind, event.id, event.attributes)
            changes.commit()                          # else the same events come again next time

A snapshot streams ``client.customers(query)`` into the state store
(``kql.execute.state``) in batches; the difference is computed there, in SQL, so
memory stays flat for a segment of any size. While a snapshot is taken and its
events delivered, the segment's lock is held: two runs of one segment never overlap.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol

import attrs

from kql.execute.errors import EXIT_USAGE, ExecutorError
from kql.execute.state import DEFAULT_KEEP, Snapshot, StateError, StateStore, check_name, default_path
from kql.language.ast import Query
from kql.language.errors import KQLError
from kql.language.formatter import format_query
from kql.language.parser import parse
from kql.planning.checked import expand
from kql.planning.segments import Segments
from kql.planning.segments_file import load


class Stream(Iterator[dict[str, Any]], Protocol):
    def close(self) -> None: ...


class Client(Protocol):
    """What a snapshot needs of a client (``kql.Client`` is one): the customers a query matches."""

    def customers(self, query: str | Query) -> Stream: ...

__all__ = [
    "Changed",
    "Changes",
    "ConsumerFailed",
    "DefinitionChanged",
    "Entered",
    "Event",
    "Left",
    "deliver",
    "diff",
    "snapshot",
]

EXIT_CONSUMER_FAILED = 5
DEFAULT_BATCH = 1000
_SEGMENT_ONLY = re.compile(r"\s*@([A-Za-z_][A-Za-z0-9_-]*)\s*\Z")
State = str | os.PathLike[str] | StateStore | None


class DefinitionChanged(ExecutorError):
    """The segment's query is not the one its baseline snapshot was taken with (exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, name: str, before: str, now: str) -> None:
        super().__init__(
            f"the definition of @{name} changed since its last snapshot ({before!r} -> {now!r}): "
            "look with --dry-run, then rerun with --accept-new-definition (or take a new baseline with kql snapshot)"
        )
        self.name, self.before, self.now = name, before, now


class ConsumerFailed(ExecutorError):
    """The ``--exec`` command did not exit 0: nothing is committed, the events come again (exit 5)."""

    exit_code = EXIT_CONSUMER_FAILED


# -- events ---------------------------------------------------------------------


@attrs.frozen(slots=True)
class Event:
    """Something that happened to one customer between two snapshots; ``at`` is the newer one's time."""

    kind: ClassVar[str] = ""
    id: str
    at: str
    attributes: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The flat record: ``{"event": …, "id": …, "at": …, attributes…}``."""
        return {"event": self.kind, "id": self.id, "at": self.at, **self.attributes}


@attrs.frozen(slots=True)
class Entered(Event):
    """Matches now, did not before; ``attributes`` are the selected ones now."""

    kind: ClassVar[str] = "entered"


@attrs.frozen(slots=True)
class Left(Event):
    """Matched before, does not now; ``attributes`` are the last ones seen."""

    kind: ClassVar[str] = "left"


@attrs.frozen(slots=True)
class Changed(Event):
    """Matches both times, with other values of selected attributes; ``previous`` holds the old ones."""

    kind: ClassVar[str] = "changed"
    previous: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**Event.to_dict(self), "previous": dict(self.previous)}


_KINDS: dict[str, type[Entered] | type[Left]] = {"entered": Entered, "left": Left}


# -- what a segment is -----------------------------------------------------------


@attrs.frozen(slots=True)
class Target:
    """A query to snapshot: its name in the store, canonical text, selected attributes, the expanded AST."""

    name: str
    canonical: str
    attributes: tuple[str, ...]
    query: Query


def target(
    spec: str | Query,
    *,
    name: str | None = None,
    segments: Segments | str | os.PathLike[str] | None = None,
    store: StateStore | None = None,
) -> Target:
    """``@vip`` (from the segments file, else as last recorded in the store) or any expression with ``name``."""
    loaded = load(segments) if segments is not None and not isinstance(segments, Segments) else segments
    source: str | None = None
    if isinstance(spec, Query):
        parsed = spec
    else:
        source = spec
        bare = _SEGMENT_ONLY.match(spec)
        if bare is not None:
            name = name or bare.group(1)
            known = loaded is not None and bare.group(1) in loaded
            recorded = store.latest(bare.group(1)) if store is not None and not known else None
            if recorded is not None:  # not in the segments file: the definition it was snapshotted with
                spec = source = recorded.query
            elif not known:
                from kql.language.errors import did_you_mean

                where = f"not in {loaded.path or 'the segments'}" if loaded is not None else "no segments file"
                names = [f"@{n}" for n in (loaded.segments if loaded is not None else ())]
                names += [f"@{s.name}" for s in store.snapshots()] if store is not None else []
                hint = did_you_mean("@" + bare.group(1), list(dict.fromkeys(names))) or (
                    "define it in kql.toml (kql help segments), or snapshot an expression with --as NAME"
                )
                message = f"unknown segment '@{bare.group(1)}' ({where}, and never snapshotted)"
                raise KQLError("E106", message, None, hint)
        parsed = parse(spec)
    if name is None:
        raise KQLError(
            "E015", "a snapshot of an expression needs a name", None, "give it one (--as NAME, name=…), or use @segment"
        )
    check_name(name)
    expanded = expand(parsed, loaded, source)
    selected = tuple(f.text for f in expanded.select.fields) if expanded.select is not None else ()
    return Target(name, format_query(expanded), selected, expanded)


def _open_store(state: State) -> tuple[StateStore, bool]:
    """The store, and whether we opened it (and so close it)."""
    if isinstance(state, StateStore):
        return state, False
    return StateStore(state), True


def _fill(client: Client, store: StateStore, snapshot_id: int, goal: Target, batch: int) -> int:
    customers = client.customers(goal.query)
    try:
        members = ((str(r["id"]), {a: r.get(a) for a in goal.attributes}) for r in customers)
        return store.add(snapshot_id, members, batch)
    finally:
        customers.close()


# -- snapshot ---------------------------------------------------------------------


def snapshot(
    client: Client,
    query: str | Query,
    *,
    name: str | None = None,
    state: State = None,
    segments: Segments | str | os.PathLike[str] | None = None,
    keep: int = DEFAULT_KEEP,
    batch: int = DEFAULT_BATCH,
) -> Snapshot:
    """Record who matches ``query`` now, as the baseline of ``name`` (default: the ``@segment``'s name)."""
    store, owned = _open_store(state)
    try:
        goal = target(query, name=name, segments=segments, store=store)
        with store.lock(goal.name):
            base = store.latest(goal.name)
            pending = store.begin(goal.name, goal.canonical, goal.attributes)
            try:
                _fill(client, store, pending, goal, batch)
                store.commit(pending, base.id if base else None, keep)
            except BaseException:
                store.discard(pending)
                raise
            recorded = store.get(pending)
            assert recorded is not None
            return recorded
    finally:
        if owned:
            store.close()


# -- diff ------------------------------------------------------------------------


class Changes:
    """The events of one segment since its baseline; a context manager holding the segment's lock.

    On entering, the current members are fetched into a pending snapshot. Iterate (as often as
    you like: each pass reads the store again), then ``commit()`` to make it the new baseline;
    leaving the block without committing discards it, so the same events come again next time.
    """

    def __init__(
        self,
        client: Client,
        query: str | Query,
        *,
        name: str | None,
        state: State,
        segments: Segments | str | os.PathLike[str] | None,
        since: int | None,
        dry_run: bool,
        accept_new_definition: bool,
        keep: int,
        batch: int,
    ) -> None:
        self._client, self._query, self._name, self._state = client, query, name, state
        self._segments, self._since, self._keep, self._batch = segments, since, keep, batch
        self.dry_run, self.accept_new_definition = dry_run, accept_new_definition
        self.store: StateStore | None = None
        self._owned = False
        self._lock: Any = None
        self.target: Target | None = None
        self.base: Snapshot | None = None  # what the events are relative to (None: everyone entered)
        self.pending: int | None = None
        self.taken_at = ""
        self.members = 0
        self.definition_changed = False
        self.committed: Snapshot | None = None

    def __enter__(self) -> Changes:
        self.store, self._owned = _open_store(self._state)
        try:
            self._start(self.store)
        except BaseException:
            self._finish()
            raise
        return self

    def _start(self, store: StateStore) -> None:
        goal = self.target = target(self._query, name=self._name, segments=self._segments, store=store)
        self._lock = store.lock(goal.name)
        self._lock.__enter__()
        if self._since is not None:
            self.base = store.get(self._since)
            kept = ", ".join(str(s.id) for s in store.snapshots(goal.name)) or "none"
            if self.base is None or self.base.name != goal.name:
                raise StateError(f"@{goal.name} has no snapshot {self._since} (kept: {kept})")
        else:
            self.base = store.latest(goal.name)
        if self.base is not None and self.base.query != goal.canonical:
            self.definition_changed = True
            if not (self.accept_new_definition or self.dry_run):
                raise DefinitionChanged(goal.name, self.base.query, goal.canonical)
        self.pending = store.begin(goal.name, goal.canonical, goal.attributes)
        row = store.conn.execute("SELECT taken_at FROM snapshots WHERE id = ?", (self.pending,)).fetchone()
        self.taken_at = row[0]
        self.members = _fill(self._client, store, self.pending, goal, self._batch)

    def __iter__(self) -> Iterator[Event]:
        if self.store is None or self.pending is None:
            raise RuntimeError("use Changes inside a with block: with client.diff(…) as changes: …")
        at = self.taken_at
        for row in self.store.diff(self.base.id if self.base else None, self.pending):
            if row.kind == "changed":
                yield Changed(row.id, at, row.attrs, row.previous or {})
            else:
                yield _KINDS[row.kind](row.id, at, row.attrs)

    def batches(self, size: int = DEFAULT_BATCH) -> Iterator[list[Event]]:
        events = iter(self)
        while chunk := list(islice(events, size)):
            yield chunk

    def commit(self) -> Snapshot | None:
        """Record the new snapshot as the baseline (nothing under ``dry_run``); returns it."""
        if self.dry_run or self.committed is not None:
            return self.committed
        assert self.store is not None and self.pending is not None and self.target is not None
        latest = self.store.latest(self.target.name)
        # With --since the base is older than the latest; the latest is what must not move meanwhile.
        self.store.commit(self.pending, latest.id if latest else None, self._keep)
        self.committed = self.store.get(self.pending)
        return self.committed

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._finish()

    def _finish(self) -> None:
        try:
            if self.store is not None and self.pending is not None and self.committed is None:
                self.store.discard(self.pending)
        finally:
            self.pending = None
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
                self._lock = None
            if self._owned and self.store is not None:
                self.store.close()


def diff(
    client: Client,
    query: str | Query,
    *,
    name: str | None = None,
    state: State = None,
    segments: Segments | str | os.PathLike[str] | None = None,
    since: int | None = None,
    dry_run: bool = False,
    accept_new_definition: bool = False,
    keep: int = DEFAULT_KEEP,
    batch: int = DEFAULT_BATCH,
) -> Changes:
    """The events of ``query`` (usually ``"@segment"``) since its last snapshot, or snapshot ``since``.

    Raises DefinitionChanged (on entering) when the segment's canonical query differs from the
    baseline's, unless ``accept_new_definition`` or ``dry_run``.
    """
    return Changes(
        client,
        query,
        name=name,
        state=state,
        segments=segments,
        since=since,
        dry_run=dry_run,
        accept_new_definition=accept_new_definition,
        keep=keep,
        batch=batch,
    )


# -- delivery --------------------------------------------------------------------


@attrs.frozen(slots=True)
class Delivered:
    batches: int
    events: int
    counts: Mapping[str, int]


def deliver(
    changes: Changes,
    command: str | Sequence[str],
    *,
    batch: int = DEFAULT_BATCH,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Delivered:
    """Pipe each batch of events to ``command`` as NDJSON on its stdin (a shell command line, or argv).

    Raises ConsumerFailed as soon as one exits non-zero; the caller commits only when this returns.
    No events: the command is not run. The command's environment gains KQL_SEGMENT, KQL_BATCH,
    KQL_EVENTS and KQL_STATE (the file).
    """
    assert changes.target is not None and changes.store is not None
    counts = {"entered": 0, "left": 0, "changed": 0}
    done = sent = 0
    shell = isinstance(command, str)
    for number, events in enumerate(changes.batches(batch), start=1):
        env = {
            **os.environ,
            "KQL_SEGMENT": changes.target.name,
            "KQL_BATCH": str(number),
            "KQL_EVENTS": str(len(events)),
            "KQL_STATE": str(changes.store.path),
        }
        payload = b"".join(
            json.dumps(e.to_dict(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for e in events
        )
        try:
            process = subprocess.Popen(command, shell=shell, stdin=subprocess.PIPE, env=env)
        except OSError as error:
            raise ConsumerFailed(f"cannot start the consumer {_shown(command)}: {error.strerror}") from None
        if on_start is not None:
            on_start(process)
        try:
            assert process.stdin is not None
            try:
                process.stdin.write(payload)
                process.stdin.close()
            except BrokenPipeError:  # it stopped reading: its exit status decides
                pass
            status = process.wait()
        except BaseException:
            process.kill()  # interrupted (SIGTERM, Ctrl-C): do not leave it behind
            process.wait()
            raise
        if status != 0:
            how = f"was killed by signal {-status}" if status < 0 else f"exited {status}"
            if shell and status > 128:  # the shell reports its child's death as 128 + the signal
                how += f" (killed by signal {status - 128})"
            raise ConsumerFailed(
                f"the consumer {how} on batch {number} ({len(events)} events; {done} batches delivered before): "
                f"nothing was committed, so the same events come again next time"
            )
        done += 1
        sent += len(events)
        for event in events:
            counts[event.kind] += 1
    return Delivered(done, sent, counts)


def _shown(command: str | Sequence[str]) -> str:
    return repr(command if isinstance(command, str) else " ".join(command))


def state_path(state: State) -> Path:
    """Where the store is (for messages)."""
    if isinstance(state, StateStore):
        return state.path

    return Path(state) if state is not None else default_path()

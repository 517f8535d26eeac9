"""The local state store: segment snapshots in SQLite, and the difference between two of them.

One file (WAL mode, so a reader never blocks the writer) holds every snapshot:
its name, when it was taken, the query's canonical text, the attributes asked
for with ``select``, and its members (id plus those attributes as JSON). A new
snapshot is written *pending*, its members streamed in batches, and becomes the
segment's baseline only when ``commit`` is called — so a run that fails (a
consumer that exits non-zero, a kill, a network error) leaves the baseline as
it was, and the same events come again. The difference is computed by SQLite
over the members' primary key, so Python holds one batch at a time however
large the segment.

The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a
file from version ``i`` to ``i + 1`` in one transaction. A file written by a
newer kql is refused rather than guessed at. Pure stdlib.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

ENV_VAR = "KQL_STATE"
FILE_NAME = "state.sqlite3"
DEFAULT_KEEP = 10
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")

# Schema steps: MIGRATIONS[i] upgrades version i to i + 1. Append, never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        query TEXT NOT NULL,
        attributes TEXT NOT NULL,            -- JSON list of the selected attribute names
        members INTEGER NOT NULL DEFAULT 0,
        committed INTEGER NOT NULL DEFAULT 0 -- 0 while its members are written and delivered
    );
    CREATE INDEX snapshots_by_name ON snapshots (name, committed, id);
    CREATE TABLE members (
        snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        customer_id TEXT NOT NULL,
        attrs TEXT NOT NULL,                 -- JSON object of the selected attributes, keys sorted
        PRIMARY KEY (snapshot_id, customer_id)
    ) WITHOUT ROWID;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StateError(Exception):
    """The state store cannot be used as asked; the message names the file and what to do."""


class Busy(StateError):
    """Another process holds this segment's lock (a watcher, or a diff still delivering)."""


def default_path() -> Path:
    """``$KQL_STATE``, else ``state.sqlite3`` in the user's data directory (platformdirs)."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    import platformdirs

    return Path(platformdirs.user_data_dir("kql")) / FILE_NAME


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise StateError(f"{name!r} cannot name a snapshot: use letters, digits, _ and - (e.g. vip)")
    return name


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@attrs.frozen(slots=True)
class Snapshot:
    id: int
    name: str
    taken_at: str
    query: str
    attributes: tuple[str, ...]
    members: int
    committed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "taken_at": self.taken_at,
            "query": self.query,
            "attributes": list(self.attributes),
            "members": self.members,
        }


@attrs.frozen(slots=True)
class Row:
    """One line of a difference: (kind, id, attributes now or last seen, previous attributes)."""

    kind: str  # "entered" | "left" | "changed"
    id: str
    attrs: dict[str, Any]
    previous: dict[str, Any] | None = None


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS, where: str = "") -> int:
    """Bring the schema up to ``len(migrations)``, one transaction per step; returns the old version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise StateError(
            f"{where or 'the state file'} has schema version {version}, newer than this kql understands "
            f"({len(migrations)}): upgrade kql, or use another --state file"
        )
    for step in range(version, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) == step:  # not done by a racing process
                for statement in migrations[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


class StateStore:
    """Snapshots of segments in one SQLite file. Use as a context manager, or ``close()``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        where = str(self.path)
        if self.path.is_dir():
            raise StateError(f"state file {where} is a directory: give a file name, e.g. {where}/{FILE_NAME}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateError(f"cannot create the folder for state file {where}: {error.strerror}") from None
        try:
            # Autocommit; transactions are explicit. The timeout waits out another writer's short batch.
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
            self.conn.execute("PRAGMA foreign_keys = ON")
            migrate(self.conn, where=where)
        except sqlite3.DatabaseError as error:
            with contextlib.suppress(Exception):
                self.conn.close()
            raise StateError(
                f"state file {where} is not a kql state store ({error}): give another --state file"
            ) from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locking ----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold ``name``'s lock (an flock on a file beside the store; the kernel frees it if we die).

        Raises Busy at once when another process holds it: two runs of one segment never overlap.
        """
        folder = self.path.with_name(self.path.name + ".locks")
        folder.mkdir(exist_ok=True)
        file = folder / f"{check_name(name)}.lock"
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise Busy(
                    f"@{name} is busy: another kql (pid {holder}) is taking or delivering its snapshot "
                    f"(lock {file}); try again when it is done"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- snapshots --------------------------------------------------------------

    def latest(self, name: str) -> Snapshot | None:
        row = self.conn.execute(
            "SELECT * FROM snapshots WHERE name = ? AND committed = 1 ORDER BY id DESC LIMIT 1", (name,)
        ).fetchone()
        return self._snapshot(row)

    def get(self, snapshot_id: int) -> Snapshot | None:
        row = self.conn.execute("SELECT * FROM snapshots WHERE id = ? AND committed = 1", (snapshot_id,)).fetchone()
        return self._snapshot(row)

    def snapshots(self, name: str | None = None) -> list[Snapshot]:
        sql = "SELECT * FROM snapshots WHERE committed = 1" + (" AND name = ?" if name else "") + " ORDER BY id"
        return [s for s in map(self._snapshot, self.conn.execute(sql, (name,) if name else ())) if s is not None]

    def begin(self, name: str, query: str, attributes: Sequence[str], taken_at: str | None = None) -> int:
        """A new pending snapshot; members go in with ``add``. Pending leftovers of crashed runs are removed
        (call with the segment's lock held, so none of them belongs to a live run)."""
        self.discard_pending(name)
        cursor = self.conn.execute(
            "INSERT INTO snapshots (name, taken_at, query, attributes) VALUES (?, ?, ?, ?)",
            (check_name(name), taken_at or now(), query, json.dumps(list(attributes))),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add(self, snapshot_id: int, members: Iterable[tuple[str, dict[str, Any]]], batch: int = 1000) -> int:
        """Stream members into a pending snapshot, ``batch`` rows per transaction; returns how many."""
        total = 0
        rows: list[tuple[int, str, str]] = []
        for customer_id, values in members:
            rows.append((snapshot_id, str(customer_id), _attrs_json(values)))
            if len(rows) >= batch:
                total += self._insert(rows)
                rows = []
        if rows:
            total += self._insert(rows)
        return total

    def _insert(self, rows: list[tuple[int, str, str]]) -> int:
        with self._transaction():
            # A duplicate id (a page boundary moving under the listing) is one member: the last one seen wins.
            self.conn.executemany("INSERT OR REPLACE INTO members VALUES (?, ?, ?)", rows)
        return len(rows)

    def commit(self, snapshot_id: int, base_id: int | None, keep: int = DEFAULT_KEEP) -> None:
        """Make a pending snapshot the segment's baseline, then drop all but the ``keep`` newest.

        Refuses (StateError) if another run committed since ``base_id`` was read: only one may deliver.
        """
        with self._transaction():
            name, count = self.conn.execute(
                "SELECT s.name, (SELECT count(*) FROM members m WHERE m.snapshot_id = s.id) FROM snapshots s "
                "WHERE s.id = ? AND s.committed = 0",
                (snapshot_id,),
            ).fetchone() or (None, 0)
            if name is None:
                raise StateError(f"snapshot {snapshot_id} is no longer pending (removed by another run?)")
            latest = self.latest(name)
            if latest is not None and base_id is not None and latest.id > base_id:
                raise StateError(
                    f"@{name}: snapshot {latest.id} was committed meanwhile by another run; not committing"
                )
            self.conn.execute("UPDATE snapshots SET committed = 1, members = ? WHERE id = ?", (count, snapshot_id))
            old = [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM snapshots WHERE name = ? AND committed = 1 ORDER BY id DESC LIMIT -1 OFFSET ?",
                    (name, max(keep, 1)),
                )
            ]
            for sid in old:
                self.conn.execute("DELETE FROM members WHERE snapshot_id = ?", (sid,))
                self.conn.execute("DELETE FROM snapshots WHERE id = ?", (sid,))

    def discard(self, snapshot_id: int) -> None:
        with self._transaction():
            self.conn.execute("DELETE FROM members WHERE snapshot_id = ?", (snapshot_id,))
            self.conn.execute("DELETE FROM snapshots WHERE id = ? AND committed = 0", (snapshot_id,))

    def discard_pending(self, name: str) -> None:
        pending = "SELECT id FROM snapshots WHERE name = ? AND committed = 0"
        for (sid,) in self.conn.execute(pending, (name,)).fetchall():
            self.discard(sid)

    def count(self, snapshot_id: int) -> int:
        sql = "SELECT count(*) FROM members WHERE snapshot_id = ?"
        return int(self.conn.execute(sql, (snapshot_id,)).fetchone()[0])

    def member_ids(self, snapshot_id: int) -> Iterator[str]:
        for (cid,) in self.conn.execute("SELECT customer_id FROM members WHERE snapshot_id = ?", (snapshot_id,)):
            yield cid

    # -- the difference, in SQL --------------------------------------------------

    def diff(self, old: int | None, new: int, attributes: Sequence[str] | None = None) -> Iterator[Row]:
        """Entered, then left, then changed (each in id order), streamed off SQLite cursors.

        ``old`` None: everyone in ``new`` entered. ``changed`` compares only ``attributes``
        (default: those of ``new``), so a definition that selects more does not mark everyone changed.
        """
        if attributes is not None:
            names = list(attributes)
        else:  # attributes both snapshots asked for: one added by a new definition is not a change
            before = set(self._attributes(old)) if old is not None else set()
            names = [a for a in self._attributes(new) if a in before]
        base = -1 if old is None else old  # no snapshot has id -1: every member entered
        entered = self.conn.execute(
            "SELECT n.customer_id, n.attrs FROM members n WHERE n.snapshot_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM members o WHERE o.snapshot_id = ? AND o.customer_id = n.customer_id) "
            "ORDER BY n.customer_id",
            (new, base),
        )
        for cid, values in entered:
            yield Row("entered", cid, json.loads(values))
        left = self.conn.execute(
            "SELECT o.customer_id, o.attrs FROM members o WHERE o.snapshot_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM members n WHERE n.snapshot_id = ? AND n.customer_id = o.customer_id) "
            "ORDER BY o.customer_id",
            (base, new),
        )
        for cid, values in left:
            yield Row("left", cid, json.loads(values))
        if not names:
            return
        both = self.conn.execute(
            "SELECT n.customer_id, n.attrs, o.attrs FROM members n JOIN members o "
            "ON o.snapshot_id = ? AND o.customer_id = n.customer_id "
            "WHERE n.snapshot_id = ? AND n.attrs <> o.attrs ORDER BY n.customer_id",
            (base, new),
        )
        for cid, now_text, then_text in both:
            now_values, then_values = json.loads(now_text), json.loads(then_text)
            moved = {k: then_values.get(k) for k in names if now_values.get(k) != then_values.get(k)}
            if moved:
                yield Row("changed", cid, now_values, moved)

    def _attributes(self, snapshot_id: int) -> tuple[str, ...]:
        row = self.conn.execute("SELECT attributes FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
        return tuple(json.loads(row[0])) if row else ()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @staticmethod
    def _snapshot(row: Any) -> Snapshot | None:
        if row is None:
            return None
        sid, name, taken_at, query, attributes, members, committed = row
        return Snapshot(sid, name, taken_at, query, tuple(json.loads(attributes)), members, bool(committed))


def _attrs_json(values: dict[str, Any]) -> str:
    # Keys sorted and one fixed spelling, so equal attributes are equal text and SQL can compare them.
    return json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

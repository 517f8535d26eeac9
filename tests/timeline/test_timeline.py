"""Entered, left and changed are exact against the sandbox, whose data moves between snapshots."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

import kql
from kql.cli.app import main
from kql.execute.state import MIGRATIONS, StateError, StateStore, migrate
from kql.execute.timeline import Changed, DefinitionChanged, Entered, Left
from kql.sandbox import Sandbox, admin
from tests.timeline.conftest import TAG, options


def client(sandbox: Sandbox) -> kql.Client:
    return kql.Client(sandbox.base_url, token="sandbox")


def outsiders(sandbox: Sandbox, n: int) -> list[int]:
    members = set(admin.tagged(sandbox.store, TAG))
    return [cid for cid in range(1, 301) if cid not in members][:n]


def test_entered_left_changed_exact(sandbox: Sandbox, workdir: Path) -> None:
    state, segments = workdir / "state.sqlite3", workdir / "kql.toml"
    with client(sandbox) as c:
        first = c.snapshot("@vip", state=state, segments=segments)
        members = admin.tagged(sandbox.store, TAG)
        assert first.members == len(members) and first.attributes == ("name", "net_revenue")
        newcomers, leavers, renamed, untouched = outsiders(sandbox, 2), members[:2], members[2], members[3]
        for cid in newcomers:
            admin.add_tag(sandbox.store, cid, TAG)
        for cid in leavers:
            admin.remove_tag(sandbox.store, cid, TAG)
        old_name = sandbox.store.customer(renamed)["name"]  # type: ignore[index]
        admin.set_attribute(sandbox.store, renamed, "name", "Renamed Person")
        admin.set_attribute(sandbox.store, untouched, "email", "not-selected@example.com")  # not selected: no event
        try:
            with c.diff("@vip", state=state, segments=segments) as changes:
                events = list(changes)
                changes.commit()
            assert sorted((type(e).__name__, e.id) for e in events) == sorted(
                [("Entered", str(i)) for i in newcomers]
                + [("Left", str(i)) for i in leavers]
                + [("Changed", str(renamed))]
            )
            changed = next(e for e in events if isinstance(e, Changed))
            assert changed.attributes["name"] == "Renamed Person" and changed.previous == {"name": old_name}
            assert all(e.at == changes.taken_at for e in events)
            assert isinstance(events[0], Entered) and set(events[0].attributes) == {"name", "net_revenue"}
            assert any(isinstance(e, Left) for e in events)
            with c.diff("@vip", state=state, segments=segments) as again:  # committed: nothing new
                assert list(again) == []
            with c.diff("@vip", state=state, segments=segments, since=first.id, dry_run=True) as since:
                assert len(list(since)) == len(events)
        finally:
            for cid in newcomers:
                admin.remove_tag(sandbox.store, cid, TAG)
            for cid in leavers:
                admin.add_tag(sandbox.store, cid, TAG)
            admin.set_attribute(sandbox.store, renamed, "name", old_name)


def test_cli_formats_and_dry_run(sandbox: Sandbox, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshot", "@vip", *options(sandbox, workdir)]) == 0
    newcomer = outsiders(sandbox, 1)[0]
    admin.add_tag(sandbox.store, newcomer, TAG)
    try:
        capsys.readouterr()
        assert main(["diff", "@vip", "--dry-run", "--format", "ndjson", *options(sandbox, workdir)]) == 0
        out, err = capsys.readouterr()
        [event] = [json.loads(line) for line in out.splitlines()]
        assert event["event"] == "entered" and event["id"] == str(newcomer) and set(event) >= {"at", "name"}
        assert "dry run: nothing recorded" in err
        assert main(["diff", "@vip", "--format", "csv", *options(sandbox, workdir)]) == 0
        out, _ = capsys.readouterr()
        assert out.splitlines()[0] == "id,event,at,name,net_revenue,previous" and len(out.splitlines()) == 2
        assert main(["diff", "@vip", "--format", "json", *options(sandbox, workdir)]) == 0
        assert json.loads(capsys.readouterr()[0]) == []
    finally:
        admin.remove_tag(sandbox.store, newcomer, TAG)


def test_changed_definition_needs_acceptance(
    sandbox: Sandbox, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snapshot", "@vip", *options(sandbox, workdir)]) == 0
    (workdir / "kql.toml").write_text('[segments.vip]\nquery = "has_tag(tag_4) select name, net_revenue"\n')
    capsys.readouterr()
    assert main(["diff", "@vip", *options(sandbox, workdir)]) == 2
    err = capsys.readouterr().err
    assert "--accept-new-definition" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["diff", "@vip", "--dry-run", "--format", "ndjson", *options(sandbox, workdir)]) == 0
    shown = capsys.readouterr()
    assert "new definition shown" in shown.err and shown.out
    assert main(["diff", "@vip", "--accept-new-definition", "--format", "ndjson", *options(sandbox, workdir)]) == 0
    capsys.readouterr()
    assert main(["diff", "@vip", "--format", "ndjson", *options(sandbox, workdir)]) == 0  # the new baseline
    assert capsys.readouterr().out == ""
    with pytest.raises(DefinitionChanged), client(sandbox) as c:
        (workdir / "kql.toml").write_text('[segments.vip]\nquery = "has_tag(tag_5)"\n')
        with c.diff("@vip", state=workdir / "state.sqlite3", segments=workdir / "kql.toml"):
            pass


def test_expression_snapshots_need_a_name_and_bad_state_is_one_line(
    sandbox: Sandbox, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snapshot", "has_tag(tag_1)", *options(sandbox, workdir)]) == 2
    assert "--as NAME" in capsys.readouterr().err
    assert main(["snapshot", "has_tag(tag_1)", "--as", "tagged", *options(sandbox, workdir)]) == 0
    assert main(["diff", "@tagged", "--format", "ndjson", *options(sandbox, workdir)]) == 0  # the stored definition
    capsys.readouterr()
    bad = workdir / "not-a-db"
    bad.write_text("hello, this is not SQLite" * 100)
    assert main(["diff", "@vip", *options(sandbox, workdir), "--state", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "--state" in err and len(err.strip().splitlines()) == 1


def test_schema_is_migrated_and_newer_files_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with StateStore(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, [*MIGRATIONS, "ALTER TABLE snapshots ADD COLUMN note TEXT"]) == len(MIGRATIONS)
    assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(snapshots)")]
    conn.close()
    with pytest.raises(StateError, match="newer than this kql"):
        StateStore(path)


def test_busy_segment_exits_6_and_old_snapshots_are_pruned(
    sandbox: Sandbox, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = workdir / "elsewhere" / "state.sqlite3"
    monkeypatch.setenv("KQL_STATE", str(state))  # no --state: the environment's file
    opts = [o for o in options(sandbox, workdir) if o != str(workdir / "state.sqlite3") and o != "--state"]
    for _ in range(3):
        assert main(["snapshot", "@vip", "--keep", "2", *opts]) == 0
    assert main(["snapshot", "--list", "vip", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [s["id"] for s in listed] == [2, 3] and state.exists()
    with StateStore(state) as store, store.lock("vip"):  # as a watcher in the middle of a delivery would
        assert main(["diff", "@vip", "--format", "ndjson", *opts]) == 6
    err = capsys.readouterr().err
    assert "busy" in err and f"pid {os.getpid()}" in err
    assert main(["diff", "@vip", "--format", "ndjson", *opts]) == 0  # released

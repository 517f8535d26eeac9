"""``kql run`` as a user meets it: exit codes, messages on stderr, data on stdout or an atomic file."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kql.cli.run import main
from tests.executor.fakeapi import TOKEN, FakeAPI, Reply, Seen


def run(api: FakeAPI | str, *args: str, token: str | None = TOKEN) -> int:
    base = api if isinstance(api, str) else api.base_url
    argv = [*args, "--base-url", base, "--retries", "1"]
    if token:
        argv += ["--token", token]
    return main(argv)


def test_ndjson_when_piped(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(api, "limit 3 select name") == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": "250", "name": "Customer 250"},
        {"id": "249", "name": "Customer 249"},
        {"id": "248", "name": "Customer 248"},
    ]
    assert err == ""  # no progress bar off a terminal


def test_401_is_exit_3_with_message_and_no_token(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.hook = lambda s: Reply(
        401, {"errors": [{"status": "401", "title": "Unauthorized", "detail": f"token {s.token} has been revoked"}]}
    )
    assert run(api, "limit 3") == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "401 Unauthorized: token *** has been revoked" in err
    assert TOKEN not in err and "Traceback" not in err


def test_400_is_exit_3_with_the_api_detail(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.hook = lambda s: Reply(
        400,
        {
            "errors": [
                {
                    "status": "400",
                    "title": "Bad Request",
                    "detail": "site not found",
                    "source": {"parameter": "filter[site_id]"},
                }
            ]
        },
    )
    assert run(api, "site = 99") == 3
    err = capsys.readouterr().err
    assert "400 Bad Request: site not found (parameter filter[site_id])" in err
    assert TOKEN not in err


def test_nothing_listening_is_exit_4(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run(f"http://127.0.0.1:{port}", "limit 3") == 4
    err = capsys.readouterr().err
    assert "could not connect" in err and "after 2 attempts" in err and "Traceback" not in err


def test_server_failing_after_retries_is_exit_4(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.hook = lambda s: Reply(
        502, b"<html><head><title>Bad Gateway</title></head></html>", {"Content-Type": "text/html"}
    )
    assert run(api, "") == 4
    assert "502 Bad Gateway" in capsys.readouterr().err


def test_output_failing_half_way_leaves_no_file(
    api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def hook(seen: Seen) -> Reply | None:
        return Reply(400, {"errors": [{"title": "Bad Request"}]}) if seen.page == 3 else None

    api.hook = hook
    target = tmp_path / "out.ndjson"
    assert run(api, "", "--max-page-size", "50", "--concurrency", "1", "--output", str(target)) == 3
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_output_replaces_atomically(api: FakeAPI, tmp_path: Path) -> None:
    target = tmp_path / "customers.csv"
    target.write_text("old contents\n")
    assert run(api, "select name, email", "--output", str(target)) == 0
    rows = list(csv.reader(target.open()))
    assert rows[0] == ["id", "name", "email"] and len(rows) == 251  # csv from the extension
    assert [p.name for p in tmp_path.iterdir()] == ["customers.csv"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600) or os.umask(0o022) == 0o077


def test_plain_http_to_a_remote_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["limit 1", "--base-url", "http://api.example.com", "--token", TOKEN]) == 2
    err = capsys.readouterr().err
    assert "refusing plain http://" in err and TOKEN not in err


def test_no_credentials_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("KAJABI_TOKEN", "KAJABI_CLIENT_ID", "KAJABI_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["limit 1"]) == 2
    assert "no credentials" in capsys.readouterr().err


def test_token_from_environment(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAJABI_TOKEN", TOKEN)
    monkeypatch.setenv("KAJABI_SITE_ID", "42")
    assert run(api, "limit 2", token=None) == 0
    assert api.requests[0].params["filter[site_id]"] == "42"


def test_oauth_from_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.executor.fakeapi import serving

    monkeypatch.delenv("KAJABI_TOKEN", raising=False)
    monkeypatch.setenv("KAJABI_CLIENT_ID", "cid")
    monkeypatch.setenv("KAJABI_CLIENT_SECRET", "csecret-123")
    with serving(10, token=None, client_id="cid", client_secret="csecret-123") as api:
        assert run(api, "", token=None) == 0
    assert len(capsys.readouterr().out.splitlines()) == 10


def test_invalid_query_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["opend(bc_9)", "--sandbox"]) == 2
    assert "error[E" in capsys.readouterr().err


def test_limit_flag_and_table(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(api, "", "--limit", "2", "--format", "table") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "email", "created_at"] and len(lines) == 4
    assert len(api.requests) == 1


def test_json_format(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(api, "limit 3 select email", "--format", "json") == 0
    newest = (250, 249, 248)
    assert json.loads(capsys.readouterr().out) == [{"id": str(i), "email": f"c{i}@example.com"} for i in newest]


def test_sandbox_end_to_end_in_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kql", "run", "--sandbox", "limit 3 select name", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)] == ["1000", "999", "998"]  # newest first


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--site", "abc"], {}, "a site id is a positive number"),
        (["--base-url", "http://127.0.0.1:99999"], {"KAJABI_TOKEN": "t"}, "port must be 1-65535"),
        ([], {"KAJABI_CLIENT_ID": "id"}, "KAJABI_CLIENT_ID is set but KAJABI_CLIENT_SECRET is not"),
    ],
)
def test_bad_settings_are_usage_errors_before_any_request(args: list[str], env: dict[str, str], says: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAJABI_")}
    done = subprocess.run(
        [sys.executable, "-m", "kql", "run", "limit 1", *args],
        capture_output=True, text=True, timeout=60, env={**clean, **env},
    )  # fmt: skip
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr


def test_a_base_url_copied_with_v1_is_not_doubled(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(api.base_url + "/v1/", "limit 1") == 0
    assert json.loads(capsys.readouterr().out)["id"] == "250"


def test_output_dash_is_stdout_and_empty_is_an_error(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(api, "limit 1", "-o", "-") == 0
    assert json.loads(capsys.readouterr().out)["id"] == "250"
    assert run(api, "limit 1", "-o", "") == 2
    assert "--output needs a file name" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "value", "says"), [
    ("run", "abc", "expected a whole number, not 'abc'"),
    ("explain", "0", "must be at least 1, not 0"),
])  # fmt: skip
def test_max_requests_is_a_positive_number_everywhere(command: str, value: str, says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kql", command, "--max-requests", value, "opened(bc_1)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and says in done.stderr

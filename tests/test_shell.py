"""``kql shell`` through a real pseudo-terminal: pexpect runs ``python -m kql shell``, pyte (a
terminal emulator) keeps the screen it draws, and the tests read that screen as a user would.

HTTP goes to the real sandbox on 127.0.0.1 (started by the shell itself), or to a small
purpose-built server for failures. No wall-clock assertions: every wait is for text to appear,
with a generous timeout; prompt_toolkit's cursor position request is off (PROMPT_TOOLKIT_NO_CPR).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kql.planning.segments_file
from tests.conftest import ROOT

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")
pytest.importorskip("prompt_toolkit")

ROWS, COLS = 24, 100
TIMEOUT = 30.0
_NEW_PROMPT = "\x1b[?2004h"  # prompt_toolkit turns bracketed paste on as each prompt starts
CTRL_C, CTRL_D, ESC, ENTER, TAB, UP = "\x03", "\x04", "\x1b", "\r", "\t", "\x1b[A"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAJABI_", "KQL_"))}
    env.update(
        TERM="xterm-256color",
        PROMPT_TOOLKIT_NO_CPR="1",
        KQL_SHELL_HISTORY=str(tmp_path / "history"),
        PYTHONPATH=str(ROOT),
        COLUMNS=str(COLS),
        LINES=str(ROWS),
    )
    env.update(extra)
    return env


class Terminal:
    """A shell session on a pseudo-terminal: keys in, a screen (and the raw output) out."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.output = ""  # everything written, escape sequences and all
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "kql", "shell", *args],
            env=env,
            cwd=str(cwd),
            dimensions=(ROWS, COLS),
            encoding="utf-8",
            codec_errors="replace",
            timeout=TIMEOUT,
        )
        self.child.logfile_read = self  # every read is fed to the screen

    # pexpect's logfile protocol
    def write(self, data: str) -> None:
        self.output += data
        self.stream.feed(data)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def wait(self, wanted: str) -> str:
        """Read until ``wanted`` is on the screen; the screen."""
        deadline = time.monotonic() + TIMEOUT
        while wanted not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted!r} did not appear; the screen:\n{self.text()}")
            self._read()
        return self.text()

    def run(self, line: str) -> str:
        """Type ``line``, press Enter, wait for the next prompt; what was printed in between."""
        self.send(line)
        self.wait_input(line.splitlines()[-1])
        start = len(self.output)
        self.send(ENTER)
        # A new prompt turns bracketed paste on again, then draws "kql>".
        deadline = time.monotonic() + TIMEOUT
        while "kql>" not in self.output[start:].partition(_NEW_PROMPT)[2]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no new prompt after {line!r}; the screen:\n{self.text()}")
            self._read()
        return _plain(self.output[start:].partition(_NEW_PROMPT)[0])

    def input_line(self) -> str:
        """The line the cursor is on (the input being typed)."""
        return str(self.screen.display[self.screen.cursor.y]).rstrip()

    def wait_input(self, wanted: str, exact: bool = False) -> None:
        """Read until the line being typed (the cursor's) holds ``wanted`` (or is it, exactly)."""
        deadline = time.monotonic() + TIMEOUT
        line = self.input_line
        while (line() != wanted.rstrip()) if exact else (wanted.rstrip() not in line()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted!r} is not being typed; the screen:\n{self.text()}")
            self._read()

    def _read(self) -> None:
        try:
            self.child.read_nonblocking(65536, timeout=0.2)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            raise AssertionError(f"the shell ended; the screen:\n{self.text()}") from None

    def quit(self) -> int:
        self.send(CTRL_D)
        self.child.expect(pexpect.EOF)
        self.child.close()
        status: int = self.child.exitstatus
        return status


def _plain(text: str) -> str:
    """``text`` without escape sequences (what a log of the session would read as)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x08", "", text)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Terminal]:
    terminal = Terminal(["--sandbox"], _env(tmp_path), tmp_path)
    terminal.wait("kql>")
    yield terminal
    if terminal.child.isalive():
        terminal.child.terminate(force=True)


def test_prompt_then_ctrl_d_exits_0(shell: Terminal) -> None:
    assert "kql shell on the sandbox" in shell.text()
    assert shell.quit() == 0


def test_completion_as_you_type_and_with_tab(shell: Terminal) -> None:
    shell.send("has_t")
    screen = shell.wait("Carries the contact tag")  # the menu, while typing
    assert "has_tag" in screen
    shell.send(TAB)
    shell.wait("kql> has_tag(")
    shell.send("t")  # after the parenthesis: the id kind
    shell.wait("tag_")
    shell.send(CTRL_C)  # clears the input, stays in the shell
    shell.wait("kql>")
    output = shell.run(".help")
    assert ".explain" in output and "Alt-Enter" in output
    assert shell.quit() == 0


def test_errors_as_you_type_and_with_carets_on_enter(shell: Terminal) -> None:
    shell.send("site = 1 and opend(bc_9)")
    screen = shell.wait("error[E102] at 1:14: unknown filter 'opend'")
    assert "did you mean 'opened' or 'dropped'?" in screen
    shell.send(ENTER)
    shell.wait("hint: did you mean 'opened' or 'dropped'?")
    lines = shell.text().splitlines()
    at = lines.index("  site = 1 and opend(bc_9)")
    assert lines[at + 1] == "               ^^^^^"
    assert "error[E102]: unknown filter 'opend'" in lines[at - 1]
    # An unknown command says so, with a hint.
    assert "unknown command '.countt' (did you mean '.count'?)" in shell.run(".countt")
    assert shell.child.isalive()


def test_a_query_prints_a_table_and_the_row_count(shell: Terminal) -> None:
    output = shell.run("select name, email sort -name limit 3")
    lines = [line for line in output.replace("\r", "").splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if line.startswith("id ") and "name" in line)
    assert lines[header].split() == ["id", "name", "email"]
    rows = lines[header + 2 : header + 5]
    assert len(rows) == 3 and all("@" in row for row in rows)
    assert "(3 customers," in output


def test_meta_commands(shell: Terminal) -> None:
    from kql import Client
    from kql.sandbox import running

    with running() as sandbox, Client(sandbox.base_url, token=sandbox.token or "sandbox") as client:
        expected = client.count("net_revenue > 100")  # the shell's sandbox has the same data
    assert f"{expected:,}" in shell.run(".count net_revenue > 100")
    assert f"{expected:,}" in shell.run(".count")  # the last query
    explained = shell.run(".explain opened(bc_9) or clicked(bc_10)")
    assert "2 listing(s) in 2 branch(es)" in explained
    assert "filter[opened_email_broadcast_id]=9" in explained
    assert "format: csv" in shell.run(".format csv")
    output = shell.run("select name sort name limit 2").replace("\r", "")
    assert "\nid,name\n" in output
    assert "(2 customers," in output
    assert "unknown format 'xml'" in shell.run(".format xml")
    assert "no segments" in shell.run(".segments")
    assert shell.quit() == 0


def test_multi_line_queries(shell: Terminal) -> None:
    shell.send("site = 1 and")
    shell.wait("kql> site = 1 and")
    shell.send(ENTER)  # incomplete: a new line, not a run
    shell.wait_input("...>")
    shell.send("has_tag(tag_5)")
    shell.wait_input("...> has_tag(tag_5)")
    shell.send(ESC + ENTER)  # complete, but Alt-Enter asks for a new line
    shell.wait_input("...>", exact=True)
    output = shell.run("limit 2")
    assert "(2 customers," in output
    assert "(1 customers" not in output
    output = shell.run("limit 1;")  # a final ; runs too, and is not part of the query
    assert "(1 customer," in output


def test_segments_are_loaded_listed_and_completed(tmp_path: Path) -> None:
    (tmp_path / "kql.toml").write_text(
        '[segments.vip]\nquery = "net_revenue > 500"\ndescription = "Top spenders"\n', encoding="utf-8"
    )
    terminal = Terminal(["--sandbox"], _env(tmp_path), tmp_path)
    terminal.wait("kql>")
    output = terminal.run(".segments")
    assert "@vip" in output and "Top spenders" in output and "net_revenue > 500" in output
    terminal.send("@v")
    terminal.send(TAB)
    terminal.wait("kql> @vip")
    assert "customers," in terminal.run(" limit 2")
    assert terminal.quit() == 0


def test_history_persists_across_sessions(tmp_path: Path) -> None:
    first = Terminal(["--sandbox"], _env(tmp_path), tmp_path)
    first.wait("kql>")
    first.run('email ~ "gmail" limit 1')
    assert first.quit() == 0
    assert 'email ~ "gmail" limit 1' in (tmp_path / "history").read_text(encoding="utf-8")
    second = Terminal(["--sandbox"], _env(tmp_path), tmp_path)
    second.wait("kql>")
    second.send(UP)
    second.wait_input('kql> email ~ "gmail" limit 1')
    second.send(CTRL_C)  # Ctrl-D leaves from an empty line only
    second.wait_input("kql>", exact=True)
    assert second.quit() == 0


class _Slow(http.server.BaseHTTPRequestHandler):
    """A customers API that answers nothing until released (cancelling), or refuses (401)."""

    arrived = threading.Event()
    release = threading.Event()
    refuse = False

    def do_GET(self) -> None:
        if not self.refuse:
            type(self).arrived.set()
            type(self).release.wait(TIMEOUT)
        body = json.dumps({"errors": [{"title": "Unauthorized", "detail": "bad token secret-token-1234"}]})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Slow]]]:
    handler = type("Handler", (_Slow,), {"arrived": threading.Event(), "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    handler.release.set()
    server.shutdown()
    server.server_close()


def test_ctrl_c_cancels_a_running_query_and_api_errors_are_one_line(
    tmp_path: Path, api: tuple[str, type[_Slow]]
) -> None:
    url, handler = api
    terminal = Terminal(["--base-url", url], _env(tmp_path, KAJABI_TOKEN="secret-token-1234"), tmp_path)
    terminal.wait("kql>")
    terminal.send("limit 5")
    terminal.wait("kql> limit 5")
    terminal.send(ENTER)
    assert handler.arrived.wait(TIMEOUT), "the query never reached the API"
    terminal.send(CTRL_C)
    terminal.wait("cancelled")
    handler.release.set()
    handler.refuse = True
    output = terminal.run("site = 1")
    errors = [line for line in output.replace("\r", "").splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "401" in errors[0], output
    assert "Traceback" not in terminal.output
    assert "secret-token-1234" not in terminal.output
    assert terminal.quit() == 0


def test_without_prompt_toolkit_exits_2_naming_the_extra() -> None:
    code = "import sys; sys.modules['prompt_toolkit'] = None; from kql.cli.app import main; sys.exit(main(['shell']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert done.returncode == 2
    message = 'kql shell: needs prompt_toolkit, which is optional: pip install "kql[shell]"'
    assert done.stderr.strip().splitlines() == [message]


def test_stdin_not_a_terminal_runs_the_inputs_as_a_script(tmp_path: Path) -> None:
    script = "limit 2\n.count site = 1\n.format csv\nselect name\nlimit 1;\nopend(bc_9)\n"
    done = subprocess.run(
        [sys.executable, "-m", "kql", "shell", "--sandbox"],
        input=script,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=TIMEOUT,
    )
    assert done.returncode == 2, done.stderr  # the last failure: the unknown filter
    assert "1,000" in done.stdout
    assert "id,name\n" in done.stdout
    assert "unknown filter 'opend'" in done.stderr and "Traceback" not in done.stderr


# The prompt's own functions on any text: they run at each key press and must never fail.

_ALPHABET = st.sampled_from(list("abcdefghst_ ()=<>!~@#\"'\\;.,-0123456789\n\t\x00é"))
_WORDS = st.sampled_from(
    ["site", "has_tag", "opened", "bc_9", "and", "or", "not", "sort", ".count ", ".format ", "@vip"]
)
_TEXT = st.lists(st.one_of(_ALPHABET, _WORDS), max_size=30).map("".join)


@given(_TEXT, st.data())
@settings(max_examples=300)
def test_colours_errors_and_completion_never_fail(text: str, data: st.DataObject) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from kql.cli.shell.prompt import KQLCompleter, _fragments, problem_line
    from kql.cli.shell.text import Checker

    checker = Checker(kql.planning.segments_file.from_text('[segments.vip]\nquery = "net_revenue > 500"\n'))
    assert "".join(fragment[1] for fragment in _fragments(text, checker)) == text
    cursor = data.draw(st.integers(0, len(text)))
    found = problem_line(text, checker, cursor)
    assert found is None or (0 <= found[0] <= len(text) and "\n" not in found[1])
    assert isinstance(checker.is_complete(text), bool)
    for event in (CompleteEvent(), CompleteEvent(completion_requested=True)):
        for completion in KQLCompleter(checker).get_completions(Document(text, cursor), event):
            assert -cursor <= completion.start_position <= 0

"""Shell completion inside a query, through the real shells: the generated scripts, their candidates,
and a query typed with TAB in an interactive shell on a pseudo-terminal that then runs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

BIN = Path(sys.executable).parent
SEGMENTS = '[segments.vip]\nquery = "net_revenue > 500"\ndescription = "Top spenders"\n'


def _need(shell: str) -> str:
    found = shutil.which(shell)
    if found is None:
        pytest.skip(f"{shell} is not installed")
    if shutil.which("kql", path=str(BIN)) is None:
        pytest.skip(f"no kql console script beside {sys.executable} (pip install -e .)")
    return found


def _env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "SYSTEMROOT")}
    return {**keep, "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin", "HOME": str(home), "TERM": "dumb",
            "KQL_SEGMENTS": str(home / "kql.toml")}  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "kql.toml").write_text(SEGMENTS)
    return tmp_path


def _script(shell: str, home: Path) -> Path:
    path = home / f"kql.{shell}"
    done = subprocess.run([BIN / "kql", "completion", shell], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    path.write_text(done.stdout)
    return path


# ---- bash: COMP_WORDS / COMP_LINE / COMP_POINT set by hand, COMPREPLY read back ------------------


def _bash_reply(home: Path, *words: str) -> list[str]:
    script = _script("bash", home)
    line = " ".join(words)
    current = words[-1]
    readline_word = current[1:] if current[:1] in "'\"" else current  # readline's word starts after a quote
    probe = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(line)}; COMP_POINT={len(line)}\n"
        f"_kql kql {shlex.quote(readline_word)} {shlex.quote(words[-2])}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, timeout=60,
                          env=_env(home), cwd=home)  # fmt: skip
    assert done.stderr == ""
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(("words", "expected"), [
    # An unquoted query word opens a quote, so ( and spaces need no backslashes.
    (("kql", "compile", "has_t"), ["'has_tag("]),
    # Inside a quote: replacements for readline's word; one twin with a space keeps the quote open.
    (("kql", "compile", "'site = 1 and has_t"), ["site = 1 and has_tag(", "site = 1 and has_tag( "]),
    (("kql", "run", "--sandbox", "'engagement = h"), ["engagement = healthy", "engagement = healthy "]),
    (("kql", "check", "'opened("), ["opened(bc_", "opened(bc_ "]),
    (("kql", "explain", "'subscribed sort -la"), ["subscribed sort -last_request_at"] * 2),
    (("kql", "run", "@v"), ["'@vip"]),
    (("kql", "fmt", "'used_coupon(\"SPR"), ['used_coupon("SPR"', 'used_coupon("SPR" ']),
    # Options and their values are still the script's own.
    (("kql", "run", "--format", "n"), ["ndjson"]),
    (("kql", "com"), ["compile", "complete", "completion"]),
])  # fmt: skip
def test_bash_candidates(home: Path, words: tuple[str, ...], expected: list[str]) -> None:
    _need("bash")
    reply = _bash_reply(home, *words)
    if len(expected) == 2 and expected[0] == expected[1]:
        expected = [expected[0], expected[0] + " "]
    assert reply == expected


def test_bash_offers_every_kind_at_the_start_of_a_query(home: Path) -> None:
    _need("bash")
    reply = set(_bash_reply(home, "kql", "compile", "'"))
    assert {"@vip", "subscribed", "has_tag(", "net_revenue", "not", "("} <= reply


def test_bash_options_of_a_query_command(home: Path) -> None:
    _need("bash")
    assert {"--sandbox", "--format", "--no-pager", "--file"} <= set(_bash_reply(home, "kql", "run", "--"))


# ---- the real shells, typed into on a pseudo-terminal ---------------------------------------------

# Steps: (keys sent, text the shell then shows). Each TAB waits for what it inserts to appear.
STEPS = {
    "unquoted": [("kql compile has_t\t", "'has_tag("), ("tag_5)'\r", "filter[has_tag_id]=5")],
    "quoted": [
        ("kql compile 'engagement = h\t", "ealthy"),
        (" and subscri\t", "bed"),
        ("'\r", "filter[healthy_contacts_with_open_data]=true&filter[subscribed]=true"),
    ],
    "segment": [("kql compile '@v\t", "ip"), (" sort -net_r\t", "evenue"), ("'\r", "_than]=500&sort=-net_revenue")],
}
# fish escapes instead of opening a quote: the rest of the word is typed escaped too.
FISH_UNQUOTED = [("kql compile has_t\t", "has_tag\\("), ("tag_5\\)\r", "filter[has_tag_id]=5")]


def _interactive(shell: str, home: Path) -> object:
    path = _need(shell)
    script = _script(shell, home)
    if shell == "bash":
        args, setup = ["--norc", "--noprofile", "-i"], f"source {script}"
    elif shell == "zsh":
        args, setup = ["-f", "-i"], f"autoload -Uz compinit && compinit -u -D; source {script}"
    else:
        args, setup = ["--no-config", "-i"], f"source {script}"
    env = {**_env(home), "PS1": "READY$ ", "PROMPT": "READY$ "}
    child = pexpect.spawn(path, args, env=env, cwd=str(home), encoding="utf-8", dimensions=(40, 200), timeout=60)
    if shell == "fish":
        child.sendline("function fish_prompt; echo -n 'READY$ '; end")
    child.sendline(setup + "; echo SOUR''CED")  # the echoed line does not match, only its output
    child.expect_exact("SOURCED")
    child.expect_exact("READY$ ")
    return child


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
@pytest.mark.parametrize("case", list(STEPS))
def test_a_query_typed_with_tab_runs(shell: str, home: Path, case: str) -> None:
    child = _interactive(shell, home)
    steps = FISH_UNQUOTED if shell == "fish" and case == "unquoted" else STEPS[case]
    try:
        for keys, shown in steps:
            child.send(keys)
            child.expect_exact(shown)
    finally:
        child.sendline("exit")
        child.close(force=True)


# ---- fish: `complete -C` asks fish itself which candidates it offers --------------------------


@pytest.mark.parametrize(("line", "expected"), [
    # One candidate comes with a twin ending in a space, so that fish keeps the quote open.
    ("kql compile 'site = 1 and has_t", {"site = 1 and has_tag(", "site = 1 and has_tag( "}),
    ("kql run @v", {"@vip", "@vip "}),
    ("kql explain 'engagement = ", {f"engagement = {v}" for v in ("healthy", "passive", "unengaged", "inactive")}),
    ("kql run --format ", {"csv", "json", "ndjson", "table"}),
])  # fmt: skip
def test_fish_candidates(home: Path, line: str, expected: set[str]) -> None:
    _need("fish")
    script = _script("fish", home)
    probe = f"source {shlex.quote(str(script))}; complete -C {shlex.quote(line)}"
    done = subprocess.run(["fish", "--no-config", "-c", probe], capture_output=True, text=True, timeout=60,
                          env=_env(home), cwd=home)  # fmt: skip
    offered = {entry.split("\t")[0] for entry in done.stdout.splitlines()}
    assert expected <= offered, offered

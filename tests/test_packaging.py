"""kql as a user meets it: a wheel, installed into a fresh venv, run from elsewhere."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("kql-*.whl")
    return built


def test_wheel_ships_the_grammar_and_registry(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "kql/grammar/kql.lark" in names
    assert "kql/registry/registry.toml" in names


def test_installed_console_script_works_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True, timeout=300)
    # Dependencies come from this interpreter's site-packages; kql itself only from the wheel.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [env_dir / "bin" / "kql", "compile", "site = 123 and opened(bc_9)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "filter[site_id]=123&filter[opened_email_broadcast_id]=9"
    where = subprocess.run(
        [python, "-c", "import kql.language.parser as p; print(p._grammar_path())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(site), "the installed kql must use the grammar shipped in the wheel"


def test_wheel_ships_the_guides_for_kql_help(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    guides = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert guides and {f"kql/docs/{name}" for name in guides} <= set(names)
    assert "kql/docs/query.schema.json" in names

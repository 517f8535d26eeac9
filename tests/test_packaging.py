"""kql as a user meets it: a wheel (and an sdist), installed into a fresh venv, used from elsewhere.

One module-scoped build of each: the wheel from the source tree, and the sdist with the
wheel built from it (``python -m build`` builds the wheel from the sdist it just made);
one venv, holding the wheel built from the sdist, serves every test.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

# One worker builds the wheels and the venv once for the module (with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("packaging")

INTEGRATOR = '''\
"""A program that embeds kql, as an integrator would write it; mypy --strict must accept it."""

from __future__ import annotations

import kql
from kql import Completion, KQLError, Plan, Segments


def params(text: str) -> list[tuple[str, str]]:
    return kql.compile(text).params


def problems(text: str) -> list[dict[str, object]]:
    try:
        kql.compile(text)
    except KQLError as error:
        return [problem.to_dict() for problem in error.errors] + [error.to_dict()]
    return []


def planned(text: str, segments: Segments | None = None) -> Plan:
    return kql.plan(text, segments=segments, max_requests=10)


def labels(text: str) -> list[str]:
    found: list[Completion] = kql.complete(text)
    return [c.label for c in found]


def count(segments: Segments) -> int:
    with kql.Client(base_url="http://127.0.0.1:9", token="t0ken", site_id=1) as client:
        return client.count("@vip", segments=segments)


def configured() -> dict[str, object]:
    try:
        kql.Client.from_env({})
    except kql.ExecutorError as error:
        return error.to_dict()
    return {}


query: kql.Query = kql.parse("site = 1 and opened(bc_9)")
assert params("site = 1") == [("filter[site_id]", "1")]
assert problems("nope = 1")[0]["code"] == "E101"
assert planned("site = 1 or site = 2").to_dict()
assert "site" in labels("si")
assert configured()["code"] == "ConfigError"
print("ok")
'''


def _build(args: list[str], out: Path, cwd: Path = ROOT) -> None:
    subprocess.run(
        [sys.executable, "-m", *args, str(out)], cwd=cwd, check=True, timeout=300, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the source tree."""
    out = tmp_path_factory.mktemp("wheel")
    _build(["pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(ROOT), "-w"], out)
    (built,) = out.glob("kql-*.whl")
    return built


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from that sdist (not from the tree)."""
    out = tmp_path_factory.mktemp("dist")
    _build(["build", "--no-isolation", "--outdir"], out)
    (sdist,) = out.glob("kql-*.tar.gz")
    (built,) = out.glob("kql-*.whl")
    return sdist, built


@pytest.fixture(scope="module")
def installed(dist: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the venv's python, its site-packages) with kql installed from the sdist's wheel."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(dist[1])], check=True, timeout=300)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Dependencies come from this interpreter's site-packages; kql itself only from the wheel.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, Path(site)


def test_wheel_ships_the_grammar_registry_types_and_license(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "kql/grammar/kql.lark" in names
    assert "kql/registry/registry.toml" in names
    assert "kql/py.typed" in names
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert "Apache License" in zipfile.ZipFile(wheel).read(f"{dist_info}/licenses/LICENSE").decode()


def test_sdist_holds_what_the_wheel_is_built_from(dist: tuple[Path, Path]) -> None:
    with tarfile.open(dist[0]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in (
        "grammar/kql.lark",
        "kql/registry/registry.toml",
        "kql/py.typed",
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
    ):
        assert needed in names, needed


def test_the_sdist_builds_the_same_wheel(wheel: Path, dist: tuple[Path, Path]) -> None:
    from_tree = sorted(zipfile.ZipFile(wheel).namelist())
    from_sdist = sorted(zipfile.ZipFile(dist[1]).namelist())
    assert from_sdist == from_tree


def test_installed_console_script_works_from_another_directory(installed: tuple[Path, Path], tmp_path: Path) -> None:
    python, site = installed
    done = subprocess.run(
        [python.parent / "kql", "compile", "site = 123 and opened(bc_9)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "filter[site_id]=123&filter[opened_email_broadcast_id]=9"
    where = subprocess.run(
        [python, "-c", "import kql.language.tables as t; print(t.grammar_path())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(site)), "the installed kql must use the grammar shipped in the wheel"


def test_mypy_strict_accepts_an_integrator_against_the_installed_wheel(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = installed
    script = tmp_path / "integrator.py"
    script.write_text(INTEGRATOR)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--python-executable",
            str(python),
            "--warn-unused-ignores",
            "--config-file",
            "",
            str(script),
        ],
        cwd=tmp_path,  # away from the source tree: kql must come from the venv
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run([python, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr


def test_wheel_ships_the_guides_for_kql_help(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    guides = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert guides and {f"kql/docs/{name}" for name in guides} <= set(names)
    assert "kql/docs/query.schema.json" in names

"""The public API as an integrator meets it: the names, laziness, from_env, errors as data."""

from __future__ import annotations

import pydoc
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kql
from kql.execute.environment import client_options
from tests.conftest import ROOT

SECRET = "s3cr3t-value-never-shown"


def _documented_names() -> list[str]:
    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- public-names -->\n```\n(.*?)```", text, re.DOTALL)
    assert match, "docs/python.md lists the public names after <!-- public-names -->"
    return match.group(1).split()


def test_all_is_the_documented_list() -> None:
    assert sorted(kql.__all__) == sorted(_documented_names())
    assert len(set(kql.__all__)) == len(kql.__all__)


@pytest.mark.parametrize("name", kql.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(kql, name) is not None
    assert name in dir(kql)


def test_every_lazy_name_is_also_imported_for_type_checkers() -> None:
    source = (ROOT / "kql" / "__init__.py").read_text(encoding="utf-8")
    checking = source[source.index("if TYPE_CHECKING:") : source.index("__all__ = [")]
    for name in kql._LAZY:
        assert re.search(rf"\b{name}\b", checking), f"{name} is served lazily but invisible to mypy"
        assert name in kql.__all__, f"{name} is served lazily but not public"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kql.Nope  # noqa: B018


def test_import_stays_light() -> None:
    script = (
        "import sys, kql\n"
        "heavy = lambda: sorted(m for m in ('httpx', 'lark') if m in sys.modules)\n"
        "print(heavy())\n"
        "kql.compile('site = 1')\n"
        "print('httpx' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["[]", "False"]


def test_help_documents_every_constructor_parameter() -> None:
    for cls in (kql.Client, kql.AsyncClient):
        text = pydoc.render_doc(cls)
        for parameter in (
            "base_url",
            "token",
            "client_id",
            "client_secret",
            "site_id",
            "timeout",
            "concurrency",
            "retry",
            "max_page_size",
            "insecure",
            "lookahead",
        ):
            assert f"``{parameter}``" in text, (cls, parameter)
        assert "from_env" in text


# -- from_env ---------------------------------------------------------------------------


def test_from_env_reads_the_token_base_url_and_site() -> None:
    environ = {"KAJABI_TOKEN": SECRET, "KAJABI_BASE_URL": "http://127.0.0.1:9", "KAJABI_SITE_ID": "site_42"}
    with kql.Client.from_env(environ, timeout=5) as client:
        assert str(client.base_url).startswith("http://127.0.0.1:9")
        assert client.site_id == "42" and client.timeout == 5
        assert SECRET not in repr(client)


def test_from_env_oauth_and_defaults() -> None:
    options = client_options({"KAJABI_CLIENT_ID": "id", "KAJABI_CLIENT_SECRET": SECRET})
    assert options == {
        "base_url": "https://api.kajabi.com",
        "client_id": "id",
        "client_secret": SECRET,
        "site_id": None,
    }


async def _async_from_env() -> str:
    async with kql.AsyncClient.from_env({"KAJABI_TOKEN": SECRET, "KAJABI_BASE_URL": "http://127.0.0.1:9"}) as client:
        return str(client.base_url)


def test_async_from_env() -> None:
    import asyncio

    assert asyncio.run(_async_from_env()).startswith("http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "no credentials in the environment: set KAJABI_TOKEN, or KAJABI_CLIENT_ID and KAJABI_CLIENT_SECRET"),
        ({"KAJABI_TOKEN": ""}, "no credentials in the environment"),
        ({"KAJABI_CLIENT_SECRET": SECRET}, "KAJABI_CLIENT_SECRET is set but KAJABI_CLIENT_ID is not"),
        ({"KAJABI_CLIENT_ID": SECRET}, "KAJABI_CLIENT_ID is set but KAJABI_CLIENT_SECRET is not"),
        ({"KAJABI_TOKEN": "t0ken", "KAJABI_SITE_ID": SECRET}, "KAJABI_SITE_ID must be a positive number"),
        ({"KAJABI_TOKEN": "t0ken", "KAJABI_SITE_ID": "0"}, "KAJABI_SITE_ID must be a positive number"),
    ],
)
def test_from_env_errors_name_the_variable_never_the_value(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(kql.ConfigError) as caught:
        kql.Client.from_env(environ)
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in str(caught.value.to_dict())


def test_the_constructor_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAJABI_TOKEN", SECRET)
    with pytest.raises(kql.ConfigError, match="no credentials"):
        kql.Client()


# -- segments through public arguments ----------------------------------------------------


def test_a_segment_without_segments_gets_library_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kql.toml").write_text('[segments.vip]\nquery = "net_revenue > 100"\n')
    monkeypatch.chdir(tmp_path)
    with kql.Client(token="t0ken", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(kql.KQLError) as caught:
            client.customers("@vip")
        assert caught.value.code == "E106"
        assert "segments=kql.load_segments('kql.toml')" in (caught.value.hint or "")
        segments = kql.load_segments("kql.toml")
        assert client.plan("@vip", segments=segments).single_request
    assert "filter[net_revenue_greater_than]=100" in kql.plan("@vip", segments="kql.toml").explain()
    assert "@vip" in [c.label for c in kql.complete("@", segments="kql.toml")]


# -- errors as data -------------------------------------------------------------------------


def test_kql_errors_to_dict_carries_every_problem() -> None:
    with pytest.raises(kql.KQLErrors) as caught:
        kql.compile("nope = 1 and other_nope = 2")
    data = caught.value.to_dict()
    assert data["code"] == "E101" and len(data["errors"]) == 2  # type: ignore[arg-type]
    assert [e["code"] for e in data["errors"]] == ["E101", "E101"]  # type: ignore[attr-defined]
    assert set(data) == {"code", "message", "span", "hint", "errors"}


def test_one_error_to_dict_lists_itself() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("site = ")
    data = caught.value.to_dict()
    assert data["errors"] == [{k: data[k] for k in ("code", "message", "span", "hint")}]


def test_executor_errors_to_dict() -> None:
    from kql.execute.errors import APIError

    body = b'{"errors": [{"status": "401", "title": "Unauthorized", "detail": "bad token ' + SECRET.encode() + b'"}]}'
    error = APIError.from_response(401, "Unauthorized", "application/json", body, secrets=[SECRET])
    data = error.to_dict()
    assert data["code"] == "APIError" and data["status"] == 401 and data["exit_code"] == 3
    assert data["errors"] == [{"status": 401, "title": "Unauthorized", "detail": "bad token ***", "source": None}]
    assert SECRET not in str(data)
    assert kql.TransportError("connection refused").to_dict() == {
        "code": "TransportError",
        "message": "connection refused",
        "exit_code": 4,
    }

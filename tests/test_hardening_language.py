"""Hostile input to the language and the offline CLI (issue 11, items 12-13): digits of other
scripts mean one thing everywhere, and ``kql compile --url`` checks the base URL as ``kql run`` does."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kql
from kql.execute.baseurl import check_base_url_text
from kql.execute.errors import ConfigError

# ---- digits: ASCII only, in every form -------------------------------------------------------

_OTHER_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())


@pytest.mark.parametrize(
    "text",
    [
        "net_revenue > ١٠٠.٥",  # a decimal used to be sent as written, digits and all
        "net_revenue > ١٠٠",  # an integer used to be converted to 100: now both are refused
        "has_tag(tag_٥)",
        "created_in_last(٣٠d)",
        "created_at >= ٢٠٢٤-01-31",
        "limit ٥",
        "page 1 size ٢٥",
    ],
)
def test_digits_of_other_scripts_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(text)
    assert caught.value.code == "E001"
    assert "digits 0-9" in caught.value.message
    bad = text[caught.value.span.start] if caught.value.span else ""
    assert caught.value.hint == f"write {unicodedata.decimal(bad)} for {bad!r}"


@settings(max_examples=200)
@given(_OTHER_DIGITS, st.sampled_from(["net_revenue > {}", "net_revenue > 1{}.5", "has_tag({})", "limit 1{}"]))
def test_no_digit_of_another_script_reaches_a_request(digit: str, template: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(template.format(digit))
    assert caught.value.code == "E001"


def test_digits_of_other_scripts_inside_strings_are_text() -> None:
    assert kql.compile('name ~ "١٠٠"').params == [("filter[name_contains]", "١٠٠")]


@pytest.mark.parametrize("value", [{"decimal": "١٠٠.٥"}, {"decimal": "1.٥"}, {"date": "٢٠٢٤-01-31"}])
def test_the_json_form_refuses_them_too(value: dict[str, str]) -> None:
    data = {"kql": 1, "filter": {"compare": {"field": "net_revenue", "op": ">", "value": value}}}
    with pytest.raises(kql.KQLError) as caught:
        kql.from_json(data)
    assert caught.value.code == "E009"


# ---- kql compile --url --base-url ------------------------------------------------------------


def _compile_url(base_url: str) -> subprocess.CompletedProcess[str]:
    # httpx must stay unimported: kql compile is the light path.
    code = (
        "import sys; from kql.cli.app import main\n"
        "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as exit:\n    rc = exit.code\n"
        "assert 'httpx' not in sys.modules, 'httpx was imported'; raise SystemExit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "compile", "--url", "--base-url", base_url, "subscribed"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("javascript:alert(1)//", "must be http(s)://host[:port]"),
        ("http://x\r\nX-Evil: 1", "must not contain '\\r'"),
        ("http://x y", "must not contain ' '"),
        ("file:///etc/passwd", "must be http(s)://host[:port]"),
        ("https://user:secret@api.kajabi.com", "must not carry credentials"),
        ("https://api.kajabi.com?x=1", "must not have a query or fragment"),
        ("https://api.kajabi.com:99999", "port must be 1-65535, not 99999"),
        ("https://api.kajabi.com:" + "9" * 5000, "port must be 1-65535, not 99999999…"),
        ("https://api.kajabi.com:abc", "the port is not a number"),
        ("https://[::1", "invalid base URL"),
    ],
)
def test_a_bad_base_url_is_a_usage_error(base_url: str, says: str) -> None:
    done = _compile_url(base_url)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert says in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("http://x\r\n", "http://x/v1/customers?filter[subscribed]=true"),  # surrounding space goes, as in kql run
        ("https://api.kajabi.com/", "https://api.kajabi.com/v1/customers?filter[subscribed]=true"),
        ("https://api.kajabi.com/v1", "https://api.kajabi.com/v1/customers?filter[subscribed]=true"),
        ("http://[::1]:8080", "http://[::1]:8080/v1/customers?filter[subscribed]=true"),
        ("https://proxy.example/kajabi/", "https://proxy.example/kajabi/v1/customers?filter[subscribed]=true"),
    ],
)
def test_a_good_base_url_prints_one_line(base_url: str, url: str) -> None:
    done = _compile_url(base_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == url + "\n"


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_the_base_url_check_returns_a_clean_url_or_a_config_error(text: str) -> None:
    try:
        checked = check_base_url_text("https://h" + text)
    except ConfigError as error:
        assert str(error)
        return
    assert checked.isprintable() and " " not in checked
    assert "?" not in checked and "#" not in checked


# ---- a Query built in code obeys the parser's nesting limit ----------------------------------


def _deep(levels: int) -> kql.Query:
    from kql.language import ast

    node: ast.Expr = ast.Flag(ast.Name("subscribed"))
    for _ in range(levels):
        node = ast.Not(node)
    return ast.Query(filter=node)


@pytest.mark.parametrize("entry", [kql.compile, kql.to_json])
def test_a_query_built_in_code_nested_too_deep_is_e007_not_a_recursion_error(entry: object) -> None:
    assert callable(entry)
    with pytest.raises(kql.KQLError) as caught:
        entry(_deep(5_000))
    assert caught.value.code == "E007"

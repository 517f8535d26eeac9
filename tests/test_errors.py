"""One test per error code: the code, the span it points at, and the hint."""

from __future__ import annotations

import pytest

import kql
from kql.language.errors import CODES

# (code, query, the text under the caret, a piece of the hint)
CASES = [
    ("E001", "site = 1 $ x", "$", "expected"),
    ("E002", "site = 1 subscribed", "subscribed", "join conditions with 'and' or 'or'"),
    ("E003", "has_tag(5", "", "')'"),
    ("E004", 'name ~ "smith', '"smith', "close it with"),
    ("E005", r'name ~ "a\qb"', r"\q", "escapes are"),
    ("E006", "subscribed and " * 700 + "subscribed", None, "segments"),
    ("E007", "(" * 70 + "subscribed" + " and subscribed)" * 70, None, "flatten"),
    ("E008", "subscribed limit 5 limit 6", "limit 6", "keep one 'limit'"),
    ("E101", 'nmae = "x"', "nmae", "did you mean 'name'?"),
    ("E102", "site=123 and opend(bc_9)", "opend", "did you mean 'opened'"),
    ("E103", "subscribed sort created", "created", "did you mean 'created_at'?"),
    ("E104", "select name, emial", "emial", "did you mean 'email'?"),
    ("E105", "engagement = helthy", "helthy", "did you mean 'healthy'?"),
    ("E106", "@vip", "@vip", "segments"),
    ("E107", "has_tag(tg_5)", "tg_5", "did you mean 'tag'?"),
    ("E201", "has_tag(tag_5, tag_6)", "has_tag(tag_5, tag_6)", "has_tag(tag_5)"),
    ("E202", "opened(tag_5)", "tag_5", "bc_5"),
    ("E203", "created_in_last(3m)", "3m", "days"),
    ("E204", "net_revenue > 10.999", "10.999", "10.99"),
    ("E205", "has_tag(0)", "0", "tag_5"),
    ("E206", 'site = "abc"', '"abc"', "site_5"),
    ("E207", 'city = "Berlin"', 'city = "Berlin"', "~"),
    ("E208", "subscribed limit 0", "0", None),
    ("E209", "created_at > 2024-02-30", "2024-02-30", "2024-01-31"),
    ("E301", "subscribed or hidden", "subscribed or hidden", "one request per branch"),
    ("E302", "not has_active_product(prod_1)", "not has_active_product(prod_1)", "anti-join"),
    ("E303", "net_revenue >= 100", "net_revenue >= 100", "two requests"),
    ("E304", "opened(bc_1) and opened(bc_2)", "opened(bc_2)", "intersection"),
    ("E305", "sign_in_count > 5", "sign_in_count > 5", "locally"),
    ("E306", "delivered(bc_9)", "delivered(bc_9)", "'not delivered(bc_9)' is one request"),
]


@pytest.mark.parametrize(("code", "query", "under_caret", "hint"), CASES, ids=[c[0] for c in CASES])
def test_error_code(code: str, query: str, under_caret: str | None, hint: str | None) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(query)
    error = caught.value
    assert error.code == code, error.render()
    assert error.span is not None
    if under_caret is not None:
        assert query[error.span.start : error.span.end] == under_caret
    if hint is None:
        assert error.message
    else:
        assert error.hint is not None and hint in error.hint, error.hint
    # str() is the caret form: header, the query line, carets.
    rendered = str(error)
    assert rendered.startswith(f"error[{code}]: ")
    assert "^" in rendered


def test_every_error_code_is_tested() -> None:
    # W001 is tested below, W002 in executor/test_meaning.py; E009 in test_jsonform.py; E010, E011 in test_decompile.py;
    # E012-E014 in test_segments.py; E307, E308 in test_planner.py; E108, E210, E211 in the names tests.
    tested = {c[0] for c in CASES} | {"W001", "W002", "E009", "E010", "E011", "E012", "E013", "E014", "E307", "E308"}
    tested |= {"E108", "E210", "E211"}
    assert tested == set(CODES)


def test_deprecated_filter_is_a_warning_not_an_error() -> None:
    compiled = kql.compile("suppressed")
    assert compiled.params == [("filter[is_suppressed]", "true")]
    (warning,) = compiled.warnings
    assert warning.code == "W001"
    assert warning.span is not None and (warning.span.start, warning.span.end) == (0, 10)
    assert warning.hint and "may ignore" in warning.hint
    assert str(warning).startswith("warning[W001]")


def test_all_problems_are_reported_at_once() -> None:
    query = "opend(bc_9) and has_tag(bc_5) and created_in_last(3m) and net_revenue > 1.234 sort foo select nam"
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(query)
    codes = [e.code for e in caught.value.errors]
    assert codes == ["E102", "E202", "E203", "E204", "E103", "E104"]
    assert isinstance(caught.value, kql.KQLErrors)
    assert str(caught.value).count("error[") == 6


def test_caret_form_matches_the_documented_example() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("site=123 and opend(bc_9)")
    assert str(caught.value) == (
        "error[E102]: unknown filter 'opend'\n"
        "  site=123 and opend(bc_9)\n"
        "               ^^^^^\n"
        "hint: did you mean 'opened' or 'dropped'?"
    )


def test_caret_on_a_multi_line_query_points_at_the_right_line() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("site = 1\nand opend(bc_9)")
    lines = str(caught.value).splitlines()
    assert lines[1] == "  2 | and opend(bc_9)"
    assert lines[2] == "          ^^^^^"


def test_names_are_case_sensitive_with_a_hint() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("Opened(bc_9)")
    assert caught.value.code == "E102"
    assert caught.value.hint == "did you mean 'opened'?"


def test_redundant_parentheses_add_no_depth() -> None:
    assert kql.compile("(" * 3000 + "subscribed" + ")" * 3000).params == [("filter[subscribed]", "true")]


@pytest.mark.parametrize("query", ["(" * 5000, "not " * 3000 + "subscribed", "(not " * 1000 + "x" + ")" * 1000])
def test_deep_input_never_raises_recursion_error(query: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(query)
    assert caught.value.code in {"E003", "E006", "E007"}


def test_huge_numbers_are_an_error_not_a_crash() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("has_tag(" + "9" * 5000 + ")")
    assert caught.value.code == "E208"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("has_tag", "E201"),
        ("subscribed(5)", "E201"),
        ("net_revenue", "E207"),
        ("net_revenue ~ 5", "E207"),
        ('has_tag("vip")', "E206"),
        ("created_in_last(0d)", "E208"),
        ("created_in_last(3h)", "E203"),
        ("created_at > 30d", "E206"),
        ('""', "E206"),
        ("page 0 size 10", "E208"),
        ("page 1 size -1", "E208"),
        (r'name ~ "\ud800"', "E005"),
    ],
)
def test_more_bad_inputs(query: str, code: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(query)
    assert caught.value.code == code
    assert caught.value.hint


@pytest.mark.parametrize("text", ['"\udcff"', 'site = 1 and "ab\udcffc"', "opened(bc_1) or \ud83d"])
def test_bytes_that_are_not_utf8_are_a_syntax_error(text: str) -> None:
    # What Python makes of non-UTF-8 bytes in argv or stdin; they used to crash the encoder.
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(text)
    assert caught.value.code == "E001" and "UTF-8" in caught.value.message
    assert caught.value.span is not None and text[caught.value.span.start] in "\udcff\ud83d"


def test_carets_line_up_after_wide_characters() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile('"日本語🙂" and opend(1)')
    line, carets = caught.value.render().splitlines()[1:3]
    # Four wide characters take eight columns: the caret sits 4 columns further right than len() says.
    assert carets.index("^") == line.index("opend") + 4 and carets.count("^") == 5


@pytest.mark.parametrize("text", ['"a\x1b[31mred" and nope', "site = 1\rand nope", 'email = "a\x7fb" and nope'])
def test_control_characters_are_shown_not_obeyed(text: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(text)
    rendered = caught.value.render()
    assert not any(ch in rendered for ch in "\x1b\r\x7f")
    line, carets = rendered.splitlines()[1:3]
    assert carets.index("^") == line.index("nope")  # one column each: the caret still lines up


def test_a_group_s_span_includes_its_parentheses() -> None:
    query = kql.parse("(opened(bc_1) or opened(bc_2)) and site = 1")
    assert query.filter is not None and query.filter.span == kql.Span(0, 43)
    with pytest.raises(kql.KQLError) as caught:
        kql.compile("site = 1 and (opened(bc_1) or opened(bc_2))")
    assert caught.value.span == kql.Span(13, 43)  # the caret starts under '('

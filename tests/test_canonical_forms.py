"""Every canonical form of LANGUAGE.md (both columns) and every example from the
reference gives exactly the parameters the contract states."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import pytest

import kql
from tests.conftest import LANGUAGE_MD


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def _cells(line: str) -> list[str]:
    return [c.strip().strip("`") for c in line.strip().strip("|").split("|")]


def _rows(heading: str) -> list[list[str]]:
    if not LANGUAGE_MD.exists():
        return []
    section = _section(LANGUAGE_MD.read_text(encoding="utf-8"), heading)
    return [_cells(line) for line in section.splitlines() if re.match(r"\|\s*(`|—)", line)]


def _forms() -> list[tuple[str, str]]:
    pairs = []
    for kql_form, sends, negated, negated_sends in _rows("## Filters that the API runs"):
        if kql_form != "—":
            pairs.append((kql_form, sends))
        if negated != "—":
            pairs.append((negated, negated_sends))
    return pairs


FORMS = _forms()
EXAMPLES = [(row[0], row[1]) for row in _rows("## Examples from the reference")]
_skip = pytest.mark.skipif(not LANGUAGE_MD.exists(), reason=f"{LANGUAGE_MD} is absent")


def _expected(sends: str) -> list[tuple[str, str]]:
    return sorted(parse_qsl(sends, keep_blank_values=True))


@_skip
def test_the_tables_were_read() -> None:
    # 59 rows, 18 with a negated form (two rows have only a negated form), and 9 examples.
    assert len(FORMS) >= 74
    assert len(EXAMPLES) == 9


@_skip
@pytest.mark.parametrize(("form", "sends"), FORMS, ids=[f for f, _ in FORMS])
def test_canonical_form(form: str, sends: str) -> None:
    compiled = kql.compile(form)
    assert sorted(compiled.params) == _expected(sends)
    assert not compiled.matches_nothing


@_skip
@pytest.mark.parametrize(("query", "query_string"), EXAMPLES, ids=[q for q, _ in EXAMPLES])
def test_reference_example(query: str, query_string: str) -> None:
    compiled = kql.compile(query)
    assert sorted(compiled.params) == _expected(query_string)
    # The string we send decodes to exactly the same parameters.
    assert sorted(parse_qsl(compiled.query_string, keep_blank_values=True)) == _expected(query_string)


@_skip
def test_every_registry_parameter_has_a_canonical_form() -> None:
    sent = {name for _form, sends in FORMS for name, _ in parse_qsl(sends)}
    assert sent == {f.api_name for f in kql.filters()}


def test_search_call_is_the_bare_string() -> None:
    assert kql.compile('search("smith")').params == kql.compile('"smith"').params == [("filter[search]", "smith")]


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("SITE = 1", None),  # names are case-sensitive: checked in test_errors
        (
            "site = 1 AND opened(bc_9) SORT -created_at",
            [("filter[site_id]", "1"), ("filter[opened_email_broadcast_id]", "9"), ("sort", "-created_at")],
        ),
        ("site = 1 && !has_tag(5)", [("filter[site_id]", "1"), ("filter[has_no_tag_id]", "5")]),
        ("created_in_last(2w)", [("filter[created_in_last]", "14")]),
        ("created_in_last(30)", [("filter[created_in_last]", "30")]),
        ("net_revenue = 99.50", [("filter[net_revenue_equal_to]", "99.50")]),
        ("used_coupon('SPRING24')", [("filter[used_coupon_code]", "SPRING24")]),
        ("has_tag(5) # a comment\n and subscribed", [("filter[has_tag_id]", "5"), ("filter[subscribed]", "true")]),
        ("limit 500", []),
        ("page 2", [("page[number]", "2"), ("page[size]", "25")]),  # `page N` is `page N size 25`
    ],
)
def test_literals_keywords_and_comments(query: str, params: list[tuple[str, str]] | None) -> None:
    if params is None:
        with pytest.raises(kql.KQLError):
            kql.compile(query)
        return
    assert kql.compile(query).params == params


def test_limit_is_not_a_parameter() -> None:
    compiled = kql.compile("subscribed limit 500")
    assert compiled.limit == 500
    assert compiled.params == [("filter[subscribed]", "true")]

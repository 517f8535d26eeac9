"""Decompiling Kajabi URLs back into KQL: every parameter, and compile(decompile(q)) == q."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kql
from kql.language.decompiler import decompile
from kql.registry import Filter, load_registry, registry
from tests.conftest import ROOT
from tests.test_cli import kql as run_kql

REG = registry()


def _value(entry: Filter) -> st.SearchStrategy[str]:
    if entry.value == "id":
        ids = st.integers(1, 10**9).map(str)
        if entry.arity == "many":
            return st.lists(ids, min_size=1, max_size=4, unique=True).map(",".join)
        return ids
    if entry.value == "days":
        return st.integers(1, 3650).map(str)
    if entry.value == "money":
        return st.one_of(st.integers(0, 10**6).map(str), st.from_regex(r"[0-9]{1,5}\.[0-9]{1,2}", fullmatch=True))
    if entry.value == "flag":
        return st.just("true")
    return st.text(min_size=1, max_size=20).filter(lambda s: s.strip())


params = st.lists(
    st.sampled_from(REG.filters).flatmap(lambda f: _value(f).map(lambda v: (f.api_name, v))),
    min_size=1,
    max_size=6,
    unique_by=lambda p: p[0],
)


@settings(max_examples=300)
@given(params)
def test_compile_of_decompile_gives_the_parameters_back(pairs: list[tuple[str, str]]) -> None:
    query_string = "&".join(f"{quote(n, safe='[]')}={quote(v, safe=',')}" for n, v in pairs)
    text = kql.decompile(query_string)
    try:
        compiled = kql.compile(text)
    except kql.KQLError as error:
        # Only merges the API itself would reject may refuse to compile, never a lost value.
        assert error.code in {"E304"}, error.render()
        return
    if compiled.matches_nothing:
        return  # e.g. has_tag(5) and not has_tag(5): correct, nothing to send
    assert sorted(compiled.params) == sorted(_merged(pairs))


def _merged(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What compile sends for these parameters: has_tag_id joins has_all_tag_id, etc."""
    return kql.compile(" and ".join(_form(n, v) for n, v in pairs)).params


def _form(name: str, value: str) -> str:
    return kql.decompile(f"{quote(name, safe='[]')}={quote(value, safe=',')}")


def test_every_registry_parameter_decompiles_to_its_canonical_form() -> None:
    for entry in REG:
        compiled = kql.compile(entry.example(REG.id_prefixes))
        assert kql.compile(kql.decompile(compiled.query_string)).params == compiled.params


def test_urls_encoded_or_not() -> None:
    expected = 'site = site_123 and "smith" select name, email page 2 size 10'
    url = "https://api.kajabi.com/v1/customers?filter[site_id]=123&fields[customers]=name,email&page[number]=2&page[size]=10&filter[search]=smith"
    assert kql.decompile(url) == expected
    encoded = "https://app.kajabi.com/api/v1/customers?filter%5Bsite_id%5D=123&fields%5Bcustomers%5D=name%2Cemail&page%5Bnumber%5D=2&page%5Bsize%5D=10&filter%5Bsearch%5D=smith"
    assert kql.decompile(encoded) == expected


def test_negations_lists_and_values() -> None:
    assert kql.decompile("filter[no_sent_email_broadcast_ids]=9,10&filter[has_no_tag_id]=5") == (
        "not sent(bc_9, bc_10) and not has_tag(tag_5)"
    )
    assert kql.decompile("filter[inactive_in_last]=30&filter[net_revenue_less_than]=99.5") == (
        "not active_in_last(30d) and net_revenue < 99.5"
    )
    assert kql.decompile("filter[used_coupon_code]=O%27Brien%20%22x%22") == 'used_coupon("O\'Brien \\"x\\"")'


def test_bracket_encoded_lists() -> None:
    text = (ROOT / "kql" / "registry" / "registry.toml").read_text(encoding="utf-8")
    reg = load_registry(text.replace('arity = "many"\nmulti = "comma"', 'arity = "many"\nmulti = "brackets"', 1))
    decompiled = decompile("filter[has_all_tag_id][]=5&filter[has_all_tag_id][]=6", reg)
    assert decompiled.text == "has_all_tags(tag_5, tag_6)"


@pytest.mark.parametrize(
    ("text", "code", "under_caret"),
    [
        ("filter[site]=1", "E010", "filter[site]=1"),
        ("filter[site_id]=1&utm=x", "E010", "utm=x"),
        ("filter[has_tag_id]=abc", "E011", "filter[has_tag_id]=abc"),
        ("filter[subscribed]=yes", "E011", "filter[subscribed]=yes"),
        ("filter[created_in_last]=0", "E011", "filter[created_in_last]=0"),
        ("filter[net_revenue_equal_to]=1.234", "E011", "filter[net_revenue_equal_to]=1.234"),
    ],
)
def test_unknown_parameters_and_bad_values_are_reported(text: str, code: str, under_caret: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.decompile(text)
    error = caught.value
    assert error.code == code
    assert error.span is not None and text[error.span.start : error.span.end] == under_caret


def test_all_problems_at_once() -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.decompile("foo=1&filter[site_id]=1&bar=2&filter[is_hidden]=no")
    assert [e.code for e in caught.value.errors] == ["E010", "E010", "E011"]


def test_cli() -> None:
    done = run_kql("decompile", "https://api.kajabi.com/v1/customers?filter[site_id]=1&sort=-created_at")
    assert done.returncode == 0
    assert done.stdout == "site = site_1 sort -created_at\n"
    done = run_kql("decompile", "filter[nope]=1")
    assert done.returncode == 2
    assert "error[E010]" in done.stderr


def test_parse_qsl_agrees() -> None:
    qs = kql.compile('name ~ "a&b=c" and site = 4').query_string
    assert sorted(parse_qsl(qs)) == sorted(kql.compile(kql.decompile(qs)).params)


@pytest.mark.parametrize(
    ("url", "under_caret"),
    [
        ("sort=-name&sort=email", "sort=email"),  # given twice: which one is meant?
        ("fields[customers]=name&fields[customers]=email", "fields[customers]=email"),
        ("page[size]=10&page[size]=20", "page[size]=20"),
        ("sort=bogus", "sort=bogus"),
        ("sort=-avatar", "sort=-avatar"),  # an attribute, but not a sort key
        ("fields[customers]=name,bogus", "fields[customers]=name,bogus"),
        ("page[number]=0", "page[number]=0"),
        ("page[number]=x", "page[number]=x"),
        ("sort=", "sort="),
        ("filter[search]=%FF", "filter[search]=%FF"),  # not UTF-8: no silent replacement character
    ],
)
def test_clauses_kql_could_not_write_are_reported(url: str, under_caret: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.decompile(url)
    (error,) = caught.value.errors
    assert error.code == "E011"
    assert error.span is not None and url[error.span.start : error.span.end] == under_caret


@pytest.mark.parametrize(
    ("url", "kql_text"),
    [
        ("https://api.kajabi.com/v1/customers", ""),  # a URL without a query string: every customer
        ("https://api.kajabi.com/v1/customers/", ""),
        ("/v1/customers?filter[site_id]=2", "site = site_2"),
        ("https://app.kajabi.com/api/v1/customers?filter[site_id]=1&sort=-email", "site = site_1 sort -email"),
        ("filter[site_id]=1#fragment", "site = site_1"),  # a fragment is never sent
    ],
)
def test_urls_in_every_shape(url: str, kql_text: str) -> None:
    assert kql.decompile(url) == kql_text


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://api.kajabi.com/v1/offers?filter[site_id]=1", "E010"),  # not a customers listing
        ("http://example.com/whatever?filter[site_id]=1", "E010"),
        ("filter[net_revenue_greater_than]=\u0661\u0660\u0660", "E011"),  # Arabic-Indic digits are not 100
        ("filter[site_id]=\uff11\uff12\uff13", "E011"),  # nor fullwidth ones
        ("filter[search]=\udcff", "E011"),  # a byte that was not UTF-8 (argv, stdin)
    ],
)
def test_what_is_not_a_customers_query_is_reported(url: str, code: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.decompile(url)
    assert caught.value.code == code


# ---- decompile never emits KQL that kql refuses (issue 11, item 11) --------------------


@pytest.mark.parametrize(
    ("url", "under_caret"),
    [
        ("page[number]=" + "9" * 5000, "page[number]="),
        ("page[size]=" + "1" * 20, "page[size]="),
        ("filter[has_tag_id]=" + "9" * 5000, "filter[has_tag_id]="),
        ("filter[has_tag_id]=" + "9" * 20, "filter[has_tag_id]="),
        ("filter[created_in_last]=" + "3" * 25, "filter[created_in_last]="),
        ("filter[net_revenue_greater_than]=" + "1" * 5000, "filter[net_revenue_greater_than]="),
        ("filter[has_all_tag_id]=5," + "7" * 30, "filter[has_all_tag_id]="),
    ],
)
def test_numbers_kql_cannot_read_are_reported(url: str, under_caret: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        decompile(url)
    assert caught.value.code == "E011"
    assert caught.value.span is not None and url[caught.value.span.start :].startswith(under_caret)
    assert "19 digits" in (caught.value.hint or "")
    assert len(caught.value.message) < 200  # the value is shown cut short


def test_the_longest_numbers_kql_reads_decompile_and_compile() -> None:
    big = "9" * 19
    text = kql.decompile(f"filter[has_tag_id]={big}&filter[created_in_last]=000{big}&page[number]={big}")
    assert kql.compile(text).params == [
        ("filter[has_tag_id]", big),
        ("filter[created_in_last]", big),
        ("page[number]", big),
        ("page[size]", "25"),  # `page N` means size 25: kql does not leave the size to the server
    ]


def test_kql_longer_than_a_query_may_be_is_reported() -> None:
    with pytest.raises(kql.KQLError) as caught:
        decompile("filter[search]=" + "x" * 10_000)
    assert caught.value.code == "E006"


def test_non_ascii_digits_are_not_numbers() -> None:
    with pytest.raises(kql.KQLError) as caught:
        decompile("filter[net_revenue_greater_than]=١٠٠.٥")
    assert caught.value.code == "E011"


_pieces = st.sampled_from(
    [*(f.api_name for f in REG.filters), "sort", "fields[customers]", "page[number]", "page[size]", "filter[x]"]
)
_raw_values = st.one_of(
    st.text(st.sampled_from(list("0123456789,.-%&=+ abc")), max_size=30),
    st.integers(0, 10**30).map(str),
    st.sampled_from(["true", "name", "-email", "name,email", "0", "1.999", "-5", "9" * 19, "9" * 20]),
)


@settings(max_examples=500)
@given(st.lists(st.tuples(_pieces, _raw_values), max_size=5))
def test_decompile_output_is_valid_kql_or_a_clean_error(pairs: list[tuple[str, str]]) -> None:
    from kql.planning.validate import validate

    url = "&".join(f"{name}={value}" for name, value in pairs)
    try:
        text = kql.decompile(url)
    except kql.KQLError as error:
        str(error)
        return
    validate(kql.parse(text), text)  # kql check accepts it (it may still need the planner to run)

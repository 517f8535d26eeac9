"""The one-request compiler: merges, contradictions, and what it refuses."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kql


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("has_tag(tag_5) and has_tag(tag_6)", [("filter[has_all_tag_id]", "5,6")]),
        ("has_tag(5) and has_all_tags(6, 7) and has_tag(5)", [("filter[has_all_tag_id]", "5,6,7")]),
        ("has_tag(5) and has_tag(5)", [("filter[has_tag_id]", "5")]),
        ("has_all_tags(5)", [("filter[has_all_tag_id]", "5")]),
        ("created_in_last(30d) and created_in_last(7d)", [("filter[created_in_last]", "7")]),
        ("not created_in_last(7d) and not created_in_last(30d)", [("filter[not_created_in_last]", "30")]),
        ("net_revenue > 100 and net_revenue > 200", [("filter[net_revenue_greater_than]", "200")]),
        ("net_revenue < 100 and net_revenue < 50.5", [("filter[net_revenue_less_than]", "50.5")]),
        ("net_revenue = 100 and net_revenue = 100.00", [("filter[net_revenue_equal_to]", "100")]),
        ("not sent(bc_9) and not sent(bc_10)", [("filter[no_sent_email_broadcast_ids]", "9,10")]),
        ("not sent(bc_9, bc_10) and not sent(bc_11)", [("filter[no_sent_email_broadcast_ids]", "9,10,11")]),
        ("not not subscribed", [("filter[subscribed]", "true")]),
        ("subscribed and subscribed", [("filter[subscribed]", "true")]),
        ('name ~ "a" and name ~ "a"', [("filter[name_contains]", "a")]),
        (
            "created_in_last(30d) and not created_in_last(7d)",
            [("filter[created_in_last]", "30"), ("filter[not_created_in_last]", "7")],
        ),
        ("has_tag(5) and not has_tag(6)", [("filter[has_tag_id]", "5"), ("filter[has_no_tag_id]", "6")]),
    ],
)
def test_same_parameter_filters_merge(query: str, params: list[tuple[str, str]]) -> None:
    compiled = kql.compile(query)
    assert compiled.params == params
    assert not compiled.matches_nothing


@pytest.mark.parametrize(
    "query",
    [
        "site = 1 and site = 2",
        "net_revenue = 1 and net_revenue = 2",
        "has_tag(5) and not has_tag(5)",
        "has_all_tags(5, 6) and not has_tag(6)",
        "sent(bc_9) and not sent(bc_8, bc_9)",
        "opened(bc_9) and not opened(bc_9)",
        "active_in_last(7d) and not active_in_last(30d)",
        "created_in_last(30d) and not created_in_last(30d)",
        "net_revenue > 200 and net_revenue < 100",
        "net_revenue = 50 and net_revenue > 50",
        "net_revenue = 50 and net_revenue < 10",
        "engagement = healthy and engagement = passive",
        'used_coupon("A") and used_coupon("B") and site = 1 and site = 3',
    ],
)
def test_contradictions_match_nothing_and_send_nothing(query: str) -> None:
    compiled = kql.compile(query + " sort name")
    assert compiled.matches_nothing
    assert compiled.params == []
    assert compiled.query_string == ""


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("subscribed or hidden", "E301"),
        ("sent(bc_1, bc_2)", "E301"),
        ("not (subscribed and hidden)", "E302"),
        ("not joined_in_last(30d)", "E302"),
        ('not name ~ "x"', "E302"),
        ("net_revenue >= 100", "E303"),
        ("net_revenue <= 100", "E303"),
        ("site != 1", "E303"),
        ("site in (1, 2)", "E303"),
        ("has_offer in (offer_1, offer_2)", "E303"),
        ("engagement in (healthy, passive)", "E303"),
        ("engagement != healthy", "E303"),
        ("opened(bc_1) and opened(bc_2)", "E304"),
        ('name ~ "a" and name ~ "b"', "E304"),
        ("sign_in_count > 5", "E305"),
        ("created_at >= 2024-01-01", "E305"),
        ('email ends_with "@gmail.com"', "E305"),
        ("bounced_at is null", "E305"),
        ('external_user_id = "cust_123"', "E305"),
        ("delivered(bc_9)", "E306"),
    ],
)
def test_what_one_request_cannot_say_is_an_error(query: str, code: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(query)
    assert caught.value.code == code
    assert caught.value.hint


def test_params_order_is_stable_filters_then_clauses() -> None:
    compiled = kql.compile('"smith" and site = 123 select name, email page 2 size 10 sort -email')
    assert compiled.params == [
        ("filter[search]", "smith"),
        ("filter[site_id]", "123"),
        ("sort", "-email"),
        ("fields[customers]", "name,email"),
        ("page[number]", "2"),
        ("page[size]", "10"),
    ]
    assert compiled.page == (2, 10)
    assert compiled.sort == "-email"
    assert compiled.fields == ("name", "email")


def test_compile_accepts_a_parsed_query() -> None:
    query = kql.parse("site = 1 and opened(bc_9)")
    assert kql.compile(query).params == kql.compile("site = 1 and opened(bc_9)").params


@pytest.mark.parametrize(
    "value", ["a&b", "x=y", "#frag", "1+1", "100%", "[0]", "'q'", '"dq"', "line\nbreak", "😀", " lead"]
)
def test_special_characters_cannot_add_parameters(value: str) -> None:
    from kql.language.formatter import quote

    compiled = kql.compile(f"used_coupon({quote(value)})")
    assert parse_qsl(compiled.query_string, keep_blank_values=True) == [("filter[used_coupon_code]", value)]


def test_url() -> None:
    compiled = kql.compile("has_tag(5)")
    assert compiled.url() == "https://api.kajabi.com/v1/customers?filter[has_tag_id]=5"
    assert compiled.url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/v1/customers?filter[has_tag_id]=5"


@pytest.mark.parametrize(
    "text",
    [
        "opened(bc_1) or clicked(bc_2)",
        "net_revenue >= 100",
        "sign_in_count > 5",
        "opened(bc_1) and opened(bc_2)",
        "not passed_assessment(7)",
        "site != 1",
        "not (subscribed and hidden)",
        "sent(bc_1, bc_2)",
    ],
)
def test_more_than_one_request_points_to_explain_and_run(text: str) -> None:
    with pytest.raises(kql.KQLError) as caught:
        kql.compile(text)
    for error in caught.value.errors:
        assert error.code in {"E301", "E302", "E303", "E304", "E305", "E306"}
        assert error.hint is not None and "kql explain shows the plan, kql run runs it" in error.hint


_VALUES = ["smith", "100", "2024-01-31T10:00:00+01:00", "a,b@c:d/e", "-7.5_~", "Main St", "a+b&c=d#e%f;g"]


@pytest.mark.parametrize("value", [*_VALUES, "é", "ü@x", "", "a\nb"])
def test_encode_plain_values_shortcut_agrees_with_quote(value: str) -> None:
    # encode() skips quote() for values made of characters it never escapes: same text either way.
    from urllib.parse import quote

    from kql.planning.plan import encode

    expected = f"{quote('has_all_tag_id[]', safe='[]')}={quote(value, safe=',@:/')}"
    assert encode([("has_all_tag_id[]", value)]) == expected


# ---- merge_sends' shortcuts against its rules read in full -------------------------------------

_VALUES = {
    "id": ["1", "2", "3"],
    "days": ["7", "30", "90"],
    "money": ["0", "50.5", "100", "100.00", "200"],
    "string": ["a", "b"],
    "flag": ["true"],
}


@st.composite
def _sends(draw: st.DrawFn) -> list[Any]:
    """Sends of a few registry parameters, often of one family (so they merge, conflict, contradict)."""
    from kql.language import ast
    from kql.planning.sends import Send
    from kql.registry import registry

    reg = registry()
    # Any name, or one of those that merge, bound or contradict in each way there is.
    usual = st.sampled_from(["net_revenue", "has_tag", "has_all_tags", "sent", "created_in_last", "name", "engagement"])
    names = draw(st.lists(usual | st.sampled_from(sorted(reg.by_name)), min_size=1, max_size=3))
    entries = [f for name in names for f in reg.by_name[name]]
    sends = []
    for i in range(draw(st.integers(1, 8))):
        entry = draw(st.sampled_from(entries))
        count = draw(st.integers(1, 3)) if entry.arity == "many" else 1
        values = tuple(draw(st.lists(st.sampled_from(_VALUES[entry.value]), min_size=count, max_size=count)))
        sends.append(Send(entry, values, ast.Flag(ast.Name(f"at_{i}"))))
    return sends


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sends())
def test_merge_sends_shortcuts_change_nothing(sends: list[Any]) -> None:
    # merge_sends skips the group-by-group rules when every group has one send of one value, and
    # reads only the sends a contradiction can involve: the same Merged as reading all of them in full.
    from kql.planning.sends import _contradiction_in, _merged, _tables, merge_sends
    from kql.registry import registry

    reg = registry()
    group_of, family_of, _ = _tables(reg)
    full = _merged([group_of[s.entry.param] for s in sends], sends, _contradiction_in(sends, family_of), reg)
    assert merge_sends(sends, reg) == full

"""Filter semantics over HTTP: subsets, partitions, containment, and the registry's encodings."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kql.registry import registry
from kql.sandbox import vocab
from kql.sandbox.docs import sample_value

from .conftest import CUSTOMERS, count, get, ids

REG = registry()


def value_for(param: str) -> str:
    f = REG.by_param[param]
    return f"{sample_value(param)},2" if f.arity == "many" else sample_value(param)


@pytest.mark.parametrize("param", [f.param for f in REG if f.param != "site_id"])
def test_every_filter_selects_a_non_empty_proper_subset(client: httpx.Client, param: str) -> None:
    # site_id: see test_endpoints.test_several_sites_require_site_id (this sandbox has one site)
    n = count(client, {f"filter[{param}]": value_for(param)})
    assert 0 < n < CUSTOMERS


@pytest.mark.parametrize("kind", sorted(vocab.COUNTS))
def test_every_id_of_every_kind_selects_a_proper_subset(client: httpx.Client, kind: str) -> None:
    f = next(f for f in REG if f.id_kind == kind and not f.negated and f.arity == "one")
    for item in range(1, vocab.COUNTS[kind] + 1):
        assert 0 < count(client, {f"filter[{f.param}]": item}) < CUSTOMERS, (f.param, item)


NEGATIONS = sorted({tuple(sorted((f.param, f.negation))) for f in REG if f.negation})


@pytest.mark.parametrize(("a", "b"), NEGATIONS)
def test_negation_pairs_partition_the_customers(client: httpx.Client, a: str, b: str) -> None:
    everyone = set(range(1, CUSTOMERS + 1))
    yes, no = ids(client, {f"filter[{a}]": value_for(a)}), ids(client, {f"filter[{b}]": value_for(b)})
    assert yes and no
    assert not yes & no
    assert yes | no == everyone


@pytest.mark.parametrize("amount", ["0", "97", "150.50"])
def test_net_revenue_comparisons_partition_the_customers(client: httpx.Client, amount: str) -> None:
    parts = [ids(client, {f"filter[net_revenue_{op}]": amount}) for op in ("greater_than", "equal_to", "less_than")]
    assert sum(len(p) for p in parts) == CUSTOMERS
    assert set().union(*parts) == set(range(1, CUSTOMERS + 1))


DAYS = [f.param for f in REG if f.value == "days"]


@pytest.mark.parametrize("param", DAYS)
def test_last_7_days_within_last_30(client: httpx.Client, param: str) -> None:
    week, month = ids(client, {f"filter[{param}]": 7}), ids(client, {f"filter[{param}]": 30})
    if REG.by_param[param].negated:  # not in the last 30 days ⊆ not in the last 7
        week, month = month, week
    assert week <= month


CONTACT_CONTAINS = {
    "phone_number_contains": ("phone_number", "555"),
    "mobile_phone_number_contains": ("mobile_phone_number", "555"),
    "address_line_1_contains": ("address_line_1", "mAIN"),
    "address_line_2_contains": ("address_line_2", "suite"),
    "address_city_contains": ("address_city", "bErLiN"),
    "address_state_contains": ("address_state", "ca"),
    "address_country_contains": ("address_country", "de"),
    "address_zip_contains": ("address_zip", "10"),
}


@pytest.mark.parametrize(("param", "needle", "attribute"), [
    ("name_contains", "SMITH", "name"), ("name_contains", "müller", "name"), ("name_contains", "MÜLLER", "name"),
    ("email_contains", "@EXAMPLE.com", "email"), ("search", "Smith", "name"),
])
def test_contains_and_search_really_contain(client: httpx.Client, param: str, needle: str, attribute: str) -> None:
    body = get(client, "/v1/customers", {f"filter[{param}]": needle, "page[size]": 200})
    assert body["data"]
    for item in body["data"]:
        attrs = item["attributes"]
        haystack = attrs[attribute] if param != "search" else attrs["name"] + " " + attrs["email"]
        assert needle.casefold() in haystack.casefold()


def test_search_matches_email_too(client: httpx.Client) -> None:
    body = get(client, "/v1/customers", {"filter[search]": "ICLOUD", "page[size]": 50})
    assert body["data"] and all("icloud" in item["attributes"]["email"] for item in body["data"])


@pytest.mark.parametrize("param", sorted(CONTACT_CONTAINS))
def test_contact_contains_filters(client: httpx.Client, param: str) -> None:
    attribute, needle = CONTACT_CONTAINS[param]
    body = get(client, "/v1/customers", {f"filter[{param}]": needle, "page[size]": 5})
    assert body["data"]
    for item in body["data"]:
        shown = get(client, f"/v1/customers/{item['id']}", {"include": "contact"})
        contact = next(i for i in shown["included"] if i["type"] == "contacts")
        assert needle.casefold() in contact["attributes"][attribute].casefold()


def test_has_all_tags_is_the_intersection(client: httpx.Client) -> None:
    both = ids(client, {"filter[has_all_tag_id]": "1,2"})
    assert both == ids(client, {"filter[has_tag_id]": 1}) & ids(client, {"filter[has_tag_id]": 2})
    assert both


def test_not_sent_any_is_the_complement_of_the_union(client: httpx.Client) -> None:
    sent = ids(client, {"filter[sent_email_broadcast_id]": 1}) | ids(client, {"filter[sent_email_broadcast_id]": 2})
    assert ids(client, {"filter[no_sent_email_broadcast_ids]": "1,2"}) == set(range(1, CUSTOMERS + 1)) - sent


@pytest.mark.parametrize(("narrow", "wide"), [
    ("passed_assessment_id", "completed_assessment_id"), ("failed_assessment_id", "completed_assessment_id"),
    ("has_active_product_id", "has_product_id"), ("previously_owned_product_id", "has_product_id"),
    ("clicked_email_broadcast_id", "opened_email_broadcast_id"),
    ("opened_email_broadcast_id", "sent_email_broadcast_id"),
    ("bounced_email_broadcast_id", "sent_email_broadcast_id"),
    ("dropped_email_broadcast_id", "sent_email_broadcast_id"),
])
def test_narrower_filters_are_subsets(client: httpx.Client, narrow: str, wide: str) -> None:
    for item in (1, 2):
        assert ids(client, {f"filter[{narrow}]": item}) <= ids(client, {f"filter[{wide}]": item})


def test_engagement_flags_are_disjoint(client: httpx.Client) -> None:
    groups = [ids(client, {f"filter[{f.param}]": "true"}) for f in REG if f.name == "engagement"]
    assert len(groups) == 4 and sum(map(len, groups)) == len(set().union(*groups)) < CUSTOMERS


def test_coupon_codes_compare_case_insensitively(client: httpx.Client) -> None:
    lower, upper = ({"filter[used_coupon_code]": code} for code in ("spring24", "SPRING24"))
    assert ids(client, lower) == ids(client, upper)


def test_filters_combine_with_and(client: httpx.Client) -> None:
    a, b = {"filter[has_tag_id]": 1}, {"filter[subscribed]": "true"}
    assert ids(client, {**a, **b}) == ids(client, a) & ids(client, b)


@pytest.mark.parametrize(("params", "parameter"), [
    ({"filter[nope]": "1"}, "filter[nope]"),
    ({"filter[has_tag_id]": "abc"}, "filter[has_tag_id]"),
    ({"filter[has_tag_id]": "5,6"}, "filter[has_tag_id]"),
    ({"filter[has_tag_id]": "0"}, "filter[has_tag_id]"),
    ({"filter[created_in_last]": "-1"}, "filter[created_in_last]"),
    ({"filter[created_in_last]": "30d"}, "filter[created_in_last]"),
    ({"filter[net_revenue_greater_than]": "lots"}, "filter[net_revenue_greater_than]"),
    ({"filter[subscribed]": "false"}, "filter[subscribed]"),
    ({"filter[name_contains]": ""}, "filter[name_contains]"),
    ({"filter[has_all_tag_id]": "1,x"}, "filter[has_all_tag_id]"),
    ({"sort": "avatar"}, "sort"),
    ({"fields[customers]": "name,shoe_size"}, "fields[customers]"),
    ({"page[number]": "0"}, "page[number]"),
    ({"page[size]": "many"}, "page[size]"),
    ({"page[size]": str(10_000)}, "page[size]"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_input_is_a_400_naming_the_parameter(client: httpx.Client, params: dict[str, str], parameter: str) -> None:
    response = client.get("/v1/customers", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/vnd.api+json"
    (error,) = response.json()["errors"]
    assert error["status"] == "400" and error["source"] == {"parameter": parameter} and error["detail"]


def test_a_single_value_filter_given_twice_is_refused(client: httpx.Client) -> None:
    response = client.get("/v1/customers", params=[("filter[has_tag_id]", "1"), ("filter[has_tag_id]", "2")])
    assert response.status_code == 400


def test_multi_value_encoding_follows_the_registry(client: httpx.Client) -> None:
    f = REG.by_param["has_all_tag_id"]
    assert f.multi == "comma"  # comma-joined in one value; repeating or brackets is refused
    assert client.get("/v1/customers", params=[("filter[has_all_tag_id]", "1"),
                                               ("filter[has_all_tag_id]", "2")]).status_code == 400
    assert client.get("/v1/customers", params=[("filter[has_all_tag_id][]", "1")]).status_code == 400


COMBINABLE = [f.param for f in REG if f.param != "site_id"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.sampled_from(COMBINABLE), min_size=2, max_size=4, unique=True))
def test_any_conjunction_is_the_intersection(client: httpx.Client, params: list[str]) -> None:
    together = ids(client, {f"filter[{p}]": value_for(p) for p in params})
    apart = set.intersection(*(ids(client, {f"filter[{p}]": value_for(p)}) for p in params))
    assert together == apart

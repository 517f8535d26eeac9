"""The term algebra of exact counts (kql/planning/counting.py): pure logic, no I/O.

Golden term sets for each rule (union, anti-join, contradictions dropped, identical
terms merged, fallbacks), and a differential property: on the planner tests' in-memory
model of the API, Σ coefficient × |term| equals the size of the expression's result.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kql
from kql.planning.counting import CountPlan, Term, count_terms, with_site
from kql.planning.validate import validate
from tests.test_planner import Model, expressions, plan

OPENED = ("filter[opened_email_broadcast_id]", "9")
CLICKED = ("filter[clicked_email_broadcast_id]", "10")
PASSED = ("filter[passed_assessment_id]", "7")


def terms(text: str, site_id: str | None = None, **kwargs: int) -> dict[frozenset[tuple[str, str]], int] | None:
    found = count_terms(plan(text), site_id, **kwargs)
    return None if found is None else {frozenset(t.params): t.coefficient for t in found.terms}


def test_union_of_two_is_three_terms() -> None:
    assert terms("opened(bc_9) or clicked(bc_10)") == {
        frozenset({OPENED}): 1,
        frozenset({CLICKED}): 1,
        frozenset({OPENED, CLICKED}): -1,
    }


def test_not_without_a_complement_subtracts_the_conjunction() -> None:
    assert terms("opened(bc_9) and not passed_assessment(asmt_7)") == {
        frozenset({OPENED}): 1,
        frozenset({OPENED, PASSED}): -1,
    }


def test_union_of_anti_joins() -> None:
    found = terms("(opened(bc_9) or clicked(bc_10)) and not passed_assessment(asmt_7)")
    assert found == {
        frozenset({OPENED}): 1,
        frozenset({OPENED, PASSED}): -1,
        frozenset({CLICKED}): 1,
        frozenset({CLICKED, PASSED}): -1,
        frozenset({OPENED, CLICKED}): -1,
        frozenset({OPENED, CLICKED, PASSED}): 1,
    }


def test_contradictions_are_dropped() -> None:
    # Customers have one site and one engagement: the intersections are empty, no request.
    assert terms("site in (site_1, site_2)") == {
        frozenset({("filter[site_id]", "1")}): 1,
        frozenset({("filter[site_id]", "2")}): 1,
    }
    found = terms("engagement in (healthy, passive, unengaged, inactive)")
    assert found is not None and len(found) == 4 and set(found.values()) == {1}
    assert terms("net_revenue >= 100") == {
        frozenset({("filter[net_revenue_greater_than]", "100")}): 1,
        frozenset({("filter[net_revenue_equal_to]", "100")}): 1,
    }


def test_identical_terms_merge_and_cancel() -> None:
    # has_tag(1) ∧ has_all_tags(1, 2) is has_all_tags(1, 2): +1 and −1 cancel.
    assert terms("has_tag(tag_1) or has_all_tags(tag_1, tag_2)") == {frozenset({("filter[has_tag_id]", "1")}): 1}
    # Both intersections of pairs merge into has_all_tag_id=1,2,3 in one spelling or another.
    found = terms("has_tag(tag_1) or has_tag(tag_2) or has_tag(tag_3)")
    assert found is not None and len(found) == 7
    assert found[frozenset({("filter[has_all_tag_id]", "1,2,3")})] == 1


def test_matches_nothing_and_everything() -> None:
    assert terms("opened(bc_1) and not opened(bc_1)") == {}
    assert terms("") == {frozenset(): 1}
    assert terms("site != site_1") == {frozenset(): 1, frozenset({("filter[site_id]", "1")}): -1}


def test_the_clients_site_is_part_of_every_listing_without_one() -> None:
    site2 = ("filter[site_id]", "2")
    assert terms("opened(bc_9) or clicked(bc_10)", "2") == {
        frozenset({site2, OPENED}): 1,
        frozenset({site2, CLICKED}): 1,
        frozenset({site2, OPENED, CLICKED}): -1,
    }
    # Branch 1 keeps its own site; the other gets the client's; their intersection is empty.
    assert terms("site = site_1 or opened(bc_9)", "2") == {
        frozenset({("filter[site_id]", "1")}): 1,
        frozenset({site2, OPENED}): 1,
    }
    assert with_site([OPENED], "3") == (("filter[site_id]", "3"), OPENED)
    assert with_site([("filter[site_id]", "1")], "3") == (("filter[site_id]", "1"),)


@pytest.mark.parametrize(
    "text",
    [
        "opened(bc_1) or opened(bc_2)",  # the customers who opened both: an intersection
        "opened(bc_1) and opened(bc_2)",  # an intersection in the plan itself
        "not passed_assessment(asmt_1) and not passed_assessment(asmt_2)",  # their overlap: the same
        "sign_in_count > 5 or opened(bc_1)",  # a local predicate: nothing the API counts
        'email ends_with "@gmail.com"',
    ],
)
def test_listing_where_a_term_is_not_one_request(text: str) -> None:
    assert terms(text) is None


def test_explosions_and_budgets_fall_back_to_listing() -> None:
    many = " or ".join(f"completed_assessment(asmt_{i}) and opened(bc_{i})" for i in range(1, 15))
    assert terms(many) is None  # 2^14 sets of branches: past the work limit
    assert terms("opened(bc_9) or clicked(bc_10)", max_terms=2) is None
    five = " or ".join(f"has_tag(tag_{i})" for i in range(1, 6))
    found = terms(five)
    assert found is not None and len(found) == 31


def test_listing_costs_and_the_choice() -> None:
    found = count_terms(plan("(opened(bc_9) or clicked(bc_10)) and not passed_assessment(asmt_7)"))
    assert found is not None
    # The listings a run reads: two streams, two id sets; each is one of the terms.
    assert len(found.listings) == 4 and None not in found.listings
    probes = found.probes()
    assert len(probes) == 4 and found.requests == 6
    big = dict.fromkeys(probes, 5000)  # 50 pages each at 100
    assert found.listing_requests(big, 100) == 200 and found.terms_cheaper(big, 100)
    small = dict.fromkeys(probes, 3)  # one page each: the 2 terms left still cost less than 4 pages
    assert found.listing_requests(small, 100) == 4 and found.terms_cheaper(small, 100)
    tiny = CountPlan((Term((), 1), Term((OPENED,), 1), Term((CLICKED,), 1)), (0,))
    assert not tiny.terms_cheaper({0: 10}, 100)  # two more terms against one page
    assert tiny.total({0: 10, 1: 4, 2: 1}) == 15


@settings(max_examples=300)
@given(expressions, st.integers(0, 10**6), st.sampled_from([None, "1", "3"]))
def test_terms_count_the_expression_on_a_model_of_the_api(text: str, seed: int, site: str | None) -> None:
    model = Model(seed)
    try:
        p = plan(text, max_branches=64)
    except kql.KQLError as error:
        assert error.code == "E307", error.render()
        return
    found = count_terms(p, site)
    if found is None:
        return
    checked = validate(kql.parse(text), text)
    assert checked.filter is not None
    expected = model.truth(checked.filter)
    if site is not None:
        # The client's site narrows the listings that have none of their own (kql/execute/pagination.py).
        expected = frozenset().union(
            *(model.run(branch_in_site(p, b, site)) for b in range(len(p.branches)))
        )
    counted = sum(t.coefficient * len(model.request(t.params)) for t in found.terms)
    assert counted == len(expected), f"{text}\n{p.explain()}\n{found}"


def branch_in_site(p: kql.Plan, index: int, site: str) -> kql.Plan:
    """Branch ``index`` alone, with its listings narrowed to ``site`` as the client's pager does."""
    import attrs

    from kql.planning.plan import Request

    branch = p.branches[index]
    narrowed = attrs.evolve(
        branch,
        request=Request(with_site(branch.request.params, site)),
        exclude=tuple(Request(with_site(r.params, site)) for r in branch.exclude),
    )
    return attrs.evolve(p, branches=(narrowed,))

"""Exact counts against the sandbox: terms (inclusion–exclusion over ``meta.total_count``)
equal the ground truth of groundtruth.py and the listing count, for random expressions.

The ground truth is independent of the planner and of counting: set algebra over
single-request listings fetched with plain httpx. Requests are counted by the sandbox.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kql
from kql.execute.async_client import AsyncClient
from kql.execute.client import Client
from kql.execute.counting import count_exact, count_exact_async
from kql.execute.planrun import count_plan
from tests.planner_sandbox.conftest import FAST, sandbox
from tests.planner_sandbox.groundtruth import And, Atom, Expr, Not, Or, Truth, api_atoms, hand_written, render
from tests.planner_sandbox.test_differential import BUDGET, expressions

EXAMPLES = 120


API_ATOMS: list[Atom] = api_atoms()
# Expressions over API conditions only: the ones terms can count (local predicates never can).
api_expressions: st.SearchStrategy[Expr] = st.recursive(
    st.sampled_from(API_ATOMS),
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=5,
)


def test_random_counts_equal_the_ground_truth(world: tuple[Truth, Client, Any]) -> None:
    truth, _, sb = world
    # Pages of 20: listing costs more, so terms win more often and both methods are exercised.
    client = Client(sb.base_url, token=sb.token, retry=FAST, max_page_size=20)
    outcome: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(st.one_of(api_expressions, api_expressions, expressions))
    def run(expr: Expr) -> None:
        text = render(expr)
        try:
            plan = kql.plan(text, max_requests=BUDGET)
        except kql.KQLError as error:
            assert error.code in ("E307", "E308"), str(error)
            outcome[error.code] += 1
            return
        before = sb.stats["requests"]
        result = count_exact(client, plan)
        assert result.requests == sb.stats["requests"] - before
        expected = len(truth.evaluate(expr))
        assert result.count == expected, f"{result}, expected {expected}\nquery: {text}\nplan:\n{plan.explain()}"
        outcome[result.method] += 1

    try:
        run()
    finally:
        client.close()
    print(f"\ncounting differential: {dict(outcome)}")
    assert outcome["terms"] >= 0.4 * EXAMPLES, f"too few counted by terms: {dict(outcome)}"
    assert outcome["listing"] >= 5, f"the listing fallback is not exercised: {dict(outcome)}"


def test_hand_written_examples_by_both_clients(world: tuple[Truth, Client, Any]) -> None:
    truth, client, sb = world

    async def counts(texts: list[str]) -> list[int]:
        async with AsyncClient(sb.base_url, token=sb.token, retry=FAST) as c:
            return [await c.count(t) for t in texts]

    exprs = [expr for expr, _ in hand_written()]
    texts = [render(e) for e in exprs]
    expected = [len(truth.evaluate(e)) for e in exprs]
    assert [client.count(t) for t in texts] == expected
    assert asyncio.run(counts(texts)) == expected


def test_opened_or_clicked_takes_three_requests(world: tuple[Truth, Client, Any]) -> None:
    truth, client, sb = world
    a = {x.text: x for x in API_ATOMS}
    expected = len(truth.evaluate(Or((a["opened(bc_9)"], a["clicked(bc_10)"]))))
    before, sent = sb.stats["requests"], client.stats["requests"]
    assert client.count("opened(bc_9) or clicked(bc_10)") == expected
    assert sb.stats["requests"] - before <= 3
    assert client.stats["requests"] - sent <= 3


def test_page_and_limit_do_not_change_a_count(world: tuple[Truth, Client, Any]) -> None:
    _, client, _ = world
    query = "(opened(bc_9) or clicked(bc_10)) and not passed_assessment(asmt_1)"
    assert client.count(query + " limit 3") == client.count(query + " page 2 size 5") == client.count(query)


def test_async_terms_equal_sync_terms(world: tuple[Truth, Client, Any]) -> None:
    _, client, sb = world
    queries = ["opened(bc_9) or clicked(bc_10) or has_tag(tag_1)", "not passed_assessment(asmt_1) or subscribed"]

    async def counted() -> list[tuple[int, str]]:
        async with AsyncClient(sb.base_url, token=sb.token, retry=FAST) as c:
            return [((r := await count_exact_async(c, kql.plan(q))).count, r.method) for q in queries]

    assert asyncio.run(counted()) == [(r.count, r.method) for r in (count_exact(client, kql.plan(q)) for q in queries)]


def test_terms_equal_listing_under_the_clients_site() -> None:
    # Two sites: the API insists on filter[site_id], the client adds its own where the query has none.
    queries = [
        "site = site_1 or opened(bc_9)",
        "opened(bc_9) or clicked(bc_10)",
        "not passed_assessment(asmt_1)",
        "(site = site_1 or has_tag(tag_1)) and not completed_assessment(asmt_1)",
    ]
    with sandbox.running(customers=300, seed=5, sites=2) as sb, Client(
        sb.base_url, token=sb.token, site_id="2", retry=FAST
    ) as client:
        for query in queries:
            plan = kql.plan(query)
            by_terms = count_exact(client, plan)
            assert by_terms.method == "terms", query
            assert by_terms.count == count_plan(client, plan), query


def test_max_requests_bounds_the_terms(world: tuple[Truth, Client, Any]) -> None:
    _, _, sb = world
    query = "opened(bc_9) or clicked(bc_10) or has_tag(tag_1)"  # 3 listings, 7 terms
    plan = kql.plan(query)
    with Client(sb.base_url, token=sb.token, retry=FAST, max_page_size=5) as client:  # listing: many pages
        free = count_exact(client, plan)
        assert free.method == "terms" and free.requests == 7
        limited = count_exact(client, plan, max_requests=6)
        assert limited.method == "listing" and limited.count == free.count
        assert client.count(query, max_requests=6) == free.count

"""Plan execution against the sandbox equals set algebra over single requests.

For hundreds of random expressions (every filter form, planner operators, attribute
predicates, and/or/not, sort, limit, select, page), ``kql.Client.customers`` must
return exactly the customers, order and count that the ground truth (groundtruth.py)
computes from one-request listings and the full records: same set, no duplicates,
the server's own order for the sort key (ties by id in the sort's direction), and
``limit``/``page`` applied after the merge.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import kql
from kql.execute.client import Client, prepare
from tests.planner_sandbox.conftest import FAST, SEED
from tests.planner_sandbox.groundtruth import (
    And,
    Atom,
    Expr,
    Not,
    Or,
    Truth,
    api_atoms,
    clause_text,
    describe,
    hand_written,
    local_atoms,
    render,
)

EXAMPLES = 800
SHARDS = 4
# Plans over this many listings are skipped (and counted): they are correct or not the
# same way smaller ones are, and they would make the run slow.
BUDGET = 24
SORTS = [None, "created_at", "-created_at", "name", "-name", "email", "-email", "net_revenue", "-net_revenue",
         "last_request_at", "-last_request_at"]
SELECTS: list[tuple[str, ...] | None] = [None, None, None, ("name", "email"), ("net_revenue",), ("sign_in_count",)]


ATOMS: list[Atom] = api_atoms() + local_atoms()

literals: st.SearchStrategy[Expr] = st.one_of(st.sampled_from(ATOMS), st.sampled_from(ATOMS).map(Not))
nested: st.SearchStrategy[Expr] = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


def _either(items: list[Expr]) -> Expr:
    return items[0] if len(items) == 1 else Or(tuple(items))


# An `and` of `or`s: what multiplies out into many branches (and sometimes over the budget).
products: st.SearchStrategy[Expr] = st.lists(
    st.lists(literals, min_size=1, max_size=3).map(_either), min_size=2, max_size=4
).map(lambda xs: And(tuple(xs)))
expressions: st.SearchStrategy[Expr] = st.one_of(nested, nested, products)
clauses = st.tuples(
    st.sampled_from(SORTS),
    st.sampled_from(SELECTS),
    st.one_of(st.none(), st.none(), st.integers(1, 60)),
    st.one_of(*[st.none()] * 8, st.tuples(st.integers(1, 4), st.sampled_from([None, 10, 30, 150]))),
)


Runner = Callable[[str], list[dict[str, Any]]]


def check(
    truth: Truth, client: Client | Runner, expr: Expr | None, clause: tuple[Any, ...], count: bool = False
) -> None:
    """Run one query through kql and compare with the ground truth; AssertionError on any difference.

    ``client`` is a kql.Client, or a function from query text to records (the async client).
    With ``count``, ``client.count`` must also equal the number of matches.
    """
    sort, select, limit, page = clause
    text = " ".join(t for t in ((render(expr) if expr is not None else ""), clause_text(*clause)) if t)
    plan = kql.plan(text)
    records = list(client.customers(text)) if isinstance(client, Client) else client(text)
    got = [r["id"] for r in records]
    expected = truth.expected(expr, sort, limit, page)
    context = f"\nquery: {text}\nplan:\n{plan.explain()}"
    duplicates = [i for i, n in Counter(got).items() if n > 1]
    assert not duplicates, f"duplicates {duplicates[:10]}{context}"
    if page is None:
        everything = truth.expected(expr, sort, None)
        extra, missing = set(got) - set(everything), set(everything) - set(got)
        assert not extra, f"{len(extra)} customers that do not match: {describe(truth, sorted(extra))}{context}"
        if limit is None:
            shown = describe(truth, sorted(missing))
            assert not missing, f"{len(missing)} matching customers missing: {shown}{context}"
    assert len(got) == len(expected), f"{len(got)} customers, expected {len(expected)}{context}"
    if got != expected:
        at = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        window = slice(max(0, at - 2), at + 4)
        raise AssertionError(
            f"order differs at position {at} (sort {sort or '-created_at'}):\n"
            f"  got      {describe(truth, got[window])}\n  expected {describe(truth, expected[window])}{context}"
        )
    if select:
        shapes = {frozenset(r) for r in records}
        assert shapes <= {frozenset({"id", *select})}, f"fields {shapes} for select {select}{context}"
    if count and isinstance(client, Client):
        matches = len(truth.expected(expr, None, None))
        counted = client.count(text)
        assert counted == matches, f"count {counted}, expected {matches}{context}"


def test_hand_written_examples(world: tuple[Truth, Client, Any]) -> None:
    truth, client, _ = world
    for expr, clause in hand_written():
        check(truth, client, expr, clause, count=True)


def test_async_client_agrees(world: tuple[Truth, Client, Any]) -> None:
    from kql.execute.async_client import AsyncClient

    truth, _, sb = world

    async def fetch(text: str) -> list[dict[str, Any]]:
        async with AsyncClient(sb.base_url, token=sb.token, retry=FAST) as client:
            return [r async for r in client.customers(text)]

    for expr, clause in hand_written():
        check(truth, lambda text: asyncio.run(fetch(text)), expr, clause)


def test_no_filter_and_clauses_only(world: tuple[Truth, Client, Any]) -> None:
    truth, client, _ = world
    for sort in SORTS:
        check(truth, client, None, (sort, None, 30, None))


@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_expressions_equal_the_ground_truth(world: tuple[Truth, Client, Any], shard: int) -> None:
    truth, client, _ = world
    outcome: Counter[str] = Counter()

    # Each shard draws its own fixed examples (a seed of its own), so the shards add up to
    # EXAMPLES different ones and run side by side on the cores pytest-xdist has.
    @seed(SEED * 1000 + shard)
    @settings(
        max_examples=EXAMPLES // SHARDS,
        derandomize=False,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(expressions, clauses)
    def run(expr: Expr, clause: tuple[Any, ...]) -> None:
        text = render(expr)
        try:
            plan = kql.plan(text, max_requests=BUDGET)
        except kql.KQLError as error:
            assert error.code in ("E307", "E308"), error.render() if hasattr(error, "render") else str(error)
            outcome[error.code] += 1
            return
        outcome["multi" if not plan.single_request else "single"] += 1
        check(truth, client, expr, clause, count=sum(outcome.values()) % 4 == 0)

    run()
    ran = outcome["multi"] + outcome["single"]
    rejected = outcome["E307"] + outcome["E308"]
    print(f"\nplanner differential: {dict(outcome)}; ground-truth requests {truth.requests}")
    assert rejected <= 0.2 * (ran + rejected), f"too many plans over budget: {dict(outcome)}"
    assert outcome["multi"] >= 0.5 * ran, f"too few multi-request plans: {dict(outcome)}"


BUDGETED = "opened(bc_1) or opened(bc_9) or clicked(bc_10) or not passed_assessment(asmt_1)"


def test_budget_error_before_any_request(world: tuple[Truth, Client, Any]) -> None:
    _, _, sb = world
    needed = kql.plan(BUDGETED).requests
    assert needed > 2
    with pytest.raises(kql.KQLError) as planned:
        kql.plan(BUDGETED, max_requests=2)
    assert planned.value.code == "E308"
    client = Client(sb.base_url, token=sb.token, retry=FAST)
    before = sb.stats["requests"]
    try:
        if "max_requests" in inspect.signature(client.customers).parameters:
            with pytest.raises(kql.KQLError) as ran:
                list(client.customers(BUDGETED, max_requests=2))  # type: ignore[call-arg]
            assert ran.value.code == "E308"
        with pytest.raises(kql.KQLError) as prepared:
            list(client.customers(prepare(BUDGETED, max_requests=2)))
        assert prepared.value.code == "E308"
        assert client.stats["requests"] == 0
        assert sb.stats["requests"] == before
        # Within the budget the same query runs, and costs at least one request per listing.
        assert list(client.customers(prepare(BUDGETED, max_requests=needed)))
        assert client.stats["requests"] >= needed
    finally:
        client.close()


def test_kql_run_max_requests_refuses_before_any_request(
    world: tuple[Truth, Client, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from kql.cli.run import main

    truth, _, sb = world
    argv = [BUDGETED, "--base-url", sb.base_url, "--token", sb.token, "--no-progress", "--format", "ndjson"]
    before = sb.stats["requests"]
    assert main([*argv, "--max-requests", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "E308" in err
    assert sb.stats["requests"] == before
    assert main([*argv, "--max-requests", str(kql.plan(BUDGETED).requests)]) == 0
    out, _ = capsys.readouterr()
    got = [json.loads(line)["id"] for line in out.splitlines()]
    assert got == truth.expected(hand_expr(), None, None)


def hand_expr() -> Expr:
    """BUDGETED as a ground-truth expression."""
    a = {x.text: x for x in ATOMS}
    return Or(
        (a["opened(bc_1)"], a["opened(bc_9)"], a["clicked(bc_10)"], Not(a["passed_assessment(asmt_1)"]))
    )

"""The planner: golden plans for each strategy, budgets, and a differential check of
its logic against direct evaluation on an in-memory model of the API (pure logic;
the sandbox-backed differential test belongs with plan execution)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kql
from kql.execute.local import matches
from kql.planning.planner import Plan, plan_query
from kql.planning.validate import Cond, Local, TAnd, TNot, TOr, Typed, validate
from kql.registry import Filter, registry

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REG = registry()


def plan(text: str, **kwargs: Any) -> Plan:
    return plan_query(text, now=NOW, **kwargs)


# ---- golden plans ---------------------------------------------------------------------------


def test_one_request_when_one_request_will_do() -> None:
    p = plan("site = 1 and opened(bc_9) sort -created_at")
    assert p.single_request
    assert p.branches[0].request.params == (("filter[site_id]", "1"), ("filter[opened_email_broadcast_id]", "9"))


def test_or_is_one_request_per_branch_merged_in_sort_order() -> None:
    p = plan("opened(bc_9) or clicked(bc_10) sort name limit 5")
    assert [b.request.query_string for b in p.branches] == [
        "filter[opened_email_broadcast_id]=9",
        "filter[clicked_email_broadcast_id]=10",
    ]
    assert p.merge_order == "name" and p.limit == 5
    assert "merged by name (ties by id), duplicates removed by id" in p.explain()


def test_not_without_complement_is_an_anti_join_within_the_rest() -> None:
    (branch,) = plan("site = 1 and opened(bc_9) and not passed_assessment(asmt_7)").branches
    assert branch.request.query_string == "filter[site_id]=1&filter[opened_email_broadcast_id]=9"
    assert [r.query_string for r in branch.exclude] == [
        "filter[site_id]=1&filter[opened_email_broadcast_id]=9&filter[passed_assessment_id]=7"
    ]


def test_not_with_a_complement_is_one_request() -> None:
    assert plan("not has_tag(tag_5)").branches[0].request.query_string == "filter[has_no_tag_id]=5"


def test_same_parameter_twice_is_an_intersection() -> None:
    (branch,) = plan("opened(bc_1) and opened(bc_2) and site = 3").branches
    assert branch.request.query_string == "filter[opened_email_broadcast_id]=1&filter[site_id]=3"
    assert [r.query_string for r in branch.intersect] == ["filter[site_id]=3&filter[opened_email_broadcast_id]=2"]


@pytest.mark.parametrize(
    ("query", "requests"),
    [
        ("net_revenue >= 100", ["filter[net_revenue_greater_than]=100", "filter[net_revenue_equal_to]=100"]),
        ("net_revenue <= 100", ["filter[net_revenue_less_than]=100", "filter[net_revenue_equal_to]=100"]),
        ("site in (1, 2)", ["filter[site_id]=1", "filter[site_id]=2"]),
        ("has_offer in (offer_1, offer_2)", ["filter[has_offer_id]=1", "filter[has_offer_id]=2"]),
        ("sent(bc_1, bc_2)", ["filter[sent_email_broadcast_id]=1", "filter[sent_email_broadcast_id]=2"]),
        (
            "engagement in (healthy, passive)",
            ["filter[healthy_contacts_with_open_data]=true", "filter[passive_contacts_with_open_data]=true"],
        ),
    ],
)
def test_planner_operators(query: str, requests: list[str]) -> None:
    assert [b.request.query_string for b in plan(query).branches] == requests


def test_not_equal_is_an_anti_join() -> None:
    (branch,) = plan("site != 2").branches
    assert branch.request.params == ()
    assert [r.query_string for r in branch.exclude] == ["filter[site_id]=2"]


def test_local_predicates_push_down_a_superset_and_fetch_what_they_need() -> None:
    p = plan('sign_in_count > 5 and email ends_with "@gmail.com" select name')
    (branch,) = p.branches
    assert branch.request.query_string == "filter[email_contains]=@gmail.com"
    assert [f.text for f in branch.local] == ["sign_in_count > 5", 'email ends_with "@gmail.com"']
    assert p.fetch == ("name", "sign_in_count", "email", "created_at")
    assert p.strip == ("sign_in_count", "email", "created_at")


def test_absolute_dates_push_down_the_in_last_filter() -> None:
    # 2026-11-01 is 25.5 days before NOW: created_in_last(27) holds everyone created since.
    (branch,) = plan("created_at >= 2026-11-01").branches
    assert branch.request.query_string == "filter[created_in_last]=27"
    (branch,) = plan("created_at < 2026-11-01").branches
    assert branch.request.query_string == "filter[not_created_in_last]=24"
    (branch,) = plan("last_request_at >= 2026-11-01 and last_request_at < 2026-11-01").branches
    assert branch.request.query_string == "filter[active_in_last]=27&filter[inactive_in_last]=24"
    assert len(branch.local) == 2  # the pushdown is a superset; the local filters keep it exact


def test_simplification() -> None:
    assert plan("subscribed or not subscribed").branches[0].request.params == ()
    assert [b.text for b in plan("has_tag(5) or (has_tag(5) and hidden)").branches] == ["has_tag(tag_5)"]
    assert [b.text for b in plan("(hidden and subscribed) or (hidden and not subscribed)").branches] == ["hidden"]
    assert plan("(site = 1 and site = 2) or (hidden and not hidden)").matches_nothing
    assert plan("subscribed and subscribed").single_request


def test_de_morgan() -> None:
    (branch,) = plan("not (has_tag(5) or opened(bc_1))").branches
    assert branch.request.query_string == "filter[has_no_tag_id]=5&filter[no_opened_email_broadcast_id]=1"
    assert len(plan("not (has_tag(5) and opened(bc_1))").branches) == 2


def test_size_cap_is_a_clear_error() -> None:
    query = " and ".join(f"(opened(bc_{i}) or clicked(bc_{i}))" for i in range(1, 7))
    with pytest.raises(kql.KQLError) as caught:
        plan(query)
    assert caught.value.code == "E307"
    assert caught.value.hint and "factor" in caught.value.hint


@pytest.mark.parametrize(
    ("query", "branches"),
    [
        (" and ".join(["(has_tag(1) or has_tag(2))"] * 6), 2),  # 64 raw conjunctions, 2 distinct
        ("has_tag(9) and " + " and ".join(f"(has_tag(9) or opened(bc_{i}))" for i in range(1, 7)), 1),  # absorbed
        (" and ".join(f"(has_tag({i}) or not has_tag({i}))" for i in range(1, 7)), 1),  # tautologies: everyone
    ],
)
def test_the_branch_cap_counts_the_simplified_form(query: str, branches: int) -> None:
    assert len(plan(query).branches) == branches


def test_budget_is_enforced_before_anything_is_sent() -> None:
    with pytest.raises(kql.KQLError) as caught:
        plan("opened(bc_1) or opened(bc_2) or opened(bc_3)", max_requests=2)
    assert caught.value.code == "E308"
    assert "at least 3 requests" in caught.value.message
    assert plan("opened(bc_1) or opened(bc_2)", max_requests=2).requests == 2


def test_plan_is_json_serialisable_and_printable() -> None:
    p = plan('site = 1 and (opened(bc_1) or clicked(bc_2)) and not passed_assessment(asmt_7) and name ~ "x"')
    data = json.loads(json.dumps(p.to_dict()))
    assert data["requests"] == 4 and len(data["branches"]) == 2
    assert data["merge"] == {"order": "-created_at", "tie_break": "id", "dedupe": "id"}  # no sort: newest first
    assert str(p).startswith("4 listing(s) in 2 branch(es)")


def test_segments_and_cli(tmp_path: Any) -> None:
    import subprocess
    import sys

    (tmp_path / "kql.toml").write_text('[segments.vip]\nquery = "net_revenue > 500"\n')
    done = subprocess.run(
        [sys.executable, "-m", "kql", "explain", "--json", "@vip or hidden"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [b["request"] for b in json.loads(done.stdout)["branches"]] == [
        "filter[net_revenue_greater_than]=500&sort=-created_at",
        "filter[is_hidden]=true&sort=-created_at",
    ]
    over = subprocess.run(
        [sys.executable, "-m", "kql", "explain", "--max-requests", "1", "opened(bc_1) or hidden"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert over.returncode == 2 and "error[E308]" in over.stderr


# ---- differential: the plan's result equals the expression's, on a model of the API ----------


class Model:
    """Customers with random memberships; every API parameter has set semantics over them."""

    def __init__(self, seed: int, size: int = 60) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.everyone = frozenset(range(1, size + 1))
        self.members: dict[tuple[str, str], frozenset[int]] = {}
        self.days: dict[tuple[str, int], float] = {}
        self.site = {c: rng.choice([1, 2, 3]) for c in self.everyone}
        self.revenue = {c: Decimal(rng.choice(["0", "50", "100", "100.50", "200", "500"])) for c in self.everyone}
        self.engagement = {c: rng.choice(["healthy", "passive", "unengaged", "inactive", None]) for c in self.everyone}
        self.text: dict[tuple[str, int], str] = {}
        self.sign_ins = {c: rng.randint(0, 9) for c in self.everyone}
        self.bounced = {c: None if rng.random() < 0.6 else "2025-03-01T00:00:00Z" for c in self.everyone}

    def member(self, key: tuple[str, str]) -> frozenset[int]:
        if key not in self.members:
            share = self.rng.random()
            self.members[key] = frozenset(c for c in self.everyone if self.rng.random() < share)
        return self.members[key]

    def days_ago(self, family: str, customer: int) -> float:
        key = (family, customer)
        if key not in self.days:
            self.days[key] = self.rng.uniform(0, 200)
        return self.days[key]

    def string(self, param: str, customer: int) -> str:
        key = (param, customer)
        if key not in self.text:
            self.text[key] = self.rng.choice(["alpha@gmail.com", "Beta", "gamma@x.org", "delta", "ALPHA"])
        return self.text[key]

    # Semantics of one API parameter (what the real API would return).
    def param(self, entry: Filter, values: tuple[str, ...]) -> frozenset[int]:
        if entry.negated and entry.negation:
            return self.everyone - self.param(REG.by_param[entry.negation], values)
        if entry.param == "no_sent_email_broadcast_ids":
            return self.everyone.difference(*(self.member(("sent_email_broadcast_id", v)) for v in values))
        if entry.param == "has_all_tag_id":
            return self.everyone.intersection(*(self.member(("has_tag_id", v)) for v in values))
        (value,) = values
        if entry.param == "site_id":
            return frozenset(c for c in self.everyone if self.site[c] == int(value))
        if entry.param.startswith("net_revenue"):
            amount = Decimal(value)
            test = {"=": amount.__eq__, ">": amount.__lt__, "<": amount.__gt__}[entry.op or "="]
            return frozenset(c for c in self.everyone if test(self.revenue[c]))
        if entry.form == "enum":
            return frozenset(c for c in self.everyone if self.engagement[c] == entry.enum_value)
        if entry.op == "~":
            return frozenset(c for c in self.everyone if value.casefold() in self.string(entry.param, c).casefold())
        if entry.value == "days":
            return frozenset(c for c in self.everyone if self.days_ago(entry.param, c) <= int(value))
        return self.member((entry.param, value))

    def request(self, params: tuple[tuple[str, str], ...]) -> frozenset[int]:
        found = self.everyone
        for name, value in params:
            entry = REG.by_param[name.removeprefix("filter[").removesuffix("]")]
            values = tuple(value.split(",")) if entry.arity == "many" else (value,)
            found &= self.param(entry, values)
        return found

    def record(self, customer: int) -> dict[str, Any]:
        created = NOW - timedelta(days=self.days_ago("created_in_last", customer))
        return {
            "id": str(customer),
            "name": self.string("name_contains", customer),
            "email": self.string("email_contains", customer),
            "sign_in_count": self.sign_ins[customer],
            "net_revenue": str(self.revenue[customer]),
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "bounced_at": self.bounced[customer],
        }

    # Ground truth: the expression evaluated directly, without the planner.
    def truth(self, typed: Typed) -> frozenset[int]:
        if isinstance(typed, TAnd):
            return self.everyone.intersection(*(self.truth(i) for i in typed.items))
        if isinstance(typed, TOr):
            return frozenset().union(*(self.truth(i) for i in typed.items))
        if isinstance(typed, TNot):
            return self.everyone - self.truth(typed.item)
        if isinstance(typed, Local):
            from kql.planning.plan import LocalFilter

            local = LocalFilter(typed.attribute.name, typed.op, typed.value, False, "")
            return frozenset(c for c in self.everyone if matches(local, self.record(c)))
        return self.cond(typed)

    def cond(self, cond: Cond) -> frozenset[int]:
        if cond.form == "enum":
            if cond.op is None:
                return frozenset(c for c in self.everyone if self.engagement[c] == cond.enum_value)
            wanted = set(cond.values)
            inside = frozenset(c for c in self.everyone if self.engagement[c] in wanted)
            return self.everyone - inside if cond.op == "!=" else inside
        if cond.form == "comparison" and cond.name in ("site", "net_revenue"):
            values = [Decimal(v) for v in cond.values]
            attribute = self.site if cond.name == "site" else self.revenue
            test = {
                "=": lambda x: x == values[0],
                "!=": lambda x: x != values[0],
                ">": lambda x: x > values[0],
                "<": lambda x: x < values[0],
                ">=": lambda x: x >= values[0],
                "<=": lambda x: x <= values[0],
                "in": lambda x: x in values,
            }[cond.op or "="]
            return frozenset(c for c in self.everyone if test(Decimal(attribute[c])))
        positive = REG.find(
            cond.name, cond.form, None if cond.op == "in" else cond.op, None, negated=False, single=True
        )
        if positive is None:  # delivered(x): the complement of its only parameter
            negative = REG.find(cond.name, cond.form, cond.op, None, negated=True, single=True)
            assert negative is not None
            return self.everyone.difference(*(self.param(negative, (v,)) for v in cond.values))
        if cond.name == "has_all_tags":
            return self.param(REG.by_param["has_all_tag_id"], cond.values)
        parts = [self.param(positive, (v,)) for v in cond.values]
        return frozenset().union(*parts)  # one value, or `in` / sent(a, b): any of them

    def run(self, p: Plan) -> frozenset[int]:
        found: set[int] = set()
        for branch in p.branches:
            ids = self.request(branch.request.params)
            for request in branch.exclude:
                ids -= self.request(request.params)
            for request in branch.intersect:
                ids &= self.request(request.params)
            found |= {c for c in ids if all(matches(f, self.record(c)) for f in branch.local)}
        return frozenset(found)


ATOMS = [
    "site = 1",
    "site != 2",
    "site in (1, 3)",
    "net_revenue = 100",
    "net_revenue > 50",
    "net_revenue < 200",
    "net_revenue >= 100",
    "net_revenue <= 100.50",
    "net_revenue != 0",
    'name ~ "al"',
    'email ~ "gmail"',
    "engagement = healthy",
    "engagement != passive",
    "engagement in (healthy, inactive)",
    "subscribed",
    "hidden",
    '"smith"',
    "created_in_last(30d)",
    "created_in_last(90d)",
    "active_in_last(2w)",
    "joined_in_last(60)",
    "has_tag(tag_1)",
    "has_tag(tag_2)",
    "has_all_tags(tag_1, tag_2)",
    "opened(bc_1)",
    "opened(bc_2)",
    "sent(bc_1, bc_2)",
    "delivered(bc_1)",
    "has_active_product(prod_1)",
    'used_coupon("SPRING24")',
    "has_offer in (offer_1, offer_2)",
    "passed_assessment(asmt_1)",
    "sign_in_count > 4",
    'email ends_with ".org"',
    'name starts_with "al"',
    "created_at >= 2026-09-01",
    "created_at < 2026-07-15T06:00:00Z",
    "bounced_at is null",
    "bounced_at is not null",
]

expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        inner.map(lambda e: f"not ({e})"),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: " and ".join(f"({x})" for x in xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: " or ".join(f"({x})" for x in xs)),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.integers(0, 10**6))
def test_plan_result_equals_the_expression(text: str, seed: int) -> None:
    model = Model(seed)
    try:
        p = plan(text, max_branches=64)
    except kql.KQLError as error:
        assert error.code == "E307", error.render()
        return
    checked = validate(kql.parse(text), text)
    assert checked.filter is not None
    assert model.run(p) == model.truth(checked.filter), p.explain()


def test_a_long_or_gets_its_own_hint() -> None:
    with pytest.raises(kql.KQLError) as caught:
        plan(" or ".join(f"opened(bc_{i})" for i in range(1, 40)))
    assert caught.value.code == "E307" and caught.value.hint is not None and "at most 32 parts" in caught.value.hint


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_one_conjunction_walk_gives_what_the_general_passes_give(text: str) -> None:
    # The planner's one-walk path for a single conjunction must agree, literal for literal and
    # in order, with the normal-form passes it skips; and refuse every query they expand to more.
    from kql.planning.planner import _dnf, _nnf, _one_conjunction, _positive

    reg = registry()
    typed = validate(kql.parse(text), text).filter
    assert typed is not None
    general = _dnf(_nnf(_positive(typed, reg), False, reg), 10**6, kql.parse(text))
    walked: list[Any] = []
    if _one_conjunction(typed, False, reg, walked):
        assert [walked] == general
    else:
        assert len(general) > 1


# Every parameter's own form, and each negated: with ATOMS, conjunctions of these hold duplicates,
# `x and not x`, exclusions, derived operators and local filters next to plain conditions.
_OWN_FORMS = [f.example(REG.id_prefixes) for f in REG.filters]
_CONJUNCTS = sorted({*_OWN_FORMS, *(f"not ({t})" for t in _OWN_FORMS), *ATOMS})


@st.composite
def _conjunctions(draw: st.DrawFn) -> Any:
    """A parsed conjunction; one time in three with its parts shuffled (positions out of order), one
    time in three read back from its JSON form (no positions at all)."""
    from kql.language import ast

    parts = draw(st.lists(st.sampled_from(_OWN_FORMS) | st.sampled_from(_CONJUNCTS), min_size=1, max_size=8))
    parts += draw(st.lists(st.sampled_from(parts), max_size=2))  # some written twice
    query = kql.parse(" and ".join(f"({p})" for p in parts))
    how = draw(st.sampled_from(["parsed", "shuffled", "json"]))
    if how == "shuffled" and isinstance(query.filter, ast.And):
        items = tuple(draw(st.permutations(query.filter.items)))
        query = attrs.evolve(query, filter=attrs.evolve(query.filter, items=items))
    elif how == "json":
        query = kql.from_json(kql.to_json(query))
    return query


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_conjunctions())
def test_direct_sends_are_what_the_general_passes_send(query: Any) -> None:
    # The planner's shortcut for a conjunction whose literals each have their own parameter must
    # send what the normal form, its simplification and the branch builder send: the same sends
    # (with the same nodes) in the same order, so the same branch, written the same way.
    from kql.planning.planner import _BranchBuilder, _branches, _direct_sends, _dnf, _nnf, _positive, _send, _simplify

    typed = validate(query).filter
    assert typed is not None
    direct = _direct_sends(typed, REG)
    conjunctions = _simplify(_dnf(_nnf(_positive(typed, REG), False, REG), 10**6, query))
    general = [b for b in (_BranchBuilder(REG, NOW).build(c) for c in conjunctions) if b is not None]
    got = _branches(typed, REG, 10**6, query, NOW)
    assert got == general and [b.text for b in got] == [b.text for b in general]
    if direct is None:
        return
    (conj,) = conjunctions
    sends = [_send(lit, REG) for lit in conj]
    assert [(s.entry, s.values) for s in direct] == [(s.entry, s.values) for s in sends if s is not None]
    assert len(direct) == len(sends) and all(d.node is s.node for d, s in zip(direct, sends, strict=True) if s)


@pytest.mark.parametrize(
    ("text", "direct"),
    [
        ("site = 1 and has_tag(tag_2) and not opened(bc_3) and subscribed", True),
        ("has_tag(tag_2) and has_tag(tag_2) and has_tag(tag_3)", True),  # a duplicate goes
        ("engagement = healthy and created_in_last(30d) and not active_in_last(7d)", True),
        ("has_tag(tag_2) and not has_tag(tag_2)", False),  # x and not x: matches nothing
        ("site = 1 and not passed_assessment(asmt_7)", False),  # an anti-join
        ("net_revenue >= 100", False),  # a derived operator
        ("not sent(bc_1, bc_2)", False),  # several values
        ('email ends_with ".org"', False),  # a local filter
        ("opened(bc_1) or opened(bc_2)", False),
    ],
)
def test_direct_sends_take_the_usual_queries(text: str, direct: bool) -> None:
    from kql.planning.planner import _direct_sends

    typed = validate(kql.parse(text)).filter
    assert typed is not None
    assert (_direct_sends(typed, REG) is not None) == direct


def test_validating_parsed_text_walks_its_depth_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parser bounds nesting (E007); validate() is told so and does not walk the tree again.
    from kql.language import ast

    calls: list[object] = []
    depth = ast.depth
    monkeypatch.setattr(ast, "depth", lambda expr: calls.append(expr) or depth(expr))
    kql.compile("has_tag(tag_1) and (not opened(bc_1) and subscribed)")
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(kql.KQLError) as caught:
        validate(ast.Query(filter=_nested(70)))  # built in code: validate() checks it itself
    assert caught.value.code == "E007" and len(calls) == 1


def _nested(levels: int) -> Any:
    from kql.language import ast

    node: Any = ast.Flag(ast.Name("subscribed"))
    for _ in range(levels):
        node = ast.Not(node)
    return node

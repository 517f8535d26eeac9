"""Names instead of ids: has_tag("VIP") → has_tag(tag_5), pure (a fake lookup) and against the sandbox."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

import kql
from kql.execute.client import Client
from kql.language import ast
from kql.language.errors import KQLError
from kql.planning.checked import expand
from kql.planning.compiler import compile_query
from kql.planning.names import CATALOGUES, NameRef, Resolver, find_names, named_filters, resolve_names
from kql.planning.segments_file import from_text
from kql.registry import registry

CATALOGUE = {
    "tag": [("5", "VIP"), ("6", "Lead"), ("7", "VIP Customer"), ("8", "Customer"), ("9", "Customer"),
            ("10", "beta"), ("11", "Beta")],
    "offer": [("789", "Premium Membership"), ("790", "Starter Pack")],
    "product": [("12", "Course 1"), ("13", "Coaching 2")],
}


class FakeLookup:
    """A lookup over CATALOGUE that counts its calls per kind."""

    def __init__(self, catalogue: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.catalogue = CATALOGUE if catalogue is None else catalogue
        self.calls: Counter[str] = Counter()

    def __call__(self, kind: str) -> list[tuple[str, str]]:
        self.calls[kind] += 1
        return list(self.catalogue.get(kind, []))


def resolve(text: str, lookup: FakeLookup | None = None) -> ast.Query:
    return resolve_names(kql.parse(text), lookup or FakeLookup(), text)


def same(resolved: ast.Query, expected: str) -> None:
    assert resolved == kql.parse(expected), kql.format(resolved)


def failure(text: str, lookup: FakeLookup | None = None) -> KQLError:
    with pytest.raises(KQLError) as caught:
        resolve(text, lookup)
    return caught.value


def under_caret(text: str, error: KQLError) -> str:
    assert error.span is not None
    return text[error.span.start : error.span.end]


# ---- which filters, which strings -------------------------------------------------------


def test_named_filters_come_from_the_registry_by_id_kind() -> None:
    filters = named_filters()
    assert {"has_tag", "has_all_tags", "has_offer", "has_product", "has_active_product",
            "previously_owned_product"} <= set(filters)
    for f in registry():
        if f.form == "predicate" and f.value == "id":
            assert (f.name in filters) == (f.id_kind in CATALOGUES)
    assert "opened" not in filters and "site" not in filters


def test_find_names_lists_strings_with_spans_in_source_order() -> None:
    text = 'has_tag("VIP") or not has_offer(\'Premium Membership\') or has_product in ("Course 1", prod_3)'
    refs = find_names(kql.parse(text))
    assert [(r.kind, r.filter, r.name) for r in refs] == [
        ("tag", "has_tag", "VIP"), ("offer", "has_offer", "Premium Membership"), ("product", "has_product", "Course 1"),
    ]
    assert [text[r.span.start : r.span.end] for r in refs if r.span] == [
        '"VIP"', "'Premium Membership'", '"Course 1"']
    assert all(isinstance(r, NameRef) for r in refs)


def test_find_names_ignores_ids_other_filters_and_empty_queries() -> None:
    assert find_names(kql.parse('has_tag(tag_5) and used_coupon("VIP") and name ~ "VIP" and "VIP"')) == []
    assert find_names(kql.parse("sort name")) == []


# ---- matching -----------------------------------------------------------------------------


def test_exact_name_becomes_the_typed_id_the_parser_makes() -> None:
    text = 'has_tag("VIP") and has_offer("Premium Membership") and has_product("Course 1")'
    resolved = resolve(text)
    same(resolved, "has_tag(tag_5) and has_offer(offer_789) and has_product(prod_12)")
    call = resolved.filter.items[0]  # type: ignore[union-attr]
    assert isinstance(call, ast.Call) and call.args[0].span == kql.parse(text).filter.items[0].args[0].span  # type: ignore[union-attr]


def test_the_resolved_query_compiles_to_id_filters() -> None:
    resolved = resolve('has_tag("VIP") and not has_offer("Premium Membership") and has_active_product("Course 1")')
    assert compile_query(resolved).params == [
        ("filter[has_tag_id]", "5"), ("filter[has_no_offer_id]", "789"), ("filter[has_active_product_id]", "12"),
    ]


def test_case_and_spacing_are_forgiven_when_unique() -> None:
    same(resolve('has_tag("vip")'), "has_tag(tag_5)")
    same(resolve('has_offer("premium   MEMBERSHIP ")'), "has_offer(offer_789)")


def test_an_exact_match_wins_over_case_insensitive_ones() -> None:
    # "beta" and "Beta" differ only in case: the exact spelling decides.
    same(resolve('has_tag("beta")'), "has_tag(tag_10)")
    same(resolve('has_tag("Beta")'), "has_tag(tag_11)")


def test_several_case_insensitive_matches_are_ambiguous() -> None:
    error = failure('has_tag("BETA")')
    assert error.code == "E210"
    assert "ignoring case" in error.message
    assert error.hint is not None and "tag_10 ('beta')" in error.hint and "tag_11 ('Beta')" in error.hint


def test_ambiguous_name_lists_every_candidate_with_its_id() -> None:
    text = 'subscribed and has_tag("Customer")'
    error = failure(text)
    assert error.code == "E210"
    assert error.message == "2 tags are named 'Customer'"
    assert error.hint == "write the id of the one you mean: tag_8 ('Customer'), tag_9 ('Customer')"
    assert under_caret(text, error) == '"Customer"'
    assert str(error).splitlines()[1:3] == [
        '  subscribed and has_tag("Customer")',
        "                         ^^^^^^^^^^",
    ]


def test_no_match_says_did_you_mean_with_ids() -> None:
    text = 'has_offer("Premium Membrship")'
    error = failure(text)
    assert error.code == "E108"
    assert error.message == "no offer named 'Premium Membrship'"
    assert error.hint == "did you mean 'Premium Membership' (offer_789)?"
    assert under_caret(text, error) == '"Premium Membrship"'


def test_no_match_suggests_longer_names_and_shares_ids_of_duplicates() -> None:
    error = failure('has_tag("Custmer")')
    assert error.code == "E108"
    assert error.hint is not None and "'Customer' (tag_8, tag_9)" in error.hint
    hint = failure('has_tag("vip cust")').hint
    assert hint is not None and "'VIP Customer' (tag_7)" in hint


def test_no_match_and_nothing_close_names_what_exists() -> None:
    hint = failure('has_product("Zzyzx")').hint
    assert hint is not None and "2 product names" in hint and "'Course 1'" in hint
    empty = failure('has_tag("VIP")', FakeLookup({"tag": []}))
    assert empty.code == "E108" and empty.hint is not None and "no tags" in empty.hint and "tag_5" in empty.hint


def test_empty_name_is_an_error_without_a_lookup() -> None:
    lookup = FakeLookup()
    error = failure('has_tag("  ")', lookup)
    assert error.code == "E108" and "empty" in error.message
    assert lookup.calls == Counter()


# ---- positions in the expression -----------------------------------------------------------


def test_names_anywhere_in_the_expression() -> None:
    text = (
        'not has_tag("VIP") or (subscribed and not (has_offer("Starter Pack") or has_product("Coaching 2"))) '
        'or has_all_tags("Lead", tag_6) or has_offer in ("Premium Membership", offer_1) sort -created_at limit 5'
    )
    same(resolve(text), (
        "not has_tag(tag_5) or (subscribed and not (has_offer(offer_790) or has_product(prod_13))) "
        "or has_all_tags(tag_6, tag_6) or has_offer in (offer_789, offer_1) sort -created_at limit 5"
    ))


def test_every_error_is_collected_in_source_order() -> None:
    text = 'has_tag("Nope") and not has_tag("Customer") or has_offer("Gold") or has_product("Course 1")'
    error = failure(text)
    assert [e.code for e in error.errors] == ["E108", "E210", "E108"]
    assert [under_caret(text, e) for e in error.errors] == ['"Nope"', '"Customer"', '"Gold"']
    assert isinstance(error, kql.KQLErrors) and str(error).count("error[") == 3
    assert all(e.source == text for e in error.errors)


def test_each_kind_is_looked_up_once_and_only_when_named() -> None:
    lookup = FakeLookup()
    resolve('has_tag("VIP") and has_tag("Lead") and not has_tag("vip customer") and has_offer("Starter Pack")', lookup)
    assert lookup.calls == Counter({"tag": 1, "offer": 1})
    untouched = kql.parse("has_tag(tag_5) and subscribed")
    nothing = FakeLookup()
    assert resolve_names(untouched, nothing) is untouched
    assert nothing.calls == Counter()


def test_names_in_an_expanded_segment() -> None:
    segments = from_text('[segments.vip]\nquery = \'has_tag("VIP") and net_revenue > 100\'\n')
    text = "@vip and not has_offer(\"Starter Pack\")"
    expanded = expand(kql.parse(text), segments, text)
    expected = "(has_tag(tag_5) and net_revenue > 100) and not has_offer(offer_790)"
    same(resolve_names(expanded, FakeLookup(), text), expected)
    broken = from_text('[segments.vip]\nquery = \'has_tag("Nope")\'\n')
    with pytest.raises(KQLError) as caught:
        resolve_names(expand(kql.parse("@vip"), broken, "@vip"), FakeLookup(), "@vip")
    assert caught.value.code == "E108" and "'Nope'" in caught.value.message
    assert under_caret("@vip", caught.value) == "@vip"  # inside a segment, errors point at the reference


def test_a_deep_query_built_in_python_is_no_recursion_problem() -> None:
    node: ast.Expr = ast.Call(ast.Name("has_tag"), (ast.Str("VIP"),))
    for _ in range(5000):
        node = ast.Not(node)
    resolved = resolve_names(ast.Query(filter=node), FakeLookup())
    inner = resolved.filter
    while isinstance(inner, ast.Not):
        inner = inner.item
    assert inner == ast.Call(ast.Name("has_tag"), (ast.TypedId("tag", 5),))


def test_a_lookup_with_a_non_numeric_id_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        resolve('has_tag("VIP")', FakeLookup({"tag": [("abc", "VIP")]}))


def test_compile_stays_offline_and_says_names_resolve_when_running() -> None:
    with pytest.raises(KQLError) as caught:
        kql.compile('has_tag("VIP")')
    assert caught.value.code == "E206"
    assert caught.value.hint is not None and "tag_5" in caught.value.hint and "kql run" in caught.value.hint
    with pytest.raises(KQLError) as other:
        kql.compile('opened("x")')
    assert other.value.hint == "e.g. bc_5"


# ---- against the sandbox ------------------------------------------------------------------


sandbox = pytest.importorskip("kql.sandbox")


@pytest.fixture(scope="module")
def sb() -> Iterator[sandbox.Sandbox]:
    with sandbox.running(customers=300, seed=3) as running:
        yield running


@pytest.fixture
def client(sb: sandbox.Sandbox) -> Iterator[Client]:
    from kql.execute.retry import RetryPolicy

    fast = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05, retry_after_cap=2.0, deadline=10.0)
    with Client(sb.base_url, token=sb.token, retry=fast) as c:
        yield c


def test_catalogue_walks_every_page_of_each_kind(client: Client) -> None:
    client.max_page_size = 7  # 40 tags: 6 pages
    tags = client.catalogue("tag")
    assert [int(i) for i, _ in tags] == list(range(1, 41))
    assert dict(tags)["4"] == "VIP Customer"
    assert client.stats["requests"] == 6
    assert len(client.catalogue("offer")) == 12 and len(client.catalogue("product")) == 8


def test_sandbox_names_resolve_and_run(client: Client, sb: sandbox.Sandbox) -> None:
    resolver = Resolver(client)
    text = 'has_tag("VIP Customer") and not has_product("course 1")'
    query = resolver.resolve(kql.parse(text), text)
    compiled = compile_query(query)
    assert compiled.params == [("filter[has_tag_id]", "4"), ("filter[has_no_product_id]", "1")]
    assert client.count(compiled) == client.count("has_tag(tag_4) and not has_product(prod_1)") > 0


def test_sandbox_ambiguity_per_kind(client: Client) -> None:
    resolver = Resolver(client)
    text = 'has_tag("Quiz Taker 2") or has_offer("Offer 11") or has_product("Coaching 7")'
    with pytest.raises(KQLError) as caught:
        resolver.resolve(kql.parse(text), text)
    errors = caught.value.errors
    assert [e.code for e in errors] == ["E210", "E210", "E210"]
    hints = [e.hint or "" for e in errors]
    assert "tag_39 ('Quiz Taker 2'), tag_40 ('Quiz Taker 2')" in hints[0]
    assert "offer_11 ('Offer 11'), offer_12 ('Offer 11')" in hints[1]
    assert "prod_7 ('Coaching 7'), prod_8 ('Coaching 7')" in hints[2]


def test_sandbox_lookups_happen_once_per_run(client: Client, sb: sandbox.Sandbox) -> None:
    resolver = Resolver(client)
    before = sb.stats["requests"]
    for text in ('has_tag("Lead")', 'has_tag("Newsletter") or has_tag("lead")', 'has_offer("Offer 2")', "subscribed"):
        resolver.resolve(kql.parse(text), text)
    assert client.stats["requests"] == 2  # one page of tags, one of offers
    assert sb.stats["requests"] - before == 2
    with pytest.raises(KQLError) as caught:
        resolver.resolve(kql.parse('has_tag("Leed")'), 'has_tag("Leed")')
    assert caught.value.hint is not None and "'Lead' (tag_1)" in caught.value.hint
    assert client.stats["requests"] == 2
    resolver.clear()
    resolver.resolve(kql.parse('has_tag("Lead")'))
    assert client.stats["requests"] == 3


def test_sandbox_site_scoping() -> None:
    with sandbox.running(customers=300, seed=4, sites=3) as sb3, Client(sb3.base_url, token=sb3.token,
                                                                           site_id=2) as c:
        tags = c.catalogue("tag")
        assert tags and all(int(i) % 3 == 2 for i, _ in tags)  # items go to sites round-robin
        # Site 2's duplicate pair (tags 35 and 38, "Beta Tester 2") is ambiguous there.
        with pytest.raises(KQLError) as caught:
            Resolver(c).resolve(kql.parse('has_tag("Beta Tester 2")'))
        assert caught.value.code == "E210" and "tag_35" in (caught.value.hint or "")
        same(Resolver(c).resolve(kql.parse('has_tag("Newsletter")')), "has_tag(tag_2)")
        with pytest.raises(KQLError) as elsewhere:
            Resolver(c).resolve(kql.parse('has_tag("Lead 2")'))  # tag 21 belongs to site 3
        assert elsewhere.value.code == "E108"


def test_async_resolver_against_the_sandbox(sb: sandbox.Sandbox) -> None:
    import asyncio

    from kql.execute.async_client import AsyncClient
    from kql.planning.names import AsyncResolver

    async def main() -> tuple[ast.Query, KQLError, int]:
        async with AsyncClient(sb.base_url, token=sb.token) as c:
            resolver = AsyncResolver(c)
            query = await resolver.resolve(kql.parse('has_tag("vip customer") or has_offer("Offer 2")'))
            with pytest.raises(KQLError) as caught:
                await resolver.resolve(kql.parse('has_tag("Quiz Taker 2")'))
            return query, caught.value, c.stats["requests"]

    query, error, requests = asyncio.run(main())
    same(query, "has_tag(tag_4) or has_offer(offer_2)")
    assert error.code == "E210" and requests == 2


def test_precheck_reports_other_problems_without_a_lookup() -> None:
    from kql.planning.lookups import precheck

    text = 'has_tag("VIP") and opend(bc_1) and not has_offer("x", "y") and has_tag in ("Lead", tag_6)'
    with pytest.raises(KQLError) as caught:
        precheck(kql.parse(text), text)
    assert [e.code for e in caught.value.errors] == ["E102", "E201"]
    assert caught.value.errors[0].source == text
    precheck(kql.parse('has_tag("VIP") and not has_product("Course 1") sort name'))  # only names: fine
    with pytest.raises(KQLError) as other:
        precheck(kql.parse('opened("x")'))
    assert other.value.code == "E206"  # not a kind with names: still the validator's error

"""The registry is complete, consistent, and the single source of the filter docs."""

from __future__ import annotations

import re

import pytest

import kql
from kql.registry import load_registry, registry
from kql.registry.docgen import render
from tests.conftest import OPENAPI, ROOT, require


def _openapi_customer_filters() -> dict[str, str]:
    """filter[…] parameters of GET /v1/customers in the reference, with Kajabi's descriptions."""
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load(require(OPENAPI).read_text(encoding="utf-8"))
    params = spec["paths"]["/v1/customers"]["get"]["parameters"]
    found = {}
    for p in params:
        match = re.fullmatch(r"filter\[(\w+)\]", p["name"])
        if match:
            found[match.group(1)] = p.get("description", "")
    return found


def test_registry_covers_every_filter_of_the_reference() -> None:
    api = _openapi_customer_filters()
    mine = {f.param for f in registry()}
    assert len(api) == 73
    assert set(api) - mine == set(), "filters of the API missing from the registry"
    # The only extra is is_suppressed, from the original page, kept as deprecated.
    assert mine - set(api) == {"is_suppressed"}
    assert registry().by_param["is_suppressed"].deprecated


def test_descriptions_are_our_own_words() -> None:
    api = _openapi_customer_filters()
    for entry in registry():
        assert entry.description.strip()
        assert entry.description.strip().rstrip(".") != api.get(entry.param, "").strip().rstrip(".")


def test_there_are_74_filters_and_each_example_sends_its_own_parameter() -> None:
    reg = kql.filters()
    assert len(reg) == 74
    for entry in reg:
        compiled = kql.compile(entry.example(reg.id_prefixes))
        assert [name for name, _ in compiled.params] == [entry.api_name], entry.param


def test_complements_are_linked_both_ways() -> None:
    reg = registry()
    pairs = {(f.param, f.negation) for f in reg if f.negation}
    assert ("has_tag_id", "has_no_tag_id") in pairs
    assert ("active_in_last", "inactive_in_last") in pairs
    for param, negation in pairs:
        assert (negation, param) in pairs
        assert reg.by_param[param].negated != reg.by_param[negation].negated
    # The 16 negated forms of LANGUAGE.md that have a positive form; `not sent(a, b)`
    # and `not delivered(x)` have none.
    assert len([f for f in reg if f.negated and f.negation]) == 16
    assert {f.param for f in reg if f.negated and not f.negation} == {
        "no_sent_email_broadcast_ids",
        "no_delivered_email_broadcast_id",
    }


def test_multi_valued_filters_declare_their_encoding() -> None:
    many = {f.param: f.multi for f in registry() if f.arity == "many"}
    assert many == {"has_all_tag_id": "comma", "no_sent_email_broadcast_ids": "comma"}


def test_the_encoding_is_a_registry_setting() -> None:
    text = (ROOT / "kql" / "registry" / "registry.toml").read_text(encoding="utf-8")
    changed = text.replace('param = "has_all_tag_id"', 'param = "has_all_tag_id"\nmulti_override = 1', 1)
    with pytest.raises(TypeError):
        load_registry(changed)  # unknown keys are refused, not ignored
    repeat = load_registry(text.replace('arity = "many"\nmulti = "comma"', 'arity = "many"\nmulti = "repeat"', 1))
    from kql.planning.compiler import compile_query

    compiled = compile_query("has_all_tags(tag_5, tag_6)", repeat)
    assert compiled.params == [("filter[has_all_tag_id]", "5"), ("filter[has_all_tag_id]", "6")]
    brackets = load_registry(text.replace('arity = "many"\nmulti = "comma"', 'arity = "many"\nmulti = "brackets"', 1))
    compiled = compile_query("has_all_tags(tag_5, tag_6)", brackets)
    assert compiled.params == [("filter[has_all_tag_id][]", "5"), ("filter[has_all_tag_id][]", "6")]


def test_bad_registry_values_are_refused() -> None:
    text = (ROOT / "kql" / "registry" / "registry.toml").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="form"):
        load_registry(text.replace('form = "flag"', 'form = "flga"', 1))


def test_docs_filters_md_is_generated_from_the_registry() -> None:
    committed = (ROOT / "docs" / "filters.md").read_text(encoding="utf-8")
    assert committed == render(registry()), "docs/filters.md is stale: run 'python -m kql.registry.docgen'"
    for entry in registry():
        assert f"`{entry.api_name}`" in committed

"""The rules cover the registry exactly, and docs/sandbox.md shows the current rules."""

from __future__ import annotations

import pytest

from kql.registry import registry
from kql.sandbox import docs
from kql.sandbox.rules import RULES, check_rules


def test_every_registry_parameter_has_a_rule() -> None:
    assert set(RULES) == {f.param for f in registry()}
    check_rules(registry())


def test_a_filter_without_a_rule_stops_the_sandbox() -> None:
    params = [f.param for f in registry()] + ["brand_new_filter"]
    with pytest.raises(RuntimeError, match="brand_new_filter"):
        check_rules(params)
    with pytest.raises(RuntimeError, match="site_id"):
        check_rules([p for p in params if p not in ("site_id", "brand_new_filter")])


def test_docs_show_the_current_rules() -> None:
    text = docs.DOC.read_text(encoding="utf-8")
    assert docs.render(text) == text, "docs/sandbox.md is stale: run python -m kql.sandbox.docs"
    for f in registry():
        assert f"`filter[{f.param}]`" in text

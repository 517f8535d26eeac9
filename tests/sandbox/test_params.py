"""Parameter parsing follows the registry: value types and every multi-value encoding."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from kql.registry import registry
from kql.sandbox.errors import ApiError
from kql.sandbox.params import filter_values, parse_list

REG = registry()
MANY = REG.by_param["has_all_tag_id"]


@pytest.mark.parametrize(("multi", "raws"), [
    ("comma", [("filter[has_all_tag_id]", "5,6")]),
    ("repeat", [("filter[has_all_tag_id]", "5"), ("filter[has_all_tag_id]", "6")]),
    ("brackets", [("filter[has_all_tag_id][]", "5"), ("filter[has_all_tag_id][]", "6")]),
])
def test_each_multi_encoding_is_read_as_the_registry_says(multi: str, raws: list[tuple[str, str]]) -> None:
    f = attrs.evolve(MANY, multi=multi)
    assert filter_values(f, raws) == [5, 6]
    others = {"comma": "repeat", "repeat": "brackets", "brackets": "repeat"}
    if multi != "comma":  # the other encodings are refused
        wrong = attrs.evolve(MANY, multi=others[multi])
        with pytest.raises(ApiError):
            filter_values(wrong, raws)


@pytest.mark.parametrize(("param", "raw", "value"), [
    ("has_tag_id", "12", 12), ("created_in_last", "0", 0), ("net_revenue_equal_to", "99.50", Decimal("99.50")),
    ("net_revenue_less_than", "-5", Decimal(-5)), ("subscribed", "TRUE", 1), ("name_contains", " a b ", " a b "),
])
def test_values_by_type(param: str, raw: str, value: object) -> None:
    assert filter_values(REG.by_param[param], [(f"filter[{param}]", raw)]) == [value]


def test_parse_list_defaults_and_sort_keys() -> None:
    query = parse_list([("sort", "-net_revenue,name")], REG, default_size=25, max_size=100)
    assert (query.page, query.size, query.fields, query.filters) == (1, 25, None, [])
    assert query.sort == [("net_revenue", True), ("name", False)]

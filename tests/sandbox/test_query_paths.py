"""The store answers a filter by one of several query shapes (a driving membership or a scan;
a sort index walked or the matches sorted): every shape gives the same customers in the same order."""

from __future__ import annotations

import httpx
import pytest

from kql.registry import registry

from .conftest import get

FILTERS = [{"filter[has_tag_id]": "30"},  # small: drives the query, few matches (sorted)
           {"filter[has_tag_id]": "1"},  # large: checked per customer, many matches (sort index walked)
           {"filter[has_tag_id]": "1", "filter[has_offer_id]": "9", "filter[subscribed]": "true"},
           {"filter[has_no_tag_id]": "1", "filter[search]": "smith"}]


def _all(client: httpx.Client, params: dict[str, str]) -> list[str]:
    out: list[str] = []
    for page in (1, 2):
        out += [i["id"] for i in get(client, "/v1/customers", {**params, "page[size]": 1000, "page[number]": page,
                                                                "fields[customers]": ""})["data"]]
    return out


@pytest.mark.parametrize("sort", [s for k in registry().sort_keys for s in (k, f"-{k}")])
def test_filtered_order_is_the_unfiltered_order_restricted(client: httpx.Client, sort: str) -> None:
    everyone = _all(client, {"sort": sort})
    for params in FILTERS:
        matches = _all(client, {**params, "sort": sort})
        chosen = set(matches)
        assert matches == [i for i in everyone if i in chosen], params
        # A page in the middle is the same slice of it.
        page = get(client, "/v1/customers", {**params, "sort": sort, "page[size]": 7, "page[number]": 3,
                                             "fields[customers]": ""})["data"]
        assert [i["id"] for i in page] == matches[14:21]

"""Every link the sandbox writes is served (issue 11, item 21), and included pages apply."""

from __future__ import annotations

from typing import Any

import httpx

from kql.sandbox import Sandbox

from .conftest import get


def _links(doc: Any) -> list[str]:
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("links", "self", "related", "contact") and isinstance(value, str):
                found.append(value)
            else:
                found += _links(value)
    elif isinstance(doc, list):
        for item in doc:
            found += _links(item)
    return found


def test_every_link_in_a_listing_and_a_customer_is_served(sandbox: Sandbox, client: httpx.Client) -> None:
    listing = get(client, "/v1/customers", {"filter[has_offer_id]": "1", "page[size]": 3})
    cid = listing["data"][0]["id"]
    shown = get(client, f"/v1/customers/{cid}", {"include": "offers,products,contact"})
    links = set(_links(listing) + _links(shown))
    assert f"{sandbox.base_url}/v1/customers/{cid}/relationships/offers" in links
    assert f"{sandbox.base_url}/v1/customers/{cid}/offers" in links
    assert f"{sandbox.base_url}/v1/contacts/{cid}" in links
    for link in links:
        assert link.startswith(sandbox.base_url), link
        assert client.get(link).status_code == 200, link


def test_relationship_and_related_offers_agree_with_the_customer(client: httpx.Client) -> None:
    cid = get(client, "/v1/customers", {"filter[has_offer_id]": "1", "page[size]": 1})["data"][0]["id"]
    shown = get(client, f"/v1/customers/{cid}")["data"]["relationships"]["offers"]["data"]
    identifiers = get(client, f"/v1/customers/{cid}/relationships/offers")["data"]
    related = get(client, f"/v1/customers/{cid}/offers")["data"]
    assert identifiers == shown and {"id": "1", "type": "offers"} in identifiers
    assert [{"id": o["id"], "type": o["type"]} for o in related] == identifiers
    contact = get(client, f"/v1/contacts/{cid}")["data"]
    assert contact["type"] == "contacts" and contact["id"] == cid


def test_unknown_ids_and_parameters_of_the_linked_endpoints(client: httpx.Client) -> None:
    for path in ("/v1/customers/999999/offers", "/v1/customers/x/relationships/offers", "/v1/contacts/0"):
        assert client.get(path).status_code == 404
    assert client.get("/v1/contacts/1", params={"include": "x"}).status_code == 400
    assert client.post("/v1/customers/1/relationships/offers").status_code == 405


def test_included_offers_are_paged(client: httpx.Client) -> None:
    many = max((get(client, f"/v1/customers/{i}")["data"] for i in range(1, 200)),
               key=lambda d: len(d["relationships"]["offers"]["data"]))
    cid, offers = many["id"], [o["id"] for o in many["relationships"]["offers"]["data"]]
    assert len(offers) >= 3
    for page, per in ((1, 2), (2, 2), (1, 1), (9, 5)):
        doc = get(client, f"/v1/customers/{cid}", {"include": "offers", "filter[offers_page]": page,
                                                   "filter[offers_per]": per})
        expected = offers[(page - 1) * per: page * per]
        assert [o["id"] for o in doc["included"]] == expected
        assert [o["id"] for o in doc["data"]["relationships"]["offers"]["data"]] == expected
    # Without include, as filter[offers_search], they do not apply.
    doc = get(client, f"/v1/customers/{cid}", {"filter[offers_page]": 2, "filter[offers_per]": 1})
    assert [o["id"] for o in doc["data"]["relationships"]["offers"]["data"]] == offers
    assert client.get(f"/v1/customers/{cid}", params={"filter[offers_per]": 5000}).status_code == 400

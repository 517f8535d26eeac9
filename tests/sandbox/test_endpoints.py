"""Endpoints over HTTP: sorting, sparse fields, pages and links, auth, OAuth, show, catalogues."""

from __future__ import annotations

import socket
import sqlite3
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from kql.registry import registry
from kql.sandbox import Sandbox, running
from kql.sandbox.data import generate

from .conftest import CUSTOMERS, get, ids

SORTS = registry().sort_keys


def _nocase(text: str) -> str:
    return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in text)


def _key(item: dict[str, Any], name: str) -> Any:
    value = item["attributes"][name]
    if name == "name":
        return _nocase(value)
    if name == "net_revenue":
        return float(value)
    return value


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("name", SORTS)
def test_sort_order_holds_with_id_tie_break(client: httpx.Client, name: str, descending: bool) -> None:
    sort = f"-{name}" if descending else name
    items = get(client, "/v1/customers", {"sort": sort, "page[size]": 1000, "fields[customers]": name})["data"]
    items += get(client, "/v1/customers", {"sort": sort, "page[size]": 1000, "page[number]": 2,
                                           "fields[customers]": name})["data"]
    assert len(items) == CUSTOMERS
    present = [i for i in items if i["attributes"][name] is not None]
    missing = [i for i in items if i["attributes"][name] is None]
    # Nulls sort as the largest value: last ascending, first descending.
    assert items == (missing + present if descending else present + missing)
    keys = [(_key(i, name), int(i["id"])) for i in present]
    assert keys == sorted(keys, reverse=descending)


def test_default_sort_is_newest_first(client: httpx.Client) -> None:
    items = get(client, "/v1/customers", {"page[size]": 100, "fields[customers]": "created_at"})["data"]
    stamps = [i["attributes"]["created_at"] for i in items]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("fields", ["name,email", "net_revenue", "socials,created_at,sign_in_count", ""])
def test_sparse_fields_return_exactly_what_was_asked(client: httpx.Client, fields: str) -> None:
    for item in get(client, "/v1/customers", {"fields[customers]": fields, "page[size]": 50})["data"]:
        assert set(item["attributes"]) == set(filter(None, fields.split(",")))
        assert set(item) <= {"id", "type", "attributes"}


def test_full_resources_have_the_reference_shape(client: httpx.Client) -> None:
    item = get(client, "/v1/customers", {"page[size]": 1})["data"][0]
    assert isinstance(item["id"], str) and item["type"] == "customers"
    assert set(item["attributes"]) == set(registry().attributes)
    assert item["relationships"]["site"] == {"data": {"id": "1", "type": "sites"}}


@pytest.mark.parametrize("sort", ["-created_at", "name", "-net_revenue", "last_request_at"])
def test_walking_all_pages_returns_every_customer_once(client: httpx.Client, sort: str) -> None:
    seen: list[str] = []
    url: str | None = f"/v1/customers?sort={sort}&page[size]=97&fields[customers]=name"
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [item["id"] for item in body["data"]]
        pages += 1
        url = body["links"]["next"]
    assert pages == body["meta"]["total_pages"] == -(-CUSTOMERS // 97)
    assert len(seen) == len(set(seen)) == CUSTOMERS


def test_links_and_meta(client: httpx.Client, sandbox: Sandbox) -> None:
    body = get(client, "/v1/customers", [("filter[has_tag_id]", "1"), ("fields[customers]", "name,email"),
                                         ("page[number]", "2"), ("page[size]", "10")])
    total = body["meta"]["total_count"]
    assert body["meta"] == {"total_pages": -(-total // 10), "total_count": total, "current_page": 2}
    links = body["links"]
    assert links["self"] == (f"{sandbox.base_url}/v1/customers?filter[has_tag_id]=1&fields[customers]=name,email"
                             "&page[number]=2&page[size]=10")
    for name, page in (("first", 1), ("prev", 1), ("next", 3), ("last", body["meta"]["total_pages"])):
        parts = urlsplit(links[name])
        assert f"{parts.scheme}://{parts.netloc}" == sandbox.base_url and parts.path == "/v1/customers"
        assert dict(parse_qsl(parts.query))["page[number]"] == str(page)
    first = get(client, "/v1/customers", {"page[size]": 10})
    assert first["links"]["prev"] is None
    assert first["links"]["self"].endswith("/v1/customers?page[number]=1&page[size]=10")
    last = get(client, links["last"])
    assert last["links"]["next"] is None and len(last["data"]) == total - 10 * (body["meta"]["total_pages"] - 1)
    beyond = get(client, "/v1/customers", {"page[number]": 10_000})
    assert beyond["data"] == [] and beyond["meta"]["current_page"] == 10_000


def test_nothing_matches() -> None:
    with running(customers=30, seed=2) as sb:
        body = httpx.get(f"{sb.base_url}/v1/customers", params={"filter[has_tag_id]": 999_999},
                         headers={"Authorization": "Bearer sandbox"}).json()
    assert body["data"] == [] and body["meta"] == {"total_pages": 0, "total_count": 0, "current_page": 1}
    assert body["links"]["next"] is None and body["links"]["last"].endswith("page[number]=1&page[size]=25")


def test_page_size_defaults_and_maximum_and_links_host() -> None:
    with running(customers=120, seed=3, links_host="https://app.kajabi.com/api/") as sb:
        c = httpx.Client(base_url=sb.base_url, headers={"Authorization": "Bearer sandbox"})
        body = c.get("/v1/customers").json()
        assert len(body["data"]) == 25 and body["meta"]["total_pages"] == 5
        assert body["links"]["next"] == "https://app.kajabi.com/api/v1/customers?page[number]=2&page[size]=25"
        assert len(c.get("/v1/customers", params={"page[size]": 100}).json()["data"]) == 100
        response = c.get("/v1/customers", params={"page[size]": 101})
        assert response.status_code == 400
        assert response.json()["errors"][0]["source"] == {"parameter": "page[size]"}
        c.close()


def test_several_sites_require_site_id() -> None:
    with running(customers=300, seed=4, sites=3) as sb:
        c = httpx.Client(base_url=sb.base_url, headers={"Authorization": "Bearer sandbox"})
        response = c.get("/v1/customers")
        assert response.status_code == 400
        assert response.json()["errors"][0]["source"] == {"parameter": "filter[site_id]"}
        sizes = []
        for site in (1, 2, 3):
            body = c.get("/v1/customers", params={"filter[site_id]": site, "page[size]": 100}).json()
            assert {i["relationships"]["site"]["data"]["id"] for i in body["data"]} == {str(site)}
            sizes.append(body["meta"]["total_count"])
        assert sum(sizes) == 300 and all(0 < s < 300 for s in sizes)
        tags = c.get("/v1/contact_tags", params={"filter[site_id]": 2, "page[size]": 100}).json()["data"]
        assert tags and {t["relationships"]["site"]["data"]["id"] for t in tags} == {"2"}
        # A tag of site 2 is held only by customers of site 2.
        held = c.get("/v1/customers", params={"filter[site_id]": 1, "filter[has_tag_id]": tags[0]["id"]}).json()
        assert held["meta"]["total_count"] == 0
        c.close()


def test_auth_is_required(sandbox: Sandbox) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic c2FuZGJveA=="}):
        response = httpx.get(f"{sandbox.base_url}/v1/customers", headers=headers)
        assert response.status_code == 401
        assert response.json()["errors"][0]["status"] == "401"
    assert httpx.get(f"{sandbox.base_url}/v1/version").status_code == 200


def test_oauth_client_credentials_and_refresh(sandbox: Sandbox) -> None:
    base = sandbox.base_url
    issued = sandbox.stats.tokens_issued
    response = httpx.post(f"{base}/v1/oauth/token", data={"grant_type": "client_credentials",
                                                          "client_id": "sandbox", "client_secret": "sandbox"})
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{base}/v1/customers", headers=auth).status_code == 200
    again = httpx.post(f"{base}/v1/oauth/token", json={"grant_type": "refresh_token",
                                                      "refresh_token": token["refresh_token"]})
    assert again.status_code == 200 and again.json()["access_token"] != token["access_token"]
    reused = httpx.post(f"{base}/v1/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": token["refresh_token"]})
    assert reused.status_code == 401 and reused.json() == {"error": "invalid_grant"}
    assert sandbox.stats.tokens_issued == issued + 2
    wrong = httpx.post(f"{base}/v1/oauth/token", data={"grant_type": "client_credentials",
                                                      "client_id": "sandbox", "client_secret": "guess"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
    odd = httpx.post(f"{base}/v1/oauth/token", data={"grant_type": "password", "username": "a", "password": "b"})
    assert odd.status_code == 400 and odd.json() == {"error": "unsupported_grant_type"}


def test_access_tokens_expire() -> None:
    with running(customers=10, expires_in=0, token=None) as sb:
        token = httpx.post(f"{sb.base_url}/v1/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "sandbox", "client_secret": "sandbox"}).json()
        response = httpx.get(f"{sb.base_url}/v1/customers",
                             headers={"Authorization": f"Bearer {token['access_token']}"})
        assert response.status_code == 401 and "expired" in response.json()["errors"][0]["detail"]
        assert httpx.get(f"{sb.base_url}/v1/customers",
                         headers={"Authorization": "Bearer sandbox"}).status_code == 401  # no static token


def test_show_customer_with_includes(client: httpx.Client) -> None:
    cid = next(iter(ids(client, {"filter[has_offer_id]": 1}) & ids(client, {"filter[has_active_product_id]": 1})))
    body = get(client, f"/v1/customers/{cid}", {"include": "offers,products,contact"})
    data = body["data"]
    assert data["id"] == str(cid) and data["type"] == "customers"
    assert {"id": "1", "type": "offers"} in data["relationships"]["offers"]["data"]
    assert {"id": "1", "type": "products"} in data["relationships"]["products"]["data"]
    assert data["relationships"]["contact"]["data"] == {"id": str(cid), "type": "contacts"}
    kinds = {item["type"] for item in body["included"]}
    assert kinds == {"offers", "products", "contacts"}
    contact = next(i for i in body["included"] if i["type"] == "contacts")["attributes"]
    assert {"address_line_1", "address_city", "phone_number", "mobile_phone_number", "subscribed"} <= set(contact)
    plain = get(client, f"/v1/customers/{cid}", {"fields[customers]": "name"})
    assert plain["data"]["attributes"] == {"name": data["attributes"]["name"]} and "included" not in plain
    assert get(client, "/v1/customers/999999", status=404)["errors"][0]["status"] == "404"
    assert get(client, "/v1/customers/abc", status=404)["errors"]
    assert get(client, f"/v1/customers/{cid}", {"include": "tags"}, status=400)["errors"][0]["source"] == {
        "parameter": "include"}


@pytest.mark.parametrize(("path", "attribute"), [
    ("/v1/sites", "title"), ("/v1/contact_tags", "name"), ("/v1/offers", "title"), ("/v1/products", "title"),
])
def test_catalogues_are_paginated_with_names(client: httpx.Client, path: str, attribute: str) -> None:
    first = get(client, path, {"page[size]": 5})
    everything = []
    url: str | None = f"{path}?page[size]=5"
    while url:
        page = client.get(url).json()
        everything += page["data"]
        url = page["links"]["next"]
    assert len(everything) == first["meta"]["total_count"]
    assert [int(i["id"]) for i in everything] == list(range(1, len(everything) + 1))
    assert all(i["attributes"][attribute] for i in everything)


def test_catalogue_filters(client: httpx.Client) -> None:
    vip = get(client, "/v1/contact_tags", {"filter[name_cont]": "vip"})["data"]
    assert vip and all("vip" in t["attributes"]["name"].lower() for t in vip)
    free = get(client, "/v1/offers", {"filter[title_cont]": "FREE"})["data"]
    assert [o["id"] for o in free] == ["1", "4"] and all(o["attributes"]["free"] for o in free)
    assert get(client, "/v1/offers", {"filter[bogus]": "1"}, status=400)["errors"]


def test_unknown_paths_and_methods(sandbox: Sandbox) -> None:
    headers = {"Authorization": "Bearer sandbox"}
    assert httpx.get(f"{sandbox.base_url}/api/v1/customers", headers=headers).status_code == 404
    assert httpx.delete(f"{sandbox.base_url}/v1/customers", headers=headers).status_code == 405
    assert httpx.get(f"{sandbox.base_url}/v1/oauth/token").status_code == 405


def test_insert_customers_while_serving() -> None:
    with running(customers=50, seed=5) as sb:
        c = httpx.Client(base_url=sb.base_url, headers={"Authorization": "Bearer sandbox"})
        assert c.get("/v1/customers", params={"page[size]": 5}).json()["meta"]["total_count"] == 50
        assert sb.insert_customers(3) == [51, 52, 53]  # the remembered count is forgotten
        body = c.get("/v1/customers", params={"page[size]": 5}).json()
        assert body["meta"]["total_count"] == 53
        assert [i["id"] for i in body["data"][:3]] == ["53", "52", "51"]
        assert c.get("/v1/customers", params={"filter[created_in_last]": 1}).json()["meta"]["total_count"] >= 3
        assert sb.stats.requests == 3
        c.close()


def _dump(seed: int, customers: int = 300) -> list[str]:
    conn = sqlite3.connect(":memory:")
    generate(conn, customers=customers, seed=seed, sites=2, now=1_760_000_000)
    return list(conn.iterdump())


def test_generation_is_deterministic_by_seed() -> None:
    assert _dump(11) == _dump(11)
    assert _dump(11) != _dump(12)


def test_a_db_file_is_built_then_reused_with_dates_moved_to_now(tmp_path: Any) -> None:
    path = tmp_path / "sandbox.db"
    auth = {"Authorization": "Bearer sandbox"}
    with running(customers=40, seed=6, db=path) as sb:
        first = httpx.get(f"{sb.base_url}/v1/customers/1", headers=auth).json()["data"]["attributes"]
    with sqlite3.connect(path) as conn:  # mark the file, and pretend it was built ten days ago
        conn.execute("UPDATE customers SET name = 'Marker' WHERE id = 1")
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) - 864000 WHERE key = 'now'")
    conn.close()
    with running(customers=40, seed=6, db=path) as sb:
        again = httpx.get(f"{sb.base_url}/v1/customers/1", headers=auth).json()["data"]["attributes"]
    assert again["name"] == "Marker"  # reused, not rebuilt
    shifted = datetime.fromisoformat(again["created_at"]) - datetime.fromisoformat(first["created_at"])
    assert timedelta(days=10) <= shifted < timedelta(days=10, minutes=5)
    with running(customers=41, seed=6, db=path) as sb:  # another size: rebuilt
        assert httpx.get(f"{sb.base_url}/v1/customers/1", headers=auth).json()["data"]["attributes"]["name"] != "Marker"


def _raw(sandbox: Sandbox, request: bytes) -> str:
    """Send bytes as they are and read the whole answer (the server closes these connections)."""
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    chunks = []
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(request)
        while chunk := raw.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_malformed_requests_get_json_errors(sandbox: Sandbox) -> None:
    reply = _raw(sandbox, b"POST /v1/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
    assert reply.startswith("HTTP/1.1 400") and '"errors"' in reply
    headers = {"Authorization": "Bearer sandbox"}
    assert httpx.get(f"{sandbox.base_url}/v1/customers/%C2%B2", headers=headers).status_code == 404
    weird = httpx.get(f"{sandbox.base_url}/v1/customers?filter%5Bname_contains%5D=%FF%FE&x", headers=headers)
    assert weird.status_code == 400 and weird.json()["errors"]


def test_malformed_request_lines_and_methods_get_json(sandbox: Sandbox) -> None:
    replies = [_raw(sandbox, request) for request in (b"GARBAGE\r\n\r\n",
                                                      b"HEAD /v1/version HTTP/1.1\r\nHost: x\r\n\r\n")]
    assert replies[0].startswith('{"errors":')  # no HTTP version: the stdlib answers HTTP/0.9-style, body only
    assert replies[1].startswith("HTTP/1.1 501") and "application/vnd.api+json" in replies[1]


def test_empty_sandbox() -> None:
    with running(customers=0) as sb:
        body = httpx.get(f"{sb.base_url}/v1/customers", headers={"Authorization": "Bearer sandbox"}).json()
        assert body["meta"]["total_count"] == 0
        assert sb.insert_customers(2) == [1, 2]


def test_a_foreign_database_file_is_never_overwritten(tmp_path: Any) -> None:
    path = tmp_path / "precious.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    with pytest.raises(ValueError, match="not a sandbox database"), running(customers=5, db=path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
    conn.close()

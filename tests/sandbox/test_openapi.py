"""Responses validate against the reference's OpenAPI schemas (../shared/reference)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from kql.sandbox import Sandbox

from ..conftest import OPENAPI, require

# Attribute objects are checked strictly: the sandbox sends no attribute the reference lacks.
STRICT = ("customers_attributes", "offers_attributes", "products_attributes", "sites_attributes",
          "contact_tags_attributes", "oauth_token_response")


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` becomes a JSON Schema type union with null."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
    return out


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    spec = yaml.safe_load(require(OPENAPI).read_text(encoding="utf-8"))
    schemas = copy.deepcopy(spec["components"]["schemas"])
    for name in STRICT:
        schemas[name]["additionalProperties"] = False
    return {"schemas": _openapi_to_jsonschema(schemas)}


def check(components: dict[str, Any], schema: str, document: Any) -> None:
    jsonschema.validate(document, {"$ref": f"#/components/schemas/{schema}", "components": components})


@pytest.mark.parametrize(("path", "params", "schema"), [
    ("/v1/customers", {}, "customers_index_response"),
    ("/v1/customers", {"sort": "-net_revenue", "page[size]": 100}, "customers_index_response"),
    ("/v1/customers", {"fields[customers]": "name,email"}, "customers_index_response"),
    ("/v1/customers/1", {}, "customers_show_response"),
    ("/v1/customers/2", {"include": "offers,products,contact"}, "customers_show_response"),
    ("/v1/sites", {}, "sites_index_response"),
    ("/v1/contact_tags", {"page[size]": 100}, "contact_tags_index_response"),
    ("/v1/offers", {}, "offers_index_response"),
    ("/v1/products", {}, "products_index_response"),
    ("/v1/version", {}, "version_response"),
    ("/v1/customers", {"filter[nope]": "1"}, "errors_bad_request"),
])
def test_responses_match_the_reference(components: dict[str, Any], client: httpx.Client, path: str,
                                       params: dict[str, Any], schema: str) -> None:
    response = client.get(path, params=params)
    assert response.headers["content-type"] == "application/vnd.api+json"
    check(components, schema, response.json())


def test_every_customer_attribute_validates(components: dict[str, Any], client: httpx.Client) -> None:
    # A whole page of 1,000 customers: nulls, socials objects and money strings all occur.
    body = client.get("/v1/customers", params={"page[size]": 1000}).json()
    check(components, "customers_index_response", body)


def test_auth_and_oauth_responses_match(components: dict[str, Any], sandbox: Sandbox) -> None:
    check(components, "errors_unauthorized", httpx.get(f"{sandbox.base_url}/v1/customers").json())
    good = httpx.post(f"{sandbox.base_url}/v1/oauth/token",
                      data={"grant_type": "client_credentials", "client_id": "sandbox", "client_secret": "sandbox"})
    check(components, "oauth_token_response", good.json())
    bad = httpx.post(f"{sandbox.base_url}/v1/oauth/token", data={"grant_type": "client_credentials"})
    check(components, "errors_authentication_failed", bad.json())

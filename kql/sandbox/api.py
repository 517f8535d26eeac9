"""Routing, auth and the customer and token endpoints: a request in, a `Response` out; no sockets here."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from kql.registry import registry
from kql.sandbox import catalogue, shapes
from kql.sandbox.errors import ApiError, bad_request
from kql.sandbox.params import parse_fields, parse_list, positive
from kql.sandbox.store import Store
from kql.sandbox.tokens import OAuthError, Tokens

JSONAPI = "application/vnd.api+json"
_CUSTOMER = re.compile(r"^/v1/customers/([^/]+)$")
Pairs = list[tuple[str, str]]


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSONAPI
    headers: dict[str, str] = field(default_factory=dict)


def document(status: int, doc: Mapping[str, Any], content_type: str = JSONAPI, **headers: str) -> Response:
    return Response(status, json.dumps(doc, separators=(",", ":")).encode(), content_type, dict(headers))


class App:
    def __init__(self, store: Store, tokens: Tokens, *, sites: int, default_page_size: int, max_page_size: int,
                 links_host: str | None) -> None:
        if not 1 <= default_page_size <= max_page_size:
            raise ValueError("need 1 <= default_page_size <= max_page_size")
        self.store, self.tokens, self.sites = store, tokens, sites
        self.default_size, self.max_size = default_page_size, max_page_size
        if links_host and "://" not in links_host:
            links_host = f"http://{links_host}"  # a bare host name: links must stay absolute URLs
        self.links_host = links_host.rstrip("/") if links_host else None
        self.base = ""  # set by the server once it has a port

    @property
    def links_base(self) -> str:
        return self.links_host or self.base

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        path, _, query = target.partition("?")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
        except ValueError:
            pairs = []
        try:
            return self._route(method, path.rstrip("/") or "/", pairs, headers, body)
        except ApiError as error:
            return document(error.status, error.document())

    def _route(self, method: str, path: str, pairs: Pairs, headers: Mapping[str, str], body: bytes) -> Response:
        if path == "/v1/version":
            self._method(method, "GET")
            return document(200, {
                "meta": {"title": "Kajabi API V1 (kql sandbox)", "version": "1.1.0"},
                "links": {"documentation": "https://developers.kajabi.com"},
                "jsonapi": {"version": "1.0", "specficiation": "https://jsonapi.org/format/"},
            })
        if path == "/v1/oauth/token":
            self._method(method, "POST")
            return self._token(headers, body)
        if path == "/v1/customers" or _CUSTOMER.match(path) or path in catalogue.CATALOGUES:
            self._method(method, "GET")
            self._authorize(headers)
            if path == "/v1/customers":
                return self._customers(pairs)
            if path in catalogue.CATALOGUES:
                doc = catalogue.listing(self.store, path, pairs, self.links_base, self.default_size, self.max_size)
                return document(200, doc)
            match = _CUSTOMER.match(path)
            assert match is not None
            return self._customer(match.group(1), pairs)
        raise ApiError(404, f"no such endpoint: {path}")

    @staticmethod
    def _method(method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiError(405, f"use {allowed}")

    def _authorize(self, headers: Mapping[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Authorization: Bearer <token> is missing")
        problem = self.tokens.check(token.strip())
        if problem:
            raise ApiError(401, problem)

    def _token(self, headers: Mapping[str, str], body: bytes) -> Response:
        text = body.decode("utf-8", "replace")
        form: dict[str, str]
        if headers.get("content-type", "").startswith("application/json"):
            try:
                loaded = json.loads(text or "{}")
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                return document(400, {"error": "invalid_request"}, "application/json")
            form = {str(k): str(v) for k, v in loaded.items()}
        else:
            form = dict(parse_qsl(text, keep_blank_values=True))
        try:
            return document(200, self.tokens.grant(form), "application/json", **{"Cache-Control": "no-store"})
        except OAuthError as error:
            return document(error.status, {"error": error.code}, "application/json")

    def _customers(self, pairs: Pairs) -> Response:
        reg = registry()
        query = parse_list(pairs, reg, default_size=self.default_size, max_size=self.max_size)
        if self.sites > 1 and not any(f.param == "site_id" for f, _ in query.filters):
            raise bad_request("filter[site_id] is required: this account has several sites", "filter[site_id]")
        rows, total = self.store.list_customers(query)
        data = [shapes.customer(row, self.links_base, query.fields) for row in rows]
        return document(200, shapes.paged(data, f"{self.links_base}/v1/customers", pairs, query.page, query.size,
                                          total))

    def _customer(self, raw_id: str, pairs: Pairs) -> Response:
        reg = registry()
        fields, include = None, []
        searches: dict[str, str] = {}
        for key, value in pairs:
            if key == "fields[customers]":
                fields = parse_fields(value, reg)
            elif key == "include":
                include = [v.strip() for v in value.split(",") if v.strip()]
                unknown = [v for v in include if v not in ("offers", "products", "contact")]
                if unknown:
                    raise bad_request(f"cannot include {', '.join(unknown)}: use offers, products, contact", key)
            elif key in ("filter[offers_search]", "filter[products_search]"):
                searches[key] = value.casefold()
            elif key in ("filter[offers_page]", "filter[offers_per]", "filter[products_page]",
                         "filter[products_per]"):
                positive(key, value)
            else:
                raise bad_request(f"unknown parameter {key}", key)
        row = self.store.customer(int(raw_id)) if re.fullmatch(r"[0-9]{1,15}", raw_id) else None
        if row is None:
            raise ApiError(404, f"no customer with id {raw_id}")
        base = self.links_base
        resource = shapes.customer(row, base, fields)
        offers, products = self.store.related(row["id"])
        if "offers" in include and "filter[offers_search]" in searches:
            offers = [o for o in offers if searches["filter[offers_search]"] in o["title"].casefold()]
        if "products" in include and "filter[products_search]" in searches:
            products = [p for p in products if searches["filter[products_search]"] in p["title"].casefold()]
        cid = str(row["id"])
        relationships = resource.setdefault("relationships", {})
        if fields is None:
            relationships["contact"] = {"data": {"id": cid, "type": "contacts"}}
            relationships["offers"] = {"data": [{"id": str(o["id"]), "type": "offers"} for o in offers],
                                       "links": {"self": f"{base}/v1/customers/{cid}/relationships/offers"}}
            relationships["products"] = {"data": [{"id": str(p["id"]), "type": "products"} for p in products]}
            resource["links"] = {"contact": f"{base}/v1/contacts/{cid}"}
        doc: dict[str, Any] = {"data": resource, "links": {"self": f"{base}/v1/customers/{cid}"}}
        if include:
            included: list[dict[str, Any]] = []
            if "offers" in include:
                included += [shapes.offer(o, base) for o in offers]
            if "products" in include:
                included += [shapes.product(p) for p in products]
            if "contact" in include:
                included.append(shapes.contact(row))
            doc["included"] = included
        return document(200, doc)

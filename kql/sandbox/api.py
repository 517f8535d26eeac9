"""Routing, auth and the customer and token endpoints: a request in, a `Response` out; no sockets here."""

from __future__ import annotations

import json
import re
import sqlite3
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
# The links the sandbox writes into its documents, each served here:
_CUSTOMER_OFFERS = re.compile(r"^/v1/customers/([^/]+)/(relationships/offers|offers)$")
_CONTACT = re.compile(r"^/v1/contacts/([^/]+)$")
_INCLUDED_PAGES = {"offers": ("filter[offers_page]", "filter[offers_per]"),
                   "products": ("filter[products_page]", "filter[products_per]")}
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
        resource = _CUSTOMER.match(path) or _CUSTOMER_OFFERS.match(path) or _CONTACT.match(path)
        if path == "/v1/customers" or resource or path in catalogue.CATALOGUES:
            self._method(method, "GET")
            self._authorize(headers)
            if path == "/v1/customers":
                return self._customers(pairs)
            if path in catalogue.CATALOGUES:
                doc = catalogue.listing(self.store, path, pairs, self.links_base, self.default_size, self.max_size)
                return document(200, doc)
            assert resource is not None
            if resource.re is _CUSTOMER_OFFERS:
                return self._customer_offers(resource.group(1), resource.group(2), pairs)
            if resource.re is _CONTACT:
                return self._contact(resource.group(1), pairs)
            return self._customer(resource.group(1), pairs)
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
        # Errors here are OAuth's shape ({"error", "error_description"}, RFC 6749), as the real
        # token endpoint answers and OAuth clients read; never a 500, whatever the body.
        text = body.decode("utf-8", "replace")
        form: dict[str, str]
        if headers.get("content-type", "").startswith("application/json"):
            try:
                loaded = json.loads(text or "{}")
            except (ValueError, RecursionError):  # malformed, a 5,000-digit number, nested too deep
                return _oauth_error(400, "invalid_request", "the body is not a JSON object")
            if not isinstance(loaded, dict):
                return _oauth_error(400, "invalid_request", "the body is not a JSON object")
            if not all(isinstance(v, str | int | float | bool) for v in loaded.values()):
                return _oauth_error(400, "invalid_request", "parameters must be strings")
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
        try:
            rows, total = self.store.list_customers(query)
        except sqlite3.OperationalError as error:  # one of SQLite's own limits, past the checks of params
            if not re.search(r"too (large|many|deep|big|complex)|stack|depth", str(error)):
                raise
            raise bad_request(f"the filters are too complex for the sandbox ({error})") from None
        data = [shapes.customer(row, self.links_base, query.fields) for row in rows]
        return document(200, shapes.paged(data, f"{self.links_base}/v1/customers", pairs, query.page, query.size,
                                          total))

    def _customer(self, raw_id: str, pairs: Pairs) -> Response:
        reg = registry()
        fields, include = None, []
        searches: dict[str, str] = {}
        numbers: dict[str, int] = {}
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
                numbers[key] = positive(key, value)
                if key.endswith("_per]") and numbers[key] > self.max_size:
                    raise bad_request(f"{key} is at most {self.max_size}", key)
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
        # Like the searches, the pages of included offers and products apply only when included
        # (then to the relationship's data and the included resources alike).
        if "offers" in include:
            offers = self._page_of(offers, *_INCLUDED_PAGES["offers"], numbers)
        if "products" in include:
            products = self._page_of(products, *_INCLUDED_PAGES["products"], numbers)
        cid = str(row["id"])
        relationships = resource.setdefault("relationships", {})
        if fields is None:
            relationships["contact"] = {"data": {"id": cid, "type": "contacts"}}
            relationships["offers"] = {"data": [{"id": str(o["id"]), "type": "offers"} for o in offers],
                                       "links": {"self": f"{base}/v1/customers/{cid}/relationships/offers",
                                                 "related": f"{base}/v1/customers/{cid}/offers"}}
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

    def _page_of(self, items: list[Any], page_key: str, per_key: str, numbers: Mapping[str, int]) -> list[Any]:
        if page_key not in numbers and per_key not in numbers:
            return items
        per = numbers.get(per_key, self.default_size)
        start = (numbers.get(page_key, 1) - 1) * per
        return items[start:start + per]

    def _found(self, raw_id: str, pairs: Pairs, what: str) -> shapes.Row:
        for key, _ in pairs:
            raise bad_request(f"unknown parameter {key}", key)
        row = self.store.customer(int(raw_id)) if re.fullmatch(r"[0-9]{1,15}", raw_id) else None
        if row is None:
            raise ApiError(404, f"no {what} with id {raw_id}")
        return row

    def _customer_offers(self, raw_id: str, which: str, pairs: Pairs) -> Response:
        """The customer's granted offers: identifiers (relationships/offers) or the resources (offers)."""
        row = self._found(raw_id, pairs, "customer")
        base, cid = self.links_base, str(row["id"])
        offers, _ = self.store.related(row["id"])
        links = {"self": f"{base}/v1/customers/{cid}/relationships/offers",
                 "related": f"{base}/v1/customers/{cid}/offers"}
        if which == "offers":
            return document(200, {"data": [shapes.offer(o, base) for o in offers],
                                  "links": {"self": links["related"]}})
        return document(200, {"data": [{"id": str(o["id"]), "type": "offers"} for o in offers], "links": links})

    def _contact(self, raw_id: str, pairs: Pairs) -> Response:
        """A customer's contact (the sandbox gives each customer the contact of the same id)."""
        row = self._found(raw_id, pairs, "contact")
        link = f"{self.links_base}/v1/contacts/{row['id']}"
        return document(200, {"data": shapes.contact(row), "links": {"self": link}})


def _oauth_error(status: int, code: str, description: str) -> Response:
    return document(status, {"error": code, "error_description": description}, "application/json")

"""Rows → the reference's JSON:API documents (flat resources, string ids, links)."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote


class Row(Protocol):
    """A database row or any mapping: looked up by column name."""

    def __getitem__(self, key: str, /) -> Any: ...

Doc = dict[str, Any]

CUSTOMER_ATTRIBUTES: tuple[str, ...] = (
    "name", "email", "avatar", "external_user_id", "public_bio", "public_location", "public_website", "socials",
    "net_revenue", "sign_in_count", "last_request_at", "bounced_at", "created_at", "updated_at",
)
CONTACT_ATTRIBUTES: tuple[str, ...] = (
    "name", "email", "address_line_1", "address_line_2", "address_city", "address_country", "address_state",
    "address_zip", "phone_number", "mobile_phone_number", "business_number", "subscribed", "external_user_id",
    "created_at", "updated_at",
)
_TIMES = {"last_request_at", "bounced_at", "created_at", "updated_at"}


def timestamp(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    day, rest = divmod(seconds, 86_400)  # the date once per day (strftime per value costs more than the rest)
    return f"{_date(day)}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}Z"


@functools.lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


def money(cents: int) -> str:
    """Like the API (Ruby BigDecimal#to_s): "0.0", "97.0", "97.5", "97.55"."""
    if type(cents) is int:  # integer arithmetic: what Decimal gives for whole cents, for a fraction of its cost
        whole, part = divmod(abs(cents), 100)
        text = f"{'-' if cents < 0 else ''}{whole}.{part:02d}".rstrip("0")
    else:
        text = f"{Decimal(cents) / 100:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _socials(value: str | None) -> object:
    return json.loads(value) if value else None


_CONVERT: dict[str, Callable[[Any], object]] = {**dict.fromkeys(_TIMES, timestamp), "net_revenue": money,
                                                "socials": _socials}


def customer_attribute(row: Row, name: str) -> object:
    convert = _CONVERT.get(name)
    return row[name] if convert is None else convert(row[name])


def customer(row: Row, base: str, fields: Sequence[str] | None) -> Doc:
    names = CUSTOMER_ATTRIBUTES if fields is None else [f for f in fields if f in CUSTOMER_ATTRIBUTES]
    cid = str(row["id"])
    resource: Doc = {
        "id": cid,
        "type": "customers",
        "attributes": {name: row[name] if (convert := _CONVERT.get(name)) is None else convert(row[name])
                       for name in names},
    }
    relationships: Doc = {}
    if fields is None or "site" in fields:
        relationships["site"] = {"data": {"id": str(row["site_id"]), "type": "sites"}}
    if fields is None:
        relationships["offers"] = {"links": {
            "self": f"{base}/v1/customers/{cid}/relationships/offers",
            "related": f"{base}/v1/customers/{cid}/offers",
        }}
    if relationships:
        resource["relationships"] = relationships
    return resource


def contact(row: Row) -> Doc:
    attributes = {name: row[name] for name in CONTACT_ATTRIBUTES}
    attributes["subscribed"] = bool(row["subscribed"])
    attributes["created_at"] = timestamp(row["created_at"])
    attributes["updated_at"] = timestamp(row["updated_at"])
    return {"id": str(row["id"]), "type": "contacts", "attributes": attributes}


def offer(row: Row, base: str) -> Doc:
    price = row["price_in_cents"]
    return {"id": str(row["id"]), "type": "offers", "attributes": {
        "title": row["title"], "description": row["description"], "internal_title": row["title"],
        "currency": "USD", "price_in_cents": price, "payment_type": row["payment_type"], "token": row["token"],
        "payment_method": "none" if price == 0 else "card",
        "price_description": "Free" if price == 0 else f"${price / 100:,.2f}",
        # A page of the creator's website, not of the API: on a host of its own (not the sandbox's,
        # which would answer 404 for it), as in the reference's example.
        "checkout_url": f"https://site{row['site_id']}.example.com/offers/{row['token']}/checkout",
        "recurring_offer": row["payment_type"] == "subscription", "subscription": row["payment_type"] == "subscription",
        "one_time": row["payment_type"] != "subscription", "single": False, "free": price == 0, "image_url": None,
    }, "relationships": {"site": {"data": {"id": str(row["site_id"]), "type": "sites"}}}}


def product(row: Row) -> Doc:
    return {"id": str(row["id"]), "type": "products", "attributes": {
        "created_at": timestamp(row["created_at"]), "title": row["title"], "description": row["description"],
        "status": "ready", "members_aggregate_count": row["members"], "product_type_name": row["product_type_name"],
        "product_type_id": row["product_type_id"], "publish_status": row["publish_status"], "thumbnail_url": None,
    }, "relationships": {"site": {"data": {"id": str(row["site_id"]), "type": "sites"}}}}


def tag(row: Row) -> Doc:
    return {"id": str(row["id"]), "type": "contact_tags", "attributes": {"name": row["name"]},
            "relationships": {"site": {"data": {"id": str(row["site_id"]), "type": "sites"}}}}


def site(row: Row) -> Doc:
    return {"id": str(row["id"]), "type": "sites", "attributes": {
        "title": row["title"], "subdomain": row["subdomain"],
        "created_at": timestamp(row["created_at"]), "updated_at": timestamp(row["updated_at"]),
    }}


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    # Brackets and commas stay readable, as in the reference's links; values are escaped.
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe=',')}" for k, v in pairs)


def page_links(url: str, pairs: Sequence[tuple[str, str]], page: int, size: int, total_pages: int) -> Doc:
    """self/first/prev/next/last: the request's own parameters, in its order, with page[number] swapped."""

    def at(number: int) -> str:
        out, placed = [], False
        for key, value in pairs:
            if key == "page[number]":
                out.append((key, str(number)))
                placed = True
            elif key == "page[size]":
                out.append((key, str(size)))
            else:
                out.append((key, value))
        sizes = [i for i, (k, _) in enumerate(out) if k == "page[size]"]
        if not sizes:
            out.append(("page[size]", str(size)))
        if not placed:  # page[number] goes just before page[size], as in the reference
            out.insert(sizes[0] if sizes else len(out) - 1, ("page[number]", str(number)))
        return f"{url}?{encode_query(out)}"

    last = max(1, total_pages)
    return {
        "self": at(page),
        "first": at(1),
        "prev": at(min(page - 1, last)) if page > 1 else None,
        "next": at(page + 1) if page < total_pages else None,
        "last": at(last),
    }


def paged(data: list[Doc], url: str, pairs: Sequence[tuple[str, str]], page: int, size: int, total: int) -> Doc:
    total_pages = math.ceil(total / size)
    return {
        "data": data,
        "links": page_links(url, pairs, page, size, total_pages),
        "meta": {"total_pages": total_pages, "total_count": total, "current_page": page},
    }

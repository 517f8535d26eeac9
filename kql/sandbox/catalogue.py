"""Small paginated listings (sites, contact tags, offers, products) for name-to-id resolution."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kql.sandbox import shapes
from kql.sandbox.errors import bad_request
from kql.sandbox.params import positive
from kql.sandbox.store import Store


@dataclass(frozen=True)
class Catalogue:
    """A small paginated listing (sites, tags, offers, products) for name-to-id resolution."""

    source: str
    render: Callable[[shapes.Row, str], dict[str, Any]]
    type: str
    contains: Mapping[str, str]  # filter[x_cont] name → column
    sorts: tuple[str, ...]
    site_scoped: bool = True
    equals: Mapping[str, str] = field(default_factory=dict)


_PRODUCTS = ("(SELECT p.*, 'ready' AS status, (SELECT count(*) FROM product_access a "
             "WHERE a.product_id = p.id AND a.active = 1) AS members FROM products p)")
CATALOGUES = {
    "/v1/sites": Catalogue("sites", lambda r, b: shapes.site(r), "sites",
                           {"title_cont": "title", "subdomain_cont": "subdomain"}, ("title", "subdomain"),
                           site_scoped=False),
    "/v1/contact_tags": Catalogue("tags", lambda r, b: shapes.tag(r), "contact_tags", {"name_cont": "name"},
                                  ("name",)),
    "/v1/offers": Catalogue("offers", shapes.offer, "offers",
                            {"title_cont": "title", "description_cont": "description"}, ("title", "price_in_cents")),
    "/v1/products": Catalogue(_PRODUCTS, lambda r, b: shapes.product(r), "products",
                              {"title_cont": "title", "description_cont": "description"},
                              ("title", "description", "status"), equals={"status_eq": "status"}),
}


def listing(store: Store, path: str, pairs: Sequence[tuple[str, str]], links_base: str, default_size: int,
            max_size: int) -> dict[str, Any]:
    spec = CATALOGUES[path]
    where: list[str] = []
    params: list[Any] = []
    page, size = 1, default_size
    order = "id"
    fields: list[str] | None = None
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:  # as for customers: each parameter once (and no unbounded WHERE clause)
            raise bad_request(f"{key} may be given once", key)
        seen.add(key)
        name = key[len("filter["):-1] if key.startswith("filter[") and key.endswith("]") else None
        if key == "filter[site_id]" and spec.site_scoped:
            where.append("site_id = ?")
            params.append(positive(key, value))
        elif name is not None and name in spec.contains:
            where.append(f"instr(lower({spec.contains[name]}), ?) > 0")
            params.append(value.lower())
        elif name is not None and name in spec.equals:
            where.append(f"{spec.equals[name]} = ?")
            params.append(value)
        elif key == "page[number]":
            page = positive(key, value)
        elif key == "page[size]":
            size = positive(key, value)
            if size > max_size:
                raise bad_request(f"page[size] is at most {max_size}", key)
        elif key == "sort":
            column = value.removeprefix("-")
            if column not in spec.sorts:
                raise bad_request(f"cannot sort by {value!r}: use {', '.join(spec.sorts)}", key)
            desc = " DESC" if value.startswith("-") else ""
            order = f"{column}{desc}, id{desc}"
        elif key == f"fields[{spec.type}]":
            fields = [v.strip() for v in value.split(",") if v.strip()]
        else:
            raise bad_request(f"unknown parameter {key}", key)
    rows, total = store.catalogue(spec.source, where, params, order, page, size)
    data = [spec.render(row, links_base) for row in rows]
    if fields is not None:
        for item in data:
            item["attributes"] = {k: v for k, v in item["attributes"].items() if k in fields}
    return shapes.paged(data, f"{links_base}{path}", pairs, page, size, total)

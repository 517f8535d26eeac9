"""Listing a catalogue (tags, offers, products) page by page, for name resolution.

``CatalogueWalk`` is the page plan of one listing, with no I/O: which page comes
next, and what each page that came back holds. The clients drive it — each page one
``GET`` on the configured origin — and so implement the planner's ``CatalogueSource``.
"""

from __future__ import annotations

from typing import Any

from kql.execute.errors import PaginationError
from kql.planning.names import CATALOGUES, Catalogue

# A runaway server (pages that never end) must not keep a run going forever.
MAX_CATALOGUE_PAGES = 1000


class CatalogueWalk:
    """Every ``(id, name)`` of one kind, scoped to ``site`` when there is one (as the API requires
    on accounts with several sites); only the name attribute is asked for (``fields[…]``)."""

    def __init__(self, kind: str, page_size: int, site: str | None = None) -> None:
        self.spec = CATALOGUES[kind]
        self.path = self.spec.path
        self.size = page_size
        self.base: list[tuple[str, str]] = []
        if site is not None:
            self.base.append(("filter[site_id]", site))
        self.base.append((f"fields[{self.spec.type}]", self.spec.attribute))
        self.number = 0
        self.done = False
        self._found: dict[str, str] = {}

    def next_params(self) -> list[tuple[str, str]] | None:
        if self.done:
            return None
        if self.number >= MAX_CATALOGUE_PAGES:
            raise PaginationError(f"GET {self.spec.path}: more than {MAX_CATALOGUE_PAGES} pages; giving up")
        self.number += 1
        return [*self.base, ("page[number]", str(self.number)), ("page[size]", str(self.size))]

    def accept(self, body: Any) -> None:
        items, total_pages = _catalogue_page(body, self.spec, self.number)
        served = len(body["data"])
        if self.number == 1 and 0 < served < self.size and (total_pages is None or total_pages > 1):
            self.size = served  # a server capping page[size]: its pages are this long
        elif total_pages is not None and self.number < total_pages and served < self.size:
            # A short page that is not the last: names the query may use would be missing.
            raise PaginationError(
                f"GET {self.spec.path} page {self.number} of {total_pages} held {served} of {self.size} items: "
                "the catalogue came back incomplete"
            )
        for item_id, name in items:
            self._found.setdefault(item_id, name)
        more = self.number < total_pages if total_pages is not None else len(items) >= self.size
        self.done = not items or not more

    def found(self) -> list[tuple[str, str]]:
        return list(self._found.items())


def _catalogue_page(body: Any, spec: Catalogue, number: int) -> tuple[list[tuple[str, str]], int | None]:
    where = f"GET {spec.path} page {number}"
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise PaginationError(f"{where}: the response has no 'data' list")
    items: list[tuple[str, str]] = []
    for item in body["data"]:
        raw = item.get("id") if isinstance(item, dict) else None
        item_id = str(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
        if not (item_id.isascii() and item_id.isdigit() and len(item_id) <= 19) or int(item_id) <= 0:
            raise PaginationError(f"{where}: an item without a positive integer id ({raw!r})")
        attributes = item.get("attributes")
        name = attributes.get(spec.attribute) if isinstance(attributes, dict) else None
        if isinstance(name, str):  # an item without a name cannot be meant by one
            items.append((item_id, name))
    meta = body.get("meta")
    pages = meta.get("total_pages") if isinstance(meta, dict) else None
    total_pages = pages if isinstance(pages, int) and not isinstance(pages, bool) else None
    return items, total_pages

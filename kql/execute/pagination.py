"""Which pages to ask for, and what to make of each one that comes back (no I/O here).

Every page URL is built from the original request's parameters plus
``page[number]``/``page[size]``; the response's ``links`` are never followed
(Kajabi's point at another host). When the query has no ``sort``, pages are
read in ascending ``created_at`` order: a customer created during the run lands
after everything already listed instead of pushing it onto the next page.

Checks on each page: it must be the page that was asked for (``meta.current_page``),
its ids must not repeat another page's exactly (a server ignoring
``page[number]``), and customers already seen are dropped (de-duplication by id).
A change of ``meta.total_count`` during the run becomes a warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from kql.execute.errors import PaginationError
from kql.execute.idset import IdSet

Param = tuple[str, str]
Record = dict[str, Any]

DEFAULT_MAX_PAGE_SIZE = 100
# Ascending creation time: new customers land at the end instead of shifting pages.
STABLE_SORT = "created_at"
_PAGE_PARAMS = ("page[number]", "page[size]")


@attrs.frozen(slots=True)
class Page:
    number: int
    records: list[Record]
    total_pages: int | None
    total_count: int | None
    current_page: int | None


def parse_page(number: int, payload: Any) -> Page:
    """A page from a decoded ``GET /v1/customers`` response; PaginationError if it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise PaginationError(f"page {number}: the response has no 'data' list")
    records: list[Record] = []
    for item in payload["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
            raise PaginationError(f"page {number}: a resource without an id")
        attributes = item.get("attributes")
        record: Record = {"id": str(item["id"])}
        if isinstance(attributes, dict):
            record.update((k, v) for k, v in attributes.items() if k != "id")
        records.append(record)
    meta = payload.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return Page(number, records, _count(meta, "total_pages"), _count(meta, "total_count"), _count(meta, "current_page"))


def _count(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class Pager:
    """The page plan of one query, and the checks, dedupe and limit applied to its pages in order."""

    def __init__(
        self,
        params: Sequence[Param],
        *,
        limit: int | None = None,
        page: tuple[int, int | None] | None = None,
        sort: str | None = None,
        site_id: str | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be at least 1")
        base = [p for p in params if p[0] not in _PAGE_PARAMS]
        if site_id is not None and not any(name == "filter[site_id]" for name, _ in base):
            base.insert(0, ("filter[site_id]", str(site_id)))
        if sort is None and not any(name == "sort" for name, _ in base):
            base.append(("sort", STABLE_SORT))
        self._base = base
        self.limit = limit
        self.explicit = page is not None
        if page is not None:  # `page N [size M]`: that one page, as asked
            self.first_number, self.size = page
        else:
            self.first_number = 1
            self.size = max_page_size
            if limit is not None and limit > 0:
                # As few pages as the limit needs, evenly sized: `limit 5` is one request for five.
                pages = math.ceil(limit / max_page_size)
                self.size = math.ceil(limit / pages)
        self.max_pages = math.ceil(limit / self.size) if limit and self.size else None
        self.yielded = 0
        self.duplicates = 0
        self.pages_seen = 0
        self.total_pages: int | None = None
        self.first_total: int | None = None
        self.last_total: int | None = None
        self.finished = limit is not None and limit <= 0
        self._ids = IdSet()
        self._fingerprints: dict[int, int] = {}

    def params(self, number: int) -> list[Param]:
        page = [("page[number]", str(number))]
        if self.size is not None:
            page.append(("page[size]", str(self.size)))
        return self._base + page

    def rest(self, first: Page) -> list[int] | None:
        """Page numbers still to fetch after the first, or None if the server did not say how many."""
        if self.explicit or self.finished:
            return []
        self._learn_size(first)
        if first.total_pages is None:
            return None
        last = first.total_pages if self.max_pages is None else min(first.total_pages, self.max_pages)
        return list(range(self.first_number + 1, last + 1))

    def _learn_size(self, first: Page) -> None:
        """A server that caps ``page[size]`` below what was asked (and says there is more than one
        page) serves pages of the first page's length: plan the limit on that size."""
        served = len(first.records)
        more = first.total_pages is None or first.total_pages > 1
        if self.size is not None and 0 < served < self.size and more:
            self.size = served
            if self.limit:
                self.max_pages = math.ceil(self.limit / served)

    def wants_next(self, page: Page) -> bool:
        """For servers without ``total_pages``: go on while pages come back full."""
        if self.finished or self.explicit or self.size is None:
            return False
        if self.max_pages is not None and page.number >= self.max_pages:
            return False
        return len(page.records) >= self.size

    def accept(self, page: Page) -> list[Record]:
        """Check ``page`` (pages must come in order) and return its records still to yield."""
        if page.current_page is not None and page.current_page != page.number:
            raise PaginationError(
                f"asked for page {page.number}, the server sent page {page.current_page}: pagination does not advance"
            )
        if page.records:
            fingerprint = hash(tuple(r["id"] for r in page.records))
            if fingerprint in self._fingerprints:
                raise PaginationError(
                    f"page {page.number} repeats page {self._fingerprints[fingerprint]}: pagination does not advance"
                )
            self._fingerprints[fingerprint] = page.number
        self.pages_seen += 1
        if self.total_pages is None:
            self.total_pages = page.total_pages
        if page.total_count is not None:
            if self.first_total is None:
                self.first_total = page.total_count
            self.last_total = page.total_count
        out: list[Record] = []
        for record in page.records:
            if self.finished:
                break
            if not self._ids.add(record["id"]):
                self.duplicates += 1
                continue
            out.append(record)
            self.yielded += 1
            if self.limit is not None and self.yielded >= self.limit:
                self.finished = True
        return out

    def warnings(self) -> list[str]:
        found = []
        if self.first_total is not None and self.last_total is not None and self.first_total != self.last_total:
            found.append(
                f"total_count changed from {self.first_total} to {self.last_total} during the run: "
                "customers were added or removed, and records may have shifted between pages"
            )
        if self.duplicates:
            found.append(f"{self.duplicates} duplicate customer(s) removed (records shifted between pages)")
        return found

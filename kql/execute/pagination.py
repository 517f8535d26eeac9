"""Which pages to ask for, and what to make of each one that comes back (no I/O here).

Every page URL is built from the original request's parameters plus
``page[number]``/``page[size]``; the response's ``links`` are never followed
(Kajabi's point at another host). A query without ``sort`` is sent without one:
newest first, the API's default, exactly as ``kql compile`` prints it.

Checks on each page: it must be the page that was asked for (``meta.current_page``),
its ids must not repeat another page's exactly (a server ignoring
``page[number]``), and customers already seen are dropped (de-duplication by id).
A change of ``meta.total_count`` during the run becomes a warning.

Customers created during a run (newest first: they push everyone else towards later
pages) cost nothing already there: the run reads on past the first page's
``total_pages`` while a later page's ``total_count`` says there are more (``last_page``:
bounded, and it stops at a page beyond the first end that brings nobody new), and a page
whose ``total_count`` is lower than the page before it was served before that one, from
an older state; the client asks for it again (``behind``), so no customer falls between two pages.

Nothing is lost silently: a page shorter than the page size that is not the last is asked
for again by the client (``is_short``); if it stays short, or a run ends with fewer distinct
customers than a ``meta.total_count`` that held still, the run fails with
``IncompleteResult`` saying how many are missing (``allow_partial``: a warning instead).
When ``total_count`` moved during the run, missing customers cannot be told from deleted
ones: the warning says so and the run does not fail. ``meta.total_pages`` is checked
against ``total_count`` and the page size, and the page plan is lazy however large the
server says it is.

``page N size M`` is one request, as asked, up to ``max_page_size``; above it, the
customers (N-1)·M+1 … N·M are read from pages of ``max_page_size`` and cut out — the
same customers a plan's window gives, so one query has one answer either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from kql.execute.errors import IncompleteResult, PaginationError
from kql.execute.idset import IdSet
from kql.planning.plan import LARGEST_PAGE_SIZE

Param = tuple[str, str]
Record = dict[str, Any]

DEFAULT_MAX_PAGE_SIZE = LARGEST_PAGE_SIZE
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
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise PaginationError(f"page {number}: the response has no 'data' list")
    # The hot loop of an export (once per customer): one dict display per record, and the
    # checks on what JSON gives (exact str ids, dict attributes) before the general ones.
    records: list[Record] = []
    append = records.append
    for item in data:
        ident = item.get("id") if type(item) is dict else _ident(item)
        if type(ident) is not str:
            ident = _ident_text(ident, number)
        attributes = item.get("attributes")
        if isinstance(attributes, dict):
            record = {"id": ident, **attributes}
            if "id" in attributes:  # the resource's id wins; it stays the first key
                record["id"] = ident
            append(record)
        else:
            append({"id": ident})
    meta = payload.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return Page(number, records, _count(meta, "total_pages"), _count(meta, "total_count"), _count(meta, "current_page"))


def _ident(item: Any) -> Any:
    """The ``id`` of a resource that is not a plain dict (None if it is no mapping at all)."""
    return item.get("id") if isinstance(item, dict) else None


def _ident_text(ident: Any, number: int) -> str:
    if isinstance(ident, str | int):
        return str(ident)
    raise PaginationError(f"page {number}: a resource without an id")


def _count(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


class Pager:
    """The page plan of one query, and the checks, dedupe and limit applied to its pages in order."""

    def __init__(
        self,
        params: Sequence[Param],
        *,
        limit: int | None = None,
        page: tuple[int, int] | None = None,
        sort: str | None = None,
        site_id: str | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        allow_partial: bool = False,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be at least 1")
        base = [p for p in params if p[0] not in _PAGE_PARAMS]
        if site_id is not None and not any(name == "filter[site_id]" for name, _ in base):
            base.insert(0, ("filter[site_id]", str(site_id)))
        self._base = base
        # Customers of the order before the first one wanted, and those of them on the first page.
        self.offset = self._skip = 0
        self.explicit = page is not None and page[1] <= max_page_size
        self.first_number = 1
        self.size = max_page_size
        if page is not None and self.explicit:  # `page N size M`: that one page, as asked
            self.first_number, self.size = page
        elif page is not None:  # above the largest page: customers (N-1)·M+1 … N·M, from pages of the largest
            number, wanted = page
            self.offset = (number - 1) * wanted
            pages_before, self._skip = divmod(self.offset, max_page_size)
            self.first_number = pages_before + 1
            limit = wanted if limit is None else min(limit, wanted)
        elif limit is not None and limit > 0:
            # As few pages as the limit needs, evenly sized: `limit 5` is one request for five.
            pages = math.ceil(limit / max_page_size)
            self.size = math.ceil(limit / pages)
        self.limit = limit
        self.max_pages = (
            self.first_number - 1 + math.ceil((self._skip + limit) / self.size) if limit and self.size else None
        )
        self.yielded = 0
        self.duplicates = 0
        self.pages_seen = 0
        self.total_pages: int | None = None
        self.first_total: int | None = None
        self.last_total: int | None = None
        self.finished = limit is not None and limit <= 0
        self.allow_partial = allow_partial
        self.moved_to: int | None = None
        self.missing = 0  # customers known to be missing once the run ended (accepted with allow_partial)
        self._short: list[tuple[int, int]] = []  # (page number, records) of non-last pages that stayed short
        self._partial_note: str | None = None
        self._ids = IdSet()
        self._fingerprints: dict[int, tuple[int, int | None]] = {}  # ids of a page -> (number, total_count)
        self._stalled = False  # a page past the first page's total_pages brought nobody new

    def params(self, number: int) -> list[Param]:
        page = [("page[number]", str(number))]
        if self.size is not None:
            page.append(("page[size]", str(self.size)))
        return self._base + page

    def rest(self, first: Page) -> Iterator[int] | None:
        """Page numbers still to fetch after the first (lazily, see ``PageNumbers``), or None if the
        server did not say how many. PaginationError if ``total_pages`` contradicts ``total_count``."""
        if self.explicit or self.finished:
            return iter(())
        self._learn_size(first)
        if first.total_pages is None:
            return None
        self._check_total_pages(first)
        return PageNumbers(self, first.number + 1)

    def last_page(self) -> int:
        """The last page to read, as far as the run knows now: the first page's ``total_pages``, or
        more when a later page's ``total_count`` grew (customers created mid-run push the oldest
        past the first end). At most twice the first figure, and no further once a page past the
        first end brought nobody new; never past ``max_pages``."""
        first = self.total_pages or 0
        last = first
        if self.last_total is not None and self.size and not self._stalled:
            last = max(first, min(math.ceil(self.last_total / self.size), 2 * max(first, 1)))
        cap = self._page_cap()
        return last if cap is None else min(last, cap)

    def _page_cap(self) -> int | None:
        """The last page a ``limit`` needs: one more page for each page's worth of duplicates
        dropped (customers pushed onto the next page count once, not towards the limit)."""
        if self.max_pages is None or self.size is None:
            return self.max_pages
        return self.max_pages + math.ceil(self.duplicates / self.size)

    def behind(self, page: Page) -> bool:
        """``page`` counts fewer customers than the page before it: it was served before that one,
        from an older state (pages are fetched concurrently), so customers created in between may
        sit between the two. The client asks for it again."""
        return (
            not self.explicit
            and page.total_count is not None
            and self.last_total is not None
            and page.total_count < self.last_total
        )

    def _check_total_pages(self, first: Page) -> None:
        """``total_pages`` must be what ``total_count`` at this page size makes (an empty result
        may say 0 or 1 page): a server claiming 10**12 pages for 250 customers is not believed."""
        if first.total_count is None or first.total_pages is None or self.size is None:
            return
        expected = math.ceil(first.total_count / self.size)
        if first.total_pages == expected or (first.total_count == 0 and first.total_pages <= 1):
            return
        raise PaginationError(
            f"the server's pagination metadata is inconsistent: meta.total_pages is {first.total_pages}, "
            f"but meta.total_count {first.total_count} at page[size] {self.size} makes {expected} page(s)"
        )

    def _learn_size(self, first: Page) -> None:
        """A server that caps ``page[size]`` below what was asked (and says there is more than one
        page) serves pages of the first page's length: plan the limit on that size. Not when
        ``total_count`` and ``total_pages`` say otherwise: then the first page is merely short."""
        served = len(first.records)
        more = first.total_pages is None or first.total_pages > first.number
        if self.size is not None and 0 < served < self.size and more:
            if self.offset:
                # The window's place was computed at this page size: a smaller one cannot be cut right.
                raise PaginationError(
                    f"the server sent {served} customers for page[size]={self.size}: it serves smaller pages; "
                    f"run with --max-page-size {served} (max_page_size={served})"
                )
            if (
                first.total_count is not None
                and first.total_pages is not None
                and math.ceil(first.total_count / served) != first.total_pages
            ):
                return
            self.size = served
            if self.limit:
                self.max_pages = math.ceil(self.limit / served)

    def is_short(self, page: Page) -> bool:
        """A page with fewer records than the page size that is not the last one: customers
        the server should have sent are not there (the client asks for it again)."""
        if self.explicit or self.size is None or page.number == self.first_number:
            return False
        last = self.total_pages if self.total_pages is not None else page.total_pages
        return last is not None and page.number < last and len(page.records) < self.size

    def wants_next(self, page: Page) -> bool:
        """For servers without ``total_pages``: go on while pages come back full."""
        if self.finished or self.explicit or self.size is None:
            return False
        cap = self._page_cap()
        if cap is not None and page.number >= cap:
            return False
        return len(page.records) >= self.size

    def accept(self, page: Page) -> list[Record]:
        """Check ``page`` (pages must come in order) and return its records still to yield."""
        if page.current_page is not None and page.current_page != page.number:
            raise PaginationError(
                f"asked for page {page.number}, the server sent page {page.current_page}: pagination does not advance"
            )
        records = page.records
        ids = [r["id"] for r in records]
        if ids:
            fingerprint = hash(tuple(ids))
            earlier = self._fingerprints.get(fingerprint)
            # The same ids under the same total_count: the server ignores page[number]. (Under another
            # total, customers created between the two pages shifted a whole page: duplicates, dropped.)
            if earlier is not None and earlier[1] == page.total_count:
                raise PaginationError(f"page {page.number} repeats page {earlier[0]}: pagination does not advance")
            self._fingerprints[fingerprint] = (page.number, page.total_count)
        self.pages_seen += 1
        if self._skip and page.number == self.first_number:
            # `page N size M` above the largest page: the customers before the window are not wanted
            # (remembered, so that one pushed onto the next page is not taken for one of the window).
            for record in records[: self._skip]:
                self._ids.add(record["id"])
            records, ids, self._skip = records[self._skip :], ids[self._skip :], 0
        if self.total_pages is None:
            self.total_pages = page.total_pages
        elif self.is_short(page):
            self._short.append((page.number, len(page.records)))
        if page.total_count is not None:
            if self.first_total is None:
                self.first_total = page.total_count
            elif page.total_count != self.first_total and self.last_total == self.first_total:
                self.moved_to = page.total_count  # the first change: it may move back by the end
            self.last_total = page.total_count
        if self.finished:
            return []
        if self.limit is not None and self.yielded + len(records) >= self.limit:
            out = self._accept_up_to_limit(records)
        else:
            # The whole page fits under the limit: dedupe it in one pass (once per customer of a run).
            repeated = self._ids.add_many(ids)
            if repeated:
                self.duplicates += len(repeated)
                dropped = set(repeated)
                records = [r for i, r in enumerate(records) if i not in dropped]
            self.yielded += len(records)
            out = records
        if not out and self.total_pages is not None and page.number > self.total_pages:
            self._stalled = True  # past the first end and nobody new: read no further
        return out

    def _accept_up_to_limit(self, records: list[Record]) -> list[Record]:
        """The page that reaches the limit: record by record, so that ids past it are not taken."""
        out: list[Record] = []
        for record in records:
            if not self._ids.add(record["id"]):
                self.duplicates += 1
                continue
            out.append(record)
            self.yielded += 1
            if self.limit is not None and self.yielded >= self.limit:
                self.finished = True
                break
        return out

    def finish(self) -> int:
        """At the natural end of the run (not when the reader stopped early): how many customers
        are missing. IncompleteResult if any are and ``allow_partial`` is off; a warning if they are
        and it is on, or when ``total_count`` moved so that missing cannot be told from deleted."""
        if self.explicit:
            return 0
        short = sum(self.size - n for _, n in self._short) if self.size is not None else 0
        shortfall = 0
        if self.first_total is not None:
            expected = max(0, self.first_total - self.offset)
            expected = expected if self.limit is None else min(self.limit, expected)
            shortfall = max(0, expected - self.yielded)
        missing = max(short, shortfall)
        if not missing:
            return 0
        pages = ", ".join(f"page {number} held {n} of {self.size}" for number, n in self._short[:5])
        where = f" ({pages}{', …' if len(self._short) > 5 else ''}, even when asked again)" if pages else ""
        dupes = f"; {self.duplicates} duplicate(s) were dropped" if self.duplicates else ""
        if self._moved():
            self._partial_note = (
                f"{self.yielded} customer(s) came back where the server first counted {self.first_total}{where}; "
                "total_count changed during the run, so whether any are missing cannot be proven: re-run to be sure"
            )
            return 0
        counted = f" of the {self.first_total} the server counted" if shortfall else ""
        message = f"{missing} customer(s){counted} are missing from the run{where}{dupes}"
        self.missing = missing
        if not self.allow_partial:
            raise IncompleteResult(message + " (--allow-partial / allow_partial=True to accept it)", missing=missing)
        self._partial_note = message + " (accepted: --allow-partial)"
        return missing

    def _moved(self) -> bool:
        return self.first_total is not None and (self.last_total != self.first_total or self.moved_to is not None)

    def warnings(self) -> list[str]:
        found = []
        if self._moved():
            last = self.last_total if self.last_total != self.first_total else self.moved_to
            found.append(
                f"total_count changed from {self.first_total} to {last} during the run: "
                "customers were added or removed, and records may have shifted between pages"
            )
        if self.duplicates:
            found.append(f"{self.duplicates} duplicate customer(s) removed (records shifted between pages)")
        if self._partial_note:
            found.append(self._partial_note)
        return found


class PageNumbers(Iterator[int]):
    """The page numbers after the first, up to ``Pager.last_page()`` as it stands when asked.

    Unlike most iterators it may go on after a StopIteration: a page that reports a larger
    ``total_count`` moves the last page on, and the client's window asks again after each page
    it accepts (``next(numbers, None)``)."""

    def __init__(self, pager: Pager, following: int) -> None:
        self._pager = pager
        self._next = following

    def __iter__(self) -> PageNumbers:
        return self

    def __next__(self) -> int:
        if self._next > self._pager.last_page():
            raise StopIteration
        number = self._next
        self._next += 1
        return number

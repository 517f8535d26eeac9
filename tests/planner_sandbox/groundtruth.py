"""Ground truth for the planner's differential test, independent of the planner.

Expressions are built as trees whose atoms each carry a *recipe* for their own id set:

- ``Q("opened(bc_9)")``: one API request (``kql.compile``, which refuses anything that
  is not one request), all pages fetched with plain httpx — not through ``kql.Client``;
- ``L(test)``: a test on one customer's attributes, written here from LANGUAGE.md
  (a comparison with a missing value is false, so its negation is true);
- ``Union`` / ``Inter`` / ``Comp``: set algebra over the universe of all customers.

``and`` / ``or`` / ``not`` combine those sets; the order is the server's own order for
the sort key (one listing of every customer, ``sort <key>``), filtered to the set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import attrs
import httpx

import kql

Record = dict[str, Any]
Ids = frozenset[str]

# ---- recipes ------------------------------------------------------------------------------


@attrs.frozen
class Q:
    """The ids of one API request."""

    text: str


@attrs.frozen
class L:
    """The customers whose attributes pass ``test`` (``name`` is for reading failures)."""

    name: str
    test: Callable[[Record], bool] = attrs.field(eq=False, repr=False)


@attrs.frozen
class Union:
    items: tuple[Recipe, ...]


@attrs.frozen
class Inter:
    items: tuple[Recipe, ...]


@attrs.frozen
class Comp:
    item: Recipe


Recipe: TypeAlias = Q | L | Union | Inter | Comp


# ---- expressions --------------------------------------------------------------------------


@attrs.frozen
class Atom:
    text: str
    recipe: Recipe = attrs.field(repr=False)


@attrs.frozen
class And:
    items: tuple[Expr, ...]


@attrs.frozen
class Or:
    items: tuple[Expr, ...]


@attrs.frozen
class Not:
    item: Expr


Expr: TypeAlias = Atom | And | Or | Not


def render(expr: Expr) -> str:
    if isinstance(expr, Atom):
        return expr.text
    if isinstance(expr, Not):
        inner = render(expr.item)
        return f"not {inner}" if isinstance(expr.item, Atom) and " " not in inner.strip() else f"not ({inner})"
    joiner = " and " if isinstance(expr, And) else " or "
    return joiner.join(render(i) if isinstance(i, Atom | Not) else f"({render(i)})" for i in expr.items)


def atom(text: str, recipe: Recipe | None = None) -> Atom:
    """An atom; without a recipe it is one request of its own text."""
    return Atom(text, recipe if recipe is not None else Q(text))


# ---- the world: one sandbox, listed once ---------------------------------------------------


class Truth:
    """Every customer with every attribute, the server's orders, and cached id sets."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.requests = 0
        everyone = self.fetch([])
        self.records: dict[str, Record] = {r["id"]: r for r in everyone}
        self.universe: Ids = frozenset(self.records)
        self._ids: dict[Recipe, Ids] = {}
        self._orders: dict[str, list[str]] = {}

    def close(self) -> None:
        self.http.close()

    def fetch(self, params: Sequence[tuple[str, str]], sort: str = "created_at") -> list[Record]:
        """Every page of one listing, in the server's order for ``sort``."""
        out: list[Record] = []
        number = 1
        while True:
            query: list[tuple[str, str | int | float | bool | None]] = [
                *params, ("sort", sort), ("page[number]", str(number)), ("page[size]", "100")
            ]
            self.requests += 1
            response = self.http.get("/v1/customers", params=query)
            response.raise_for_status()
            body = response.json()
            for item in body["data"]:
                out.append({"id": str(item["id"]), **item["attributes"]})
            if number >= body["meta"]["total_pages"]:
                return out
            number += 1

    def ids(self, recipe: Recipe) -> Ids:
        if recipe not in self._ids:
            self._ids[recipe] = self._compute(recipe)
        return self._ids[recipe]

    def _compute(self, recipe: Recipe) -> Ids:
        if isinstance(recipe, Q):
            compiled = kql.compile(recipe.text)  # raises unless it is exactly one request
            if compiled.matches_nothing:
                return frozenset()
            return frozenset(r["id"] for r in self.fetch(compiled.params))
        if isinstance(recipe, L):
            return frozenset(i for i, r in self.records.items() if recipe.test(r))
        if isinstance(recipe, Union):
            return frozenset().union(*(self.ids(i) for i in recipe.items))
        if isinstance(recipe, Inter):
            return self.universe.intersection(*(self.ids(i) for i in recipe.items))
        return self.universe - self.ids(recipe.item)

    def evaluate(self, expr: Expr) -> Ids:
        if isinstance(expr, Atom):
            return self.ids(expr.recipe)
        if isinstance(expr, Not):
            return self.universe - self.evaluate(expr.item)
        parts = [self.evaluate(i) for i in expr.items]
        if isinstance(expr, And):
            return self.universe.intersection(*parts)
        return frozenset().union(*parts)

    def order(self, sort: str | None) -> list[str]:
        """Every id in the server's order for ``sort`` (no sort: newest first, the API's default)."""
        key = sort or "-created_at"
        if key not in self._orders:
            self._orders[key] = [r["id"] for r in self.fetch([], sort=key)]
        return self._orders[key]

    def expected(
        self, expr: Expr | None, sort: str | None, limit: int | None, page: tuple[int, int | None] | None = None
    ) -> list[str]:
        wanted = self.universe if expr is None else self.evaluate(expr)
        ordered = [i for i in self.order(sort) if i in wanted]
        if page is not None:
            size = page[1] or 25
            ordered = ordered[(page[0] - 1) * size : page[0] * size]
        return ordered if limit is None else ordered[:limit]


# ---- attribute tests, written from LANGUAGE.md ---------------------------------------------


def instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def compare(attribute: str, op: str, wanted: Any, kind: str) -> L:
    """``attribute op wanted`` on a record; null (or an absent attribute) is never a match, except
    for ``!=``: ``x != v`` is ``not x = v`` (LANGUAGE.md: the planner's `!=` is a `not`), so a
    customer without ``x`` matches it."""

    def convert(raw: Any) -> Any:
        if kind == "money":
            return Decimal(str(raw))
        if kind == "integer":
            return int(raw)
        if kind == "datetime":
            return instant(str(raw))
        return str(raw)

    def test(record: Record) -> bool:
        raw = record.get(attribute)
        if op == "is":
            return raw is None
        if op == "is_not":
            return raw is not None
        if raw is None:
            return op == "!="
        value = convert(raw)
        goal = [convert(w) for w in wanted] if op == "in" else convert(wanted)
        checks: dict[str, Callable[[], bool]] = {
            "=": lambda: value == goal,
            "!=": lambda: value != goal,
            ">": lambda: value > goal,
            "<": lambda: value < goal,
            ">=": lambda: value >= goal,
            "<=": lambda: value <= goal,
            "in": lambda: value in goal,
            "~": lambda: str(goal).casefold() in value.casefold(),
            "ends_with": lambda: value.endswith(goal),
            "starts_with": lambda: value.startswith(goal),
        }
        return checks[op]()

    return L(f"{attribute} {op} {wanted!r}", test)


def day(days_ago: int, now: datetime | None = None) -> str:
    """A date ``days_ago`` days before today, as a KQL date literal."""
    return ((now or datetime.now(UTC)) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def moment(days_ago: int, now: datetime | None = None) -> str:
    """An instant ``days_ago`` days before now (to the second), as a KQL date literal."""
    return ((now or datetime.now(UTC)) - timedelta(days=days_ago, hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the atoms -----------------------------------------------------------------------------


def union_of(texts: Iterable[str]) -> Union:
    return Union(tuple(Q(t) for t in texts))


def api_atoms() -> list[Atom]:
    """Atoms the API runs, planner operators over them, with values that occur in the data."""
    out: list[Atom] = []
    add = out.append
    # Comparisons and planner operators on them.
    for amount in ("0", "97", "197"):
        add(atom(f"net_revenue = {amount}"))
        add(atom(f"net_revenue != {amount}", Comp(Q(f"net_revenue = {amount}"))))
    for amount in ("47", "100", "497"):
        add(atom(f"net_revenue > {amount}"))
        add(atom(f"net_revenue < {amount}"))
    add(atom("net_revenue >= 97", union_of(["net_revenue > 97", "net_revenue = 97"])))
    add(atom("net_revenue <= 97", union_of(["net_revenue < 97", "net_revenue = 97"])))
    add(atom("net_revenue >= 100", union_of(["net_revenue > 100", "net_revenue = 100"])))
    add(atom("net_revenue in (97, 197)", union_of(["net_revenue = 97", "net_revenue = 197"])))
    add(atom("site = site_1"))
    add(atom("site != site_1", Comp(Q("site = site_1"))))
    add(atom("site in (site_1, site_2)", union_of(["site = site_1", "site = site_2"])))
    for text in ('name ~ "smith"', 'name ~ "an"', 'email ~ "gmail"', 'email ~ "@example.com"', 'phone ~ "555"',
                 'mobile_phone ~ "555"', 'address_line_1 ~ "Main"', 'address_line_2 ~ "Suite"',
                 'city ~ "New York"', 'city ~ "Berlin"', 'state ~ "CA"', 'country ~ "US"', 'country ~ "DE"',
                 'zip ~ "10"', '"smith"', 'search("john")', '"a"'):
        add(atom(text))
    # Enum.
    for value in ("healthy", "passive", "unengaged", "inactive"):
        add(atom(f"engagement = {value}"))
    add(atom("engagement != passive", Comp(Q("engagement = passive"))))
    add(atom("engagement in (healthy, inactive)", union_of(["engagement = healthy", "engagement = inactive"])))
    # Flags.
    for text in ("subscribed", "never_subscribed", "hidden", "hard_bouncing"):
        add(atom(text))
    # Days.
    for name, days in (("created_in_last", 30), ("created_in_last", 400), ("joined_in_last", 365),
                       ("active_in_last", 30), ("active_in_last", 180), ("subscribed_in_last", 365),
                       ("unsubscribed_in_last", 200), ("opened_email_in_last", 14), ("opened_email_in_last", 60),
                       ("delivered_email_in_last", 7), ("clicked_email_in_last", 30), ("bounced_in_last", 365),
                       ("complained_in_last", 365), ("manually_unsubscribed_in_last", 365),
                       ("opted_out_in_last", 365)):
        add(atom(f"{name}({days}d)"))
    add(atom("created_in_last(2w)", Q("created_in_last(14d)")))
    # Ids (catalogue sizes: kql/sandbox/vocab.py COUNTS).
    for k in (1, 2, 5, 17):
        add(atom(f"has_tag(tag_{k})"))
    add(atom("has_all_tags(tag_1, tag_2)"))
    for k in (1, 2, 7):
        add(atom(f"has_offer(offer_{k})"))
    add(atom("has_offer in (offer_1, offer_3)", union_of(["has_offer(offer_1)", "has_offer(offer_3)"])))
    for k in (1, 3):
        add(atom(f"has_product(prod_{k})"))
        add(atom(f"has_active_product(prod_{k})"))
        add(atom(f"previously_owned_product(prod_{k})"))
    for code in ("WELCOME10", "SPRING24"):
        add(atom(f'used_coupon("{code}")'))
    add(atom("submitted_form(form_1)"))
    add(atom("submitted_form(form_4)"))
    add(atom("registered_event(event_2)"))
    for k in (1, 4):
        add(atom(f"completed_assessment(asmt_{k})"))
        add(atom(f"passed_assessment(asmt_{k})"))
        add(atom(f"failed_assessment(asmt_{k})"))
    for k in (1, 9, 10, 12):
        for verb in ("sent", "opened", "clicked", "bounced", "dropped"):
            add(atom(f"{verb}(bc_{k})"))
        # No positive parameter: only `not delivered(…)` is one request.
        add(atom(f"delivered(bc_{k})", Comp(Q(f"not delivered(bc_{k})"))))
    add(atom("sent(bc_9, bc_10)", union_of(["sent(bc_9)", "sent(bc_10)"])))
    add(atom("sent(bc_1, bc_11, bc_12)", union_of(["sent(bc_1)", "sent(bc_11)", "sent(bc_12)"])))
    for k in (1, 3):
        add(atom(f"subscribed_newsletter(nl_{k})"))
        add(atom(f"unsubscribed_newsletter(nl_{k})"))
    for k in (1, 4):
        add(atom(f"in_sequence(seq_{k})"))
    return out


def local_atoms(now: datetime | None = None) -> list[Atom]:
    """Attribute predicates, evaluated here on the full records."""
    out: list[Atom] = []

    def add(attribute: str, op: str, value_text: str, wanted: Any, kind: str) -> None:
        text = f"{attribute} is null" if op == "is" else f"{attribute} is not null" if op == "is_not" else (
            f"{attribute} {op} {value_text}"
        )
        out.append(Atom(text, compare(attribute, op, wanted, kind)))

    for op, n in ((">", 1), (">", 5), ("<", 2), (">=", 2), ("<=", 1), ("=", 0), ("!=", 1)):
        add("sign_in_count", op, str(n), n, "integer")
    add("sign_in_count", "in", "(2, 3, 4)", [2, 3, 4], "integer")
    for op, text in (("ends_with", "@gmail.com"), ("ends_with", ".de"), ("starts_with", "j"), ("=", "x@y.z")):
        add("email", op, f'"{text}"', text, "string")
    add("email", "!=", '"x@y.z"', "x@y.z", "string")
    add("name", "ends_with", '"Smith"', "Smith", "string")
    add("name", "starts_with", '"Mar"', "Mar", "string")
    add("name", "=", '"John Smith"', "John Smith", "string")
    add("name", "in", '("John Smith", "Priya Walker")', ["John Smith", "Priya Walker"], "string")
    add("external_user_id", "is", "null", None, "string")
    add("external_user_id", "is_not", "null", None, "string")
    add("external_user_id", "starts_with", '"cust_1"', "cust_1", "string")
    add("external_user_id", "=", '"cust_7"', "cust_7", "string")
    # `!=` on attributes a customer may lack: they match (item 18 of issue 11).
    add("external_user_id", "!=", '"cust_7"', "cust_7", "string")
    add("public_location", "!=", '"New York"', "New York", "string")
    add("public_location", "=", '"New York"', "New York", "string")
    add("public_website", "~", '"example"', "example", "string")
    add("avatar", "is_not", "null", None, "string")
    add("socials", "is_not", "null", None, "object")
    add("bounced_at", "is", "null", None, "datetime")
    add("bounced_at", "is_not", "null", None, "datetime")
    add("last_request_at", "is", "null", None, "datetime")
    add("bounced_at", "!=", moment(200, now), moment(200, now), "datetime")
    for days in (3, 90, 400, 1000):
        for op in (">=", "<"):
            value = day(days, now)
            add("created_at", op, value, value, "datetime")
    value = moment(200, now)
    add("created_at", ">", value, value, "datetime")
    add("created_at", "<=", value, value, "datetime")
    add("created_at", "=", value, value, "datetime")
    for op, days in ((">=", 30), ("<", 365), ("<=", 10)):
        value = day(days, now)
        add("last_request_at", op, value, value, "datetime")
    add("updated_at", ">", day(60, now), day(60, now), "datetime")
    add("bounced_at", "<", day(30, now), day(30, now), "datetime")
    return out


Clauses: TypeAlias = tuple[str | None, tuple[str, ...] | None, int | None, tuple[int, int | None] | None]


def hand_written() -> list[tuple[Expr, Clauses]]:
    """Examples worth naming: (expression, (sort, select, limit, page))."""
    a = {x.text: x for x in [*api_atoms(), *local_atoms()]}
    bounced_not = next(x for t, x in a.items() if t.startswith("bounced_at != "))
    return [
        (Or((a["opened(bc_9)"], a["clicked(bc_10)"])), (None, None, None, None)),
        (And((Or((a["opened(bc_9)"], a["clicked(bc_10)"])), Not(a["passed_assessment(asmt_1)"]))),
         ("name", None, None, None)),
        (And((a["opened(bc_1)"], a["opened(bc_9)"])), (None, None, None, None)),
        (And((a["opened(bc_1)"], a["opened(bc_9)"], a["opened(bc_10)"])), ("-created_at", None, None, None)),
        (And((a['"smith"'], Not(a["has_tag(tag_1)"]))), ("-net_revenue", None, 7, None)),
        (Or((a["net_revenue >= 97"], a["sign_in_count > 5"])), ("-net_revenue", ("name",), None, None)),
        (Or((a["has_tag(tag_1)"], a["has_tag(tag_2)"], a["has_tag(tag_5)"], a["has_tag(tag_17)"])),
         ("net_revenue", None, 40, None)),
        (And((a['email ends_with "@gmail.com"'], a["created_at >= " + day(400)])), ("email", None, None, None)),
        (Or((a["bounced_at is not null"], a["last_request_at is null"])), ("-last_request_at", None, None, None)),
        (Or((a["active_in_last(30d)"], a["hidden"])), ("last_request_at", None, 25, None)),
        (Not(Or((a["subscribed"], a["engagement = healthy"]))), ("-name", None, None, None)),
        (And((a["engagement != passive"], a["site != site_1"])), (None, None, None, None)),
        (Or((a["delivered(bc_12)"], a["sent(bc_9, bc_10)"])), (None, None, None, (2, 10))),
        (Not(a["sent(bc_9, bc_10)"]), ("email", ("email",), 3, None)),
        # Issue 11: `page N` alone is size 25; a page above the largest page size is the same
        # customers as one request and as a plan; `!=` on an attribute a customer may lack.
        (a["subscribed"], (None, None, None, (2, None))),
        (a["subscribed"], (None, ("name",), None, (2, 150))),
        (Or((a["subscribed"], a["hidden"])), (None, None, None, (2, 150))),
        (a['external_user_id != "cust_7"'], ("-last_request_at", None, None, None)),
        (Not(a['public_location != "New York"']), (None, None, None, None)),
        (Or((bounced_not, a["hidden"])), ("email", None, None, None)),
    ]


def clause_text(
    sort: str | None, select: Sequence[str] | None, limit: int | None, page: tuple[int, int | None] | None
) -> str:
    parts = []
    if sort:
        parts.append(f"sort {sort}")
    if select:
        parts.append("select " + ", ".join(select))
    if limit is not None:
        parts.append(f"limit {limit}")
    if page is not None:
        parts.append(f"page {page[0]}" + (f" size {page[1]}" if page[1] else ""))
    return " ".join(parts)


def describe(truth: Truth, ids: Iterable[str]) -> str:
    """A short listing for assertion messages: id, name, created_at, net_revenue, last_request_at."""
    rows = []
    for i in list(ids)[:12]:
        r: Mapping[str, Any] = truth.records.get(i, {})
        rows.append(f"{i}:{r.get('name')!r}/{r.get('created_at')}/{r.get('net_revenue')}/{r.get('last_request_at')}")
    return ", ".join(rows)

"""The SQL rule behind every `filter[…]` parameter of the registry.

A rule turns the parsed value(s) of one parameter into a SQL condition over
``customers c``. Parsing is the registry's business (value type, arity, multi-value
encoding: see `kql.sandbox.params`); rules only ever see typed values. `RULES` must
cover the registry exactly: `check_rules` runs at import, so a filter added to
registry.toml without a rule here stops the sandbox (and its tests) from starting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from kql.registry import Registry, registry

DAY = 86_400
Value = int | str | Decimal
Params = list[object]


@dataclass(frozen=True)
class Context:
    """What a rule may need besides its value: the request's clock."""

    now: int


@dataclass(frozen=True)
class Member:
    """A membership condition: customers with a row in `table` where `key` = the value (and `extra`)."""

    table: str
    key: str
    extra: str = ""

    def exists(self) -> str:
        """Correlated: one primary-key lookup per candidate customer, whatever the relation's size."""
        return f"EXISTS (SELECT 1 FROM {self.table} m WHERE m.{self.key} = ?{self.extra} AND m.customer_id = c.id)"

    def exists_any(self, n: int) -> str:
        marks = ",".join("?" * n)
        return (f"EXISTS (SELECT 1 FROM {self.table} m WHERE m.{self.key} IN ({marks}){self.extra} "
                "AND m.customer_id = c.id)")

    def holders(self, n: int) -> str:
        """The customer ids (as `x`) of the rows for any of n values (what kql.sandbox.index reads)."""
        marks = ",".join("?" * n)
        return f"SELECT m.customer_id AS x FROM {self.table} m WHERE m.{self.key} IN ({marks}){self.extra}"


# A rule's set form: what kql.sandbox.index evaluates with its own structures (sorted columns,
# membership bitsets) instead of running the SQL. Each rule's SQL is written from the same form
# (`form_sql`), so the two cannot say different things; rules without a form (text, flags,
# site) are evaluated by running their SQL once and remembering the result.


@dataclass(frozen=True)
class Compare:
    """`column op value` over customers (null never matches); with or_null, also the nulls."""

    column: str
    op: str  # ">=", ">", "<" or "="
    value: int | float
    or_null: bool = False


@dataclass(frozen=True)
class Holders:
    """Customers with a row in member's relation for any of the values, every one of them (every),
    or, negated, for none of them."""

    member: Member
    values: tuple[Value, ...]
    every: bool = False
    negate: bool = False


Form = Compare | Holders


def form_sql(form: Form) -> tuple[str, Params]:
    if isinstance(form, Compare):
        if form.or_null:
            return f"(+c.{form.column} IS NULL OR +c.{form.column} {form.op} ?)", [form.value]
        return f"+c.{form.column} {form.op} ?", [form.value]
    values: Params = list(form.values)
    if form.every:
        return all_of([form.member.exists()] * len(values)), values
    sql = form.member.exists() if len(values) == 1 else form.member.exists_any(len(values))
    return ("NOT " if form.negate else "") + sql, values


@dataclass(frozen=True)
class Rule:
    build: Callable[[Sequence[Value], Context], tuple[str, Params]]
    doc: str  # the rule in words, for docs/sandbox.md
    example: str | None = None  # a value that selects someone, for string filters
    form: Callable[[Sequence[Value], Context], Form] | None = None  # the set form, when it has one


def formed(form: Callable[[Sequence[Value], Context], Form], doc: str, example: str | None = None) -> Rule:
    """A rule defined by its set form; its SQL is the form's."""
    return Rule(lambda values, ctx: form_sql(form(values, ctx)), doc, example, form)


def all_of(parts: Sequence[str]) -> str:
    """AND as a balanced tree: SQLite limits an expression's depth (1,000), not its width."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return f"({all_of(parts[:middle])} AND {all_of(parts[middle:])})"


# Column comparisons are written `+c.col`: the unary plus keeps SQLite from picking a one-column
# index for a range that may hold half the customers (it has no histograms to know).


def has(table: str, key: str, what: str, extra: str = "", *, negate: bool = False) -> Rule:
    verb = "has no" if negate else "has a"
    member = Member(table, key, extra)
    return formed(lambda values, ctx: Holders(member, (values[0],), negate=negate),
                  f"{verb} row in `{table}` for the id{what}")


def has_all(table: str, key: str) -> Rule:
    member = Member(table, key)
    return formed(lambda values, ctx: Holders(member, tuple(dict.fromkeys(values)), every=True),
                  f"has a row in `{table}` for every one of the ids")


def has_none_of(table: str, key: str) -> Rule:
    member = Member(table, key)
    return formed(lambda values, ctx: Holders(member, tuple(dict.fromkeys(values)), negate=True),
                  f"has no row in `{table}` for any of the ids")


def within(column: str, *, negate: bool = False) -> Rule:
    def form(values: Sequence[Value], ctx: Context) -> Compare:
        cutoff = ctx.now - int(values[0]) * DAY
        return Compare(column, "<", cutoff, or_null=True) if negate else Compare(column, ">=", cutoff)

    if negate:
        return formed(form, f"`{column}` is null or earlier than now − N days (the exact complement)")
    return formed(form, f"`{column}` is at or after now − N days")


def contains(column: str, example: str) -> Rule:
    def build(values: Sequence[Value], ctx: Context) -> tuple[str, Params]:
        needle = str(values[0])
        if needle.isascii():  # SQLite's lower() folds ASCII only; that suffices for an ASCII needle
            return f"instr(lower(c.{column}), ?) > 0", [needle.lower()]
        return f"instr(kql_fold(c.{column}), ?) > 0", [needle.casefold()]

    return Rule(build, f"`{column}` contains the text, case-insensitively (null never matches)", example)


def search() -> Rule:
    def build(values: Sequence[Value], ctx: Context) -> tuple[str, Params]:
        terms = list(dict.fromkeys(str(values[0]).split()))  # a word given twice is one condition
        parts: list[str] = []
        params: Params = []
        for term in terms:
            fold = "lower" if term.isascii() else "kql_fold"
            parts.append(f"(instr({fold}(c.name), ?) > 0 OR instr(c.email, ?) > 0)")
            folded = term.lower() if term.isascii() else term.casefold()
            params += [folded, folded]
        return all_of(parts), params

    return Rule(build, "every whitespace-separated word occurs in `name` or `email`, case-insensitively", "smith")


def column_is(sql: str, doc: str) -> Rule:
    return Rule(lambda values, ctx: (sql, []), doc)


def money(op: str) -> Rule:
    def form(values: Sequence[Value], ctx: Context) -> Compare:
        cents = Decimal(values[0]) * 100
        return Compare("net_revenue", op, int(cents) if cents == cents.to_integral_value() else float(cents))

    return formed(form, f"`net_revenue` (in cents) {op} the amount × 100")


def _broadcast(flag: str | None, *, negate: bool = False) -> Rule:
    extra = f" AND {flag} = 1" if flag else ""
    what = f" with `{flag}` = 1" if flag else ""
    return has("broadcast_events", "broadcast_id", what, extra, negate=negate)


RULES: dict[str, Rule] = {
    "site_id": Rule(lambda v, ctx: ("c.site_id = ?", [v[0]]), "`site_id` equals the id"),
    "search": search(),
    "net_revenue_equal_to": money("="),
    "net_revenue_greater_than": money(">"),
    "net_revenue_less_than": money("<"),
    "name_contains": contains("name", "smith"),
    "email_contains": contains("email", "@example.com"),
    "phone_number_contains": contains("phone_number", "555"),
    "mobile_phone_number_contains": contains("mobile_phone_number", "555"),
    "address_line_1_contains": contains("address_line_1", "Main"),
    "address_line_2_contains": contains("address_line_2", "Suite"),
    "address_city_contains": contains("address_city", "Berlin"),
    "address_state_contains": contains("address_state", "CA"),
    "address_country_contains": contains("address_country", "DE"),
    "address_zip_contains": contains("address_zip", "101"),
    "healthy_contacts_with_open_data": column_is("+c.engagement = 'healthy'", "`engagement` is healthy"),
    "passive_contacts_with_open_data": column_is("+c.engagement = 'passive'", "`engagement` is passive"),
    "unengaged_contacts_with_open_data": column_is("+c.engagement = 'unengaged'", "`engagement` is unengaged"),
    "inactive_contacts_with_open_data": column_is("+c.engagement = 'inactive'", "`engagement` is inactive"),
    "subscribed": column_is("+c.subscribed = 1", "currently subscribed to marketing email (`subscribed` = 1)"),
    "never_subscribed": column_is("+c.subscribed_at IS NULL", "never subscribed (`subscribed_at` is null)"),
    "is_hidden": column_is("+c.is_hidden = 1", "`is_hidden` = 1"),
    "is_hard_bouncing": column_is("+c.is_hard_bouncing = 1", "`is_hard_bouncing` = 1"),
    "is_suppressed": column_is("+c.is_suppressed = 1", "`is_suppressed` = 1 (every complainer is suppressed)"),
    "created_in_last": within("created_at"),
    "not_created_in_last": within("created_at", negate=True),
    "joined_in_last": within("joined_at"),
    "active_in_last": within("last_request_at"),
    "inactive_in_last": within("last_request_at", negate=True),
    "subscribed_in_last": within("subscribed_at"),
    "unsubscribed_in_last": within("unsubscribed_at"),
    "opened_email_in_last": within("last_opened_at"),
    "not_opened_email_in_last": within("last_opened_at", negate=True),
    "delivered_email_in_last": within("last_delivered_at"),
    "not_delivered_email_in_last": within("last_delivered_at", negate=True),
    "clicked_email_in_last": within("last_clicked_at"),
    "not_clicked_email_in_last": within("last_clicked_at", negate=True),
    "bounced_in_last": within("bounced_at"),
    "complained_in_last": within("complained_at"),
    "manually_unsubscribed_in_last": within("manually_unsubscribed_at"),
    "opted_out_in_last": within("opted_out_at"),
    "has_tag_id": has("customer_tags", "tag_id", ""),
    "has_no_tag_id": has("customer_tags", "tag_id", "", negate=True),
    "has_all_tag_id": has_all("customer_tags", "tag_id"),
    "has_offer_id": has("offer_grants", "offer_id", ""),
    "has_no_offer_id": has("offer_grants", "offer_id", "", negate=True),
    "has_product_id": has("product_access", "product_id", " (active or not)"),
    "has_no_product_id": has("product_access", "product_id", " (active or not)", negate=True),
    "has_active_product_id": has("product_access", "product_id", " with `active` = 1", " AND active = 1"),
    "previously_owned_product_id": has("product_access", "product_id", " with `active` = 0", " AND active = 0"),
    "used_coupon_code": formed(
        lambda v, ctx: Holders(Member("coupon_uses", "code"), (str(v[0]).upper(),)),
        "has a row in `coupon_uses` for the code, compared case-insensitively (codes are stored upper-case)",
        "SPRING24",
    ),
    "submitted_form_id": has("form_submissions", "form_id", ""),
    "no_submitted_form_id": has("form_submissions", "form_id", "", negate=True),
    "registered_event_id": has("event_registrations", "event_id", ""),
    "not_registered_event_id": has("event_registrations", "event_id", "", negate=True),
    "completed_assessment_id": has("assessment_results", "assessment_id", " (passed or failed)"),
    "passed_assessment_id": has("assessment_results", "assessment_id", " with `passed` = 1", " AND passed = 1"),
    "failed_assessment_id": has("assessment_results", "assessment_id", " with `passed` = 0", " AND passed = 0"),
    "sent_email_broadcast_id": _broadcast(None),
    "no_sent_email_broadcast_id": _broadcast(None, negate=True),
    "no_sent_email_broadcast_ids": has_none_of("broadcast_events", "broadcast_id"),
    "no_delivered_email_broadcast_id": _broadcast("delivered", negate=True),
    "opened_email_broadcast_id": _broadcast("opened"),
    "no_opened_email_broadcast_id": _broadcast("opened", negate=True),
    "clicked_email_broadcast_id": _broadcast("clicked"),
    "no_clicked_email_broadcast_id": _broadcast("clicked", negate=True),
    "bounced_email_broadcast_id": _broadcast("bounced"),
    "no_bounced_email_broadcast_id": _broadcast("bounced", negate=True),
    "dropped_email_broadcast_id": _broadcast("dropped"),
    "no_dropped_email_broadcast_id": _broadcast("dropped", negate=True),
    "subscribed_newsletter_id": has("newsletter_subscriptions", "newsletter_id", " with `subscribed` = 1",
                                    " AND subscribed = 1"),
    "unsubscribed_newsletter_id": has("newsletter_subscriptions", "newsletter_id", " with `subscribed` = 0",
                                      " AND subscribed = 0"),
    "subscribed_email_sequence_id": has("sequence_subscriptions", "sequence_id", ""),
    "not_subscribed_email_sequence_id": has("sequence_subscriptions", "sequence_id", "", negate=True),
}


def check_rules(reg: Registry | Iterable[str], rules: dict[str, Rule] = RULES) -> None:
    """Raise unless the rules cover exactly the registry's parameters."""
    params = {f.param for f in reg} if isinstance(reg, Registry) else set(reg)
    missing, extra = sorted(params - set(rules)), sorted(set(rules) - params)
    if missing or extra:
        raise RuntimeError(f"sandbox rules out of step with the registry: missing {missing}, unknown {extra}")


check_rules(registry())

"""Deterministic generation of sites, catalogue, customers and their relations.

Every random choice comes from `random.Random` streams seeded by ``(seed, purpose)``,
so a seed fixes the data; timestamps are offsets from ``now``. Relations are drawn
item by item (``sample`` the holders of tag 7) rather than customer by customer:
that is what keeps a million customers in tens of seconds. Each item gets at least
one holder and never all of them, so every id filter selects a proper subset.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import random
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from kql.sandbox import vocab
from kql.sandbox.schema import CUSTOMER_COLUMNS, SCHEMA_VERSION, create_indexes, create_tables

DAY = 86_400
GENERATOR_VERSION = "3"  # bump when the same seed would give other data (reused --db files)
_COL = {name: i for i, name in enumerate(CUSTOMER_COLUMNS)}
Row = list[Any]


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}/{purpose}")


def _ascii(text: str) -> str:
    if text not in _ASCII:
        folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        _ASCII[text] = "".join(ch for ch in folded.lower() if ch.isalnum())
    return _ASCII[text]


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weights))


# Cumulative weights computed once: `choices(weights=…)` would redo it per customer.
_DOMAINS = tuple(d for d, _ in vocab.EMAIL_DOMAINS)
_DOMAIN_CUM = _cumulative([w for _, w in vocab.EMAIL_DOMAINS])
_PLACE_CUM = _cumulative([w for _, w, _ in vocab.PLACES])
_ENGAGEMENTS = tuple(e for e, _ in vocab.ENGAGEMENT)
_ENGAGEMENT_CUM = _cumulative([w for _, w in vocab.ENGAGEMENT])
_ASCII: dict[str, str] = {}


def _ago(rng: random.Random, now: int, lo_days: float, hi_days: float, floor: int) -> int:
    """A moment between lo and hi days ago, never before `floor` (the customer's creation)."""
    return max(floor, now - int((lo_days + (hi_days - lo_days) * rng.random()) * DAY))


def _recent(rng: random.Random, now: int, floor: int, max_days: float = 365) -> int:
    """A moment within max_days, skewed towards now (squared uniform)."""
    return max(floor, now - int(max_days * rng.random() ** 2 * DAY))


@functools.cache
def _site_cum(sites: int) -> tuple[float, ...]:
    # Site k gets customers in proportion 1/k.
    return _cumulative([1 / k for k in range(1, sites + 1)])


def generate(conn: sqlite3.Connection, *, customers: int, seed: int, sites: int, now: int) -> None:
    """Create the schema in an empty database and fill it."""
    if customers < 0 or sites < 1:
        raise ValueError("customers must be >= 0 and sites >= 1")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    create_tables(conn)
    _catalogue(conn, sites, seed, now)
    rng = _rng(seed, "customers")
    created = _creation_times(_rng(seed, "created"), customers, now)
    rows = [_customer(rng, i + 1, at, sites, now) for i, at in enumerate(created)]
    if rows:
        _relations(conn, rows, seed, sites, now)
    conn.executemany(f"INSERT INTO customers VALUES ({','.join('?' * len(CUSTOMER_COLUMNS))})", rows)
    meta = {"version": GENERATOR_VERSION, "schema": SCHEMA_VERSION, "seed": seed, "customers": customers,
            "sites": sites, "now": now}
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
    create_indexes(conn)
    conn.commit()


def _creation_times(rng: random.Random, n: int, now: int) -> list[int]:
    # Five years of sign-ups, growing towards now; sorted so ids follow creation time.
    return sorted(now - int(1825 * rng.random() ** 2 * DAY) - rng.randrange(DAY) for _ in range(n))


def _phone(rng: random.Random, prefix: str) -> str:
    # About a third use the 555 exchange, so `phone ~ "555"` has something to find.
    exchange = 555 if rng.random() < 0.3 else rng.randint(200, 999)
    return f"{prefix} {exchange}-{rng.randint(1000, 9999)}"


def _customer(rng: random.Random, cid: int, created: int, sites: int, now: int) -> Row:
    """One customer's own columns; relation-derived ones are filled in later."""
    r = rng.random
    site = rng.choices(range(1, sites + 1), cum_weights=_site_cum(sites))[0] if sites > 1 else 1
    first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
    email = f"{_ascii(first)}.{_ascii(last)}{cid}@{rng.choices(_DOMAINS, cum_weights=_DOMAIN_CUM)[0]}"
    country, _, places = rng.choices(vocab.PLACES, cum_weights=_PLACE_CUM)[0]
    city, state, zip_prefix, phone_prefix = rng.choice(places)
    age = now - created
    signins = 0 if r() < 0.25 else min(5000, int(rng.paretovariate(1.2)))
    row: Row = [None] * len(CUSTOMER_COLUMNS)
    row[_COL["id"]] = cid
    row[_COL["site_id"]] = site
    row[_COL["name"]] = f"{first} {last}"
    row[_COL["email"]] = email
    row[_COL["external_user_id"]] = f"cust_{cid}" if r() < 0.4 else None
    row[_COL["avatar"]] = f"https://avatars.example.com/{cid}.png" if r() < 0.3 else None
    row[_COL["public_bio"]] = f"Hi, I'm {first}." if r() < 0.1 else None
    row[_COL["public_location"]] = city if r() < 0.15 else None
    row[_COL["public_website"]] = f"https://{_ascii(first)}{cid}.example.com" if r() < 0.08 else None
    if r() < 0.12:
        handle = f"{_ascii(first)}{cid}"
        row[_COL["socials"]] = json.dumps(
            {"twitter": f"@{handle}" if r() < 0.6 else None, "facebook": None,
             "instagram": handle if r() < 0.5 else None}
        )
    row[_COL["net_revenue"]] = 0
    row[_COL["sign_in_count"]] = signins
    row[_COL["last_request_at"]] = now - int(age * r() ** 3) if signins else None
    row[_COL["created_at"]] = created
    row[_COL["updated_at"]] = now - int(age * r())
    # Contact details.
    if r() < 0.6:
        row[_COL["phone_number"]] = _phone(rng, phone_prefix)
    if r() < 0.5:
        row[_COL["mobile_phone_number"]] = _phone(rng, phone_prefix)
    if r() < 0.05:
        row[_COL["business_number"]] = f"{phone_prefix} {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    if r() < 0.7:
        row[_COL["address_line_1"]] = f"{rng.randint(1, 9999)} {rng.choice(vocab.STREETS)}"
        row[_COL["address_line_2"]] = rng.choice(vocab.LINE_2) if r() < 0.3 else None
        row[_COL["address_city"]] = city
        row[_COL["address_state"]] = state
        row[_COL["address_country"]] = country
        row[_COL["address_zip"]] = f"{zip_prefix}{rng.randint(0, 99):02d}"
    # Marketing subscription: subscribed, unsubscribed (opted out or by hand), never.
    u = r()
    if u < 0.75:
        row[_COL["subscribed_at"]] = min(now, created + int(2 * DAY * r()))
        row[_COL["subscribed"]] = 1 if u < 0.62 else 0
        if u >= 0.62:
            left = _recent(rng, now, row[_COL["subscribed_at"]], max_days=730)
            row[_COL["unsubscribed_at"]] = left
            row[_COL["opted_out_at" if r() < 0.7 else "manually_unsubscribed_at"]] = left
    else:
        row[_COL["subscribed"]] = 0
    row[_COL["complained_at"]] = _recent(rng, now, created) if r() < 0.015 else None
    bounced = r() < 0.04
    row[_COL["bounced_at"]] = _recent(rng, now, created) if bounced else None
    row[_COL["is_hard_bouncing"]] = int(bounced and r() < 0.75)
    row[_COL["is_hidden"]] = int(r() < 0.03)
    row[_COL["is_suppressed"]] = int(r() < 0.02 or row[_COL["complained_at"]] is not None)
    # Engagement, and email activity consistent with it.
    engagement = rng.choices(_ENGAGEMENTS, cum_weights=_ENGAGEMENT_CUM)[0]
    row[_COL["engagement"]] = engagement
    if engagement is not None:
        row[_COL["last_delivered_at"]] = _ago(rng, now, 0, 14 if engagement in ("healthy", "passive") else 60, created)
        if engagement in vocab.LAST_OPEN_DAYS:
            lo, hi = vocab.LAST_OPEN_DAYS[engagement]
            opened = _ago(rng, now, lo, hi, created)
            row[_COL["last_opened_at"]] = opened
            if r() < 0.4:
                row[_COL["last_clicked_at"]] = max(created, opened - int(5 * DAY * r()))
    return row


def _holders(rng: random.Random, population: Sequence[int], share: float) -> list[int]:
    """A sample of about share·|population|: at least one, never everybody."""
    if not population:
        return []
    k = round(share * len(population))
    k = max(1, min(k, len(population) - 1)) if len(population) > 1 else 1
    return sorted(rng.sample(population, k))


def _split(rng: random.Random, holders: list[int], share_a: float) -> tuple[list[int], list[int]]:
    """Split holders in two groups; with two or more holders both groups are non-empty."""
    a: list[int] = []
    b: list[int] = []
    for i, cid in enumerate(holders):
        (a if (i == 0 or (i > 1 and rng.random() < share_a)) else b).append(cid)
    return a, b


def _item_site(item: int, sites: int) -> int:
    return (item - 1) % sites + 1


def _relations(conn: sqlite3.Connection, rows: list[Row], seed: int, sites: int, now: int) -> None:
    members: dict[int, list[int]] = {s: [] for s in range(1, sites + 1)}
    for row in rows:
        members[row[_COL["site_id"]]].append(row[_COL["id"]])
    everyone = [row[_COL["id"]] for row in rows]
    by_id = {row[_COL["id"]]: row for row in rows}
    n = vocab.COUNTS

    def per_item(kind: str) -> dict[int, list[int]]:
        rng = _rng(seed, kind)
        base, power = vocab.POPULARITY[kind]
        return {
            k: _holders(rng, members[_item_site(k, sites)], max(vocab.MIN_SHARE, base / k**power))
            for k in range(1, n[kind] + 1)
        }

    def insert(table: str, values: Sequence[tuple[Any, ...]]) -> None:
        conn.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(values[0]))})", values)

    tags = per_item("tag")
    insert("customer_tags", [(k, c) for k, cs in tags.items() for c in cs])

    offers = per_item("offer")
    insert("offer_grants", [(k, c) for k, cs in offers.items() for c in cs])
    rng = _rng(seed, "revenue")
    for k, cs in offers.items():
        price = vocab.OFFER_PRICES[(k - 1) % len(vocab.OFFER_PRICES)]
        for c in cs:
            row = by_id[c]
            row[_COL["net_revenue"]] += price
            granted = row[_COL["created_at"]] + int(30 * DAY * rng.random())
            joined = row[_COL["joined_at"]]
            row[_COL["joined_at"]] = min(now, granted if joined is None else min(joined, granted))
    # Few big spenders, some refunds.
    for row in rows:
        if row[_COL["net_revenue"]]:
            u = rng.random()
            if u < 0.01:
                row[_COL["net_revenue"]] *= rng.randint(3, 20)
            elif u < 0.05:
                row[_COL["net_revenue"]] = max(0, row[_COL["net_revenue"]] - 9700)

    products = per_item("product")
    rng = _rng(seed, "product-status")
    access = []
    for k, cs in products.items():
        active, previous = _split(rng, cs, vocab.SPLITS["product"])
        access += [(k, c, 1) for c in active] + [(k, c, 0) for c in previous]
    insert("product_access", access)

    rng = _rng(seed, "coupons")
    insert("coupon_uses", [(code, c) for code, share in vocab.COUPONS for c in _holders(rng, everyone, share)])

    forms = per_item("form")
    insert("form_submissions", [(k, c) for k, cs in forms.items() for c in cs])
    events = per_item("event")
    insert("event_registrations", [(k, c) for k, cs in events.items() for c in cs])

    rng = _rng(seed, "assessment-results")
    results = []
    for k, cs in per_item("assessment").items():
        passed, failed = _split(rng, cs, vocab.SPLITS["assessment"])
        results += [(k, c, 1) for c in passed] + [(k, c, 0) for c in failed]
    insert("assessment_results", results)

    rng = _rng(seed, "newsletter-status")
    subs = []
    for k, cs in per_item("newsletter").items():
        on, off = _split(rng, cs, vocab.SPLITS["newsletter"])
        subs += [(k, c, 1) for c in on] + [(k, c, 0) for c in off]
    insert("newsletter_subscriptions", subs)

    sequences = per_item("sequence")
    insert("sequence_subscriptions", [(k, c) for k, cs in sequences.items() for c in cs])

    _broadcasts(conn, rows, by_id, members, seed, sites, now)


# Outcome of one broadcast for one recipient: (delivered, opened, clicked, bounced, dropped).
_BOUNCED, _DROPPED = (0, 0, 0, 1, 0), (0, 0, 0, 0, 1)
_DELIVERED, _OPENED, _CLICKED = (1, 0, 0, 0, 0), (1, 1, 0, 0, 0), (1, 1, 1, 0, 0)


def _broadcasts(
    conn: sqlite3.Connection, rows: list[Row], by_id: dict[object, Row], members: dict[int, list[int]],
    seed: int, sites: int, now: int,
) -> None:
    """Broadcasts go to customers with email data; opens follow engagement (a minority open)."""
    rng = _rng(seed, "broadcasts")
    count = vocab.COUNTS["broadcast"]
    events = []
    # Per site, the customers with email data in creation order (ids follow creation time),
    # so the audience of a broadcast is a prefix: those created before it went out.
    emailable = {site: [c for c in ids if by_id[c][_COL["engagement"]] is not None] for site, ids in members.items()}
    created = {site: [by_id[c][_COL["created_at"]] for c in ids] for site, ids in emailable.items()}
    for b in range(1, count + 1):
        sent_at = now - (count - b) * 10 * DAY - DAY  # broadcast 12 went out yesterday, 1 about 4 months ago
        site = _item_site(b, sites)
        population = emailable[site][: bisect.bisect_left(created[site], sent_at)]
        lo, hi = vocab.BROADCAST_REACH
        recipients = _holders(rng, population, lo + (hi - lo) * rng.random())
        outcomes = {}
        for c in recipients:
            row = by_id[c]
            u = rng.random()
            if row[_COL["is_hard_bouncing"]] or u < 0.02:
                outcome = _BOUNCED
            elif row[_COL["is_suppressed"]] or u < 0.03:
                outcome = _DROPPED
            elif rng.random() < vocab.OPEN_RATE[row[_COL["engagement"]]]:
                outcome = _CLICKED if rng.random() < 0.3 else _OPENED
            else:
                outcome = _DELIVERED
            outcomes[c] = outcome
        # Every outcome occurs for every broadcast (given enough recipients), so each
        # per-broadcast filter selects someone: promote the first openers if needed.
        tally = Counter(outcomes.values())
        for wanted in (_BOUNCED, _DROPPED, _DELIVERED, _OPENED, _CLICKED):
            if tally[wanted] == 0 and len(outcomes) >= 5:
                spare = (c for c, o in outcomes.items() if tally[o] > 1
                         and (wanted in (_BOUNCED, _DROPPED) or by_id[c][_COL["engagement"]] != "inactive"))
                chosen = next(spare, None)
                if chosen is not None:
                    tally[outcomes[chosen]] -= 1
                    outcomes[chosen] = wanted
                    tally[wanted] += 1
        for c, outcome in outcomes.items():
            events.append((b, c, *outcome))
            row = by_id[c]
            for flag, col, delay in ((0, "last_delivered_at", 0), (1, "last_opened_at", DAY // 2),
                                     (2, "last_clicked_at", DAY // 2 + 600)):
                if outcome[flag]:
                    at = min(now, sent_at + delay)
                    if row[_COL[col]] is None or row[_COL[col]] < at:
                        row[_COL[col]] = at
    if events:
        conn.executemany("INSERT INTO broadcast_events VALUES (?, ?, ?, ?, ?, ?, ?)", events)


def _catalogue(conn: sqlite3.Connection, sites: int, seed: int, now: int) -> None:
    rng = _rng(seed, "catalogue")
    names = ("Creator Academy", "Mindful Yoga Studio", "Marketing Mastery", "Code Camp", "Chef's Table")
    site_rows = []
    for s in range(1, sites + 1):
        title = names[(s - 1) % len(names)] + (f" {(s - 1) // len(names) + 1}" if s > len(names) else "")
        created = now - (2000 + 50 * s) * DAY
        site_rows.append((s, title, _ascii(title) or f"site{s}", created, now - rng.randrange(30) * DAY))
    conn.executemany("INSERT INTO sites VALUES (?, ?, ?, ?, ?)", site_rows)
    n = vocab.COUNTS
    tag_names = vocab.TAG_NAMES
    tag_titles = _same_named_last({
        k: tag_names[(k - 1) % len(tag_names)] + (f" {(k - 1) // len(tag_names) + 1}" if k > len(tag_names) else "")
        for k in range(1, n["tag"] + 1)
    }, sites)
    conn.executemany("INSERT INTO tags VALUES (?, ?, ?)",
                     [(k, _item_site(k, sites), title) for k, title in tag_titles.items()])
    offer_titles = _same_named_last({
        k: f"Offer {k}" + (" (free)" if vocab.OFFER_PRICES[(k - 1) % len(vocab.OFFER_PRICES)] == 0 else "")
        for k in range(1, n["offer"] + 1)
    }, sites)
    offer_rows = []
    for k in range(1, n["offer"] + 1):
        price = vocab.OFFER_PRICES[(k - 1) % len(vocab.OFFER_PRICES)]
        kind = "free" if price == 0 else ("subscription" if k % 3 == 0 else "one_time")
        offer_rows.append((k, _item_site(k, sites), offer_titles[k], f"Description of offer {k}", price, kind,
                           f"offer_{k:04d}"))
    conn.executemany("INSERT INTO offers VALUES (?, ?, ?, ?, ?, ?, ?)", offer_rows)
    product_titles = _same_named_last({
        k: f"{vocab.PRODUCT_TYPES[(k - 1) % len(vocab.PRODUCT_TYPES)][0]} {k}" for k in range(1, n["product"] + 1)
    }, sites)
    product_rows = []
    for k in range(1, n["product"] + 1):
        type_name, type_id = vocab.PRODUCT_TYPES[(k - 1) % len(vocab.PRODUCT_TYPES)]
        product_rows.append((k, _item_site(k, sites), product_titles[k], f"Description of {type_name.lower()} {k}",
                             type_name, type_id, "published" if k % 4 else "draft", now - (900 - 20 * k) * DAY))
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?)", product_rows)


def _same_named_last(titles: dict[int, str], sites: int) -> dict[int, str]:
    """The last item of each site takes the name of the site's item before it (when there is one).

    Real catalogues have duplicate names; this makes name-to-id lookups ambiguous on
    every site with two or more items of a kind, so that path can be tested for real.
    """
    last = max(titles)
    renamed = dict(titles)
    for k in range(max(1, last - sites + 1), last + 1):  # the last item of each site
        if k - sites in titles:
            renamed[k] = titles[k - sites]
    return renamed


TIMESTAMPS: dict[str, tuple[str, ...]] = {
    "customers": ("last_request_at", "bounced_at", "created_at", "updated_at", "joined_at", "subscribed_at",
                  "unsubscribed_at", "manually_unsubscribed_at", "opted_out_at", "complained_at",
                  "last_opened_at", "last_delivered_at", "last_clicked_at"),
    "sites": ("created_at", "updated_at"),
    "products": ("created_at",),
}


def shift_to_now(conn: sqlite3.Connection, then: int, now: int) -> None:
    """Move every timestamp of a reused database forward, so `*_in_last` rules select what they did when built."""
    delta = now - then
    if delta <= 0:
        return
    for table, columns in TIMESTAMPS.items():
        assignments = ", ".join(f"{c} = {c} + {delta}" for c in columns)  # NULL + delta stays NULL
        conn.execute(f"UPDATE {table} SET {assignments}")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'now'", (str(now),))
    conn.commit()


def new_customers(seed: int, first_id: int, n: int, sites: int, created: int) -> list[Row]:
    """Customers added while serving: newest of all, with their own columns and no relations yet."""
    rng = _rng(seed, f"insert/{first_id}")
    rows = []
    for i in range(n):
        row = _customer(rng, first_id + i, created, sites, created)
        row[_COL["updated_at"]] = created
        rows.append(row)
    return rows

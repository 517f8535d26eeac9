"""The SQLite schema: one wide customers table plus one narrow table per relation.

Timestamps are Unix seconds (INTEGER) so `*_in_last` rules are plain integer
comparisons; money is integer cents. Relation tables are keyed (item, customer)
WITHOUT ROWID so `customer IN (SELECT … WHERE item = ?)` reads one index range.
"""

from __future__ import annotations

import sqlite3

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "id", "site_id", "name", "email", "external_user_id", "avatar", "public_bio", "public_location",
    "public_website", "socials", "net_revenue", "sign_in_count", "last_request_at", "bounced_at",
    "created_at", "updated_at", "joined_at",
    "phone_number", "mobile_phone_number", "business_number", "address_line_1", "address_line_2",
    "address_city", "address_state", "address_country", "address_zip",
    "subscribed", "subscribed_at", "unsubscribed_at", "manually_unsubscribed_at", "opted_out_at", "complained_at",
    "is_hidden", "is_hard_bouncing", "is_suppressed", "engagement",
    "last_opened_at", "last_delivered_at", "last_clicked_at",
)

TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sites (id INTEGER PRIMARY KEY, title TEXT NOT NULL, subdomain TEXT NOT NULL,
                    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL, name TEXT NOT NULL);
CREATE TABLE offers (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL, title TEXT NOT NULL, description TEXT,
                     price_in_cents INTEGER NOT NULL, payment_type TEXT NOT NULL, token TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL, title TEXT NOT NULL, description TEXT,
                       product_type_name TEXT NOT NULL, product_type_id INTEGER NOT NULL,
                       publish_status TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    external_user_id TEXT, avatar TEXT, public_bio TEXT, public_location TEXT, public_website TEXT, socials TEXT,
    net_revenue INTEGER NOT NULL, sign_in_count INTEGER NOT NULL, last_request_at INTEGER, bounced_at INTEGER,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, joined_at INTEGER,
    phone_number TEXT, mobile_phone_number TEXT, business_number TEXT, address_line_1 TEXT, address_line_2 TEXT,
    address_city TEXT, address_state TEXT, address_country TEXT, address_zip TEXT,
    subscribed INTEGER NOT NULL, subscribed_at INTEGER, unsubscribed_at INTEGER, manually_unsubscribed_at INTEGER,
    opted_out_at INTEGER, complained_at INTEGER,
    is_hidden INTEGER NOT NULL, is_hard_bouncing INTEGER NOT NULL, is_suppressed INTEGER NOT NULL, engagement TEXT,
    last_opened_at INTEGER, last_delivered_at INTEGER, last_clicked_at INTEGER
);
CREATE TABLE customer_tags (tag_id INTEGER, customer_id INTEGER, PRIMARY KEY (tag_id, customer_id)) WITHOUT ROWID;
CREATE TABLE offer_grants (offer_id INTEGER, customer_id INTEGER, PRIMARY KEY (offer_id, customer_id)) WITHOUT ROWID;
CREATE TABLE product_access (product_id INTEGER, customer_id INTEGER, active INTEGER NOT NULL,
                             PRIMARY KEY (product_id, customer_id)) WITHOUT ROWID;
CREATE TABLE coupon_uses (code TEXT, customer_id INTEGER, PRIMARY KEY (code, customer_id)) WITHOUT ROWID;
CREATE TABLE form_submissions (form_id INTEGER, customer_id INTEGER, PRIMARY KEY (form_id, customer_id)) WITHOUT ROWID;
CREATE TABLE event_registrations (event_id INTEGER, customer_id INTEGER,
                                  PRIMARY KEY (event_id, customer_id)) WITHOUT ROWID;
CREATE TABLE assessment_results (assessment_id INTEGER, customer_id INTEGER, passed INTEGER NOT NULL,
                                 PRIMARY KEY (assessment_id, customer_id)) WITHOUT ROWID;
CREATE TABLE broadcast_events (broadcast_id INTEGER, customer_id INTEGER, delivered INTEGER NOT NULL,
                               opened INTEGER NOT NULL, clicked INTEGER NOT NULL, bounced INTEGER NOT NULL,
                               dropped INTEGER NOT NULL, PRIMARY KEY (broadcast_id, customer_id)) WITHOUT ROWID;
CREATE TABLE newsletter_subscriptions (newsletter_id INTEGER, customer_id INTEGER, subscribed INTEGER NOT NULL,
                                       PRIMARY KEY (newsletter_id, customer_id)) WITHOUT ROWID;
CREATE TABLE sequence_subscriptions (sequence_id INTEGER, customer_id INTEGER,
                                     PRIMARY KEY (sequence_id, customer_id)) WITHOUT ROWID;
"""

# Bump when the tables or indexes change: a --db file or cached database of another
# schema is rebuilt (kql.sandbox.store compares it with the file's meta).
SCHEMA_VERSION = "2"

# The columns filters compare (everything but the text that contains/search rules read).
FILTER_COLUMNS: tuple[str, ...] = (
    "site_id", "subscribed", "net_revenue", "created_at", "joined_at", "last_request_at", "subscribed_at",
    "unsubscribed_at", "manually_unsubscribed_at", "opted_out_at", "complained_at", "bounced_at", "is_hidden",
    "is_hard_bouncing", "is_suppressed", "engagement", "last_opened_at", "last_delivered_at", "last_clicked_at",
)

# Built after the bulk insert (cheaper than maintaining them row by row); SQLite keeps them
# up to date through any later INSERT/UPDATE/DELETE, so nothing here is ever stale. One per
# sort key, each ending in id for the stable tie-break; site_id for multi-site accounts; and
# customers_filter, keyed by id and covering every compared column: a filter without text
# conditions reads this narrow index (a fifth of the table) instead of the customers rows.
INDEXES = f"""
CREATE INDEX customers_created ON customers (created_at, id);
CREATE INDEX customers_name ON customers (name COLLATE NOCASE, id);
CREATE INDEX customers_email ON customers (email, id);
CREATE INDEX customers_revenue ON customers (net_revenue, id);
CREATE INDEX customers_last_request ON customers ((last_request_at IS NULL), last_request_at, id);
CREATE INDEX customers_site ON customers (site_id, created_at, id);
CREATE INDEX customers_filter ON customers (id, {", ".join(FILTER_COLUMNS)});
"""


def create_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(TABLES)


def create_indexes(conn: sqlite3.Connection) -> None:
    conn.executescript(INDEXES)
    conn.execute("ANALYZE")

"""Change the sandbox's data while it serves: move customers in and out of segments.

    from kql.sandbox import running, admin
    with running(customers=300) as sb:
        admin.add_tag(sb.store, 12, 3)                 # customer 12 now has tag 3
        admin.set_attribute(sb.store, 12, "name", "Ada Lovelace")

Values are the store's own: money in cents, times in Unix seconds (see schema.py).
Every change commits and makes the store drop its index (rebuilt by the next listing).
"""

from __future__ import annotations

from kql.sandbox.schema import CUSTOMER_COLUMNS
from kql.sandbox.store import Store

__all__ = ["add_tag", "remove_tag", "set_attribute", "tagged"]


def set_attribute(store: Store, customer_id: int, column: str, value: object) -> None:
    """Set one column of one customer; KeyError for an unknown customer or column."""
    if column not in CUSTOMER_COLUMNS or column == "id":
        raise KeyError(f"no customer column {column!r} (columns: {', '.join(CUSTOMER_COLUMNS[1:])})")
    _change(store, f"UPDATE customers SET {column} = ? WHERE id = ?", (value, customer_id), customer_id)


def add_tag(store: Store, customer_id: int, tag_id: int) -> None:
    _change(store, "INSERT OR IGNORE INTO customer_tags VALUES (?, ?)", (tag_id, customer_id), customer_id)


def remove_tag(store: Store, customer_id: int, tag_id: int) -> None:
    _change(store, "DELETE FROM customer_tags WHERE tag_id = ? AND customer_id = ?", (tag_id, customer_id), customer_id)


def tagged(store: Store, tag_id: int) -> list[int]:
    """The ids of the customers holding a tag, ascending."""
    rows = store.query("SELECT customer_id FROM customer_tags WHERE tag_id = ? ORDER BY customer_id", [tag_id])
    return [int(r[0]) for r in rows]


def _change(store: Store, sql: str, params: tuple[object, ...], customer_id: int) -> None:
    with store.lock:
        if store.conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone() is None:
            raise KeyError(f"no customer with id {customer_id}")
        store.conn.execute(sql, params)
        store.conn.commit()
        store.changed()

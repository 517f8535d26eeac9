"""What a model reads about kql mcp: the server's instructions and each tool's description.

Kept apart from the wiring so the text can be read (and reviewed) as text.
"""

from __future__ import annotations

LANGUAGE = """\
KQL in brief (a query selects Kajabi customers; `GET /v1/customers` underneath):
  query := [filter] clause*     filter: atoms joined by `and`, `or`, `not`, parentheses
  precedence: not > and > or; keywords case-insensitive; `#` comments to end of line
Atoms:
  site = site_123                 net_revenue > 100  (also =, <, and planned >=, <=, !=)
  "smith"                         fuzzy search on name or email
  email ~ "@example.com"          `~` = contains (name, email, phone, city, state, country, zip, …)
  subscribed, hidden, hard_bouncing, never_subscribed          flags
  engagement = healthy            (passive, unengaged, inactive)
  created_in_last(30d)            windows in days: 30d, 2w (=14d), 30; never months (`3m` is an error)
  has_tag(tag_5), has_offer(offer_7), has_product(prod_3), opened(bc_9), clicked(bc_9),
  submitted_form(form_3), in_sequence(seq_8), subscribed_newsletter(nl_2)
    typed ids: site_ tag_ offer_ prod_ form_ event_ asmt_ bc_ nl_ seq_ (a bare 5 works too)
  has_tag("VIP"), has_offer("Gold")   tag/offer/product names, resolved to ids when run
  has_offer in (offer_1, offer_2)   site in (1, 2)
  sign_in_count > 5, created_at >= 2024-01-01, bounced_at is null, email ends_with "@gmail.com"
    attribute predicates, checked locally on returned customers
  @vip                            a saved segment (see the resources kql://segments/…)
Clauses: sort -created_at (name email created_at net_revenue last_request_at; `-` = descending)
         select name, email       limit 50       page 2 size 25
         no sort: newest first (-created_at); `page 2` alone is size 25; x != v is not x = v (nulls match)
Example: (opened(bc_9) or clicked(bc_10)) and net_revenue >= 100 and not has_tag(tag_5)
         select name, email, net_revenue sort -net_revenue limit 20
Requests: the API only ANDs its filters, so `or`, `not` without an API complement
(e.g. `not has_all_tags(…)`), `>=`/`<=`/`!=`, `in (…)` and two values of one parameter
(`opened(bc_1) and opened(bc_2)`) cost extra listings; `explain` shows them. A plan over
`max_requests` listings is refused (E308) before anything is sent.
Errors: code, message, span [start, end) into the query, hint (often "did you mean …?"),
and a caret rendering, e.g.
  error[E102]: unknown filter 'opend'
    opend(bc_9)
    ^^^^^
  hint: did you mean 'opened' or 'dropped'?
The `filters` tool lists every filter with its KQL form and API parameter."""

INSTRUCTIONS = (
    "kql answers 'which Kajabi customers …?' with KQL, a small validated query language. "
    "Everything here is read-only. Write a query, `check` it (cheap, offline), `explain` it to "
    "see how many API requests it costs, then `count` or `run` it.\n\n" + LANGUAGE
)

FILTERS = """\
Search the filter registry: every KQL filter with its KQL form (`kql`), the API parameter it
sends, the value it takes, its typed-id kind and a description. `search` matches words
against the name, parameter and description (all words must match; empty lists all).
Also returns the sort keys, the `select` fields and the attributes usable in local
predicates. Offline: sends no request."""

CHECK = """\
Validate a KQL query without sending anything. Returns `valid`, every error at once (each
with `code`, `message`, `span` [start, end), `hint`) and `rendered`, the caret form; for a
valid query also its canonical text and how many listings it needs. Use it before `run`.
`@segment` references are expanded; tag/offer/product names are accepted (resolved when run).
See the server instructions (or the `run` tool) for the language."""

EXPLAIN = """\
The plan of a KQL query: the API listings (each `GET /v1/customers?…`), id exclusions and
intersections, local filters, the merge order and `requests`, the number of listings.
Offline unless the query uses tag/offer/product names (those are looked up first).
`max_requests` refuses (E308) a plan that needs more listings."""

COUNT = """\
The exact number of customers a KQL query matches (`page` and `limit` aside). One request
when the API can answer it (its total count), otherwise the plan runs for ids. Refused with
E308, before any request, when the plan needs more than `max_requests` listings."""

RUN = """\
Run a KQL query and return the matching customers as flat records ({"id": …, attributes}).
`limit` is required (1-{max_limit}; the query's own `limit` applies when smaller). The plan
is checked first: more than `max_requests` listings (default {default_requests}, at most
{max_requests}) is refused with E308 before anything is sent. Use `select` to keep records
small. Read-only: nothing here changes data.

""" + LANGUAGE

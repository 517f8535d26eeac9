"""The API origin as text: checked without httpx, so ``kql compile --url`` stays light.

``kql run`` checks the same rules (and more: plain http only to loopback, since it
sends a token) in kql/execute/origin.py.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from kql.execute.errors import ConfigError


def check_base_url_text(base_url: str) -> str:
    """``base_url`` as an origin (plus path) without a trailing slash or ``/v1``; ConfigError if unusable."""
    text = base_url.strip()
    # Whitespace, control and invisible characters (bidi overrides, zero-width spaces) would
    # break the line the URL is printed on, or the request line, or hide what it says.
    bad = next((ch for ch in text if ch.isspace() or not ch.isprintable()), None)
    if bad is not None:
        raise ConfigError(f"the base URL must not contain {bad!r}: {base_url!r}")
    try:
        url = urlsplit(text)
    except ValueError as exc:  # an unbalanced [ipv6 literal
        raise ConfigError(f"invalid base URL {base_url!r}: {exc}") from None
    if url.scheme.lower() not in ("http", "https") or not url.hostname:
        raise ConfigError(f"the base URL must be http(s)://host[:port], not {base_url!r}")
    if "@" in url.netloc:
        raise ConfigError("the base URL must not carry credentials; use --token or KAJABI_TOKEN")
    netloc = url.netloc.removesuffix(":")  # an empty port is the default one
    port_text = re.search(r":([0-9]+)\Z", netloc.rpartition("]")[2])
    if port_text is None and ":" in netloc.rpartition("]")[2]:
        raise ConfigError(f"invalid base URL {base_url!r}: the port is not a number")
    digits = "" if port_text is None else port_text.group(1)
    port = int(digits) if 0 < len(digits) <= 5 else None  # more digits cannot be a port (nor an int() to take)
    if len(digits) > 5 or (port is not None and not 0 < port < 65536):
        shown = digits if len(digits) <= 8 else digits[:8] + "…"
        raise ConfigError(f"the base URL's port must be 1-65535, not {shown}")
    if url.query or url.fragment or "?" in text or "#" in text:
        raise ConfigError("the base URL must not have a query or fragment")
    # Every request path starts with /v1: a base URL copied with it (…/v1) must not double it.
    path = url.path.rstrip("/").removesuffix("/v1")
    return f"{url.scheme.lower()}://{netloc}{path}"

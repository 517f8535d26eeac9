"""The configured origin: the one place a token may be sent.

Plain ``http://`` leaks the token to anyone on the path, so it is refused unless
the host is loopback (the sandbox, tests) or the user explicitly allows it.
"""

from __future__ import annotations

import ipaddress

import httpx

from kql.execute.baseurl import check_base_url_text
from kql.execute.errors import ConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, insecure: bool = False) -> httpx.URL:
    """The API origin as a URL without a trailing slash; ConfigError if it is unusable or unsafe."""
    check_base_url_text(base_url)  # the rules kql compile --url checks too (no control characters, http(s), …)
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"invalid base URL {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"the base URL must be http(s)://host[:port], not {base_url!r}")
    if url.userinfo:
        raise ConfigError("the base URL must not carry credentials; use --token or KAJABI_TOKEN")
    if url.query or url.fragment:
        raise ConfigError("the base URL must not have a query or fragment")
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigError(f"the base URL's port must be 1-65535, not {url.port}")
    if url.scheme == "http" and not insecure and not is_loopback(url.host):
        raise ConfigError(
            f"refusing plain http:// to {url.host}: the token would travel unencrypted "
            "(use https://, or --insecure if you really mean it)"
        )
    path = url.path.rstrip("/")
    # Every request path starts with /v1: a base URL copied with it (…/v1) must not double it.
    path = path.removesuffix("/v1")
    return url.copy_with(path=path or "")


def origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return origin(a) == origin(b)


def describe_origin(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"

"""The ``KAJABI_*`` environment variables, read one way for ``Client.from_env()`` and ``kql run``.

- ``KAJABI_TOKEN``: a bearer token; or ``KAJABI_CLIENT_ID`` + ``KAJABI_CLIENT_SECRET``
  (OAuth client credentials). An empty variable counts as unset.
- ``KAJABI_BASE_URL``: the API origin (default ``https://api.kajabi.com``).
- ``KAJABI_SITE_ID``: ``123`` or ``site_123``, added as ``filter[site_id]``.

Messages name the variables, never their values: a secret in the wrong variable must
not end up on a terminal or in a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kql.execute.auth import check_credential
from kql.execute.errors import ConfigError

TOKEN, CLIENT_ID, CLIENT_SECRET = "KAJABI_TOKEN", "KAJABI_CLIENT_ID", "KAJABI_CLIENT_SECRET"
BASE_URL, SITE_ID = "KAJABI_BASE_URL", "KAJABI_SITE_ID"
DEFAULT_BASE_URL = "https://api.kajabi.com"


def parse_site_id(text: str) -> str:
    """``"123"`` or ``"site_123"`` as ``"123"``; ValueError (with a readable message) for anything else."""
    number = text.strip().removeprefix("site_")
    if not number.isascii() or not number.isdigit() or int(number) < 1:
        raise ValueError(f"a site id is a positive number (e.g. 123 or site_123), not {text!r}")
    return str(int(number))


def site_id(environ: Mapping[str, str] | None = None) -> str | None:
    """``KAJABI_SITE_ID``, checked, or None when unset."""
    value = _get(environ, SITE_ID)
    if value is None:
        return None
    try:
        return parse_site_id(value)
    except ValueError:
        # Without the value: a token pasted into the wrong variable must not be printed.
        raise ConfigError(f"{SITE_ID} must be a positive number (e.g. 123 or site_123)") from None


def credentials(
    environ: Mapping[str, str] | None = None, token: str | None = None, token_from: str = "the token argument"
) -> dict[str, str] | None:
    """The constructor's credential arguments: ``token`` if given, else ``KAJABI_TOKEN``, else
    ``KAJABI_CLIENT_ID`` + ``KAJABI_CLIENT_SECRET``; None when there are none. ConfigError when
    only one half of the OAuth pair is set, or a value cannot travel in a header (a control or
    non-ASCII character) — naming where it came from (``token_from`` for ``token``), never it."""
    if token:
        return {"token": _checked(token.strip(), "token", token_from)}
    from_env = _get(environ, TOKEN)
    if from_env:
        # Stripped as the client strips it: a trailing newline from a file is not part of the token.
        return {"token": _checked(from_env.strip(), "token", TOKEN)}
    client_id, secret = _get(environ, CLIENT_ID), _get(environ, CLIENT_SECRET)
    if client_id and secret:
        return {
            "client_id": _checked(client_id, "client id", CLIENT_ID),
            "client_secret": _checked(secret, "client secret", CLIENT_SECRET),
        }
    if client_id or secret:
        have, missing = (CLIENT_ID, CLIENT_SECRET) if client_id else (CLIENT_SECRET, CLIENT_ID)
        raise ConfigError(f"{have} is set but {missing} is not: OAuth needs both (or use {TOKEN})")
    return None


def _checked(value: str, what: str, where: str) -> str:
    try:
        return check_credential(value, what)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def client_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything ``Client.from_env()`` passes to the constructor: base_url, credentials, site_id."""
    found = credentials(environ)
    if found is None:
        raise ConfigError(f"no credentials in the environment: set {TOKEN}, or {CLIENT_ID} and {CLIENT_SECRET}")
    options: dict[str, Any] = {"base_url": _get(environ, BASE_URL) or DEFAULT_BASE_URL, **found}
    options["site_id"] = site_id(environ)
    return options


def _get(environ: Mapping[str, str] | None, name: str) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return value or None

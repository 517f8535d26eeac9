"""Bearer tokens: a static one, or OAuth client credentials with a cached, shared token.

The cache keeps a token until shortly before it expires; the margin scales with
its lifetime (10%, at most a minute), so a 2-second token is still reused.
However many requests need a new token at once, one grant is made: the others
wait for it (``TokenSource`` / ``AsyncTokenSource``). A 401 invalidates only the
token generation that got it, so eight requests failing together cause one
refresh, not eight. A refresh token is used when there is one; if the server
rejects it, client credentials are used instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kql.execute.errors import APIError, ExecutorError

Grant = Callable[[dict[str, str]], Mapping[str, Any]]
AsyncGrant = Callable[[dict[str, str]], Awaitable[Mapping[str, Any]]]

MAX_MARGIN = 60.0
MARGIN_SHARE = 0.1


def check_credential(value: str, what: str) -> str:
    """``value`` if it can travel in an HTTP header or form; ValueError naming the first bad
    character's kind and position (1-based), never the value itself."""
    for position, char in enumerate(value, 1):
        if ord(char) < 32 or ord(char) == 127:
            raise ValueError(
                f"the {what} contains a control character (position {position}); check for a stray line break"
            )
        if ord(char) > 126:
            raise ValueError(f"the {what} contains a non-ASCII character (position {position}); credentials are ASCII")
    return value


class StaticToken:
    """A bearer token given by the user; it cannot be refreshed."""

    refreshable = False

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ValueError("the token is empty")
        self._token = check_credential(token.strip(), "token")

    def current(self, now: float) -> tuple[str, int] | None:
        return self._token, 0

    def invalidate(self, generation: int) -> None:
        pass

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class ClientCredentials:
    """OAuth client credentials (``/v1/oauth/token``); this object holds the token state, no I/O."""

    refreshable = True

    def __init__(self, client_id: str, client_secret: str) -> None:
        if not client_id or not client_secret:
            raise ValueError("client id and client secret are both required")
        check_credential(client_id, "client id")
        check_credential(client_secret, "client secret")
        self.client_id = client_id
        self._secret = client_secret
        self._access: str | None = None
        self._refresh: str | None = None
        self._valid_until = 0.0
        self.generation = 0
        self.grants = 0  # how many tokens were obtained: tests and stats read it

    def current(self, now: float) -> tuple[str, int] | None:
        if self._access is not None and now < self._valid_until:
            return self._access, self.generation
        return None

    def invalidate(self, generation: int) -> None:
        """The server refused the token of ``generation``; drop it unless a newer one already replaced it."""
        if generation == self.generation:
            self._valid_until = 0.0

    def grant_form(self) -> dict[str, str]:
        if self._refresh:
            return {"grant_type": "refresh_token", "refresh_token": self._refresh}
        return {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret}

    def refresh_rejected(self) -> None:
        self._refresh = None

    def accept(self, payload: Mapping[str, Any], requested_at: float) -> tuple[str, int]:
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise ExecutorError("the token endpoint answered without an access_token")
        try:
            check_credential(access, "access_token the token endpoint sent")
        except ValueError as exc:
            raise ExecutorError(str(exc).split(";")[0]) from None
        lifetime = payload.get("expires_in")
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            # Counted from when the request left, so that network time only makes us earlier.
            self._valid_until = requested_at + lifetime - min(MAX_MARGIN, lifetime * MARGIN_SHARE)
        else:
            self._valid_until = float("inf")  # no lifetime given: keep it until a 401
        refresh = payload.get("refresh_token")
        self._refresh = refresh if isinstance(refresh, str) and refresh and _usable(refresh) else None
        self._access = access
        self.generation += 1
        self.grants += 1
        return access, self.generation

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._secret, self._access, self._refresh) if s)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret=<redacted>)"


def _usable(value: str) -> bool:
    try:
        check_credential(value, "refresh_token")
    except ValueError:
        return False  # an unusable refresh token: client credentials will be used instead
    return True


Credentials = StaticToken | ClientCredentials


def _refused_refresh(error: APIError, form: Mapping[str, str]) -> bool:
    return form.get("grant_type") == "refresh_token" and error.status in (400, 401)


class TokenSource:
    """Thread-safe, single-flight access to the current token for the sync client."""

    def __init__(self, credentials: Credentials, grant: Grant, clock: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self._grant = grant
        self._clock = clock
        self._lock = threading.Lock()
        self._failure: tuple[int, ExecutorError] | None = None

    def get(self) -> tuple[str, int]:
        found = self.credentials.current(self._clock())
        if found is not None:
            return found
        with self._lock:  # whoever gets here first refreshes; the rest find its token
            found = self.credentials.current(self._clock())
            if found is not None:
                return found
            assert isinstance(self.credentials, ClientCredentials)
            creds = self.credentials
            # A grant that failed (after its own retries) is final until a token is obtained:
            # the requests that queued behind it get its error instead of asking again one by one.
            if self._failure is not None and self._failure[0] == creds.generation:
                raise self._failure[1]
            try:
                return self._obtain(creds)
            except ExecutorError as error:
                self._failure = (creds.generation, error)
                raise

    def _obtain(self, creds: ClientCredentials) -> tuple[str, int]:
        form = creds.grant_form()
        started = self._clock()
        try:
            payload = self._grant(form)
        except APIError as error:
            if not _refused_refresh(error, form):
                raise
            creds.refresh_rejected()
            form = creds.grant_form()
            started = self._clock()
            payload = self._grant(form)
        return creds.accept(payload, started)

    def invalidate(self, generation: int) -> None:
        with self._lock:
            self.credentials.invalidate(generation)


class AsyncTokenSource:
    """The same for the async client: one grant in flight, every other task waits for it."""

    def __init__(
        self, credentials: Credentials, grant: AsyncGrant, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.credentials = credentials
        self._grant = grant
        self._clock = clock
        self._lock: asyncio.Lock | None = None
        self._failure: tuple[int, ExecutorError] | None = None

    async def get(self) -> tuple[str, int]:
        found = self.credentials.current(self._clock())
        if found is not None:
            return found
        if self._lock is None:  # created inside the running loop
            self._lock = asyncio.Lock()
        async with self._lock:
            found = self.credentials.current(self._clock())
            if found is not None:
                return found
            assert isinstance(self.credentials, ClientCredentials)
            creds = self.credentials
            if self._failure is not None and self._failure[0] == creds.generation:
                raise self._failure[1]
            try:
                return await self._obtain(creds)
            except ExecutorError as error:
                self._failure = (creds.generation, error)
                raise

    async def _obtain(self, creds: ClientCredentials) -> tuple[str, int]:
        form = creds.grant_form()
        started = self._clock()
        try:
            payload = await self._grant(form)
        except APIError as error:
            if not _refused_refresh(error, form):
                raise
            creds.refresh_rejected()
            form = creds.grant_form()
            started = self._clock()
            payload = await self._grant(form)
        return creds.accept(payload, started)

    def invalidate(self, generation: int) -> None:
        self.credentials.invalidate(generation)  # one event loop thread: no lock needed

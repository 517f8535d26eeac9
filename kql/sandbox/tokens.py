"""Bearer tokens: one static token, plus OAuth access/refresh tokens that expire."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping

REFRESH_LIFETIME = 30 * 86_400


class OAuthError(Exception):
    """The token endpoint's own error shape: ``{"error": code}`` with a status."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status, self.code = status, code


class Tokens:
    def __init__(self, *, static: str | None, client_id: str, client_secret: str, expires_in: int) -> None:
        self.static, self.client_id, self.client_secret = static, client_id, client_secret
        self.expires_in = expires_in
        self._access: dict[str, float] = {}  # token -> expiry (monotonic)
        self._refresh: dict[str, float] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def check(self, token: str) -> str | None:
        """None when the token is good, else why not."""
        if self.static is not None and secrets.compare_digest(token, self.static):
            return None
        with self._lock:
            expiry = self._access.get(token)
        if expiry is None:
            return "the bearer token is not valid"
        if time.monotonic() >= expiry:
            return "the access token has expired"
        return None

    def grant(self, form: Mapping[str, str]) -> dict[str, object]:
        grant_type = form.get("grant_type", "")
        if grant_type == "client_credentials":
            given_id, given_secret = form.get("client_id", ""), form.get("client_secret", "")
            if not (secrets.compare_digest(given_id, self.client_id)
                    and secrets.compare_digest(given_secret, self.client_secret)):
                raise OAuthError(401, "invalid_client")
        elif grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            with self._lock:
                expiry = self._refresh.pop(token, None)  # refresh tokens are single use
            if expiry is None or time.monotonic() >= expiry:
                raise OAuthError(401, "invalid_grant")
        elif not grant_type:
            raise OAuthError(400, "invalid_request")
        else:
            raise OAuthError(400, "unsupported_grant_type")
        return self._issue()

    def _issue(self) -> dict[str, object]:
        access, refresh = "sbx_at_" + secrets.token_hex(16), "sbx_rt_" + secrets.token_hex(16)
        now = time.monotonic()
        with self._lock:
            self._access[access] = now + self.expires_in
            self._refresh[refresh] = now + REFRESH_LIFETIME
            self.issued += 1
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": self.expires_in}

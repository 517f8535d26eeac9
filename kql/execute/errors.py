"""What can go wrong when a query runs, as exceptions with an exit code each.

``APIError`` is the API's own refusal (a JSON:API ``errors`` document, an OAuth
error, or whatever a proxy put in front of it: HTML, plain text, nothing).
Every message is passed through ``redact`` so that a server echoing the
credentials back never puts them on a terminal or in a log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import attrs

EXIT_USAGE, EXIT_REFUSED, EXIT_FAILED = 2, 3, 4
# The run completed with customers missing, accepted by --allow-partial / allow_partial=True.
EXIT_PARTIAL = 5


# A secret shorter than this is too short to be one, and too likely to be an ordinary word.
MIN_SECRET = 4
# A secret made of letters only and shorter than this ("sandbox", "password") may well be an
# ordinary word in a message: it is redacted only where it appears as a credential.
STRONG_SECRET = 16
_CONTEXT = (
    r"(?i:bearer\s+|basic\s+|(?:token|secret|password|authorization|client_secret|access_token|refresh_token)"
    r"(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?(?:bearer\s+)?)"
)


def _forms(secret: str) -> set[str]:
    """Every way a secret can be written into a message: as is, repr, bytes repr, JSON, percent-encoded."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    try:
        forms.add(repr(secret.encode("utf-8", "surrogateescape"))[2:-1])
        forms.add(repr(secret.encode("latin-1"))[2:-1])
    except UnicodeEncodeError:
        pass
    return {f for f in forms if len(f) >= MIN_SECRET}


def _pattern(secret: str) -> re.Pattern[str] | None:
    if not secret or len(secret.strip()) < MIN_SECRET:
        return None
    forms = sorted(_forms(secret), key=len, reverse=True)
    alternatives = "|".join(re.escape(f) for f in forms)
    if len(secret) >= STRONG_SECRET or not secret.isalpha():
        # A token-like secret: every occurrence, as a whole word (not inside a longer word).
        return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
    # A word-like secret: only where it stands as a credential (Bearer …, token=…, "secret": "…").
    return re.compile(rf"(?P<ctx>{_CONTEXT})(?:{alternatives})(?![A-Za-z0-9])")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``, in every representation (as is, ``repr``,
    bytes repr, JSON-escaped, percent-encoded).

    A token-like secret (16+ characters, or any digit or symbol in it) is replaced wherever it
    stands as a word of its own; a short all-letter one (the sandbox's ``sandbox``) only where it
    appears as a credential (``Bearer sandbox``, ``token=sandbox``), so that "the sandbox is
    injecting errors" stays readable. Secrets under 4 characters are ignored.
    """
    for secret in secrets:
        pattern = _pattern(secret)
        if pattern is None:
            continue
        if "ctx" in pattern.groupindex:
            text = pattern.sub(lambda m: m.group("ctx") + "***", text)
        else:
            text = pattern.sub("***", text)
    return text


class ExecutorError(Exception):
    """Base class: a query could not be run. ``exit_code`` is what ``kql run`` exits with."""

    exit_code = EXIT_FAILED

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``code`` (the class name, e.g. ``"APIError"``), ``message``, ``exit_code``, and
        for an ``APIError`` ``status`` and ``errors``. Messages are redacted already; no secret is added."""
        return {"code": type(self).__name__, "message": str(self), "exit_code": self.exit_code}


class ConfigError(ExecutorError, ValueError):
    """The client was configured in a way that cannot work or is unsafe (exit 2)."""

    exit_code = EXIT_USAGE


class TransportError(ExecutorError):
    """The network failed (refused, timed out, dropped) and retries did not help (exit 4)."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class PaginationError(ExecutorError):
    """The server's pages cannot be trusted: a page repeated, did not advance, or had no data (exit 4)."""


class IncompleteResult(PaginationError):
    """Customers are missing from the run: a page came back short (even when asked again), or fewer
    distinct customers arrived than a ``meta.total_count`` that held still (exit 4).

    ``missing`` is how many. With ``allow_partial`` the run ends with a warning instead, and the
    CLI exits ``EXIT_PARTIAL``.
    """

    def __init__(self, message: str, *, missing: int) -> None:
        super().__init__(message)
        self.missing = missing


class ResponseTooLarge(ExecutorError):
    """A response body was larger than ``max_body_bytes`` (exit 4; not retried)."""


class RedirectRefused(ExecutorError):
    """The server redirected to another origin; following would hand it the token (exit 4)."""


@attrs.frozen(slots=True)
class ErrorObject:
    """One entry of a JSON:API ``errors`` array."""

    status: int | None
    title: str | None
    detail: str | None
    source: Mapping[str, Any] | None = None


class APIError(ExecutorError):
    """An HTTP error response: exit 3 when the API refused (4xx), 4 when the server failed (5xx, or 429 to the end)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        source: Mapping[str, Any] | None = None,
        *,
        errors: tuple[ErrorObject, ...] = (),
        url: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.source = source
        self.errors = errors
        self.url = url
        self.attempts = attempts
        super().__init__(self._message())

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        # 429 reaching the user means the rate limit outlasted every retry: a failure, not a refusal.
        return EXIT_FAILED if self.status >= 500 or self.status == 429 else EXIT_REFUSED

    def after(self, attempts: int) -> APIError:
        """The same error, saying how many attempts were made before giving up."""
        self.attempts = attempts
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        where = _source_text(self.source)
        if where:
            text += f" ({where})"
        more = len(self.errors) - 1
        if more > 0:
            text += f" (and {more} more error{'s' if more > 1 else ''})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def to_dict(self) -> dict[str, object]:
        """``ExecutorError.to_dict`` with ``status``, ``title``, ``detail`` and every JSON:API ``errors`` entry
        (the request URL is left out: it may carry a customer's email)."""
        return {
            **super().to_dict(),
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "errors": [
                {"status": e.status, "title": e.title, "detail": e.detail, "source": dict(e.source or {}) or None}
                for e in self.errors
            ],
        }

    def __repr__(self) -> str:
        return f"APIError(status={self.status}, title={self.title!r}, detail={self.detail!r})"

    @classmethod
    def from_response(
        cls,
        status: int,
        reason: str,
        content_type: str,
        body: bytes,
        *,
        url: str | None = None,
        secrets: Iterable[str] = (),
        attempts: int = 1,
    ) -> APIError:
        """Build the error from whatever came back: JSON:API, OAuth JSON, HTML, text or nothing."""
        hidden = [s for s in secrets if s]
        errors = _parse_errors(status, content_type, body)
        clean = tuple(
            ErrorObject(
                e.status,
                _redact_opt(e.title, hidden),
                _redact_opt(e.detail, hidden),
                _redact_source(e.source, hidden),
            )
            for e in errors
        )
        if clean:
            first = clean[0]
            title = first.title or reason or "error"
            return cls(status, title, first.detail, first.source, errors=clean, url=url, attempts=attempts)
        return cls(
            status, reason or "error", redact(_describe_body(content_type, body), hidden), url=url, attempts=attempts
        )


def _source_text(source: Mapping[str, Any] | None) -> str:
    if not source:
        return ""
    parts = [f"{key} {value}" for key, value in source.items() if isinstance(value, str | int)]
    return ", ".join(parts)


def _redact_opt(text: str | None, secrets: list[str]) -> str | None:
    return None if text is None else redact(text, secrets)


def _redact_source(source: Mapping[str, Any] | None, secrets: list[str]) -> Mapping[str, Any] | None:
    if source is None:
        return None
    return {k: redact(v, secrets) if isinstance(v, str) else v for k, v in source.items()}


def _parse_errors(status: int, content_type: str, body: bytes) -> tuple[ErrorObject, ...]:
    if "json" not in content_type.lower() and not body.lstrip().startswith((b"{", b"[")):
        return ()
    try:
        doc = json.loads(body)
    except ValueError:
        return ()
    if not isinstance(doc, dict):
        return ()
    found = doc.get("errors")
    if isinstance(found, list):
        out = []
        for item in found:
            if not isinstance(item, dict):
                continue
            source = item.get("source")
            out.append(
                ErrorObject(
                    _int(item.get("status")) or status,
                    _str(item.get("title")),
                    _str(item.get("detail")),
                    source if isinstance(source, dict) else None,
                )
            )
        return tuple(out)
    # OAuth endpoints answer {"error": "...", "error_description": "..."}.
    if isinstance(doc.get("error"), str):
        return (ErrorObject(status, doc["error"], _str(doc.get("error_description")) or _str(doc.get("message"))),)
    if isinstance(doc.get("message"), str):
        return (ErrorObject(status, doc["message"], None),)
    return ()


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _describe_body(content_type: str, body: bytes) -> str:
    """A one-line account of a body that is not a JSON error document."""
    if not body.strip():
        return "the response had an empty body"
    if body.strip().replace(b" ", b"") in (b'{"errors":[]}', b"{}", b"[]"):
        return "the response gave no details"
    if "html" in content_type.lower() or body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
        match = _TITLE.search(body[:4096])
        title = _one_line(match.group(1).decode("utf-8", "replace")) if match else ""
        return "the server (or a proxy in front of it) sent an HTML page" + (f": {title}" if title else "")
    return _one_line(body[:300].decode("utf-8", "replace"))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None

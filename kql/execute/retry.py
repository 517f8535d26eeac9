"""When to try a request again, and how long to wait first (no I/O here).

Only idempotent requests are retried (every request kql makes is a GET, plus the
token grant, which has no effect beyond issuing a token). Retried: timeouts,
connection failures, connections dropped mid-response, and 429/502/503/504.
Never retried: 400, 401 (handled by auth, once), 403, 404, 422 and the rest.
"""

from __future__ import annotations

import email.utils
import random
import time

import attrs

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@attrs.frozen(slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; ``Retry-After`` honoured up to a cap.

    ``deadline`` bounds the time one logical request may take, all attempts and
    waits included: a wait that would end past it is not started.
    """

    max_attempts: int = 7
    backoff_base: float = 0.5
    backoff_cap: float = 10.0
    retry_after_cap: float = 60.0
    deadline: float = 120.0

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^(retry-1))] for the ``retry``-th retry (1-based)."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(retry - 1, 30))
        return (rng or random).uniform(0, ceiling)

    def delay(
        self, attempts: int, elapsed: float, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait after ``attempts`` failed tries, or None to give up now."""
        if attempts >= self.max_attempts:
            return None
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.retry_after_cap)
        else:
            wait = self.backoff(attempts, rng)
        if elapsed + wait > self.deadline:
            return None
        return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP-date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value)) if value.replace(".", "", 1).isdigit() else _from_date(value, now)
    except (TypeError, ValueError, OverflowError):
        return None


def _from_date(value: str, now: float | None) -> float | None:
    moment = email.utils.parsedate_to_datetime(value)
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))

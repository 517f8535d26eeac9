"""Faults on request: latency with jitter, 503s, rate limiting (429), dropped bodies.

Random decisions come from one generator seeded by the sandbox seed and are drawn
in request arrival order, so a sequential client sees the same faults every run.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Stats:
    """Counters since start (read them any time; they are updated under a lock)."""

    requests: int = 0
    rate_limited: int = 0  # 429s
    unavailable: int = 0  # injected 503s
    dropped: int = 0  # connections cut mid-body
    tokens_issued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {k: getattr(self, k) for k in ("requests", "rate_limited", "unavailable", "dropped",
                                                  "tokens_issued")}

    def __getitem__(self, name: str) -> int:
        return self.as_dict()[name]


@dataclass(frozen=True)
class Decision:
    delay: float  # seconds to wait before answering
    status: int | None  # 429 or 503 instead of the real answer
    retry_after: int | None
    drop: bool  # cut the connection halfway through the body


class Faults:
    def __init__(self, *, seed: int, latency_ms: float, jitter_ms: float, error_rate: float,
                 rate_limit: float | None, drop_rate: float) -> None:
        for name, rate in (("error_rate", error_rate), ("drop_rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive (requests per second)")
        self.latency, self.jitter = latency_ms / 1000, jitter_ms / 1000
        self.error_rate, self.drop_rate, self.rate_limit = error_rate, drop_rate, rate_limit
        self._rng = random.Random(f"{seed}/faults")
        self._lock = threading.Lock()
        # Token bucket: a burst of max(1, rate) requests, refilled at `rate` per second.
        self._capacity = max(1.0, rate_limit or 0.0)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def decide(self) -> Decision:
        with self._lock:
            jitter = self._rng.random() * self.jitter
            error = self._rng.random() < self.error_rate
            drop = self._rng.random() < self.drop_rate
            retry_after = self._throttle()
        if retry_after is not None:
            return Decision(self.latency + jitter, 429, retry_after, False)
        if error:
            return Decision(self.latency + jitter, 503, 1, False)
        return Decision(self.latency + jitter, None, None, drop)

    def _throttle(self) -> int | None:
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.rate_limit)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return max(1, math.ceil((1 - self._tokens) / self.rate_limit))

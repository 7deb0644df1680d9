"""Per-version request-rate limits: one token bucket per version, refilled at the per-replica
limit times the number of ready replicas."""

from __future__ import annotations

# Burst: how many seconds' worth of requests a bucket holds when full.
BURST_SECONDS = 1.0


class TokenBucket:
    """A token bucket whose rate is given at each call, so it follows the replica count as
    replicas come and go without being rebuilt."""

    __slots__ = ("_tokens", "_updated")

    def __init__(self) -> None:
        self._tokens: float | None = None  # full on first use
        self._updated = 0.0

    def try_acquire(self, rate: float, now: float) -> bool:
        """Take one token if there is one; `now` is time.monotonic()."""
        capacity = max(1.0, rate * BURST_SECONDS)
        if self._tokens is None:
            tokens = capacity
        else:
            tokens = min(capacity, self._tokens + (now - self._updated) * rate)
        self._updated = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


class RateLimiter:
    """Token buckets by service id."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, service_id: str, rate: float, now: float) -> bool:
        bucket = self._buckets.get(service_id)
        if bucket is None:
            bucket = self._buckets[service_id] = TokenBucket()
        return bucket.try_acquire(rate, now)

    def forget(self, service_id: str) -> None:
        self._buckets.pop(service_id, None)

"""Per-version limits: the request rate (one token bucket per version, refilled at the per-replica
limit times the number of ready replicas) and the requests in flight (the per-replica limit times
the ready replicas). Each reports itself as the real gateway does, in `X-RateLimit-Limit` and
`X-RateLimit-Remaining`; where both apply, the one nearer its end.

Without a concurrency limit of its own, a version still holds at most `QUEUE_PER_REPLICA`
requests in flight per ready replica: past that the gateway answers a fast 503 with
`Retry-After` instead of letting requests queue without bound (memory and latency)."""

from __future__ import annotations

import math

from .replies import over_concurrency, overloaded, rate_limited
from .routes import Version

# Burst: how many seconds' worth of requests a bucket holds when full.
BURST_SECONDS = 1.0
# Requests in flight per ready replica (sent or queued in it) before the gateway refuses more.
QUEUE_PER_REPLICA = 128


class TokenBucket:
    """A token bucket whose rate is given at each call, so it follows the replica count as
    replicas come and go without being rebuilt."""

    __slots__ = ("_tokens", "_updated")

    def __init__(self) -> None:
        self._tokens: float | None = None  # full on first use
        self._updated = 0.0

    @property
    def remaining(self) -> int:
        return int(self._tokens or 0.0)

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

    def forget(self, service_id: str) -> None:
        self._buckets.pop(service_id, None)

    def check(self, version: Version, ready: int, inflight: int, now: float) -> dict[str, str]:
        """Admit one request to `version` (`inflight`: its requests in flight now) or raise the
        429 of the limit it is over; the headers its reply carries."""
        reports: list[tuple[int, int]] = []  # (limit, remaining)
        if version.inflight_limit_per_replica is None:
            bound = QUEUE_PER_REPLICA * max(ready, 1)  # no replica yet: requests wait for one
            if inflight >= bound:
                raise overloaded(version.service_id, bound)
        else:
            # No replica ready yet (one restarting, or waking from zero): one replica's worth may
            # wait for it, rather than all be refused.
            limit = max(1, int(version.inflight_limit_per_replica * max(ready, 1)))
            if inflight >= limit:
                raise over_concurrency(version.service_id, limit, _headers(limit, 0))
            reports.append((limit, limit - inflight - 1))
        if version.rps_limit_per_replica is not None:
            rate = version.rps_limit_per_replica * ready
            bucket = self._buckets.get(version.service_id)
            if bucket is None:
                bucket = self._buckets[version.service_id] = TokenBucket()
            limit = max(1, math.floor(rate * BURST_SECONDS))
            if not bucket.try_acquire(rate, now):
                raise rate_limited(version.service_id, _headers(limit, 0))
            reports.append((limit, bucket.remaining))
        if not reports:
            return {}
        return _headers(*min(reports, key=lambda report: report[1]))


def _headers(limit: int, remaining: int) -> dict[str, str]:
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(max(0, remaining))}

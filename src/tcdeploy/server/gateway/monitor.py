"""Per-group figures for a monitoring action: a ring of one-second buckets over the last hour,
aggregated into steps on demand.

Latencies are kept as counts in logarithmic bins (about 5% wide), so a bucket stays small however
many requests it holds and quantiles over any window come from merging counts.
"""

from __future__ import annotations

import math
from collections import Counter

WINDOW_SECONDS = 3600
MAX_STEPS = 10_000
_BIN_RATIO = math.log(1.05)
_MIN_MS = 0.01


class _Second:
    __slots__ = ("second", "requests", "errors", "limited", "inflight", "latency_bins", "bytes_in", "bytes_out")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.errors = 0
        self.limited = 0
        self.inflight = 0
        self.latency_bins: Counter[int] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0


class GroupMonitor:
    """The last hour of one group, one bucket per second."""

    def __init__(self) -> None:
        self._ring: list[_Second | None] = [None] * WINDOW_SECONDS

    def record(
        self, now: float, status: int, latency_ms: float | None, inflight: int, bytes_in: int = 0, bytes_out: int = 0
    ) -> None:
        """Count one finished request. `now` is epoch seconds; `inflight` is the group's
        in-flight count while it ran; `latency_ms` is None when no replica was asked; the bytes
        are the request's and the reply's bodies."""
        bucket = self._bucket(int(now))
        bucket.requests += 1
        bucket.bytes_in += bytes_in
        bucket.bytes_out += bytes_out
        if status == 429:
            bucket.limited += 1
        elif status >= 400:
            bucket.errors += 1
        if inflight > bucket.inflight:
            bucket.inflight = inflight
        if latency_ms is not None:
            bucket.latency_bins[_bin(latency_ms)] += 1

    def steps(self, start: float, end: float, step: float) -> list[dict]:
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"end ({end}) must not be before start ({start})")
        if not math.isfinite(step) or step < 1:
            raise ValueError(f"step must be at least 1 second, got {step}")
        count = math.ceil((end - start) / step) or 1
        if count > MAX_STEPS:
            raise ValueError(f"the window holds {count} steps; at most {MAX_STEPS} are allowed (raise step)")
        return [self._aggregate(start + i * step, min(start + (i + 1) * step, end)) for i in range(count)]

    def _aggregate(self, start: float, end: float) -> dict:
        """Figures over the seconds in [start, end)."""
        requests = errors = limited = inflight = bytes_in = bytes_out = 0
        bins: Counter[int] = Counter()
        for second in range(math.ceil(start), math.ceil(end)):
            bucket = self._ring[second % WINDOW_SECONDS]
            if bucket is None or bucket.second != second:
                continue
            requests += bucket.requests
            errors += bucket.errors
            limited += bucket.limited
            inflight = max(inflight, bucket.inflight)
            bins.update(bucket.latency_bins)
            bytes_in += bucket.bytes_in
            bytes_out += bucket.bytes_out
        return {
            "time": start,
            "requests": requests,
            "errors": errors,
            "limited": limited,
            "p50_latency_ms": _quantile(bins, 0.50),
            "p99_latency_ms": _quantile(bins, 0.99),
            "inflight": inflight,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        }

    def _bucket(self, second: int) -> _Second:
        slot = second % WINDOW_SECONDS
        bucket = self._ring[slot]
        if bucket is None or bucket.second != second:
            bucket = self._ring[slot] = _Second(second)
        return bucket


def _bin(latency_ms: float) -> int:
    return int(math.log(max(latency_ms, _MIN_MS) / _MIN_MS) / _BIN_RATIO)


def _quantile(bins: Counter[int], q: float) -> float | None:
    total = sum(bins.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            # The bin's geometric middle: within about 2.5% of any latency that fell in it.
            return round(_MIN_MS * math.exp((index + 0.5) * _BIN_RATIO), 3)
    return None  # unreachable: seen reaches total

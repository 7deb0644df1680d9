"""The autoscaler: `ScaleMode: AUTO` with a `HorizontalPodAutoscaler`, decided as Kubernetes' HPA
decides, from the gateway's own measurements and the replicas' CPU/memory samples.

The decision, pure and tested in-process:

- per metric, `desired = ceil(ready × observed / target)` where `observed` is per ready replica
  (`concurrency-util`: requests in flight, averaged over the last `window` seconds;
  `service-qps`: requests per second over that window; `cpu-util` / `memory-util`: percent of
  the instance type's CPU / memory, averaged over the replicas); within the tolerance band
  (|observed/target − 1| ≤ 0.1) a metric keeps the count as it is, so it does not flap;
- the highest over the metrics, then the stabilization windows: the count goes up to the lowest
  recommendation of the last `ScaleUpStabilizationWindowSeconds` (default 0: at once) and down
  to the highest of the last `ScaleDownStabilizationWindowSeconds` (default 300 s: slowly);
- clamped to `MinReplicas`..`MaxReplicas` (as a cron job may have moved them);
- `MinReplicas: 0`: a service with no request for the server's idle time (`--scale-to-zero-after`)
  goes to zero replicas; the gateway holds the next request and wakes one (`ScalingControl.wake`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.1
DEFAULT_UP_WINDOW = 0
DEFAULT_DOWN_WINDOW = 300
METRIC_WINDOW = 10.0  # seconds the gateway's figures are averaged over
_WORDS = {
    "concurrency-util": ("concurrency", "/replica"),
    "service-qps": ("qps", "/replica"),
    "cpu-util": ("cpu", "%"),
    "memory-util": ("memory", "%"),
}


@dataclass(frozen=True)
class Policy:
    """A service's autoscaling settings, as its `HorizontalPodAutoscaler` (and cron bounds) say."""

    min_replicas: int
    max_replicas: int
    targets: Mapping[str, float]  # metric name → target value
    up_window: float = DEFAULT_UP_WINDOW
    down_window: float = DEFAULT_DOWN_WINDOW

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Policy | None:
        """The policy of a stored spec, or None when the autoscaler does not drive it."""
        hpa = spec.get("HorizontalPodAutoscaler")
        if spec.get("ScaleMode") != "AUTO" or not hpa or not hpa.get("HpaMetrics"):
            return None
        bounds = spec.get("_Bounds") or {}
        low = bounds.get("MinReplicas", hpa["MinReplicas"])
        high = bounds.get("MaxReplicas", hpa["MaxReplicas"])
        return cls(
            min_replicas=low,
            max_replicas=max(high, low),
            targets={m["Name"]: float(m["Value"]) for m in hpa["HpaMetrics"]},
            up_window=_or(hpa.get("ScaleUpStabilizationWindowSeconds"), DEFAULT_UP_WINDOW),
            down_window=_or(hpa.get("ScaleDownStabilizationWindowSeconds"), DEFAULT_DOWN_WINDOW),
        )

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


def wakes(spec: Mapping[str, Any]) -> bool:
    """Whether a request finding no replica should wake one and wait: AUTO with MinReplicas 0."""
    policy = Policy.of(spec)
    return policy is not None and policy.min_replicas == 0 and not spec.get("Stopped")


@dataclass(frozen=True)
class Proposal:
    replicas: int
    reason: str  # the metric that decided, as an event says it


def propose(ready: int, observed: Mapping[str, float], targets: Mapping[str, float]) -> Proposal:
    """Kubernetes' formula over every metric observed, the highest count winning."""
    best: Proposal | None = None
    for name, target in targets.items():
        value = observed.get(name)
        if value is None:
            continue
        ratio = value / target
        desired = ready if abs(ratio - 1.0) <= TOLERANCE else math.ceil(ready * ratio)
        word, unit = _WORDS[name]
        sign = ">" if ratio > 1 + TOLERANCE else "<" if ratio < 1 - TOLERANCE else "≈"
        reason = f"{word} {value:.1f}{unit} {sign} target {target:g}"
        if best is None or desired > best.replicas:
            best = Proposal(desired, reason)
    return best or Proposal(ready, "no figures yet")


class Stabilizer:
    """The recommendations of one service over its windows: up to the lowest of the up window,
    down to the highest of the down window (Kubernetes' `behavior` with its default policies)."""

    def __init__(self) -> None:
        self._history: deque[tuple[float, int]] = deque()

    def decide(self, now: float, recommended: int, current: int, policy: Policy) -> int:
        self._history.append((now, recommended))
        keep = max(policy.up_window, policy.down_window)
        while self._history and self._history[0][0] < now - keep:
            self._history.popleft()
        up = min(n for t, n in self._history if t >= now - policy.up_window)
        down = max(n for t, n in self._history if t >= now - policy.down_window)
        result = current
        if result < up:
            result = up
        if result > down:
            result = down
        return policy.clamp(result)

    def forget(self) -> None:
        self._history.clear()


@dataclass
class Samples:
    """A service's in-flight counts, one per tick, over the metric window."""

    window: float = METRIC_WINDOW
    points: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, inflight: int) -> None:
        self.points.append((now, inflight))
        while self.points and self.points[0][0] < now - self.window:
            self.points.popleft()

    def mean(self) -> float:
        return sum(n for _, n in self.points) / len(self.points) if self.points else 0.0


@dataclass(frozen=True)
class Load:
    """What a service's replicas carry now, as measured."""

    ready: int
    inflight_mean: float  # requests in flight, all replicas together
    requests_per_second: float  # all replicas together, over the metric window
    cpu_percent: list[float] = field(default_factory=list)  # per replica, of its size
    memory_percent: list[float] = field(default_factory=list)


def observe(load: Load) -> dict[str, float]:
    """The per-replica figures the metrics are compared on (none without a ready replica)."""
    if load.ready <= 0:
        return {}
    observed = {
        "concurrency-util": load.inflight_mean / load.ready,
        "service-qps": load.requests_per_second / load.ready,
    }
    if load.cpu_percent:
        observed["cpu-util"] = sum(load.cpu_percent) / len(load.cpu_percent)
    if load.memory_percent:
        observed["memory-util"] = sum(load.memory_percent) / len(load.memory_percent)
    return observed


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str
    to_zero: bool = False


def decide(
    now: float,
    current: int,
    load: Load,
    policy: Policy,
    stabilizer: Stabilizer,
    *,
    idle_for: float,
    idle_after: float,
) -> Decision | None:
    """The count a service should have now, with why; None to leave it (no figures to go on).
    `idle_for`: seconds since its last request (or since it last changed, if later)."""
    if current == 0:
        return None  # at zero: only a request (wake) brings it back
    if policy.min_replicas == 0 and idle_for >= idle_after and load.inflight_mean == 0:
        stabilizer.forget()
        return Decision(0, f"no request for {idle_for:.0f} s (idle after {idle_after:g} s)", to_zero=True)
    if load.ready == 0:
        return None
    proposal = propose(load.ready, observe(load), policy.targets)
    # Above zero, the floor is 1: zero is reached by idling, not by a low figure.
    floor = Policy(max(policy.min_replicas, 1), max(policy.max_replicas, 1), policy.targets,
                   policy.up_window, policy.down_window)  # fmt: skip
    replicas = stabilizer.decide(now, proposal.replicas, current, floor)
    return Decision(replicas, proposal.reason)


def describe(decision: Decision, current: int) -> str:
    """An event's message: "concurrency 7.6/replica > target 4: 2 → 4"."""
    return f"{decision.reason}: {current} → {decision.replicas}"


def _or(value: Any, default: float) -> float:
    return float(default if value is None else value)

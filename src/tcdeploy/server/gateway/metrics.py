"""Prometheus metrics of the data plane, in a registry of their own.

Label children are looked up once per (group, service) and cached: `labels()` takes a lock and
builds a key, which is more than the rest of the bookkeeping costs on the request path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# (service_id, pod_name, cpu_percent, rss_bytes) for each running replica.
UsageSource = Callable[[], Iterable[tuple[str, str, float, int]]]

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _ServiceSeries:
    """The label children of one (group, service), resolved once."""

    __slots__ = ("latency", "inflight", "limited", "batch_rows", "requests", "_requests_family")

    def __init__(self, metrics: GatewayMetrics, group: str, service: str) -> None:
        self.latency = metrics.latency.labels(group, service)
        self.inflight = metrics.inflight.labels(group, service)
        self.limited = metrics.limited.labels(group, service)
        self.batch_rows = metrics.batch_rows.labels(group, service)
        self._requests_family = (metrics.requests, group, service)
        self.requests: dict[int, Counter] = {}

    def count(self, status: int) -> None:
        counter = self.requests.get(status)
        if counter is None:
            family, group, service = self._requests_family
            counter = self.requests[status] = family.labels(group, service, str(status))
        counter.inc()


class GatewayMetrics:
    def __init__(self, usage: UsageSource | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tcdeploy_requests",
            "Prediction requests, by reply status",
            ["group", "service", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tcdeploy_request_latency_seconds",
            "Time from routing to the reply, in seconds",
            ["group", "service"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "tcdeploy_inflight_requests", "Requests being answered", ["group", "service"], registry=self.registry
        )
        self.limited = Counter(
            "tcdeploy_rate_limited",
            "Requests refused by the rate limit (429)",
            ["group", "service"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "tcdeploy_batch_rows",
            "Rows in the model batch that answered a request",
            ["group", "service"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.replicas = Gauge(
            "tcdeploy_service_replicas",
            "Replicas of a service: desired (what it scales to) and ready",
            ["service", "state"],
            registry=self.registry,
        )
        if usage is not None:
            self.registry.register(_ReplicaUsage(usage))
        self._series: dict[tuple[str, str], _ServiceSeries] = {}

    def series(self, group: str, service: str) -> _ServiceSeries:
        series = self._series.get((group, service))
        if series is None:
            series = self._series[(group, service)] = _ServiceSeries(self, group, service)
        return series

    def forget_group(self, group: str) -> None:
        """Drop the series of a deleted group, so /metrics does not list it forever."""
        for key in [key for key in self._series if key[0] == group]:
            series = self._series.pop(key)
            for family in (self.latency, self.inflight, self.limited, self.batch_rows):
                _remove(family, *key)
            for status in series.requests:
                _remove(self.requests, *key, str(status))

    def set_replicas(self, service: str, desired: int, ready: int) -> None:
        """The control plane's counts of a service, as the autoscaler sees them at each tick."""
        self.replicas.labels(service, "desired").set(desired)
        self.replicas.labels(service, "ready").set(ready)

    def forget_replicas(self, service: str) -> None:
        for state in ("desired", "ready"):
            _remove(self.replicas, service, state)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _remove(family, *labels: str) -> None:
    try:
        family.remove(*labels)
    except KeyError:
        pass


class _ReplicaUsage(Collector):
    """CPU and memory of each replica, read from the usage source at scrape time."""

    def __init__(self, usage: UsageSource) -> None:
        self._usage = usage

    def describe(self):
        return []

    def collect(self):
        cpu = GaugeMetricFamily(
            "tcdeploy_replica_cpu_percent", "CPU use of a replica process, % of one core", labels=["service", "pod"]
        )
        memory = GaugeMetricFamily(
            "tcdeploy_replica_memory_bytes", "Resident memory of a replica process, bytes", labels=["service", "pod"]
        )
        try:
            for service_id, pod_name, cpu_percent, rss_bytes in self._usage():
                cpu.add_metric([service_id, pod_name], cpu_percent)
                memory.add_metric([service_id, pod_name], rss_bytes)
        except Exception:
            log.exception("metrics: reading replica usage failed")
        yield cpu
        yield memory

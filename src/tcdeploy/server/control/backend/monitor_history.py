"""The monitoring history's writer and reader: once a minute, each group's and service's figures
(from the gateway's ring of the last hour) and each replica's CPU and memory go into the
`MetricsHistory`; a monitoring action reads a series back over any window from there.

Before a read, the minutes since the last write are written, the current one too (it is written
again, whole, once it ends), so what the API and the console show includes the last request.
The series are named in `gateway/history.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ...gateway import Gateway, MetricsHistory, Rollup
from ...gateway.history import (
    MINUTE,
    TRAFFIC_FIGURES,
    group_series,
    pod_series_prefix,
    replica_count_series,
    service_series,
)
from ...runtime import LocalRuntime
from ...store import ServiceRecord, Store
from .observing import usage_of

log = logging.getLogger("tcdeploy.server")

COMPACT_EVERY = 3600.0  # seconds between compactions


class MonitorHistory:
    def __init__(
        self,
        store: Store,
        runtime: LocalRuntime,
        gateway: Gateway,
        history: MetricsHistory,
        *,
        interval: float = MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.gateway = gateway
        self.history = history
        self.interval = interval
        self._clock = clock
        # Minutes before this one are written (or were before this process: its ring starts empty).
        self._written_until = int(clock()) // MINUTE * MINUTE
        self._compacted = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="monitor-history")

    async def close(self) -> None:
        """Stop writing, after writing the minute under way: a clean stop loses no figure (a
        restart within that minute that serves requests in it writes the minute again)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            self.catch_up(current=True)
        finally:
            self.history.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.catch_up()
            except Exception:  # a full disk, say: the next minute tries again
                log.exception("monitoring history: writing the last minute failed")

    def catch_up(self, *, current: bool = False) -> None:
        """Write every ended minute not yet written (and, with `current`, the one under way), and
        compact the history once an hour."""
        now = self._clock()
        this_minute = int(now) // MINUTE * MINUTE
        minutes = range(self._written_until, this_minute + (MINUTE if current else 0), MINUTE)
        rollups = [r for m in minutes for r in self._traffic(m)]
        if minutes:
            rollups += self._replicas(minutes[-1])
        self.history.write(rollups)
        self._written_until = max(self._written_until, this_minute)
        if now - self._compacted > COMPACT_EVERY:
            self.history.compact(now)
            self._compacted = now

    def steps(self, series: str, start: float, end: float, step: float) -> list[dict]:
        """The series over [start, end) in steps of `step` (a whole number of minutes).
        Raises ValueError for a bad window."""
        self.catch_up(current=True)
        return self.history.steps(series, start, end, step)

    def pod_steps(self, service_id: str, start: float, end: float, step: float) -> dict[str, list[dict]]:
        """Each replica's series of a service (past replicas too), by pod name."""
        self.catch_up(current=True)
        prefix = pod_series_prefix(service_id)
        return {
            name[len(prefix) :]: self.history.steps(name, start, end, step) for name in self.history.series_like(prefix)
        }

    def _traffic(self, minute: int) -> list[Rollup]:
        """The gateway's figures of each group and service over one minute (those with requests)."""
        rollups = []
        for group in self.store.groups():
            rollups.append(self._from_ring(group_series(group.id), group.id, minute, None))
            for service in self.store.services(group.id):
                rollups.append(self._from_ring(service_series(service.id), group.id, minute, service.id))
        return [r for r in rollups if r is not None]

    def _from_ring(self, series: str, group_id: str, minute: int, service_id: str | None) -> Rollup | None:
        [step] = self.gateway.monitor(group_id, minute, minute + MINUTE, MINUTE, service_id=service_id)
        if not step["requests"]:
            return None
        return Rollup(series, minute, {name: step[name] for name in TRAFFIC_FIGURES})

    def _replicas(self, minute: int) -> list[Rollup]:
        """Instance counts of each service and each replica's usage, sampled now, for `minute`."""
        rollups = []
        for service in self.store.services():
            pods = self.runtime.states(service.id)
            counts = {"replicas": _desired(service), "ready_replicas": sum(1 for p in pods if p.ready)}
            rollups.append(Rollup(replica_count_series(service.id), minute, counts))
            for usage in usage_of(self.runtime, service):
                figures = {"cpu_percent": usage.cpu_percent, "memory_percent": usage.memory_percent}
                rollups.append(Rollup(pod_series_prefix(service.id) + usage.pod_name, minute, figures))
        return rollups


def _desired(service: ServiceRecord) -> int:
    return 0 if service.stopped else service.replicas

"""What a service shows of itself: its pods, logs, events, monitor figures and replica usage,
and a call through its data plane. A mixin of `Backend`: it uses the backend's store, runtime,
gateway, reconciler and workspace-scoped lookups."""

from __future__ import annotations

import asyncio
import fnmatch
import math
from dataclasses import dataclass

from tcdeploy.protocol.errors import InvalidParameterValue, ResourceNotFound
from tcdeploy.protocol.states import EventType

from ...gateway import GatewayReply, latest_inference_rows, read_inference_table
from ...gateway.history import (
    TRAFFIC_FIGURES,
    group_series,
    replica_count_series,
    service_series,
    whole_minutes,
)
from ...runtime import LogLine, ReplicaState, pod_log_names, read_logs, tail_logs
from ...store import EventRecord, ServiceRecord
from .ids import pod_prefix
from .instance_types import sized

EVENTS_SHOWN = 10_000  # per service, the newest


@dataclass(frozen=True)
class ServiceEvent:
    """An event and the k8s-style resource it concerns (kind `Pod` or `Deployment`, and name)."""

    service: ServiceRecord
    event: EventRecord
    resource_kind: str
    resource_name: str


@dataclass
class FoldedEvent:
    """Repeats of one event (same service, resource, type, reason and message) as one, with how
    many times it happened and when first and last, as Kubernetes and TI-ONE's `Event` fold them."""

    first: ServiceEvent
    count: int
    first_time: float
    last_time: float
    last_seq: int

    @property
    def message(self) -> str:
        e = self.first.event
        return f"{e.reason}: {e.message}" if e.reason else e.message


@dataclass(frozen=True)
class ReplicaUsage:
    pod_name: str
    cpu_percent: float  # of the instance type's CPU
    memory_percent: float  # of the instance type's memory


class ObservingRules:
    def pod(self, workspace: str, service_ref: str, pod_name: str) -> ReplicaState:
        service = self.service(workspace, service_ref)
        state = self.runtime.state(pod_name)
        if state is None or state.service_id != service.id:
            raise ResourceNotFound("pod", pod_name)
        return state

    async def rebuild_pod(self, workspace: str, service_ref: str, pod_name: str) -> None:
        state = self.pod(workspace, service_ref, pod_name)
        self.reconciler.record(state.service_id, EventType.NORMAL, "Rebuild", f"{pod_name} restart requested")
        await self.runtime.rebuild(pod_name)

    async def logs(
        self,
        workspace: str,
        service_ref: str | None,
        *,
        pod_pattern: str | None,
        start: float | None = None,
        end: float | None = None,
        cursor: tuple[float, str, int] | None = None,
        keyword: str | None = None,
        newest_first: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[LogLine], bool]:
        """Replica log lines of a service (or of every service of the workspace), in time order
        (or newest first), and whether more follow. `cursor` is the last line of the previous page.
        The files are read off the event loop: `/predict` is served from the same loop."""
        services = [self.service(workspace, service_ref)] if service_ref else self.store.services_in(workspace)
        prefixes = tuple(pod_prefix(s.id) for s in services)
        pattern = pod_pattern or "*"

        def read() -> tuple[list[LogLine], bool]:
            pods = [
                p for p in pod_log_names(self.data_dir) if p.startswith(prefixes) and fnmatch.fnmatchcase(p, pattern)
            ]
            if not pods:
                return [], False
            lines, more = read_logs(
                self.data_dir, pods, start=start, end=end, keyword=keyword, newest_first=newest_first,
                after=None if newest_first else cursor, before=cursor if newest_first else None,
                limit=limit + offset,
            )  # fmt: skip
            return lines[offset:], more

        return await asyncio.to_thread(read)

    async def log_tail(self, pod_name: str, lines: int) -> list[LogLine]:
        return await asyncio.to_thread(tail_logs, self.data_dir, pod_name, lines)

    def monitor(self, workspace: str, group_ref: str, start: float, end: float, step: float) -> list[dict]:
        """A group's per-step request figures (see `Gateway.monitor`)."""
        group = self.group(workspace, group_ref)
        return self._traffic_steps(group_series(group.id), group.id, None, (start, end, step), "Step")

    async def call(
        self,
        workspace: str,
        group_ref: str,
        service_ref: str | None,
        *,
        body: bytes,
        token: str | None,
        path: str,
    ) -> GatewayReply:
        """Call a group's data plane as a client would (a service's alone if `service_ref` names
        one of its services rather than the group itself)."""
        group = self.group(workspace, group_ref)
        service_id = None
        if service_ref and service_ref not in (group.id, group.name):
            service = self.service(workspace, service_ref)
            if service.group_id != group.id:
                raise InvalidParameterValue("ServiceId", f"{service_ref!r} is not a service of group {group.id}")
            service_id = service.id
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = token
        return await self.gateway.call(
            group_id=None if service_id else group.id,
            service_id=service_id,
            body=body,
            headers=headers,
            path=path,
        )

    async def inference_rows(
        self, workspace: str, group_ref: str, *, version: str | None = None, status: range | None = None
    ):
        """A group's inference table (every request its versions logged; of one version, with a
        status code in `status`, when given), oldest first, as a pandas DataFrame; read off the
        event loop."""
        group = self.group(workspace, group_ref)
        return await asyncio.to_thread(read_inference_table, self.data_dir, group.id, version=version, status=status)

    async def latest_inference_rows(
        self, workspace: str, group_ref: str, limit: int, *, version: str | None = None, status: range | None = None
    ):
        """A group's latest `limit` inference-table rows (of one version, with a status code in
        `status`), newest first, and how many such rows there are; read off the event loop."""
        group = self.group(workspace, group_ref)
        return await asyncio.to_thread(
            latest_inference_rows, self.data_dir, group.id, limit, version=version, status=status
        )

    def service_events(self, workspace: str, service_ref: str | None = None) -> list[ServiceEvent]:
        """The events of one service, or of every service in the workspace, each with the k8s-style
        resource it concerns: the pod its message names, else the service's deployment."""
        if service_ref:
            services = [self.service(workspace, service_ref)]
        else:
            services = [s for g in self.store.groups(workspace) for s in self.store.services(g.id)]
        return [
            ServiceEvent(service, event, *_event_resource(service, event))
            for service in services
            for event in self.store.events(service.id, limit=EVENTS_SHOWN)
        ]

    def folded_events(self, workspace: str, service_ref: str | None = None) -> list[FoldedEvent]:
        """`service_events` with repeats folded, in the order each first happened."""
        folded: dict[tuple, FoldedEvent] = {}
        for item in self.service_events(workspace, service_ref):
            e = item.event
            key = (item.service.id, item.resource_kind, item.resource_name, str(e.type), e.reason, e.message)
            seen = folded.get(key)
            if seen is None:
                folded[key] = FoldedEvent(item, 1, e.time, e.time, e.seq)
            else:
                seen.count += 1
                seen.last_time, seen.last_seq = max(seen.last_time, e.time), max(seen.last_seq, e.seq)
        return list(folded.values())

    def service_monitor(self, workspace: str, service_ref: str, start: float, end: float, step: float) -> list[dict]:
        """The per-step figures of the requests routed to one service."""
        service = self.service(workspace, service_ref)
        window = (start, end, step)
        return self._traffic_steps(service_series(service.id), service.group_id, service.id, window, "Period")

    def _traffic_steps(
        self, series: str, group_id: str, service_id: str | None, window: tuple[float, float, float], field: str
    ) -> list[dict]:
        """Steps of whole minutes come from the history (any window it keeps); shorter steps from
        the gateway's ring (the last hour). A step with no request counts zeros."""
        start, end, step = window
        try:
            if self.monitor_history is None or not whole_minutes(step):
                return self.gateway.monitor(group_id, start, end, step, service_id=service_id)
            found = {s["time"]: s for s in self.monitor_history.steps(series, start, end, step)}
        except ValueError as exc:
            raise InvalidParameterValue(field, str(exc)) from None
        first = start - start % step
        grid = (first + i * step for i in range(math.ceil((end - first) / step)))
        return [_traffic(found.get(t), t) for t in grid]

    def replica_history(
        self, workspace: str, service_ref: str, start: float, end: float, step: float
    ) -> tuple[list[dict], dict[str, list[dict]]]:
        """A service's instance counts (`replicas`, `ready_replicas`) per step, and each replica's
        `cpu_percent` / `memory_percent` per step by pod name, from the history."""
        service = self.service(workspace, service_ref)
        if self.monitor_history is None:
            return [], {}
        try:
            counts = self.monitor_history.steps(replica_count_series(service.id), start, end, step)
            return counts, self.monitor_history.pod_steps(service.id, start, end, step)
        except ValueError as exc:
            raise InvalidParameterValue("Period", str(exc)) from None

    def replica_usage(self, workspace: str, service_ref: str) -> list[ReplicaUsage]:
        """CPU and memory of each running replica of a service, as shares of its instance type."""
        return usage_of(self.runtime, self.service(workspace, service_ref))


def usage_of(runtime, service: ServiceRecord) -> list[ReplicaUsage]:
    """CPU and memory of each running replica of `service`, as shares of its instance type (the
    replica pages and the autoscaler's `cpu-util` / `memory-util`)."""
    size = sized(service.spec)
    usage = []
    for pod in runtime.states(service.id):
        sample = runtime.usage(pod.pod_name)
        if sample is not None:
            cpu_percent, rss = sample
            usage.append(
                ReplicaUsage(
                    pod.pod_name,
                    cpu_percent / (size.cpu_millicores / 1000),
                    100.0 * rss / (size.memory_mb * 2**20),
                )
            )
    return usage


def _traffic(step: dict | None, time: float) -> dict:
    if step is None:
        return {"time": time, **dict.fromkeys(TRAFFIC_FIGURES, 0), "p50_latency_ms": None, "p99_latency_ms": None}
    return {"time": time, **{name: step[name] for name in TRAFFIC_FIGURES}}


def _event_resource(service: ServiceRecord, event: EventRecord) -> tuple[str, str]:
    prefix = pod_prefix(service.id)
    first = event.message.split(maxsplit=1)[0].rstrip(":") if event.message else ""
    if first.startswith(prefix):
        return "Pod", first
    return "Deployment", prefix.rstrip("-")

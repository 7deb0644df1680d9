"""What a service shows of itself: its pods, logs, events, monitor figures and replica usage,
and a call through its data plane. A mixin of `Backend`: it uses the backend's store, runtime,
gateway, reconciler and workspace-scoped lookups."""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass

from tcdeploy.protocol.errors import InvalidParameterValue, ResourceNotFound
from tcdeploy.protocol.states import EventType

from ...gateway import GatewayReply
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
        group = self.group(workspace, group_ref)
        try:
            return self.gateway.monitor(group.id, start, end, step)
        except ValueError as exc:
            raise InvalidParameterValue("Step", str(exc)) from None

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

    def service_monitor(self, workspace: str, service_ref: str, start: float, end: float, step: float) -> list[dict]:
        """The gateway's per-step figures of the requests routed to one service."""
        service = self.service(workspace, service_ref)
        try:
            return self.gateway.monitor(service.group_id, start, end, step, service_id=service.id)
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


def _event_resource(service: ServiceRecord, event: EventRecord) -> tuple[str, str]:
    prefix = pod_prefix(service.id)
    first = event.message.split(maxsplit=1)[0].rstrip(":") if event.message else ""
    if first.startswith(prefix):
        return "Pod", first
    return "Deployment", prefix.rstrip("-")

"""The reconciler: from the store's desired state to running replicas, and back into states.

Apply work (start, roll, scale, stop) runs in background tasks so actions answer at once; what the
replicas do comes back through `on_replica_change` and becomes the service's status, its events and
the gateway's routes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS
from tcdeploy.protocol.chat import is_llm
from tcdeploy.protocol.states import EventType, PodPhase, ServiceStatus

from ...gateway import Group, Replica, RouteTable, Version
from ...runtime import LIVENESS_FAILED, NOT_READY, Fleet, LocalRuntime, ReplicaState, ReplicaTemplate
from ...store import EventRecord, ServiceRecord, Store
from .autoscaler import wakes
from .environment import service_env
from .instance_types import sized
from .probes import health_probes

log = logging.getLogger("tcdeploy.server")

S = ServiceStatus


class Reconciler:
    def __init__(
        self,
        store: Store,
        runtime: LocalRuntime,
        fleet: Fleet,
        routes: RouteTable,
        tracking_uri: str,
        *,
        hang_after_s: float = 60.0,
    ) -> None:
        """`hang_after_s`: how long a predict may run before its replica fails liveness."""
        self._store = store
        self._hang_after = hang_after_s
        self._runtime = runtime
        self._fleet = fleet
        self._routes = routes
        self._tracking_uri = tracking_uri
        self._tasks: dict[str, asyncio.Task] = {}
        self._last: dict[str, ReplicaState] = {}

    # ---- desired state → replicas ----------------------------------------------------------------

    def template(self, service: ServiceRecord) -> ReplicaTemplate:
        spec = sized(service.spec)
        batch = service.spec.get("BatchConfig") or {}
        return ReplicaTemplate(
            service_id=service.id,
            model_uri=service.spec["ModelUri"],
            cpu_millicores=spec.cpu_millicores,
            memory_mb=spec.memory_mb,
            # Generation is not a 1024-row predict: a chat model scores one request at a time
            # unless its BatchConfig says otherwise.
            max_batch_size=int(batch.get("MaxBatchSize", 1 if is_llm(service.spec) else DEFAULT_MAX_BATCH_ROWS)),
            max_batch_wait_ms=float(batch.get("MaxBatchWaitMs", DEFAULT_MAX_BATCH_WAIT_MS)),
            env={**service_env(service.spec), "MLFLOW_TRACKING_URI": self._tracking_uri},
            probes=health_probes(service.spec),
            hang_after_s=float(service.spec.get("RequestTimeoutSeconds") or self._hang_after),
        )

    def apply(self, service_id: str, *, previous_spec: dict | None = None) -> None:
        """Bring the service's replicas to what the store says, in the background."""
        prior = self._tasks.get(service_id)
        task = asyncio.create_task(self._apply_after(prior, service_id, previous_spec))
        self._tasks[service_id] = task
        task.add_done_callback(lambda t: self._forget_task(service_id, t))

    def busy(self, service_id: str) -> bool:
        """Whether apply work on the service is pending (the autoscaler waits for it to finish)."""
        return service_id in self._tasks

    async def idle(self) -> None:
        """Return once no apply work is pending (work started meanwhile is waited for too)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def remove(self, service_id: str) -> None:
        """Stop the service's replicas for good: pending work is cancelled, in-flight requests drain."""
        task = self._tasks.pop(service_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._fleet.remove(service_id)
        self._routes.set_replicas(service_id, [])

    async def restore(self) -> None:
        """After a (re)start: publish every group and bring back the replicas that should run."""
        for group in self._store.groups():
            self.publish_group(group.id)
        for service in self._store.services():
            if service.status is S.CREATE_FAILED:
                continue
            if service.status is S.DELETING:  # the server stopped mid-delete: finish it
                self._store.delete_service(service.id)
                self.publish_group(service.group_id)
                continue
            if service.status in (S.STOPPING, S.STOPPED) or service.stopped:
                self.set_status(service.id, S.STOPPED, "")
                continue
            self.set_status(service.id, S.CREATING if service.status is S.CREATING else S.UPDATING, "")
            self.record(service.id, EventType.NORMAL, "Restoring", "server restarted; starting replicas")
            self.apply(service.id)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _apply_after(self, prior, service_id: str, previous_spec: dict | None) -> None:
        if prior is not None:
            await asyncio.gather(prior, return_exceptions=True)
        service = self._store.service(service_id)
        if service is None:
            return
        replicas = 0 if service.stopped else service.replicas
        try:
            result = await self._fleet.apply(self.template(service), replicas)
        except Exception as exc:  # a bug below must not leave the service stuck in a transient state
            log.exception("applying %s failed", service_id)
            result = None
            failure = f"{type(exc).__name__}: {exc}"
        service = self._store.service(service_id)
        if service is None:
            return
        if result is not None and result.ok:
            self._settle(service)
            return
        reason = f"{result.reason}: {result.message}" if result is not None else failure
        if service.status is S.CREATING:
            self.set_status(service_id, S.CREATE_FAILED, reason)
            self.record(service_id, EventType.WARNING, "CreateFailed", reason)
        else:
            if previous_spec is not None:
                self._store.update_service(service_id, spec=previous_spec)
            self.record(service_id, EventType.WARNING, "UpdateFailed", f"kept the previous model: {reason}")
            self._settle(self._store.service(service_id), reason=f"last update failed: {reason}")
        self.publish_group(service.group_id)

    def _settle(self, service: ServiceRecord, reason: str = "") -> None:
        if service.stopped:
            self.set_status(service.id, S.STOPPED, "")
            self.record(service.id, EventType.NORMAL, "Stopped", "all replicas stopped")
        else:
            self.set_status(service.id, S.RUNNING, reason)
            ready = sum(1 for s in self._runtime.states(service.id) if s.ready)
            self.record(service.id, EventType.NORMAL, "Running", f"{ready}/{service.replicas} replicas ready")
            self._refresh_health(service.id)
        self.publish_group(service.group_id)

    def _forget_task(self, service_id: str, task: asyncio.Task) -> None:
        if self._tasks.get(service_id) is task:
            del self._tasks[service_id]

    # ---- replicas → state ------------------------------------------------------------------------

    def on_replica_change(self, state: ReplicaState) -> None:
        previous = self._last.get(state.pod_name)
        self._last[state.pod_name] = state
        if state.phase == PodPhase.STOPPED:
            self._last.pop(state.pod_name, None)
        self._record_transition(previous, state)
        self.publish_replicas(state.service_id)
        self._refresh_health(state.service_id)

    def _record_transition(self, before: ReplicaState | None, now: ReplicaState) -> None:
        pod = now.pod_name
        if now.ready and not (before and before.ready):
            self.record(now.service_id, EventType.NORMAL, "ReplicaReady", f"{pod} is ready")
        if before and now.restart_count > before.restart_count:
            why = f" ({before.reason or now.reason})" if (before.reason or now.reason) else ""
            self.record(
                now.service_id, EventType.WARNING, "Restarted", f"{pod} restarted{why}; restart #{now.restart_count}"
            )
        if now.reason in PROBE_FAILURES and now.message and not (before and before.message == now.message):
            # Which probe failed and how: the replica leaves rotation (and, for liveness, is replaced).
            self.record(now.service_id, EventType.WARNING, "Unhealthy", f"{pod}: {_first_line(now.message)}")
        if now.crash_looping and not (before and before.crash_looping):
            self.record(now.service_id, EventType.WARNING, "CrashLoopBackOff", f"{pod} is crash-looping")
        if now.phase == PodPhase.FAILED and not (before and before.phase == PodPhase.FAILED):
            self.record(now.service_id, EventType.WARNING, now.reason or "Failed", f"{pod}: {_first_line(now.message)}")

    def publish_replicas(self, service_id: str) -> None:
        ready = [
            Replica(pod_name=s.pod_name, address=s.address)
            for s in self._runtime.states(service_id)
            if s.ready and s.address
        ]
        self._routes.set_replicas(service_id, ready)

    def publish_group(self, group_id: str) -> None:
        group = self._store.group(group_id)
        if group is None:
            self._routes.remove_group(group_id)
            return
        versions = {}
        for service in self._store.services(group_id):
            limit = service.spec.get("ServiceLimit") or {}
            versions[service.id] = Version(
                service_id=service.id,
                service_name=service.name,
                group_id=group_id,
                version=str(service.version),
                weight=service.weight,
                status=service.status,
                rps_limit_per_replica=_limit(limit, "InstanceRpsLimit"),
                inflight_limit_per_replica=_limit(limit, "InstanceReqLimit"),
                wakes=wakes(service.spec),
                inference_table=bool(service.spec.get("InferenceTablePushEnable") or service.spec.get("LogEnable")),
                expected_replicas=0 if service.stopped else service.replicas,
                chat=is_llm(service.spec),
                request_timeout=service.spec.get("RequestTimeoutSeconds"),
            )
        self._routes.put_group(
            Group(
                group_id=group.id,
                name=group.name,
                workspace_id=group.workspace,
                auth_enabled=group.auth_enabled,
                token_hashes=frozenset(token.digest for token in self._store.tokens(group.id)),
                versions=versions,
            )
        )
        for service_id in versions:
            self.publish_replicas(service_id)

    def _refresh_health(self, service_id: str) -> None:
        """A settled service turns Abnormal while a replica crash-loops, and Running again after."""
        service = self._store.service(service_id)
        if service is None or not service.status.settled:
            return
        looping = [s for s in self._runtime.states(service_id) if s.crash_looping]
        if looping:
            reason = f"{looping[0].pod_name}: {looping[0].reason}; {_first_line(looping[0].message)}"
            self.set_status(service_id, S.ABNORMAL, reason)
        elif service.status is S.ABNORMAL:
            self.set_status(service_id, S.RUNNING, "")

    def set_status(self, service_id: str, status: ServiceStatus, reason: str = "") -> None:
        service = self._store.service(service_id)
        if service is None or (service.status, service.reason) == (status, reason):
            return
        if not service.status.can_become(status):
            # A late report about a service that has moved on (e.g. a replica settling while the
            # service is being deleted) must not drag it back.
            log.debug("%s: ignoring %s -> %s", service_id, service.status, status)
            return
        self._store.update_service(service_id, status=status, reason=reason)
        if service.status != status:
            # One line per lifecycle step, so a running `tcdeploy server` can be read.
            because = f": {_first_line(reason)}" if reason else ""
            log.info("%s (%s): %s -> %s%s", service.name, service_id, service.status, status, because)
            self.publish_group(service.group_id)

    def record(self, service_id: str, kind: EventType, reason: str, message: str) -> None:
        self._store.add_event(EventRecord(service_id, time.time(), kind, reason, message))


# Replica reasons that say a health probe failed (see runtime.process).
PROBE_FAILURES = frozenset({LIVENESS_FAILED, NOT_READY})


def _limit(limit: dict, name: str) -> float | None:
    """A `ServiceLimit` member's per-replica value, when its `Enable…` is on and it is above 0."""
    return float(limit[name]) if limit.get(f"Enable{name}") and limit.get(name) else None


def _first_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""

"""Scaling that acts: one loop, ticking every `interval` seconds, that applies the autoscaler's
decisions (autoscaler.py), the cron jobs and the scheduled stop (schedules.py), and wakes a
service scaled to zero when the gateway holds a request for it.

A scale is a change of the service's stored `Replicas` (under AUTO, `Replicas` is where it starts
and then what it has) applied by the reconciler as any scale is: new replicas get traffic once
ready, removed ones drain first. What the loop needs to remember across restarts sits in the
service's stored spec under members no request can set (`_Bounds`, `_CronAfter`, `_StoppedAt`,
`_ScaledToZero`); what it only needs while running (samples, recommendations) sits here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tcdeploy.protocol.states import EventType, ServiceStatus

from ...gateway import Gateway
from ...runtime import LocalRuntime
from ...store import ServiceRecord, Store
from .autoscaler import Decision, Load, Policy, Samples, Stabilizer, decide, describe, wakes
from .observing import usage_of
from .reconciler import Reconciler
from .scaling_specs import stop_time
from .schedules import apply_run, due_run, stop_due

log = logging.getLogger("tcdeploy.server")
S = ServiceStatus
# Statuses the loop acts in; in the others an apply is under way or nothing runs.
_ACTIVE = (S.RUNNING, S.ABNORMAL)


@dataclass(frozen=True)
class ScalingSettings:
    interval: float = 1.0  # seconds between ticks
    idle_after: float = 300.0  # seconds without a request before MinReplicas 0 goes to zero
    timezone: str = "UTC"  # the cron jobs' timezone

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ScalingControl:
    def __init__(
        self,
        store: Store,
        runtime: LocalRuntime,
        gateway: Gateway,
        reconciler: Reconciler,
        settings: ScalingSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._gateway = gateway
        self._reconciler = reconciler
        self.settings = settings
        self._clock = clock
        self._samples: dict[str, Samples] = {}
        self._stabilizers: dict[str, Stabilizer] = {}
        self._changed: dict[str, float] = {}  # when the loop (or a wake) last changed a count
        self._task: asyncio.Task | None = None

    # ---- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self._started = self._clock()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # one bad tick must not end scaling for good
                log.exception("scaling: a tick failed")
            await asyncio.sleep(self.settings.interval)

    def tick(self) -> None:
        """Look at every service once: stop, cron, autoscale, in that order (a stopped service
        scales no more)."""
        now = self._clock()
        seen = set()
        for service in self._store.services():
            seen.add(service.id)
            if service.stopped:
                self._stop_passed_while_stopped(service, now)
                continue
            if service.status not in _ACTIVE:
                continue
            if self._scheduled_stop(service, now) or self._cron(service, now):
                continue
            self._autoscale(service, now)
        for service_id in self._samples.keys() - seen:
            self._forget(service_id)
        for service in self._store.services():
            ready = sum(1 for s in self._runtime.states(service.id) if s.ready)
            self._gateway.metrics.set_replicas(service.id, 0 if service.stopped else service.replicas, ready)

    # ---- what a tick does ------------------------------------------------------------------

    def _scheduled_stop(self, service: ServiceRecord, now: float) -> bool:
        when = stop_due(service.spec, now, stop_time)
        if when is None:
            return False
        self._store.update_service(service.id, spec={**service.spec, "Stopped": True, "_StoppedAt": when})
        self._reconciler.set_status(service.id, S.STOPPING)
        at = service.spec["ScheduledAction"]["ScheduleStopTime"]
        self._reconciler.record(service.id, EventType.NORMAL, "ScheduledStop", f"stopping as scheduled at {at}")
        self._reconciler.apply(service.id)
        self._reconciler.publish_group(service.group_id)
        return True

    def _stop_passed_while_stopped(self, service: ServiceRecord, now: float) -> None:
        """A stop time that comes while the service is stopped anyway is done with: a RESUME
        after it must not stop the service again at once."""
        when = stop_due(service.spec, now, stop_time)
        if when is not None:
            self._store.update_service(service.id, spec={**service.spec, "_StoppedAt": when})

    def _cron(self, service: ServiceRecord, now: float) -> bool:
        spec = service.spec
        jobs = spec.get("CronScaleJobs") or []
        if spec.get("ScaleMode") != "AUTO" or spec.get("ScaleStrategy") != "CRON" or not jobs:
            return False
        after = spec.get("_CronAfter", service.created)
        run = due_run(jobs, after, now, self.settings.zone)
        if run is None:
            if now - after > 60:  # remember the look now and then, not at every tick
                self._store.update_service(service.id, spec={**spec, "_CronAfter": now})
            return False
        replicas, bounds = apply_run(run.job, service.replicas, spec.get("_Bounds") or {})
        new_spec = {**spec, "_CronAfter": now, "_Bounds": bounds}
        when = run.when.strftime("%Y-%m-%d %H:%M %Z")
        if replicas == service.replicas and bounds == (spec.get("_Bounds") or {}):
            self._store.update_service(service.id, spec=new_spec)  # a run that changes nothing: no event
            return True
        message = f"cron job {run.name} ({run.job['Schedule']}, {self.settings.timezone}) at {when}"
        self._scale(service, replicas, new_spec, "CronScaled", f"{message}: {service.replicas} → {replicas}")
        return True

    def _autoscale(self, service: ServiceRecord, now: float) -> None:
        policy = Policy.of(service.spec)
        if policy is None or self._reconciler.busy(service.id):
            return
        load = self._load(service, now)
        idle_for = 0.0
        if policy.min_replicas == 0:  # only then does idling matter
            changed = self._changed.get(service.id, self._started)
            idle_for = now - max(self._last_request(service, now), changed)
        stabilizer = self._stabilizers.setdefault(service.id, Stabilizer())
        decision = decide(
            now, service.replicas, load, policy, stabilizer, idle_for=idle_for, idle_after=self.settings.idle_after
        )
        if decision is None or decision.replicas == service.replicas:
            return
        self._apply_decision(service, decision)

    def _apply_decision(self, service: ServiceRecord, decision: Decision) -> None:
        spec = {**service.spec, "_ScaledToZero": decision.to_zero}
        if decision.to_zero:
            reason = "ScaledToZero"
        else:
            reason = "ScaledUp" if decision.replicas > service.replicas else "ScaledDown"
        self._scale(service, decision.replicas, spec, reason, describe(decision, service.replicas))

    def wake(self, service_id: str) -> None:
        """A request is held for a service with no replica: bring one up (the gateway waits for it)."""
        service = self._store.service(service_id)
        if service is None or service.stopped or service.replicas > 0 or not wakes(service.spec):
            return
        policy = Policy.of(service.spec)
        replicas = max(1, policy.min_replicas if policy else 1)
        spec = {**service.spec, "_ScaledToZero": False}
        self._scale(
            service, replicas, spec, "Woken", f"a request came while scaled to zero: 0 → {replicas} (cold start)"
        )

    def _scale(self, service: ServiceRecord, replicas: int, spec: dict, reason: str, message: str) -> None:
        self._store.update_service(service.id, spec={**spec, "Replicas": replicas})
        self._changed[service.id] = self._clock()
        self._reconciler.record(service.id, EventType.NORMAL, reason, message)
        log.info("%s: %s: %s", service.id, reason, message)
        self._reconciler.apply(service.id)
        self._reconciler.publish_group(service.group_id)

    # ---- measurements ----------------------------------------------------------------------

    def _load(self, service: ServiceRecord, now: float) -> Load:
        samples = self._samples.setdefault(service.id, Samples())
        samples.add(now, self._gateway.routes.inflight(service.id))
        window = samples.window
        step = self._gateway.monitor(service.group_id, now - window, now, window, service_id=service.id)
        usage = usage_of(self._runtime, service)
        return Load(
            ready=sum(1 for s in self._runtime.states(service.id) if s.ready),
            inflight_mean=samples.mean(),
            requests_per_second=sum(s["requests"] for s in step) / window,
            cpu_percent=[u.cpu_percent for u in usage],
            memory_percent=[u.memory_percent for u in usage],
        )

    def _last_request(self, service: ServiceRecord, now: float) -> float:
        """When the service last finished a request, to the second, within the idle time (or
        long ago); requests in flight count as now."""
        if self._gateway.routes.inflight(service.id):
            return now
        span = max(1.0, self.settings.idle_after)
        steps = self._gateway.monitor(service.group_id, now - span, now + 1, 1.0, service_id=service.id)
        busy = [s["time"] for s in steps if s["requests"]]
        return busy[-1] + 1 if busy else now - span - 1

    def _forget(self, service_id: str) -> None:
        self._samples.pop(service_id, None)
        self._stabilizers.pop(service_id, None)
        self._changed.pop(service_id, None)
        self._gateway.metrics.forget_replicas(service_id)

"""Fleet: keep a service's replicas at one template and count, replacing them one at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS
from tcdeploy.protocol.states import PodPhase
from tcdeploy.server.runtime.local import LocalRuntime
from tcdeploy.server.runtime.spec import (
    CRASH_LOOP,
    LOAD_FAILED,
    READY_TIMEOUT,
    HealthProbes,
    ReplicaSpec,
    ReplicaState,
)

log = logging.getLogger(__name__)

_NAME_ATTEMPTS = 5


@dataclass(frozen=True)
class ReplicaTemplate:
    """Everything of a ReplicaSpec except the pod name: what all replicas of a service share."""

    service_id: str
    model_uri: str
    cpu_millicores: int
    memory_mb: int
    max_batch_size: int = DEFAULT_MAX_BATCH_ROWS
    max_batch_wait_ms: float = 2.0
    env: Mapping[str, str] = field(default_factory=dict)
    probes: HealthProbes = HealthProbes()
    hang_after_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", dict(self.env))  # so templates compare by value
        self.spec("template-check")  # ReplicaSpec's checks, with a placeholder name

    def spec(self, pod_name: str) -> ReplicaSpec:
        shared = {f.name: getattr(self, f.name) for f in fields(self)}
        return ReplicaSpec(pod_name=pod_name, **shared)

    @classmethod
    def of(cls, spec: ReplicaSpec) -> ReplicaTemplate:
        return cls(**{f.name: getattr(spec, f.name) for f in fields(cls)})


@dataclass
class FleetResult:
    ok: bool
    reason: str = ""
    message: str = ""
    pods: list[ReplicaState] = field(default_factory=list)


@dataclass
class _Problem:
    reason: str
    message: str


class Fleet:
    """The replicas of each service, as the control plane wants them.

    `drain(pod_name)` is the control plane's: it takes the pod out of routing and returns once the
    pod's in-flight requests are done. The fleet calls it before every stop of a pod that may have
    served traffic. Applies on one service are serialised; different services proceed in parallel.
    """

    def __init__(
        self,
        runtime: LocalRuntime,
        *,
        drain: Callable[[str], Awaitable[None]],
        new_pod_name: Callable[[str], str],
        stop_grace: float = 30.0,
    ) -> None:
        self._runtime = runtime
        self._drain = drain
        self._new_pod_name = new_pod_name
        self._stop_grace = stop_grace
        self._locks: dict[str, asyncio.Lock] = {}

    def pods(self, service_id: str) -> list[ReplicaState]:
        return self._runtime.states(service_id)

    async def apply(self, template: ReplicaTemplate, replicas: int, *, ready_timeout: float = 300.0) -> FleetResult:
        """Run exactly `replicas` replicas of `template`, in these steps:

        1. pods that failed to load are stopped (they never recover);
        2. pods of this template are waited for (after `adopt` they may still be loading);
        3. pods of another template are replaced one at a time: start new, wait ready, drain and
           stop old. If a new pod does not become ready it is stopped, the old pods keep running,
           and the result is not ok;
        4. missing pods are started in parallel;
        5. surplus pods are drained and stopped: not-ready ones first, then the newest.
        """
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ValueError(f"replicas: must be an integer >= 0, got {replicas!r}")
        async with self._lock(template.service_id):
            problem = await self._converge(template, replicas, ready_timeout)
        return FleetResult(
            ok=problem is None,
            reason=problem.reason if problem else "",
            message=problem.message if problem else "",
            pods=self.pods(template.service_id),
        )

    async def remove(self, service_id: str) -> None:
        """Drain and stop every pod of the service."""
        async with self._lock(service_id):
            await self._retire_all([s.pod_name for s in self.pods(service_id)])

    async def adopt(self, service_id: str, template: ReplicaTemplate, pod_names: list[str]) -> None:
        """Start these pod names again (server restart): names stay stable across restarts.

        Returns at once; a following `apply(template, replicas)` waits for them and converges.
        """
        if template.service_id != service_id:
            raise ValueError(f"template.service_id: {template.service_id} is not {service_id}")
        async with self._lock(service_id):
            for pod_name in pod_names:
                if self._runtime.state(pod_name) is None:
                    await self._runtime.start(template.spec(pod_name))

    # -- steps ----------------------------------------------------------------------------------

    async def _converge(self, template: ReplicaTemplate, replicas: int, timeout: float) -> _Problem | None:
        service = template.service_id
        await self._retire_all([s.pod_name for s in self.pods(service) if s.phase == PodPhase.FAILED])
        current = [s.pod_name for s in self.pods(service) if self._matches(s.pod_name, template)]
        stale = [s.pod_name for s in self.pods(service) if s.pod_name not in current]
        problem = await self._settle(current, timeout)
        while stale and len(current) < replicas:
            new_pod, failure = await self._start_ready(template, timeout)
            if failure is not None:
                return failure
            current.append(new_pod)
            await self._retire(stale.pop(0))
        await self._retire_all(stale)
        missing = replicas - len(current)
        if missing > 0:
            started = await asyncio.gather(*(self._start_ready(template, timeout) for _ in range(missing)))
            problem = next((failure for _, failure in started if failure), problem)
        elif missing < 0:
            await self._retire_all(self._surplus(current, -missing))
        return problem

    async def _settle(self, pods: list[str], timeout: float) -> _Problem | None:
        """Wait for existing pods of the template; stop (and drop from `pods`) those that failed."""
        results = await asyncio.gather(*(self._wait(pod, timeout) for pod in pods))
        failed = [pod for pod, (state, _) in zip(pods, results) if state is not None and state.phase == PodPhase.FAILED]
        for pod in failed:
            await self._runtime.stop(pod, 0)
            pods.remove(pod)
        return next((failure for _, failure in results if failure is not None), None)

    async def _start_ready(self, template: ReplicaTemplate, timeout: float) -> tuple[str, _Problem | None]:
        """Start one pod and wait for it; a pod that does not get ready is stopped again."""
        pod = await self._start_new(template)
        state, failure = await self._wait(pod, timeout)
        if failure is not None:
            await self._runtime.stop(pod, 0)  # never ready, so never routed: nothing to drain
        return pod, failure

    async def _wait(self, pod: str, timeout: float) -> tuple[ReplicaState | None, _Problem | None]:
        try:
            state = await self._runtime.wait_ready(pod, timeout)
        except TimeoutError:
            state = self._runtime.state(pod)
            message = state.message if state is not None else ""
            text = f"pod {pod} not ready after {timeout:g} s. {message}"
            return state, _Problem(READY_TIMEOUT, text)
        except KeyError:
            return None, _Problem(PodPhase.FAILED, f"pod {pod} was stopped while starting")
        if state.ready:
            return state, None
        reason = state.reason or (CRASH_LOOP if state.crash_looping else LOAD_FAILED)
        return state, _Problem(reason, state.message or f"pod {pod} is {state.phase}")

    async def _start_new(self, template: ReplicaTemplate) -> str:
        for _ in range(_NAME_ATTEMPTS):
            pod = self._new_pod_name(template.service_id)
            if self._runtime.state(pod) is None:
                await self._runtime.start(template.spec(pod))
                return pod
        raise RuntimeError(f"new_pod_name gave {_NAME_ATTEMPTS} names already in use")

    def _surplus(self, pods: list[str], count: int) -> list[str]:
        """Not-ready pods first (they serve nothing), then the newest (`pods` is oldest first)."""
        return sorted(reversed(pods), key=self._is_ready)[:count]

    def _is_ready(self, pod: str) -> bool:
        state = self._runtime.state(pod)
        return state is not None and state.ready

    async def _retire(self, pod: str) -> None:
        try:
            await self._drain(pod)
        except Exception:  # the pod must stop all the same; in-flight requests get retried
            log.exception("draining pod %s failed; stopping it anyway", pod)
        await self._runtime.stop(pod, self._stop_grace)

    async def _retire_all(self, pods: list[str]) -> None:
        await asyncio.gather(*(self._retire(pod) for pod in pods))

    def _matches(self, pod: str, template: ReplicaTemplate) -> bool:
        spec = self._runtime.spec(pod)
        return spec is not None and ReplicaTemplate.of(spec) == template

    def _lock(self, service_id: str) -> asyncio.Lock:
        return self._locks.setdefault(service_id, asyncio.Lock())

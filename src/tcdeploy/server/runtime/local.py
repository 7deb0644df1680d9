"""LocalRuntime: replicas as local processes, reported through one `on_change` callback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tcdeploy.protocol.states import PodPhase
from tcdeploy.server.runtime import launch
from tcdeploy.server.runtime.forkserver import ForkServers
from tcdeploy.server.runtime.paths import RunPaths
from tcdeploy.server.runtime.process import Settings, Supervisor
from tcdeploy.server.runtime.spec import ReplicaSpec, ReplicaState
from tcdeploy.server.runtime.usage import UsageSampler
from tcdeploy.server.runtime.waiting import wait_settled

log = logging.getLogger(__name__)


class LocalRuntime:
    """Starts, watches, restarts and stops replica processes of one data dir.

    Everything runs on the event loop that calls `start`; `on_change` is called there,
    synchronously, with a fresh copy of a replica's state each time it changes.
    """

    def __init__(
        self,
        data_dir: Path,
        on_change: Callable[[ReplicaState], None],
        *,
        python: str = sys.executable,
        ready_timeout: float = 300.0,
        backoff: Sequence[float] = (0.5, 1, 2, 4, 8, 16, 30),
        crash_loop_restarts: int = 3,
        crash_loop_window: float = 60.0,
        watch_interval: float = 1.0,
        fork_replicas: bool = True,
    ) -> None:
        backoff = tuple(backoff)
        if not backoff or any(not isinstance(b, (int, float)) or b < 0 for b in backoff):
            raise ValueError(f"backoff: must be a non-empty list of delays >= 0, got {backoff!r}")
        if not isinstance(crash_loop_restarts, int) or crash_loop_restarts < 1:
            raise ValueError(f"crash_loop_restarts: must be an integer >= 1, got {crash_loop_restarts!r}")
        for name, value in (
            ("ready_timeout", ready_timeout),
            ("crash_loop_window", crash_loop_window),
            ("watch_interval", watch_interval),
        ):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name}: must be a number > 0, got {value!r}")
        self.data_dir = Path(data_dir)
        self._paths = RunPaths(self.data_dir)
        self._paths.ensure()
        self._on_change = on_change
        # Replicas forked from a preloaded process of their model (see forkserver.py), or cold.
        self.forks = ForkServers(self._paths, float(ready_timeout)) if fork_replicas else None
        self._settings = Settings(
            python=python,
            ready_timeout=float(ready_timeout),
            backoff=backoff,
            crash_loop_restarts=crash_loop_restarts,
            crash_loop_window=float(crash_loop_window),
            spawn=self.forks.spawn if self.forks is not None else launch.spawn,
        )
        self._watch_interval = watch_interval
        self._replicas: dict[str, Supervisor] = {}
        self._usage: dict[str, tuple[int, float, int]] = {}  # pod: (pid, cpu %, rss)
        self._watcher: asyncio.Task | None = None
        self._sample_soon = asyncio.Event()
        self._closed = False

    async def start(self, spec: ReplicaSpec) -> None:
        """Start a replica and return at once; progress arrives through `on_change`."""
        if self._closed:
            raise RuntimeError("the runtime is closed")
        if spec.pod_name in self._replicas:
            raise ValueError(f"pod_name: {spec.pod_name} already exists; stop it first")
        replica = Supervisor(spec, self._paths, self._settings, self._report)
        self._replicas[spec.pod_name] = replica
        replica.start()
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_usage(), name="replica usage watcher")

    async def wait_ready(self, pod_name: str, timeout: float) -> ReplicaState:
        """Wait until the replica is ready, failed, crash-looping or stopped, and return its state.

        A model that cannot load is not an exception: the Failed state comes back. Raises
        TimeoutError when none of those happens in `timeout` seconds, KeyError for an unknown pod.
        """
        replica = self._get(pod_name)
        return await wait_settled(pod_name, timeout, lambda: replica.state, replica.changed)

    async def stop(self, pod_name: str, grace: float = 30.0) -> None:
        """SIGTERM, up to `grace` seconds, SIGKILL; never restarted; then the pod is forgotten.

        Stopping an unknown (or already forgotten) pod does nothing.
        """
        replica = self._replicas.get(pod_name)
        if replica is None:
            return
        try:
            await replica.stop(grace)
        finally:
            if self._replicas.get(pod_name) is replica and replica.state.phase == PodPhase.STOPPED:
                del self._replicas[pod_name]
                self._usage.pop(pod_name, None)
                if self.forks is not None:
                    await self.forks.release(pod_name)

    async def rebuild(self, pod_name: str) -> None:
        """Kill the replica and start it again (restart_count grows); returns as it restarts."""
        await self._get(pod_name).rebuild()

    def state(self, pod_name: str) -> ReplicaState | None:
        replica = self._replicas.get(pod_name)
        return replica.state.copy() if replica is not None else None

    def states(self, service_id: str | None = None) -> list[ReplicaState]:
        return [
            r.state.copy() for r in self._replicas.values() if service_id is None or r.spec.service_id == service_id
        ]

    def spec(self, pod_name: str) -> ReplicaSpec | None:
        replica = self._replicas.get(pod_name)
        return replica.spec if replica is not None else None

    def usage(self, pod_name: str) -> tuple[float, int] | None:
        """(cpu percent, rss bytes) of the replica's process tree at the last sample, if running."""
        replica = self._replicas.get(pod_name)
        sample = self._usage.get(pod_name)
        if replica is None or sample is None or sample[0] != replica.pid:
            return None  # gone, or restarted since the last sample
        return sample[1], sample[2]

    async def close(self, grace: float = 10.0) -> None:
        """Stop every replica (server shutdown). The runtime accepts no new replicas afterwards."""
        self._closed = True
        await asyncio.gather(*(self.stop(name, grace) for name in list(self._replicas)))
        if self.forks is not None:
            await self.forks.close()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)

    def _get(self, pod_name: str) -> Supervisor:
        try:
            return self._replicas[pod_name]
        except KeyError:
            raise KeyError(f"no pod {pod_name!r} in this runtime") from None

    def _report(self, state: ReplicaState) -> None:
        sample = self._usage.get(state.pod_name)
        if state.pid is not None and (sample is None or sample[0] != state.pid):
            self._sample_soon.set()  # a new process: its usage is known within moments, not a period
        try:
            self._on_change(state)
        except Exception:  # the callback's bug must not take a supervisor down with it
            log.exception("on_change failed for pod %s", state.pod_name)

    async def _watch_usage(self) -> None:
        sampler = UsageSampler()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._sample_soon.wait(), self._watch_interval)
            self._sample_soon.clear()
            try:
                await self._sample_once(sampler)
            except Exception:
                log.exception("sampling replica usage failed")

    async def _sample_once(self, sampler: UsageSampler) -> None:
        live = {name: r.pid for name, r in self._replicas.items() if r.pid is not None}
        samples = await asyncio.to_thread(sampler.sample, list(live.values())) if live else {}
        for name, pid in live.items():
            replica = self._replicas.get(name)
            if replica is None or replica.pid != pid or pid not in samples:
                continue
            cpu, rss = samples[pid]
            self._usage[name] = (pid, cpu, rss)
            if rss > replica.spec.memory_mb * 2**20:
                replica.kill_for_memory(pid, rss)

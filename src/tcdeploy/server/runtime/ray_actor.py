"""The Ray actor of one replica: today's supervisor (a one-replica `LocalRuntime`) run on its node.

One detached, named actor per pod, restarted by Ray when its process or node dies. The actor
spawns the replica with the same supervisor the local runtime uses (readiness by `/ping`, backoff,
crash loop, OOM by RSS, graceful stop), so both runtimes share one implementation of process
semantics. The replica listens on its unix socket (the supervisor's probes) and on TCP at the
node's address (the gateway's hop, token required).

Ray restarts a lost actor at once and has no backoff; the `Ledger` actor remembers each pod's
restarts across incarnations, so a restarted actor counts on from the pod's `RestartCount`, waits
out our backoff, and reports a crash loop by our rule (`crash_loop_restarts` in
`crash_loop_window`). The server reads states, usage and log lines with a long poll (`poll`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import socket
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from tcdeploy.protocol.replica_hop import TOKEN_ENV, tcp_address
from tcdeploy.protocol.states import PodPhase
from tcdeploy.server.runtime.local import LocalRuntime
from tcdeploy.server.runtime.logs import log_dir, read_logs
from tcdeploy.server.runtime.spec import CRASH_LOOP, HealthProbes, Probe, ReplicaSpec, ReplicaState

log = logging.getLogger(__name__)

LEDGER_NAME = "tcdeploy-ledger"
LEASE_NAME = "tcdeploy-lease"
SERVICE_ACTORS = frozenset({LEDGER_NAME, LEASE_NAME})
_LOG_LINES_PER_POLL = 500
_STARTS_KEPT = 20


# -- plain values across the Ray boundary -------------------------------------------------------


def spec_to_dict(spec: ReplicaSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_from_dict(values: dict[str, Any]) -> ReplicaSpec:
    probes = values.get("probes") or {}
    startup = probes.get("startup")
    return ReplicaSpec(
        **{
            **values,
            "env": dict(values.get("env") or {}),
            "probes": HealthProbes(
                liveness=Probe(**probes["liveness"]) if "liveness" in probes else Probe(),
                readiness=Probe(**probes["readiness"]) if "readiness" in probes else Probe(),
                startup=Probe(**startup) if startup else None,
            ),
        }
    )


def state_from_dict(values: dict[str, Any]) -> ReplicaState:
    return ReplicaState(**values)


def restart_delay(starts_before: list[float], now: float, settings: dict[str, Any]) -> tuple[float, bool]:
    """(delay, crash looping) for an actor Ray restarted, given the wall times of the pod's earlier
    actor starts: our backoff and crash-loop rule, which Ray's restarts lack."""
    window = settings["crash_loop_window"]
    recent = [t for t in starts_before if now - t <= window]
    if not recent:
        return 0.0, False
    backoff = settings["backoff"]
    looping = len(recent) >= settings["crash_loop_restarts"]
    return (backoff[-1] if looping else backoff[min(len(recent) - 1, len(backoff) - 1)]), looping


def actor_data_dir(namespace: str) -> Path:
    """Where the actors of a namespace keep their replicas' sockets, pid files and logs on a node."""
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tcdeploy-ray-{digest}"


# -- the actors ---------------------------------------------------------------------------------


class Ledger:
    """What outlives a replica actor's incarnations: each pod's restart count and start times.

    One detached actor per namespace (`LEDGER_NAME`). If it is itself lost, counts start again."""

    def __init__(self) -> None:
        self._pods: dict[str, dict[str, Any]] = {}

    def begin(self, pod_name: str) -> tuple[int, list[float]]:
        """An actor of the pod starts: (its restart count so far, earlier start times). Every
        start after the first is a restart."""
        entry = self._pods.setdefault(pod_name, {"restarts": 0, "starts": []})
        earlier = list(entry["starts"])
        if earlier:
            entry["restarts"] += 1
        entry["starts"] = [*earlier, time.time()][-_STARTS_KEPT:]
        return entry["restarts"], earlier

    def note(self, pod_name: str, restarts: int) -> None:
        entry = self._pods.setdefault(pod_name, {"restarts": 0, "starts": [time.time()]})
        entry["restarts"] = max(entry["restarts"], restarts)

    def forget(self, pod_name: str) -> None:
        self._pods.pop(pod_name, None)


class Lease:
    """Held by one server per namespace: a plain (not detached) actor, so it dies with its owner."""

    def __init__(self, holder: str) -> None:
        self._holder = holder

    def holder(self) -> str:
        return self._holder


class ReplicaActor:
    """One pod on its node. Arguments are plain values (the spec as a dict, the token, settings).

    Methods are async and run on the actor's event loop, which also runs the supervisor."""

    def __init__(self, spec: dict[str, Any], token: str, settings: dict[str, Any], namespace: str) -> None:
        import ray

        self._spec = spec_from_dict(spec)
        self._token = token
        self._settings = settings
        self._host = ray.util.get_node_ip_address()
        self._node_id = ray.get_runtime_context().get_node_id()
        self._data_dir = actor_data_dir(namespace)
        self._state = ReplicaState(self._spec.pod_name, self._spec.service_id, phase=PodPhase.PENDING)
        self._state.node = self._node_id
        self._version = 0
        self._incarnation = uuid.uuid4().hex
        self._changed = asyncio.Event()
        self._base_restarts = 0
        self._noted_restarts = 0
        self._runtime: LocalRuntime | None = None
        self._port = 0
        self._events: deque[str] = deque(maxlen=50)
        self._stopping = False
        self._looping: str | None = None  # why the actor is crash-looping, until its replica is ready
        self._log_size_read = -2
        # __init__ runs on the actor's event loop: the replica starts now, also after a Ray restart.
        self._begun = asyncio.get_event_loop().create_task(self._begin())

    async def _begin(self) -> None:
        import ray

        ledger = ray.get_actor(LEDGER_NAME)
        self._base_restarts, starts_before = await ledger.begin.remote(self._spec.pod_name)
        self._noted_restarts = self._base_restarts
        self._runtime = LocalRuntime(
            self._data_dir,
            self._on_change,
            ready_timeout=self._settings["ready_timeout"],
            backoff=self._settings["backoff"],
            crash_loop_restarts=self._settings["crash_loop_restarts"],
            crash_loop_window=self._settings["crash_loop_window"],
            **self._settings.get("local_options", {}),
        )
        delay, looping = restart_delay(starts_before, time.time(), self._settings)
        if starts_before:
            why = f"the actor was restarted by Ray (restart #{self._base_restarts}); starting in {delay:g} s"
            if looping:
                window = self._settings["crash_loop_window"]
                why = f"crash loop: {len(starts_before)} actor restarts in {window:g} s; {why}"
                self._looping = why  # shown until the replica is ready, as a local crash loop is
            self._publish(
                reason=CRASH_LOOP if looping else "ActorRestarted",
                crash_looping=looping,
                message=why,
                restart_count=self._base_restarts,
            )
            await asyncio.sleep(delay)
        if self._stopping:
            return
        self._port = _free_port(self._host)
        local = dataclasses.replace(
            self._spec, tcp=f"{self._host}:{self._port}", env={**self._spec.env, TOKEN_ENV: self._token}
        )
        await self._runtime.start(local)

    def _on_change(self, state: ReplicaState) -> None:
        local_restarts = state.restart_count
        state.restart_count += self._base_restarts
        if state.address:
            state.address = tcp_address(self._host, self._port, state.pod_name)
        state.node = self._node_id
        if state.ready:
            self._looping = None
        elif self._looping and not state.crash_looping:
            state.crash_looping, state.reason, state.message = True, CRASH_LOOP, self._looping
        self._state = state
        self._bump()
        if state.restart_count > self._noted_restarts and local_restarts:
            self._noted_restarts = state.restart_count
            import ray

            ray.get_actor(LEDGER_NAME).note.remote(state.pod_name, state.restart_count)

    def _publish(self, **changes: Any) -> None:
        self._state = dataclasses.replace(self._state, **changes)
        self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    # -- called by the server ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"spec": spec_to_dict(self._spec), "node_id": self._node_id}

    async def poll(self, incarnation: str, version: int, after: tuple | None, timeout: float) -> dict[str, Any]:
        """Wait up to `timeout` s for a state newer than `version` or a log line after `after`.

        A caller that knew another incarnation (Ray restarted this actor) is answered at once."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self._lines_after(after)
            fresh = incarnation != self._incarnation or self._version > version
            if fresh or lines or time.monotonic() >= deadline:
                break
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(0.25, max(0.0, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                pass
        usage = self._runtime.usage(self._spec.pod_name) if self._runtime is not None else None
        return {
            "incarnation": self._incarnation,
            "version": self._version,
            "state": dataclasses.asdict(self._state),
            "lines": lines,
            "usage": usage,
            "node_id": self._node_id,
        }

    async def rebuild(self) -> None:
        await self._begun
        await self._runtime.rebuild(self._spec.pod_name)

    async def stop(self, grace: float) -> None:
        """Stop the replica for good (the server then kills this actor without restart)."""
        self._stopping = True
        if not self._begun.done():
            self._begun.cancel()
        await asyncio.gather(self._begun, return_exceptions=True)
        if self._runtime is not None:
            await self._runtime.close(grace)
        self._publish(phase=PodPhase.STOPPED, ready=False, pid=None, address=None)

    def _lines_after(self, after: tuple | None) -> list[tuple]:
        if self._runtime is None:
            return []
        size = _size(log_dir(self._data_dir) / f"{self._spec.pod_name}.log")
        if after is not None and size == self._log_size_read:
            return []  # nothing written since the last read: skip reading the file again
        lines, more = read_logs(
            self._data_dir, [self._spec.pod_name], after=tuple(after) if after else None, limit=_LOG_LINES_PER_POLL
        )
        if not more:
            self._log_size_read = size
        return [(line.ts, line.stream, line.msg, line.cursor) for line in lines]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _free_port(host: str) -> int:
    """A TCP port free on `host` now: the replica binds it (SO_REUSEADDR) a moment later. If
    something takes it meanwhile, the replica exits with 'cannot listen' and is restarted."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]

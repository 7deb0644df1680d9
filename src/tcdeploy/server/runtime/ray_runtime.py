"""RayRuntime: replicas as Ray actors across a cluster, behind the interface of `LocalRuntime`.

Each pod is a detached named actor (`ray_actor.ReplicaActor`, name = pod name) in one namespace,
restarted by Ray when it is lost (`max_restarts=-1`). The server long-polls every actor for its
state, usage and log lines, writes the lines into the same per-pod logs as local replicas, and
reports states through the same `on_change`, so the control plane, the gateway and the API do not
change. Actors outlive the server: a server that starts on the namespace adopts them (`connect`),
and a lease actor that dies with its server keeps a second server off the namespace.

Placement: each actor asks for the instance type's CPU and memory as Ray resources and a sliver
of the `tcdeploy_replica` custom resource (only nodes that offer it take replicas); the runtime
picks the node holding the fewest replicas of the same service (soft affinity: Ray may place it
elsewhere, and does when that node is lost). A size no node can hold is refused up front
(`placement_problem`), as Ray would leave the actor pending forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcdeploy.protocol.states import PodPhase
from tcdeploy.server.runtime.logs import PodLog, log_dir
from tcdeploy.server.runtime.ray_actor import (
    LEASE_NAME,
    LEDGER_NAME,
    SERVICE_ACTORS,
    Lease,
    Ledger,
    ReplicaActor,
    spec_from_dict,
    spec_to_dict,
    state_from_dict,
)
from tcdeploy.server.runtime.spec import ReplicaSpec, ReplicaState, is_pod_name
from tcdeploy.server.runtime.waiting import wait_settled

log = logging.getLogger(__name__)

REPLICA_RESOURCE = "tcdeploy_replica"
_RESOURCE_SLIVER = 0.001  # of REPLICA_RESOURCE per replica: the resource marks nodes, it does not count
_POLL_TIMEOUT = 10.0
_POLL_RETRY = 0.5
_LEASE_WAIT = 10.0  # a crashed server's lease goes when Ray notices its driver is gone
_NODES_FRESH_FOR = 2.0


class NamespaceTaken(RuntimeError):
    """Another tcdeploy server holds the namespace's lease."""


@dataclass(frozen=True)
class RayOptions:
    """How `tcdeploy server --runtime ray` reaches its cluster."""

    address: str = "auto"
    namespace: str | None = None  # default: derived from the data dir
    # The registry and artifact store are reachable from every node (a shared disk, an MLflow
    # server): a local-only registry is then accepted on a cluster of several nodes.
    shared_storage: bool = False

    def namespace_for(self, data_dir: Path) -> str:
        if self.namespace:
            return self.namespace
        digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
        return f"tcdeploy-{digest}"


@dataclass
class _Pod:
    spec: ReplicaSpec
    handle: Any
    state: ReplicaState
    log: PodLog
    incarnation: str = ""
    version: int = -1
    cursor: tuple | None = None
    usage: tuple[float, int] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    poller: asyncio.Task | None = None
    stopping: bool = False


class RayRuntime:
    """Starts, watches, restarts and stops replica actors of one namespace (see the module doc).

    Call `connect()` once (it joins the cluster, takes the lease and adopts running actors) before
    anything else; `close()` leaves the actors running for the next server."""

    def __init__(
        self,
        data_dir: Path,
        on_change: Callable[[ReplicaState], None],
        *,
        options: RayOptions,
        replica_token: Callable[[str], str],
        ready_timeout: float = 300.0,
        backoff: Sequence[float] = (0.5, 1, 2, 4, 8, 16, 30),
        crash_loop_restarts: int = 3,
        crash_loop_window: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.namespace = options.namespace_for(self.data_dir)
        self._options = options
        self._on_change = on_change
        self._replica_token = replica_token
        self._actor_settings = {
            "ready_timeout": float(ready_timeout),
            "backoff": tuple(float(b) for b in backoff),
            "crash_loop_restarts": int(crash_loop_restarts),
            "crash_loop_window": float(crash_loop_window),
            # One process a replica: a zygote per pod (each has its own token) would double it.
            "local_options": {"fork_replicas": False},
        }
        self._pods: dict[str, _Pod] = {}
        self._nodes: tuple[float, list[dict]] = (0.0, [])
        self._lease = None
        self._closed = False

    # -- joining the cluster ----------------------------------------------------------------------

    def connect(self) -> list[str]:
        """Join the cluster, take the namespace's lease, make sure the ledger runs, and adopt the
        replica actors already running there; returns the adopted pod names."""
        try:
            import ray
        except ImportError:
            raise RuntimeError("--runtime ray needs Ray: pip install 'mlflow-tcdeploy[ray]'") from None
        # ray.init makes SIGTERM exit at once; the server's own handler (a graceful stop) stays.
        on_sigterm = signal.getsignal(signal.SIGTERM)
        ray.init(
            address=self._options.address,
            namespace=self.namespace,
            log_to_driver=False,
            configure_logging=False,
        )
        if on_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_sigterm)
        self._lease = _take_lease(ray, self.namespace)
        ray.remote(Ledger).options(
            name=LEDGER_NAME, lifetime="detached", get_if_exists=True, num_cpus=0, max_restarts=-1
        ).remote()
        return self._adopt(ray)

    @property
    def shared_storage(self) -> bool:
        return self._options.shared_storage

    def node_count(self) -> int:
        """Alive nodes that take replicas."""
        return len(self._replica_nodes())

    def _adopt(self, ray) -> list[str]:
        adopted = []
        for name in sorted(ray.util.list_named_actors()):
            if name in SERVICE_ACTORS or not is_pod_name(name):
                continue
            try:
                handle = ray.get_actor(name)
                described = ray.get(handle.describe.remote(), timeout=60)
            except Exception as exc:  # a pod we cannot read is left alone, and said so
                log.warning("cannot adopt replica actor %s: %s", name, exc)
                continue
            spec = spec_from_dict(described["spec"])
            state = ReplicaState(spec.pod_name, spec.service_id, phase=PodPhase.PENDING, node=described["node_id"])
            self._pods[name] = _Pod(spec, handle, state, PodLog(log_dir(self.data_dir), name))
            adopted.append(name)
        if adopted:
            log.info("adopted %d replica actor(s) in Ray namespace %s", len(adopted), self.namespace)
        return adopted

    def watch_adopted(self) -> None:
        """Start polling the adopted pods (needs the running event loop)."""
        for pod in self._pods.values():
            if pod.poller is None:
                pod.poller = asyncio.create_task(self._poll(pod), name=f"ray poll {pod.spec.pod_name}")

    # -- the runtime interface --------------------------------------------------------------------

    async def start(self, spec: ReplicaSpec) -> None:
        """Create the pod's actor and return at once; progress arrives through `on_change`."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        import ray

        if self._closed:
            raise RuntimeError("the runtime is closed")
        if spec.pod_name in self._pods:
            raise ValueError(f"pod_name: {spec.pod_name} already exists; stop it first")
        problem = self.placement_problem(spec.cpu_millicores, spec.memory_mb)
        if problem is not None:
            raise ValueError(problem)
        node_id = self._pick_node(spec)
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=True) if node_id else "SPREAD"
        handle = (
            ray.remote(ReplicaActor)
            .options(
                name=spec.pod_name,
                lifetime="detached",
                max_restarts=-1,
                max_task_retries=0,
                num_cpus=spec.cpu_millicores / 1000,
                memory=spec.memory_mb * 2**20,
                resources={REPLICA_RESOURCE: _RESOURCE_SLIVER},
                scheduling_strategy=strategy,
            )
            .remote(spec_to_dict(spec), self._replica_token(spec.pod_name), self._actor_settings, self.namespace)
        )
        # The node it is meant for until it reports its own: pods started together spread too.
        state = ReplicaState(spec.pod_name, spec.service_id, phase=PodPhase.PENDING, node=node_id or "")
        pod = _Pod(spec, handle, state, PodLog(log_dir(self.data_dir), spec.pod_name))
        self._pods[spec.pod_name] = pod
        pod.log.event(f"actor created in Ray namespace {self.namespace}")
        self._report(pod)
        pod.poller = asyncio.create_task(self._poll(pod), name=f"ray poll {spec.pod_name}")

    async def wait_ready(self, pod_name: str, timeout: float) -> ReplicaState:
        """As `LocalRuntime.wait_ready`: ready, failed, crash-looping or stopped; TimeoutError."""
        pod = self._get(pod_name)
        return await wait_settled(pod_name, timeout, lambda: pod.state, lambda: pod.changed.wait())

    async def stop(self, pod_name: str, grace: float = 30.0) -> None:
        """Stop the replica gracefully, kill its actor for good, forget the pod."""
        import ray

        pod = self._pods.get(pod_name)
        if pod is None or pod.stopping:
            return
        pod.stopping = True
        self._update(pod, phase=PodPhase.TERMINATING, ready=False, address=None)
        try:
            await asyncio.wait_for(pod.handle.stop.remote(grace), grace + 15)
            await self._poll_once(pod, 0.0)  # the last log lines ("stopped")
        except Exception as exc:  # a lost actor, a node gone: it is killed below all the same
            log.warning("stopping %s on Ray: %s", pod_name, exc)
        if pod.poller is not None:
            pod.poller.cancel()
            await asyncio.gather(pod.poller, return_exceptions=True)
        ray.kill(pod.handle, no_restart=True)
        ray.get_actor(LEDGER_NAME).forget.remote(pod_name)
        self._pods.pop(pod_name, None)
        self._update(pod, phase=PodPhase.STOPPED, ready=False, pid=None, address=None)
        pod.log.close()

    async def rebuild(self, pod_name: str) -> None:
        pod = self._get(pod_name)
        before = pod.state.restart_count
        await pod.handle.rebuild.remote()
        while pod.state.restart_count == before and not pod.stopping:
            await pod.changed.wait()

    def state(self, pod_name: str) -> ReplicaState | None:
        pod = self._pods.get(pod_name)
        return pod.state.copy() if pod is not None else None

    def states(self, service_id: str | None = None) -> list[ReplicaState]:
        return [p.state.copy() for p in self._pods.values() if service_id is None or p.spec.service_id == service_id]

    def spec(self, pod_name: str) -> ReplicaSpec | None:
        pod = self._pods.get(pod_name)
        return pod.spec if pod is not None else None

    def usage(self, pod_name: str) -> tuple[float, int] | None:
        pod = self._pods.get(pod_name)
        return pod.usage if pod is not None and pod.state.pid is not None else None

    async def close(self, grace: float = 10.0) -> None:
        """Stop watching (server shutdown); the actors keep serving for the next server."""
        import ray

        self._closed = True
        pollers = [p.poller for p in self._pods.values() if p.poller is not None]
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        if self._pods:
            log.info("%d replica actor(s) keep running in Ray namespace %s", len(self._pods), self.namespace)
        for pod in self._pods.values():
            pod.log.close()
        if self._lease is not None:
            ray.kill(self._lease)
        ray.shutdown()

    # -- placement --------------------------------------------------------------------------------

    def placement_problem(self, cpu_millicores: int, memory_mb: int) -> str | None:
        """None if some node can hold a replica of this size; else why not, naming the sizes."""
        nodes = self._replica_nodes()
        if not nodes:
            return (
                f"no node of the Ray cluster offers the {REPLICA_RESOURCE!r} resource: start worker nodes "
                f"with ray start --resources '{{\"{REPLICA_RESOURCE}\": 1}}'"
            )
        if any(_fits(node, cpu_millicores, memory_mb) for node in nodes):
            return None
        largest = ", ".join(
            f"{node['Resources'].get('CPU', 0):g} CPU / {node['Resources'].get('memory', 0) / 2**20:.0f} MiB"
            for node in nodes
        )
        return (
            f"no node of the Ray cluster can hold {cpu_millicores / 1000:g} CPU and {memory_mb} MiB "
            f"(nodes that take replicas offer: {largest})"
        )

    def _replica_nodes(self) -> list[dict]:
        import ray

        fetched, nodes = self._nodes
        if time.monotonic() - fetched > _NODES_FRESH_FOR:
            nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get(REPLICA_RESOURCE, 0) > 0]
            self._nodes = (time.monotonic(), nodes)
        return nodes

    def _pick_node(self, spec: ReplicaSpec) -> str | None:
        """The fitting node with the fewest replicas of this service (then of any)."""
        fitting = [n["NodeID"] for n in self._replica_nodes() if _fits(n, spec.cpu_millicores, spec.memory_mb)]
        if not fitting:
            return None

        def load(node_id: str) -> tuple[int, int]:
            here = [p for p in self._pods.values() if p.state.node == node_id]
            return sum(p.spec.service_id == spec.service_id for p in here), len(here)

        return min(fitting, key=load)

    # -- watching ---------------------------------------------------------------------------------

    async def _poll(self, pod: _Pod) -> None:
        while not pod.stopping:
            try:
                await self._poll_once(pod, _POLL_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the actor is restarting, or its node is gone: Ray brings it back
                if pod.stopping:
                    return
                self._lost(pod, exc)
                await asyncio.sleep(_POLL_RETRY)

    async def _poll_once(self, pod: _Pod, timeout: float) -> None:
        reply = await pod.handle.poll.remote(pod.incarnation, pod.version, pod.cursor, timeout)
        for ts, stream, msg, cursor in reply["lines"]:
            pod.log.write(stream, msg, ts)
            pod.cursor = tuple(cursor)
        pod.usage = tuple(reply["usage"]) if reply["usage"] else None
        if reply["incarnation"] != pod.incarnation or reply["version"] != pod.version:
            pod.incarnation, pod.version = reply["incarnation"], reply["version"]
            state = state_from_dict(reply["state"])
            if pod.stopping:  # only the end matters now: Terminating until the actor is killed
                state = dataclasses.replace(state, phase=PodPhase.TERMINATING, ready=False, address=None)
            self._set(pod, state)

    def _lost(self, pod: _Pod, exc: Exception) -> None:
        if pod.state.ready or pod.state.address or pod.state.reason != "ActorLost":
            pod.log.event(f"the replica's actor is unreachable ({type(exc).__name__}); Ray restarts it")
            self._update(
                pod,
                ready=False,
                address=None,
                pid=None,
                phase=PodPhase.PENDING,
                reason="ActorLost",
                message=f"the replica's Ray actor is unreachable: {_first_line(exc)}",
            )

    def _update(self, pod: _Pod, **changes: Any) -> None:
        self._set(pod, dataclasses.replace(pod.state, **changes))

    def _set(self, pod: _Pod, state: ReplicaState) -> None:
        if state == pod.state:
            return
        pod.state = state
        self._report(pod)

    def _report(self, pod: _Pod) -> None:
        pod.changed.set()
        pod.changed = asyncio.Event()
        try:
            self._on_change(pod.state.copy())
        except Exception:  # the callback's bug must not stop the watching
            log.exception("on_change failed for pod %s", pod.spec.pod_name)

    def _get(self, pod_name: str) -> _Pod:
        try:
            return self._pods[pod_name]
        except KeyError:
            raise KeyError(f"no pod {pod_name!r} in this runtime") from None


def local_only_registry(tracking_uri: str) -> str | None:
    """What makes the registry readable on this machine only (a SQLite file, a local directory),
    or None for a server or store every node can reach."""
    scheme = tracking_uri.partition(":")[0].lower() if "://" in tracking_uri or ":" in tracking_uri[2:] else ""
    if scheme in ("sqlite", "file"):
        return f"a local {scheme}: store ({tracking_uri})"
    if not scheme:
        return f"a local directory ({tracking_uri})"
    return None


def _fits(node: dict, cpu_millicores: int, memory_mb: int) -> bool:
    resources = node["Resources"]
    return resources.get("CPU", 0) * 1000 >= cpu_millicores and resources.get("memory", 0) >= memory_mb * 2**20


def _take_lease(ray, namespace: str):
    """The namespace's lease actor, made by this server (so it dies with it); NamespaceTaken if
    another live server holds it."""
    deadline = time.monotonic() + _LEASE_WAIT
    holder = f"tcdeploy server pid {os.getpid()}"
    while True:
        try:
            lease = ray.remote(Lease).options(name=LEASE_NAME, num_cpus=0, max_restarts=0).remote(holder)
            ray.get(lease.holder.remote(), timeout=30)
            return lease
        except ValueError:  # the name is taken
            pass
        try:
            other = ray.get(ray.get_actor(LEASE_NAME).holder.remote(), timeout=5)
        except Exception:
            other = None  # its server is gone and Ray is removing it: try again
        if time.monotonic() > deadline:
            raise NamespaceTaken(
                f"Ray namespace {namespace!r} is in use by another tcdeploy server ({other or 'unknown'}); "
                "stop it, or give this one --ray-namespace"
            )
        time.sleep(0.5)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]

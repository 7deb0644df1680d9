"""The route table: the groups, versions and ready replicas the control plane pushes in, and the
two choices made per request — which version (smooth weighted round-robin) and which replica
(fewest requests in flight).

Everything here runs on the event loop's thread; nothing is locked because nothing awaits between
reading and updating the counters.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from tcdeploy.protocol.states import ServiceStatus


@dataclass
class Replica:
    """A ready replica the gateway may use."""

    pod_name: str
    address: str  # unix-domain socket path of the replica's HTTP server
    # The gateway's own bookkeeping, not set by the control plane:
    inflight: int = field(default=0, init=False, repr=False, compare=False)
    draining: bool = field(default=False, init=False, repr=False, compare=False)
    _idle: asyncio.Event | None = field(default=None, init=False, repr=False, compare=False)

    def begin(self) -> None:
        self.inflight += 1

    def end(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()


@dataclass
class Version:
    """One service (MLflow "deployment") in a group."""

    service_id: str
    service_name: str
    group_id: str
    version: str
    weight: int  # 0..100, relative within the group
    status: ServiceStatus
    rps_limit_per_replica: float | None = None
    # Requests in flight a replica may have (`ServiceLimit.InstanceReqLimit`); beyond, a 429.
    inflight_limit_per_replica: float | None = None
    inference_table: bool = False
    # Replicas the control plane keeps running. While a recovering version has none ready, a
    # request may wait a moment for one instead of failing; 0 means none will come.
    expected_replicas: int = 0
    # Scaled to zero (or allowed to be): a request finding no replica wakes one and waits for it.
    wakes: bool = False
    chat: bool = False  # an LLM service: it answers the OpenAI chat routes too
    # How long to wait for a replica's answer (its `RequestTimeoutSeconds`); None: the transport's.
    request_timeout: float | None = None

    def __post_init__(self) -> None:
        self.status = ServiceStatus(self.status)


@dataclass
class Group:
    group_id: str
    name: str
    workspace_id: str
    auth_enabled: bool
    token_hashes: frozenset[str]  # sha256 hex of each valid token value
    versions: dict[str, Version]  # by service_id


class NoRoute(Exception):
    """No version or replica can take the request; `reason` says why, for the 503 message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RouteTable:
    """Groups, versions and ready replicas, as the control plane last pushed them."""

    def __init__(self) -> None:
        self._groups: dict[str, Group] = {}
        self._service_group: dict[str, str] = {}
        self._replicas: dict[str, list[Replica]] = {}
        # Smooth weighted round-robin state: the "current weight" of each service, per group.
        self._current: dict[str, dict[str, int]] = {}
        # Rotating start index per service, so ties in in-flight counts go round-robin.
        self._next_replica: dict[str, int] = {}
        # Every replica still referenced (listed, or serving a request after it was unlisted),
        # so drain() finds a pod the control plane already took out of the list.
        self._pods: weakref.WeakValueDictionary[str, Replica] = weakref.WeakValueDictionary()
        self._removal_listeners: list[Callable[[str], None]] = []
        self._service_listeners: list[Callable[[str], None]] = []
        self._changed = asyncio.Event()  # set, and replaced, at every push of the control plane

    # ---- state pushed by the control plane -------------------------------------------------

    def put_group(self, group: Group) -> None:
        """Add or replace a group's settings and versions.

        Replicas already set for services that stay in the group are kept, with their in-flight
        counters; those of services that left the group are dropped.
        """
        previous = self._groups.get(group.group_id)
        if previous is not None:
            for service_id in previous.versions.keys() - group.versions.keys():
                self._forget_service(service_id)
        self._groups[group.group_id] = group
        for service_id in group.versions:
            self._service_group[service_id] = group.group_id
        current = self._current.setdefault(group.group_id, {})
        for service_id in list(current):
            if service_id not in group.versions:
                del current[service_id]
        self._touch()

    def remove_group(self, group_id: str) -> None:
        group = self._groups.pop(group_id, None)
        self._current.pop(group_id, None)
        if group is None:
            return
        for service_id in group.versions:
            self._forget_service(service_id)
        self._touch()
        for listener in self._removal_listeners:
            listener(group_id)

    def on_group_removed(self, listener: Callable[[str], None]) -> None:
        """Call `listener(group_id)` after a group is removed (the gateway drops its metrics)."""
        self._removal_listeners.append(listener)

    def set_replicas(self, service_id: str, replicas: list[Replica]) -> None:
        """Set the ready replicas of a service.

        A pod that stays keeps its Replica object, so its in-flight counter and a drain in
        progress carry over (its address is updated). A drained pod stays out of rotation while
        it is listed; omit it once, and listing it again (say after a restart) routes to it anew.
        """
        kept = {replica.pod_name: replica for replica in self._replicas.get(service_id, ())}
        merged = []
        for replica in replicas:
            old = kept.get(replica.pod_name)
            if old is not None:
                old.address = replica.address
                merged.append(old)
            else:
                merged.append(replica)
                self._pods[replica.pod_name] = replica
        self._replicas[service_id] = merged
        self._touch()

    async def wait_for_change(self, timeout: float) -> None:
        """Return at the control plane's next push (groups, replicas), or after `timeout` seconds."""
        if timeout <= 0:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()  # waiters hold the old, now set, event

    async def drain(self, pod_name: str, timeout: float = 30.0) -> None:
        """Stop routing new requests to a pod; return once its in-flight requests are done, or
        after `timeout` seconds."""
        replica = self._pods.get(pod_name)
        if replica is None:
            return
        replica.draining = True
        if replica.inflight == 0:
            return
        replica._idle = replica._idle or asyncio.Event()
        try:
            await asyncio.wait_for(replica._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # ---- lookups and choices, per request ---------------------------------------------------

    def group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def service(self, service_id: str) -> tuple[Group, Version] | None:
        group_id = self._service_group.get(service_id)
        group = self._groups.get(group_id) if group_id is not None else None
        if group is None:
            return None
        version = group.versions.get(service_id)
        return (group, version) if version is not None else None

    def ready_count(self, service_id: str) -> int:
        return sum(1 for replica in self._replicas.get(service_id, ()) if not replica.draining)

    def inflight(self, service_id: str) -> int:
        """Requests a service's listed replicas are answering now."""
        return sum(replica.inflight for replica in self._replicas.get(service_id, ()))

    def replica_expected(self, version: Version) -> bool:
        """Whether a version without a ready replica should have one again soon: it is worth a
        request's while to wait for it (a version that wakes gets one because the request came)."""
        return (version.status.recovering and version.expected_replicas > 0) or (
            version.wakes and version.status.serves
        )

    def replica_expected_in(self, group: Group) -> bool:
        """`replica_expected` for some version of the group that takes a share of its traffic."""
        return any(v.weight > 0 and self.replica_expected(v) for v in group.versions.values())

    def choose_version(self, group: Group) -> Version:
        """Pick a version by smooth weighted round-robin (as nginx does) among those that serve,
        have a ready replica and a weight above zero."""
        current = self._current.setdefault(group.group_id, {})
        total = 0
        best: Version | None = None
        best_weight = 0
        for version in group.versions.values():
            if version.weight <= 0 or not version.status.serves:
                continue
            if not self.ready_count(version.service_id):
                continue
            weight = current.get(version.service_id, 0) + version.weight
            current[version.service_id] = weight
            total += version.weight
            if best is None or weight > best_weight:
                best, best_weight = version, weight
        if best is None:
            raise NoRoute(self._why_no_version(group))
        current[best.service_id] -= total
        return best

    def check_serves(self, version: Version) -> None:
        """For a request to one version: raise NoRoute unless it can take it (weights aside)."""
        if not version.status.serves:
            raise NoRoute(f"service {version.service_id} is {version.status}")
        if not self.ready_count(version.service_id):
            raise NoRoute(f"service {version.service_id} has no ready replica")

    def choose_replica(self, service_id: str, exclude: Replica | None = None) -> Replica | None:
        """The ready, non-draining replica with the fewest requests in flight; ties go
        round-robin. `exclude` skips a replica that just failed, unless it is the only one."""
        replicas = self._replicas.get(service_id)
        if not replicas:
            return None
        count = len(replicas)
        start = self._next_replica.get(service_id, 0) % count
        self._next_replica[service_id] = start + 1
        best: Replica | None = None
        for offset in range(count):
            replica = replicas[(start + offset) % count]
            if replica.draining or replica is exclude:
                continue
            if best is None or replica.inflight < best.inflight:
                best = replica
        if best is None and exclude is not None and _listed(exclude, replicas) and not exclude.draining:
            return exclude
        return best

    def _why_no_version(self, group: Group) -> str:
        if not group.versions:
            return f"group {group.group_id} has no service"
        if not any(v.status.serves for v in group.versions.values()):
            states = ", ".join(sorted({v.status for v in group.versions.values()}))
            return f"group {group.group_id} is not running (service state: {states})"
        if not any(v.weight > 0 for v in group.versions.values() if v.status.serves):
            return f"no running service of group {group.group_id} has a traffic weight above 0"
        return f"group {group.group_id} has no ready replica"

    def on_service_removed(self, listener: Callable[[str], None]) -> None:
        """Call `listener(service_id)` after a service leaves its group (the gateway drops its
        rate limiter)."""
        self._service_listeners.append(listener)

    def _forget_service(self, service_id: str) -> None:
        self._service_group.pop(service_id, None)
        self._replicas.pop(service_id, None)
        self._next_replica.pop(service_id, None)
        for listener in self._service_listeners:
            listener(service_id)


def _listed(replica: Replica, replicas: list[Replica]) -> bool:
    return any(listed is replica for listed in replicas)

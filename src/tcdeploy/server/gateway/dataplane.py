"""The data plane, free of any web framework: find the group, check the key, pick a version and
a replica, forward the body, and record what happened (metrics, monitor, inference table).

The HTTP routes (http.py) and the control plane's ModelServiceInterfaceCallTest both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from tcdeploy.protocol.chat import CHAT_PATH

from .auth import authorized
from .inference_table import InferenceTableWriter, Row, TableFigures
from .metrics import GatewayMetrics
from .monitor import GroupMonitor
from .picking import RETRY_PAUSE, ReplicaPicker
from .ratelimit import RateLimiter
from .replies import (
    JSON,
    GatewayError,
    GatewayReply,
    body_too_large,
    new_request_id,
    not_found,
    unauthenticated,
    unavailable,
)
from .routes import Group, NoRoute, Replica, RouteTable, Version
from .transport import (
    REQUEST_TRANSPORT,
    ReplicaConnectionError,
    ReplicaLost,
    ReplicaReplyError,
    ReplicaTimeout,
    ReplicaTransport,
    UnixHttpTransport,
)

PATHS = frozenset({"/predict", "/invocations"})
# Replicas a retry may try when they refuse the connection (so never saw the request).
UNSENT_TRIES = 3


class _GroupStats:
    __slots__ = ("monitor", "inflight", "versions")

    def __init__(self) -> None:
        self.monitor = GroupMonitor()
        self.inflight = 0
        # The same figures per version (service), for wedata's per-service monitor data.
        self.versions: dict[str, GroupMonitor] = {}


class Gateway:
    def __init__(
        self,
        routes: RouteTable,
        *,
        data_dir: Path,
        transport: ReplicaTransport | None = None,
        max_body_bytes: int = 16 * 2**20,
        flush_interval: float = 1.0,
        usage: Callable[[], Iterable[tuple[str, str, float, int]]] | None = None,
        replica_wait: float = 30.0,
        wake: Callable[[str], None] | None = None,
    ) -> None:
        """`replica_wait`: how long a request may wait for a ready replica of a version that is
        getting one back (see `Version.expected_replicas`), rather than get a 503 at once.
        `wake(service_id)`: asks for a replica of a version scaled to zero (see `ReplicaPicker`)."""
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.transport: ReplicaTransport = transport or UnixHttpTransport()
        self.metrics = GatewayMetrics(usage)
        self.table = InferenceTableWriter(Path(data_dir), flush_interval)
        self.metrics.registry.register(TableFigures(self.table))
        self._limiter = RateLimiter()
        self._picker = ReplicaPicker(routes, replica_wait, wake)
        self._stats: dict[str, _GroupStats] = {}
        # Called with (group, version, the replica's reply headers, latency s) after each reply.
        self.reply_observers: list[Callable[[Group, Version, dict[str, str], float], None]] = []
        routes.on_group_removed(self._forget_group)
        routes.on_service_removed(self._limiter.forget)
        routes.on_service_removed(self._forget_service)

    async def start(self) -> None:
        self.table.start()

    async def close(self) -> None:
        """Flush the inference table (nothing buffered is lost) and close replica connections."""
        await self.table.close()
        await self.transport.aclose()

    def monitor(
        self, group_id: str, start: float, end: float, step: float = 60.0, *, service_id: str | None = None
    ) -> list[dict]:
        """Per-step figures of one group (or of one of its services, the requests routed to it)
        over [start, end) in epoch seconds (the last hour is kept): time (the step's start),
        requests, errors (4xx and 5xx but 429), limited (429), p50_latency_ms and p99_latency_ms
        of the requests sent to a replica (None if none), inflight (the group's most at once).
        Raises ValueError for a bad window."""
        stats = self._stats.get(group_id)
        monitor = None
        if stats is not None:
            monitor = stats.versions.get(service_id) if service_id else stats.monitor
        return (monitor or GroupMonitor()).steps(start, end, step)

    async def call(
        self,
        *,
        group_id: str | None = None,
        service_id: str | None = None,
        body: bytes,
        headers: Mapping[str, str],
        path: str = "/predict",
    ) -> GatewayReply:
        """Answer one prediction request to a group (routed by weight) or to one service."""
        if (group_id is None) == (service_id is None):
            raise ValueError("give exactly one of group_id and service_id")
        picked: dict[str, str] = {}
        for name, value in headers.items():
            name = name.lower()
            if name in ("authorization", "x-request-id", "content-type"):
                picked[name] = value
        if len(body) > self.max_body_bytes:
            return body_too_large(self.max_body_bytes).reply(new_request_id(picked.get("x-request-id")))
        return await self.handle(
            group_id,
            service_id,
            path,
            body,
            picked.get("authorization"),
            picked.get("x-request-id"),
            picked.get("content-type"),
        )

    async def handle(
        self,
        group_id: str | None,
        service_id: str | None,
        path: str,
        body: bytes,
        authorization: str | None,
        request_id: str | None,
        content_type: str | None,
    ) -> GatewayReply:
        """`call` once the three headers it reads are picked out and the body size checked."""
        request_id = new_request_id(request_id)
        try:
            group, version = self._find(group_id, service_id, path)
        except GatewayError as error:
            # Not counted: a metric label per mistyped id would grow without bound.
            return error.reply(request_id)
        deadline = self._picker.deadline()
        try:
            if group.auth_enabled and not authorized(authorization, group.token_hashes):
                raise unauthenticated()
            group, version = await self._picker.version(group, version, deadline)
        except NoRoute as no_route:
            return self._refuse(group, None, unavailable(no_route.reason), request_id, body)
        except GatewayError as error:
            return self._refuse(group, None, error, request_id, body)
        try:
            limits = self._limiter.check(
                version,
                self.routes.ready_count(version.service_id),
                self.routes.inflight(version.service_id),
                time.monotonic(),
            )
        except GatewayError as error:
            return self._refuse(group, version, error, request_id, body)
        if content_type is None or "\n" in content_type or "\r" in content_type:
            content_type = JSON
        reply = await self._forward(group, version, path, body, request_id, content_type, deadline)
        reply.headers.update(limits)
        return reply

    # ---- steps ------------------------------------------------------------------------------

    def _find(self, group_id: str | None, service_id: str | None, path: str) -> tuple[Group, Version | None]:
        if path not in PATHS and path != CHAT_PATH:
            raise GatewayError(404, "ENDPOINT_NOT_FOUND", f"no path {path!r}: use /predict or /invocations")
        if service_id is not None:
            found = self.routes.service(service_id)
            if found is None:
                raise not_found(f"service {service_id!r}")
            return found
        group = self.routes.group(group_id)  # type: ignore[arg-type]
        if group is None:
            raise not_found(f"service group {group_id!r}")
        return group, None

    async def _forward(
        self,
        group: Group,
        version: Version,
        path: str,
        body: bytes,
        request_id: str,
        content_type: str,
        deadline: float,
    ) -> GatewayReply:
        series = self.metrics.series(group.group_id, version.service_id)
        stats = self._group_stats(group.group_id)
        stats.inflight += 1
        inflight = stats.inflight
        series.inflight.inc()
        wall = time.time()
        started = time.perf_counter()
        headers: dict[str, str] = {}
        try:
            status, headers, reply_body = await self._send(
                version.service_id, path, body, _replica_headers(version, content_type, request_id), deadline
            )
            passed = {"content-type": headers.get("content-type", JSON), "x-request-id": request_id}
            if "warning" in headers:  # what the replica left out of the request (dropped columns)
                passed["warning"] = headers["warning"]
            reply = GatewayReply(status, reply_body, passed)
        except GatewayError as error:
            reply = error.reply(request_id)
        finally:
            stats.inflight -= 1
            series.inflight.dec()
        latency = time.perf_counter() - started
        series.latency.observe(latency)
        batch_rows = headers.get("x-batch-rows")
        if batch_rows is not None and batch_rows.isdigit():
            series.batch_rows.observe(int(batch_rows))
        for observe in self.reply_observers:
            observe(group, version, headers, latency)
        self._record(group, version, reply, body, wall, latency * 1000.0, inflight)
        return reply

    async def _send(self, service_id: str, path: str, body: bytes, headers: dict[str, str], deadline: float):
        """Send to the least busy replica; if it cannot be reached, or goes while it has the
        request, once more to another (waiting until `deadline` for one if none is ready yet),
        one retry at a time. Never once a reply has begun."""
        replica = await self._picker.replica(service_id, None, deadline)
        try:
            try:
                return await self._send_to(replica, path, body, headers)
            except ReplicaConnectionError:
                async with self._picker.retrying(service_id, deadline):
                    return await self._retry(service_id, replica, path, body, headers, deadline)
        except ReplicaLost:
            raise GatewayError(
                502,
                "BAD_GATEWAY",
                (
                    f"service {service_id}: replicas stopped while answering this request (it was "
                    "retried once); the request itself may be what makes the model crash (see the "
                    "service's logs)"
                ),
            ) from None
        except ReplicaConnectionError as failure:
            raise unavailable(f"no replica of service {service_id} answered: {failure}") from None
        except ReplicaTimeout as failure:
            raise GatewayError(504, "DEADLINE_EXCEEDED", f"service {service_id}: {failure}") from None
        except ReplicaReplyError as failure:
            raise GatewayError(502, "BAD_GATEWAY", f"service {service_id}: {failure}") from None

    async def _retry(
        self, service_id: str, failed: Replica, path: str, body: bytes, headers: dict[str, str], deadline: float
    ):
        """The retry, to another replica. One that refuses the connection never saw the request
        (dead, and not yet known to be): then on to the next, a few times, once its exit had a
        moment to be known."""
        tries_left = UNSENT_TRIES
        while True:
            replica = await self._picker.replica(service_id, failed, deadline)
            try:
                return await self._send_to(replica, path, body, headers)
            except ReplicaLost:
                raise
            except ReplicaConnectionError:
                tries_left -= 1
                if not tries_left or replica is failed:
                    raise
            failed = replica
            await self.routes.wait_for_change(min(RETRY_PAUSE, deadline - time.monotonic()))

    async def _send_to(self, replica: Replica, path: str, body: bytes, headers: dict[str, str]):
        replica.begin()
        try:
            return await (REQUEST_TRANSPORT.get() or self.transport).send(replica.address, path, body, headers)
        finally:
            replica.end()

    # ---- bookkeeping ------------------------------------------------------------------------

    def _refuse(
        self, group: Group, version: Version | None, error: GatewayError, request_id: str, body: bytes
    ) -> GatewayReply:
        """Answer and count a request the gateway turns away itself (401, 429, 503)."""
        reply = error.reply(request_id)
        if version is not None and error.status == 429:
            self.metrics.series(group.group_id, version.service_id).limited.inc()
        inflight = self._group_stats(group.group_id).inflight
        self._record(group, version, reply, body, time.time(), None, inflight)
        return reply

    def _record(
        self,
        group: Group,
        version: Version | None,
        reply: GatewayReply,
        body: bytes,
        wall: float,
        latency_ms: float | None,
        inflight: int,
    ) -> None:
        """Count a finished request in the metrics and the monitor and, when the version keeps
        one, in the inference table. A request turned away before a version was chosen (401,
        503) has no table row: and a 401's body comes from someone without a key."""
        self.metrics.series(group.group_id, version.service_id if version else "").count(reply.status)
        stats = self._group_stats(group.group_id)
        sizes = (len(body), len(reply.body))
        stats.monitor.record(wall, reply.status, latency_ms, inflight, *sizes)
        if version is not None:
            stats.versions.setdefault(version.service_id, GroupMonitor()).record(
                wall, reply.status, latency_ms, inflight, *sizes
            )
        if version is not None and version.inference_table:
            self.table.append(
                Row(
                    reply.headers["x-request-id"],
                    group.group_id,
                    version.service_id,
                    version.service_name,
                    version.version,
                    wall,
                    latency_ms or 0.0,
                    reply.status,
                    body,
                    reply.body,
                )
            )

    def _group_stats(self, group_id: str) -> _GroupStats:
        stats = self._stats.get(group_id)
        if stats is None:
            stats = self._stats[group_id] = _GroupStats()
        return stats

    def _forget_service(self, service_id: str) -> None:
        for stats in self._stats.values():
            stats.versions.pop(service_id, None)

    def _forget_group(self, group_id: str) -> None:
        self._stats.pop(group_id, None)
        self.metrics.forget_group(group_id)


def _replica_headers(version: Version, content_type: str, request_id: str) -> dict[str, str]:
    """What a replica is told of a request: its type and id, and the version's own deadline
    when it has one (the transport's otherwise)."""
    headers = {"content-type": content_type, "x-request-id": request_id}
    if version.request_timeout is not None:
        headers["x-request-deadline-ms"] = str(int(version.request_timeout * 1000))
    return headers

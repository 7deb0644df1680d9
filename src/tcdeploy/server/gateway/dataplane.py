"""The data plane, free of any web framework: find the group, check the key, pick a version and
a replica, forward the body, and record what happened (metrics, monitor, inference table).

The HTTP routes (http.py) and the control plane's ModelServiceInterfaceCallTest both use it.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from starlette.routing import BaseRoute

from .auth import authorized
from .http import gateway_routes
from .inference_table import InferenceTableWriter, Row
from .metrics import GatewayMetrics
from .monitor import GroupMonitor
from .ratelimit import RateLimiter
from .replies import (
    JSON,
    GatewayError,
    GatewayReply,
    body_too_large,
    new_request_id,
    not_found,
    rate_limited,
    unauthenticated,
    unavailable,
)
from .routes import Group, NoRoute, Replica, RouteTable, Version
from .transport import (
    ReplicaConnectionError,
    ReplicaReplyError,
    ReplicaTimeout,
    ReplicaTransport,
    UnixHttpTransport,
)

PATHS = frozenset({"/predict", "/invocations"})
# Before retrying the only replica of a version: the runtime may be bringing it back.
RETRY_PAUSE = 0.2


class _GroupStats:
    __slots__ = ("monitor", "inflight")

    def __init__(self) -> None:
        self.monitor = GroupMonitor()
        self.inflight = 0


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
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.transport: ReplicaTransport = transport or UnixHttpTransport()
        self.metrics = GatewayMetrics(usage)
        self.table = InferenceTableWriter(Path(data_dir), flush_interval)
        self._limiter = RateLimiter()
        self._stats: dict[str, _GroupStats] = {}
        routes.on_group_removed(self._forget_group)

    async def start(self) -> None:
        self.table.start()

    async def close(self) -> None:
        """Flush the inference table (nothing buffered is lost) and close replica connections."""
        await self.table.close()
        await self.transport.aclose()

    def http_routes(self) -> list[BaseRoute]:
        """POST /groups/{group_id}/predict and /services/{service_id}/predict (and
        /invocations under both), GET /metrics."""
        return gateway_routes(self)

    def monitor(self, group_id: str, start: float, end: float, step: float = 60.0) -> list[dict]:
        """Per-step figures of one group over [start, end) in epoch seconds (the last hour is
        kept): time (the step's start), requests, errors (4xx and 5xx but 429), limited (429),
        p50_latency_ms and p99_latency_ms of the requests sent to a replica (None if none),
        inflight (the most at once). Raises ValueError for a bad window."""
        stats = self._stats.get(group_id)
        return (stats.monitor if stats else GroupMonitor()).steps(start, end, step)

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
        return await self.handle(group_id, service_id, path, body, picked.get("authorization"),
                                 picked.get("x-request-id"), picked.get("content-type"))

    async def handle(
        self, group_id: str | None, service_id: str | None, path: str, body: bytes,
        authorization: str | None, request_id: str | None, content_type: str | None,
    ) -> GatewayReply:
        """`call` once the three headers it reads are picked out and the body size checked."""
        request_id = new_request_id(request_id)
        try:
            group, version = self._find(group_id, service_id, path)
        except GatewayError as error:
            # Not counted: a metric label per mistyped id would grow without bound.
            return error.reply(request_id)
        try:
            if group.auth_enabled and not authorized(authorization, group.token_hashes):
                raise unauthenticated()
            version = self._choose_version(group, version)
        except GatewayError as error:
            return self._refuse(group, None, error, request_id, body)
        limit = version.rps_limit_per_replica
        if limit is not None and not self._within_limit(version, limit):
            return self._refuse(group, version, rate_limited(version.service_id), request_id, body)
        if content_type is None or "\n" in content_type or "\r" in content_type:
            content_type = JSON
        return await self._forward(group, version, path, body, request_id, content_type)

    # ---- steps ------------------------------------------------------------------------------

    def _find(self, group_id: str | None, service_id: str | None, path: str) -> tuple[Group, Version | None]:
        if path not in PATHS:
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

    def _choose_version(self, group: Group, version: Version | None) -> Version:
        try:
            if version is None:
                return self.routes.choose_version(group)
            self.routes.check_serves(version)
            return version
        except NoRoute as no_route:
            raise unavailable(no_route.reason) from None

    def _within_limit(self, version: Version, limit_per_replica: float) -> bool:
        rate = limit_per_replica * self.routes.ready_count(version.service_id)
        return self._limiter.admit(version.service_id, rate, time.monotonic())

    async def _forward(
        self, group: Group, version: Version, path: str, body: bytes, request_id: str, content_type: str
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
                version.service_id, path, body, {"content-type": content_type, "x-request-id": request_id})
            reply = GatewayReply(status, reply_body, {"content-type": headers.get("content-type", JSON),
                                                      "x-request-id": request_id})
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
        self._record(group, version, reply, body, wall, latency * 1000.0, inflight)
        return reply

    async def _send(self, service_id: str, path: str, body: bytes, headers: dict[str, str]):
        """Send to the least busy replica; on a connection failure, once more to another (or,
        if it is the only one, to the same after a pause). Never once a reply has begun."""
        replica = self.routes.choose_replica(service_id)
        try:
            try:
                return await self._send_to(replica, path, body, headers)
            except ReplicaConnectionError:
                retry = self.routes.choose_replica(service_id, exclude=replica)
                if retry is replica:
                    await asyncio.sleep(RETRY_PAUSE)
                return await self._send_to(retry, path, body, headers)
        except ReplicaConnectionError as failure:
            raise unavailable(f"no replica of service {service_id} answered: {failure}") from None
        except ReplicaTimeout as failure:
            raise GatewayError(504, "DEADLINE_EXCEEDED", f"service {service_id}: {failure}") from None
        except ReplicaReplyError as failure:
            raise GatewayError(502, "BAD_GATEWAY", f"service {service_id}: {failure}") from None

    async def _send_to(self, replica: Replica | None, path: str, body: bytes, headers: dict[str, str]):
        if replica is None:
            raise ReplicaConnectionError("no ready replica left")
        replica.begin()
        try:
            return await self.transport.send(replica.address, path, body, headers)
        finally:
            replica.end()

    # ---- bookkeeping ------------------------------------------------------------------------

    def _refuse(self, group: Group, version: Version | None, error: GatewayError, request_id: str,
                body: bytes) -> GatewayReply:
        """Answer and count a request the gateway turns away itself (401, 429, 503)."""
        reply = error.reply(request_id)
        if version is not None and error.status == 429:
            self.metrics.series(group.group_id, version.service_id).limited.inc()
        inflight = self._group_stats(group.group_id).inflight
        self._record(group, version, reply, body, time.time(), None, inflight)
        return reply

    def _record(self, group: Group, version: Version | None, reply: GatewayReply, body: bytes,
                wall: float, latency_ms: float | None, inflight: int) -> None:
        """Count a finished request in the metrics and the monitor and, when the version keeps
        one, in the inference table. A request turned away before a version was chosen (401,
        503) has no table row: and a 401's body comes from someone without a key."""
        self.metrics.series(group.group_id, version.service_id if version else "").count(reply.status)
        self._group_stats(group.group_id).monitor.record(wall, reply.status, latency_ms, inflight)
        if version is not None and version.inference_table:
            self.table.append(Row(reply.headers["x-request-id"], group.group_id, version.service_id,
                                  version.service_name, version.version, wall, latency_ms or 0.0,
                                  reply.status, body, reply.body))

    def _group_stats(self, group_id: str) -> _GroupStats:
        stats = self._stats.get(group_id)
        if stats is None:
            stats = self._stats[group_id] = _GroupStats()
        return stats

    def _forget_group(self, group_id: str) -> None:
        self._stats.pop(group_id, None)
        self.metrics.forget_group(group_id)

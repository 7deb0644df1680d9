"""The composition root: builds the store, runtime, fleet, route table, gateway, reconciler and
backend, hands each what it needs, and serves them as one ASGI app — the control API, the gateway's
routes, health, pod pages and the console. Nothing downstream reaches back up to here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from tcdeploy.protocol.states import EventType

from .console import build_console
from .control.api import ControlApi, pod_page
from .control.backend import (
    Backend,
    ModelRegistry,
    MonitorHistory,
    Reconciler,
    ScalingControl,
    ScalingSettings,
    ServerSecret,
    new_pod_name,
)
from .gateway import Gateway, MetricsHistory, RouteTable, TroubleListener, UnixHttpTransport, gateway_routes
from .runtime import Fleet, LocalRuntime, ReplicaState, reap_orphans
from .runtime.ray_runtime import RayOptions, RayRuntime, local_only_registry
from .settings import ServerSettings, load_access_keys, secure_data_dir, server_secret
from .store import Store

POD_PAGE_LOG_LINES = 100


@dataclass
class Server:
    """The server's parts, built and wired once."""

    settings: ServerSettings
    store: Store
    runtime: LocalRuntime | RayRuntime
    gateway: Gateway
    reconciler: Reconciler
    backend: Backend
    scaling: ScalingControl
    history: MonitorHistory

    @classmethod
    def build(cls, settings: ServerSettings, ray: RayOptions | None = None) -> Server:
        """`ray`: run replicas as actors on that Ray cluster, rather than as local processes."""
        secure_data_dir(settings.data_dir)
        store = Store(settings.data_dir / "state.db")
        routes = RouteTable()
        reconciler: Reconciler | None = None
        scaling: ScalingControl | None = None

        def wake(service_id: str) -> None:
            if scaling is not None:
                scaling.wake(service_id)

        def on_replica_change(state: ReplicaState) -> None:
            if reconciler is not None:
                reconciler.on_replica_change(state)

        secret = ServerSecret(server_secret(settings))
        runtime = (
            LocalRuntime(settings.data_dir, on_change=on_replica_change, fork_replicas=settings.fork_replicas)
            if ray is None
            else RayRuntime(settings.data_dir, on_replica_change, options=ray, replica_token=secret.replica_token)
        )
        fleet = Fleet(runtime, drain=routes.drain, new_pod_name=new_pod_name)
        gateway = Gateway(
            routes,
            data_dir=settings.data_dir,
            transport=UnixHttpTransport(timeout=settings.request_timeout, replica_token=secret.replica_token),
            usage=lambda: _usage(runtime),
            wake=wake,
        )
        reconciler = Reconciler(
            store, runtime, fleet, routes, settings.tracking_uri, hang_after_s=settings.request_timeout
        )
        gateway.table.on_trouble = _table_events(reconciler)
        gateway.table.retention_days = settings.inference_retention_days or None
        scaling = ScalingControl(
            store,
            runtime,
            gateway,
            reconciler,
            ScalingSettings(settings.scale_interval, settings.scale_to_zero_after, settings.timezone),
        )
        history = MonitorHistory(store, runtime, gateway, MetricsHistory(settings.data_dir / "metrics.db"))
        backend = Backend(
            monitor_history=history,
            store=store,
            runtime=runtime,
            reconciler=reconciler,
            registry=ModelRegistry(settings.tracking_uri),
            gateway=gateway,
            secret=secret,
            data_dir=settings.data_dir,
        )
        return cls(settings, store, runtime, gateway, reconciler, backend, scaling, history)

    async def start(self) -> None:
        if isinstance(self.runtime, RayRuntime):
            self._join_ray(self.runtime)
        else:
            reap_orphans(self.settings.data_dir)
        await self.gateway.start()
        await self.reconciler.restore()
        if isinstance(self.runtime, RayRuntime):
            await self._retire_strays(self.runtime)
        self.scaling.start()
        self.history.start()

    def _join_ray(self, runtime: RayRuntime) -> None:
        """Join the cluster and adopt its running replicas; a registry only this machine can read
        is refused on a cluster of several nodes unless declared shared."""
        runtime.connect()
        problem = local_only_registry(self.settings.tracking_uri)
        if problem and runtime.node_count() > 1 and not runtime.shared_storage:
            raise RuntimeError(
                f"the MLflow registry is {problem}, which the other nodes of the Ray cluster cannot read: "
                "use an MLflow server (mlflow server --serve-artifacts) or say --ray-shared-storage when "
                "every node sees the same files"
            )
        runtime.watch_adopted()

    async def _retire_strays(self, runtime: RayRuntime) -> None:
        """Adopted actors of services that are gone or stopped (changed while no server ran)."""
        for state in runtime.states():
            service = self.store.service(state.service_id)
            if service is None or service.stopped:
                await runtime.stop(state.pod_name)

    async def close(self) -> None:
        await self.history.close()
        await self.scaling.close()
        await self.reconciler.close()
        await self.runtime.close()
        await self.gateway.close()
        self.store.close()


def build_app(settings: ServerSettings, ray: RayOptions | None = None) -> Starlette:
    server = Server.build(settings, ray)
    keys = {key.secret_id: key for key in load_access_keys(settings)}
    control = ControlApi(
        server.backend,
        keys,
        public_url=settings.public_url,
        max_body_bytes=settings.max_body_bytes,
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def pod(request: Request) -> Response:
        # Only on the server's own host name: a page reached through another name (DNS rebinding,
        # a proxy) is refused even with a valid token.
        if request.headers.get("host", "") not in _own_hosts(settings):
            return JSONResponse({"message": "unknown host"}, status_code=421)
        pod_name = request.path_params["pod_name"]
        state = server.runtime.state(pod_name)
        token = request.query_params.get("token", "")
        if state is None or not server.backend.secret.pod_token_valid(pod_name, token, time.time()):
            return JSONResponse({"message": "the link is invalid or has expired"}, status_code=403)
        tail = await server.backend.log_tail(pod_name, POD_PAGE_LOG_LINES)
        return HTMLResponse(pod_page(state, tail), headers={"Cache-Control": "no-store"})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await server.start()
        try:
            yield
        finally:
            await server.close()

    routes = [
        Route("/", control.handle, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/pods/{pod_name}", pod, methods=["GET"]),
        *gateway_routes(server.gateway),
        Mount(
            "/console",
            build_console(server.backend, keys, public_url=settings.public_url, own_hosts=_own_hosts(settings)),
        ),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


def _table_events(reconciler: Reconciler) -> TroubleListener:
    """The inference table's trouble (a full disk, say) as events of the services it concerns."""

    def told(services: set[str], written_again: bool, message: str) -> None:
        kind, reason = (
            (EventType.NORMAL, "InferenceTableWritten")
            if written_again
            else (EventType.WARNING, "InferenceTableWriteFailed")
        )
        for service_id in services:
            reconciler.record(service_id, kind, reason, message)

    return told


def _usage(runtime: LocalRuntime | RayRuntime) -> Iterable[tuple[str, str, float, int]]:
    """(service id, pod, CPU %, RSS bytes) of every replica, for the gateway's metrics."""
    for state in runtime.states():
        usage = runtime.usage(state.pod_name)
        if usage is not None:
            yield state.service_id, state.pod_name, usage[0], usage[1]


def _own_hosts(settings: ServerSettings) -> set[str]:
    names = {settings.host}
    if settings.host in ("127.0.0.1", "localhost"):
        names |= {"127.0.0.1", "localhost"}
    return {f"{name}:{settings.port}" for name in names}

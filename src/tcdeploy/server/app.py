"""Assembles the server's ASGI app: the control API, the gateway's routes, health, and pod pages."""
from __future__ import annotations

import time
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from . import control  # noqa: F401  (registers every action)
from .control.core import Core
from .control.pipeline import handle
from .control.pods import pod_page, pod_token_valid
from .settings import ServerSettings, load_access_keys, server_secret


def build_app(settings: ServerSettings) -> Starlette:
    core = Core(settings, load_access_keys(settings), server_secret(settings))

    async def control_api(request: Request) -> Response:
        return await handle(request, core)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def pod(request: Request) -> Response:
        # Only on the server's own host name: a page reached through another name (DNS rebinding,
        # a proxy) is refused even with a valid token.
        if request.headers.get("host", "") not in _own_hosts(settings):
            return JSONResponse({"message": "unknown host"}, status_code=421)
        pod_name = request.path_params["pod_name"]
        state = core.runtime.state(pod_name)
        token = request.query_params.get("token", "")
        if state is None or not pod_token_valid(core, pod_name, token, time.time()):
            return JSONResponse({"message": "the link is invalid or has expired"}, status_code=403)
        return HTMLResponse(pod_page(core, state), headers={"Cache-Control": "no-store"})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await core.start()
        try:
            yield
        finally:
            await core.close()

    routes = [
        Route("/", control_api, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/pods/{pod_name}", pod, methods=["GET"]),
        *core.gateway.http_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.core = core
    return app


def _own_hosts(settings: ServerSettings) -> set[str]:
    names = {settings.host}
    if settings.host in ("127.0.0.1", "localhost"):
        names |= {"127.0.0.1", "localhost"}
    return {f"{name}:{settings.port}" for name in names}
